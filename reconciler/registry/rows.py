"""An account row read for a plan: its JSON decoded only when someone looks.

At 100,000 accounts the decoded specs of the registry cost more memory than the
manifests; a plan of unchanged accounts needs none of them. ``StoredRow`` keeps
the spec's canonical JSON text (``common.dumps``: sorted keys) and decodes it on
first access; ``spec_equals(record)`` and ``unchanged_since_apply`` answer a plan's
two questions from the text. Everything else behaves as a ``StoredAccount``.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from .base import StoredAccount
from .common import dumps, loads

SAME_AS_LIVE = ""        # (accounts.SAME_AS_LIVE) the applied column: same as the live one


class StoredRow(StoredAccount):
    """A ``StoredAccount`` whose spec and applied spec are decoded on demand."""

    def __init__(self, name: str, type: str, spec_text: str, applied_text: str,
                 fingerprints: dict, applied_fingerprints: dict, status: dict,
                 owner: Optional[str]) -> None:
        d = self.__dict__
        d.update(name=name, type=type, fingerprints=fingerprints,
                 applied_fingerprints=applied_fingerprints, status=status, owner=owner)
        d["_texts"] = (spec_text, SAME_AS_LIVE if applied_text == spec_text else applied_text)

    @property
    def spec(self) -> dict:
        decoded = self.__dict__.get("_spec")
        if decoded is None:
            decoded = self.__dict__["_spec"] = loads(self._texts[0])
        return decoded

    @property
    def applied(self) -> dict:
        applied_text = self._texts[1]
        if applied_text == SAME_AS_LIVE:
            return self.spec
        decoded = self.__dict__.get("_applied")
        if decoded is None:
            decoded = self.__dict__["_applied"] = loads(applied_text)
        return decoded

    @property
    def spec_text(self) -> str:
        """The live spec as the registry holds it: canonical JSON (sorted keys)."""
        return self._texts[0]

    @property
    def unchanged_since_apply(self) -> bool:
        """No out-of-band edit since the last apply (the applied columns say "same")."""
        return self._texts[1] == SAME_AS_LIVE and \
            self.applied_fingerprints is self.fingerprints

    def spec_equals(self, record: Mapping[str, Any]) -> bool:
        """Whether the live spec equals ``record`` — by text when it can (no decoding)."""
        if dumps(record) == self._texts[0]:
            return True
        return (self.__dict__.get("_spec") or loads(self._texts[0])) == record   # not kept

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredAccount):
            return NotImplemented
        return _fields(self) == _fields(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"StoredRow(name={self.name!r}, type={self.type!r}, spec={self.spec!r}, "
                f"owner={self.owner!r})")

    def __reduce__(self):
        return (StoredRow, (self.name, self.type, *self._texts, self.fingerprints,
                            self.applied_fingerprints, self.status, self.owner))


def _fields(account: StoredAccount) -> tuple:
    return (account.name, account.type, account.spec, account.applied, account.fingerprints,
            account.applied_fingerprints, account.status, account.owner)
