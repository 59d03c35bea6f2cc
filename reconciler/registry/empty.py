"""A registry that does not exist yet, seen as empty: what read-only commands plan against.

``plan``, ``state``, ``history`` and ``import`` never create a registry (only
``apply`` and ``registry init`` do): pointed at one that is missing, they read this
stand-in instead — no accounts, no contacts, no history, serial 0, no lineage.
Fingerprints use a key made for this run alone: nothing is compared with them, and
nothing signed with it can ever be applied (a saved plan needs the real registry).
Every write is refused, naming the commands that create the registry.
"""
from __future__ import annotations

import os
from typing import Any, Optional

from ..errors import NotFoundError
from .base import RegistryMeta, StoredAccount
from .conditions import NoConditions
from .crypto import KeyRing

CREATED_BY = "`mailform apply` or `mailform registry init` creates it"


class EmptyRegistry:
    """The read side of the ``Registry`` protocol for a registry that is not there."""

    missing = True
    conditions = NoConditions()

    def __init__(self, url: str) -> None:
        self.url = url
        self._keys = KeyRing.from_master(os.urandom(32), "none (the registry does not exist)")

    def __enter__(self) -> "EmptyRegistry":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        pass

    def meta(self) -> RegistryMeta:
        return RegistryMeta("", 0)

    def accounts(self) -> dict[str, StoredAccount]:
        return {}

    def account(self, name: str) -> Optional[StoredAccount]:
        return None

    def fingerprint(self, path: str, value: str) -> str:
        return self._keys.fingerprint(path, value)

    def contact_count(self) -> int:
        return 0

    def contact(self, email: str) -> Optional[dict]:
        return None

    def contacts(self, status: Optional[str] = None) -> list[dict]:
        return []

    def get_setting(self, key: str) -> Any:
        return None

    def history(self) -> list[dict]:
        return []

    def current_lock(self) -> None:
        return None

    def rekeyed_serial(self) -> int:
        return 0

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise RegistryMissing(self.url)

    # writes, and what needs the registry's own key
    set_field = activate = set_status = transaction = lock = force_unlock = _refuse
    upsert_contacts = record_message = secrets = sign = rekey = key_source = _refuse


class RegistryMissing(NotFoundError):
    """No registry at the URL; a read-only command would otherwise have created it."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"there is no registry at {url} yet ({CREATED_BY})")
