"""The Registry protocol: what plan, apply and the runtime parts need from a registry.

Account records hold the spec as plain JSON without secrets (``spec``: the live
value, which an operator may edit with ``registry set``; ``applied``: what the
last apply wrote, so that the difference between the two is drift), the keyed
fingerprints of the secrets (live and as applied), the secrets themselves
encrypted, and a status mapping.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ContextManager, Iterable, Optional, Protocol

from ..policy import DEFAULT_SOFT_BOUNCE_LIMIT, DEFAULT_SOFT_BOUNCE_WINDOW_DAYS, RELEASED


@dataclass(frozen=True)
class RegistryMeta:
    lineage: str
    serial: int


@dataclass
class StoredAccount:
    name: str
    type: str
    spec: dict                      # live, nested, without secret fields
    applied: dict                   # as the last apply wrote it
    fingerprints: dict[str, str]    # live: secret path (smtp.password) -> HMAC fingerprint
    applied_fingerprints: dict[str, str]
    status: dict = field(default_factory=dict)
    # status keys: activation ("active" | "pending_activation"),
    # verification ({"smtp": {...result...}, "inbox": {...}}), last_scan ({...})
    owner: Optional[str] = None     # the project managing it (ownership.name): policy.RELEASED

    @property
    def released(self) -> bool:
        return self.owner == RELEASED


@dataclass(frozen=True)
class LockInfo:
    id: str
    holder: str
    host: str
    pid: int
    started: str   # ISO 8601 UTC
    expires: str   # ISO 8601 UTC

    def as_dict(self) -> dict:
        return {"id": self.id, "holder": self.holder, "host": self.host, "pid": self.pid,
                "started": self.started, "expires": self.expires}


@dataclass(frozen=True)
class Rekeyed:
    """What ``registry rekey`` did (no key in it)."""

    serial: int
    accounts: int
    key_source: str       # where the new key is: MAILFORM_MASTER_KEY or the key file
    env_name: str = ""    # set when the operator must switch MAILFORM_MASTER_KEY to it
    key_installed: bool = True   # False: the new key waits in <key>.new (moved on next open)


@dataclass
class AccountWrite:
    """One account as apply writes it: spec becomes both live and applied."""

    name: str
    type: str
    spec: dict
    secrets: dict[str, str]          # secret path -> clear value (encrypted by the registry)
    fingerprints: dict[str, str]
    status: dict = field(default_factory=dict)   # merged into the existing status
    owner: Optional[str] = None      # recorded when given; None keeps the stored owner


class Transaction(Protocol):
    """Writes inside one apply. Nothing is visible to others until commit."""

    def put_account(self, write: AccountWrite) -> None: ...
    def delete_account(self, name: str) -> None: ...
    def move_account(self, old: str, new: str) -> None:
        """Rename, keeping status, secrets, owner and processed messages."""
    def set_owner(self, name: str, owner: Optional[str]) -> None:
        """The project managing the account (``RELEASED``: none; None: unrecorded)."""
    def merge_status(self, name: str, status: dict) -> None: ...
    def put_setting(self, key: str, value: Any) -> None:
        """A registry-wide setting, e.g. ``bounce_policy``."""
    def add_history(self, entry: dict) -> int:
        """Bumps serial; records {time, actor, counts, changes}; returns the new serial."""


class Registry(Protocol):
    url: str

    def meta(self) -> RegistryMeta: ...
    def accounts(self) -> dict[str, StoredAccount]: ...
    def account(self, name: str) -> Optional[StoredAccount]: ...
    def fingerprint(self, path: str, value: str) -> str:
        """Keyed HMAC of a secret value; ``path`` is mixed in (smtp.password vs inbox.password)."""
    def secrets(self, name: str) -> dict[str, str]:
        """Decrypt an account's secrets (runtime parts: verify, scan, proxy)."""
    def sign(self, purpose: str, data: bytes) -> str:
        """Keyed HMAC of ``data`` with the registry's key (saved plan files)."""
    def key_source(self) -> str:
        """Where the master key came from (the environment or a key file)."""
    def rekey(self, new_key_env: Optional[str], holder: str, timeout: float = 0) -> Rekeyed:
        """Re-encrypt every secret and re-key every fingerprint under a new master key
        (from variable ``new_key_env``, or generated for a key file), under the lock, in
        one transaction; bumps serial."""
    def rekeyed_serial(self) -> int:
        """The serial of the last re-key, 0 if never (older saved plans are stale)."""

    def lock(self, holder: str, lease_seconds: float = 300,
             timeout: float = 0) -> ContextManager[LockInfo]:
        """Take the write lock or raise LockedError after ``timeout`` seconds."""
    def current_lock(self) -> Optional[LockInfo]: ...
    def force_unlock(self, lock_id: str) -> None: ...
    def transaction(self) -> ContextManager[Transaction]: ...

    def set_field(self, name: str, path: str, value: Any) -> int:
        """Out-of-band edit of the live spec (or a secret); bumps serial, returns it."""
    def activate(self, name: str) -> int: ...
    def get_setting(self, key: str) -> Any: ...
    def set_status(self, name: str, status: dict,
                   add: Optional[dict[str, dict[str, int]]] = None) -> None:
        """Merge runtime status (verification, scan) without bumping serial; ``add``:
        counters added to those stored under each key ({"bounce_totals": {"hard": 2}}),
        read and written in the same transaction."""
    def history(self) -> list[dict]: ...

    # contacts (filled by `contacts import` and the inbox scanner)
    def contact_count(self) -> int: ...
    def upsert_contacts(self, rows: Iterable[tuple[str, dict]]) -> tuple[int, int]: ...
    def contacts(self, status: Optional[str] = None) -> list[dict]: ...
    def contact(self, email: str) -> Optional[dict]: ...
    def processed_uids(self, account: str, mailbox: str) -> set[str]: ...
    def record_message(self, account: str, mailbox: str, uid: Any,
                       recipients: Iterable[tuple], soft_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
                       window_days: int = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS, when: Any = None,
                       unverified: Iterable[tuple] = ()
                       ) -> list[tuple[Optional[str], Optional[str]]]:
        """One scanned message, atomically: its bounces ((address, kind, status[, reason]))
        counted (``policy.count_bounce``), its unverified ones ((address, kind, status,
        reason, why)) kept apart for contacts, and the message remembered; per counted
        recipient, the contact's (status before, after); [] for a message already
        processed (it is not counted again)."""
    def record_messages(self, account: str, mailbox: str, messages: Iterable[tuple],
                        soft_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
                        window_days: int = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS, when: Any = None
                        ) -> list[Optional[list[tuple[Optional[str], Optional[str]]]]]:
        """A batch of (uid, recipients, unverified, message_id) in one transaction, as
        ``record_message`` one after another would record them; per message its outcomes
        (None: the message was already processed, by a scan at the same time)."""
    def unverified_bounces(self, email: str) -> list[dict]:
        """A contact's unverified bounces, newest first (they never change its status)."""

    # tagged messages sent (``bounces.tags``), by tag id
    def record_sent(self, tag: str, account: str, recipients: Iterable[str],
                    when: Any = None) -> None: ...
    def sent_message(self, tag: str) -> Optional[dict]:
        """{tag, account, recipients, sent_at}, or None (unknown, or pruned)."""

    def close(self) -> None: ...
