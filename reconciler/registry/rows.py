"""An account row read for a plan: its JSON decoded only when someone looks.

At 100,000 accounts the decoded specs of the registry cost more memory than the
manifests; a plan of unchanged accounts needs none of them. ``StoredRow`` keeps
the spec's canonical JSON text (``common.dumps``: sorted keys) and decodes it on
first access; ``spec_equals(record)`` and ``unchanged_since_apply`` answer a plan's
two questions from the text. Everything else behaves as a ``StoredAccount``.

A plan can do without even the text of a row it will find unchanged by digest
(``planner._same_by_digest``): read inside ``unread_specs(match)``, a row unchanged
since the last apply for which ``match(name, type, spec_text, fingerprints)`` gives
a digest keeps that digest (``spec_digest``) instead of its text, and its spec can
no longer be read.

A local cache keeps rows between plans (``kept``): one unchanged since its last apply
as the digest of its spec text alone. Played back (``from_kept``), such a row reads
its text from the registry again when a plan looks at it, and refuses a text whose
digest is not the one kept (the registry changed meanwhile).
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

from ..errors import RegistryError
from .base import StoredAccount
from .common import dumps, loads

SAME_AS_LIVE = ""        # (accounts.SAME_AS_LIVE) the applied column: same as the live one
Match = Callable[[str, str, str, Mapping], Optional[bytes]]
_MATCH: ContextVar[Optional[Match]] = ContextVar("mailform_unread_specs", default=None)


@contextmanager
def unread_specs(match: Optional[Match]) -> Iterator[None]:
    """Rows read inside keep only a digest of the specs ``match`` vouches for (above)."""
    token = _MATCH.set(match)
    try:
        yield
    finally:
        _MATCH.reset(token)


class StoredRow(StoredAccount):
    """A ``StoredAccount`` whose spec and applied spec are decoded on demand. Its fields are
    slots (no per-row ``__dict__``: 100,000 rows are held at once)."""

    __slots__ = ("name", "type", "fingerprints", "applied_fingerprints", "status", "owner",
                 "spec_text", "spec_digest", "_applied_text", "_spec", "_applied", "_fetch")

    def __init__(self, name: str, type: str, spec_text: str, applied_text: str,
                 fingerprints: dict, applied_fingerprints: dict, status: dict,
                 owner: Optional[str]) -> None:
        self.name = name
        self.type, self.owner = _shared(type), _shared(owner)     # a few values, 100,000 rows
        self.fingerprints, self.applied_fingerprints = fingerprints, applied_fingerprints
        self.status = status
        self._applied_text = SAME_AS_LIVE if applied_text == spec_text else applied_text
        self._spec = self._applied = self.spec_digest = self._fetch = None
        match = _MATCH.get()
        if match is not None and self.unchanged_since_apply:
            self.spec_digest = match(name, type, spec_text, fingerprints)
            if self.spec_digest is not None:
                spec_text = None           # (not kept: see unread_specs)
        self.spec_text = spec_text  # the live spec as the registry holds it: canonical JSON

    def _text(self) -> str:
        text = self.spec_text
        if text is None:
            if self._fetch is None:
                raise RegistryError(f"account {self.name}: its registry spec was not kept by "
                                    "the plan that read it (found unchanged by digest)")
            text = self._fetched()
        return text

    def _fetched(self) -> str:
        """The spec text of a row kept as its digest (``from_kept``), read again now."""
        live = self._fetch(self.name)
        return self.given_text(getattr(live, "spec_text", None))

    def given_text(self, text: Optional[str]) -> str:
        """A row kept as its digest given its spec text, read again from the registry
        (None: it is gone), which must still hold what the digest says."""
        if text is None or spec_digest(text) != self.spec_digest:
            raise RegistryError(f"account {self.name} changed in the registry while the plan "
                                "was being made: run it again")
        self.spec_text = text
        return text

    @property
    def spec(self) -> dict:
        decoded = self._spec
        if decoded is None:
            decoded = self._spec = loads(self._text())
        return decoded

    @property
    def applied(self) -> dict:
        applied_text = self._applied_text
        if applied_text == SAME_AS_LIVE:
            return self.spec
        decoded = self._applied
        if decoded is None:
            decoded = self._applied = loads(applied_text)
        return decoded

    @property
    def unchanged_since_apply(self) -> bool:
        """No out-of-band edit since the last apply (the applied columns say "same")."""
        return self._applied_text == SAME_AS_LIVE and \
            self.applied_fingerprints is self.fingerprints

    def spec_equals(self, record: Mapping[str, Any]) -> bool:
        """Whether the live spec equals ``record`` — by text when it can (no decoding)."""
        text = self._text()
        if dumps(record) == text:
            return True
        return (self._spec or loads(text)) == record   # not kept

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredAccount):
            return NotImplemented
        return _fields(self) == _fields(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        spec = "(not kept)" if self.spec_text is None else repr(self.spec)
        return (f"StoredRow(name={self.name!r}, type={self.type!r}, spec={spec}, "
                f"owner={self.owner!r})")

    def __reduce__(self):
        return (StoredRow, (self.name, self.type, self._text(), self._applied_text,
                            self.fingerprints, self.applied_fingerprints, self.status,
                            self.owner))


def spec_digest(text: str) -> bytes:
    """SHA-256 of a row's spec text (what ``planner.record_digest`` makes of a record's)."""
    return hashlib.sha256(text.encode()).digest()


def kept(rows: Iterable[StoredRow]) -> list[tuple]:
    """Rows as a cache keeps them: a row unchanged since its last apply as (name, type,
    fingerprints, status, owner, digest of its spec text); any other whole (``StoredRow``'s
    arguments)."""
    out = []
    for row in rows:
        if row.unchanged_since_apply:
            digest = row.spec_digest or spec_digest(row.spec_text)
            out.append((row.name, row.type, row.fingerprints, row.status, row.owner, digest))
        else:
            out.append((row.name, row.type, row._text(), row._applied_text, row.fingerprints,
                        row.applied_fingerprints, row.status, row.owner))
    return out


def from_kept(items: list[tuple], fetch: Callable[[str], Any]) -> dict[str, StoredRow]:
    """``kept`` rows back, by name. A row kept as its digest reads its spec text through
    ``fetch(name)`` (``Registry.account``) when someone looks at it — a plan does only
    for an account it does not find unchanged by digest."""
    make, out = StoredRow.__new__, {}
    for item in items:
        if len(item) != 6:
            row = StoredRow(*item)
        else:
            row = make(StoredRow)
            row.name, row.type, row.fingerprints, row.status, row.owner, row.spec_digest = item
            row.applied_fingerprints, row._applied_text = row.fingerprints, SAME_AS_LIVE
            row.spec_text = row._spec = row._applied = None
            row._fetch = fetch
        out[row.name] = row
    return out


def stored_rows(rows: list[tuple], memo: dict[str, Any]) -> list[StoredRow]:
    """Account rows (``accounts._COLUMNS``) as ``StoredRow``, as its constructor makes
    them, without a call per row (100,000 rows on every plan). Fingerprints and statuses
    repeat across accounts (a shared secret, an "active"): each distinct text is decoded
    once per read (``memo``) and shared."""
    match, make, shared, out = _MATCH.get(), StoredRow.__new__, _SHARED, []
    append = out.append
    for name, type_, spec, applied, fps, applied_fps, status, owner in rows:
        fps_value = memo.get(fps, _NEW)
        if fps_value is _NEW:
            fps_value = memo[fps] = loads(fps)
        if applied_fps == SAME_AS_LIVE or applied_fps == fps:
            applied_value = fps_value
        else:
            applied_value = memo.get(applied_fps, _NEW)
            if applied_value is _NEW:
                applied_value = memo[applied_fps] = loads(applied_fps)
        status_value = memo.get(status, _NEW)
        if status_value is _NEW:
            status_value = memo[status] = loads(status)
        row = make(StoredRow)
        row.name, row.fingerprints, row.applied_fingerprints = name, fps_value, applied_value
        row.type = shared.get(type_) or _shared(type_)
        row.owner = None if owner is None else (shared.get(owner) or _shared(owner))
        row.status, row._spec, row._applied, row._fetch = status_value, None, None, None
        same = applied == spec or applied == SAME_AS_LIVE
        row._applied_text = SAME_AS_LIVE if same else applied
        digest = None
        if match is not None and same and applied_value is fps_value:
            digest = match(name, type_, spec, fps_value)
        row.spec_digest = digest
        row.spec_text = spec if digest is None else None
        append(row)
    return out


_NEW = object()
_SHARED: dict = {}
_MAX_SHARED = 1000


def _shared(text: Optional[str]) -> Optional[str]:
    """One object for each of the few types and owners (the first _MAX_SHARED met)."""
    found = _SHARED.get(text)
    if found is None:
        if text is None or len(_SHARED) >= _MAX_SHARED:
            return text
        found = _SHARED[text] = text
    return found


def _fields(account: StoredAccount) -> tuple:
    return (account.name, account.type, account.spec, account.applied, account.fingerprints,
            account.applied_fingerprints, account.status, account.owner)
