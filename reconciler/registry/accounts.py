"""Accounts and registry-wide settings: the records plan reads and apply writes.

Writes take the caller's cursor, so that the registry can put several of them
(and a serial bump) into one transaction; reads go through the store.

An empty ``applied`` / ``applied_fingerprints`` column means "the same as the
live one": apply writes it so (half the bytes to store and read back); the
first out-of-band edit copies the live value there before changing it, so the
difference between the two is drift.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

from ..errors import NotFoundError, RegistryError
from ..model import SECRET_FIELDS
from .base import AccountWrite, StoredAccount
from .common import deep_merge, dumps, iso, loads, set_path, utcnow
from .crypto import KeyRing
from .rows import stored_rows
from .store import SQLStore

_COLUMNS = "name, type, spec, applied, fingerprints, applied_fingerprints, status, owner"
SAME_AS_LIVE = ""
_KEEP_APPLIED = "CASE WHEN applied = '' THEN spec ELSE applied END"
_KEEP_APPLIED_FPS = ("CASE WHEN applied_fingerprints = '' THEN fingerprints "
                     "ELSE applied_fingerprints END")
SETTING_PREFIX = "setting:"
_PAGE = 2000            # rows decoded at once when reading every account
_CHUNK = 500            # names per `IN (...)` read (SQLite allows 999 parameters)


class AccountBook:
    """Account records (spec, fingerprints, encrypted secrets, status) and settings."""

    def __init__(self, store: SQLStore, keys: KeyRing) -> None:
        self._store, self._keys = store, keys

    # -- reading -------------------------------------------------------------
    def all(self) -> dict[str, StoredAccount]:
        """Every account, by name. Read-only snapshots: when the live spec (or the
        fingerprints) equals what was applied, ``spec is applied`` — copy before mutating;
        equal fingerprints and statuses may be one shared object."""
        out: dict[str, StoredAccount] = {}
        memo: dict[str, Any] = {}
        for rows in self._pages(f"SELECT {_COLUMNS} FROM accounts ORDER BY name"):
            out.update((account.name, account) for account in _accounts(rows, memo))
        return out

    def _pages(self, sql: str) -> Iterator[list[tuple]]:
        """The rows of one query (one snapshot), a page at a time: 100,000 rows never
        sit in memory as text and decoded at once."""
        store = self._store
        with store._mutex:
            try:
                cur = store.raw_cursor()
                cur.execute(store.q(sql))
                while rows := cur.fetchmany(_PAGE):
                    yield rows
            except store.backend.errors as exc:
                raise store.fail(exc) from exc

    def get(self, name: str) -> Optional[StoredAccount]:
        rows = self._store.read(f"SELECT {_COLUMNS} FROM accounts WHERE name = ?", (name,))
        return _accounts(rows)[0] if rows else None

    def spec_texts(self, names: list[str]) -> dict[str, str]:
        """The live spec text (canonical JSON) of each of ``names`` the registry holds."""
        out: dict[str, str] = {}
        for start in range(0, len(names), _CHUNK):
            chunk = names[start:start + _CHUNK]
            out.update(self._store.read("SELECT name, spec FROM accounts WHERE name IN ("
                                        + ", ".join("?" * len(chunk)) + ")", tuple(chunk)))
        return out

    def secrets(self, name: str) -> dict[str, str]:
        rows = self._store.read("SELECT secrets FROM accounts WHERE name = ?", (name,))
        if not rows:
            raise NotFoundError(f"account {name} is not in the registry")
        return self._keys.decrypt(rows[0][0], name)

    def get_setting(self, key: str) -> Any:
        """A registry-wide setting written by apply (e.g. ``bounce_policy``), or None."""
        rows = self._store.read("SELECT value FROM meta WHERE key = ?", (SETTING_PREFIX + key,))
        return loads(rows[0][0]) if rows else None

    # -- writing (inside the caller's transaction) ------------------------------
    def put_setting(self, cur: Any, key: str, value: Any) -> None:
        cur.execute(self._store.q(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
            "SET value = excluded.value"), (SETTING_PREFIX + key, dumps(value)))

    def put(self, cur: Any, write: AccountWrite) -> None:
        """Apply's write: the spec becomes both live and applied; status is merged."""
        self.put_many(cur, [write])

    def put_many(self, cur: Any, writes: list[AccountWrite]) -> None:
        """Several of apply's writes: one read of the statuses they merge into, one batched
        upsert. Each write encrypts its secrets afresh (a new nonce every time: reusing a
        stored ciphertext would save ~5 µs an account and tell a reader what stayed)."""
        stored = self._stored(cur, [w.name for w in writes])
        now = iso(utcnow())
        known: dict[tuple[str, str], str] = {}     # (path, value) -> fingerprint: shared secrets
        cur.executemany(self._store.q(_UPSERT), [
            self._row(write, stored.get(write.name), now, known) for write in writes])
        owners = [(w.owner, w.name) for w in writes if w.owner is not None]
        if owners:
            cur.executemany(self._store.q("UPDATE accounts SET owner = ? WHERE name = ?"),
                            owners)

    def _stored(self, cur: Any, names: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(names), _CHUNK):
            chunk = names[start:start + _CHUNK]
            cur.execute(self._store.q(
                "SELECT name, status FROM accounts WHERE name IN ("
                + ", ".join("?" * len(chunk)) + ")"), tuple(chunk))
            out.update(cur.fetchall())
        return out

    def _row(self, write: AccountWrite, status: Optional[str], now: str,
             known: Optional[dict] = None) -> tuple:
        fingerprints = self._checked_fingerprints(write, known)
        merged = deep_merge(loads(status), write.status) if status else write.status
        return (write.name, write.type, dumps(write.spec), SAME_AS_LIVE, dumps(fingerprints),
                SAME_AS_LIVE, self._keys.encrypt(write.secrets, write.name), dumps(merged),
                now, now)

    def set_owner(self, cur: Any, name: str, owner: Optional[str]) -> None:
        """The project managing the account (policy.RELEASED: none; None: unrecorded)."""
        cur.execute(self._store.q("UPDATE accounts SET owner = ? WHERE name = ?"), (owner, name))
        if cur.rowcount == 0:
            raise NotFoundError(f"account {name} is not in the registry")

    def rename(self, cur: Any, old: str, new: str) -> None:
        """A move: the row keeps everything but its name; the secrets, encrypted with the
        name as associated data, are encrypted again under the new one."""
        (blob,) = self._load_row(cur, old, "secrets")
        cur.execute(self._store.q("SELECT 1 FROM accounts WHERE name = ?"), (new,))
        if cur.fetchone() is not None:
            raise RegistryError(f"cannot move account {old} to {new}: {new} already exists")
        secrets = self._keys.encrypt(self._keys.decrypt(blob, old), new)
        cur.execute(self._store.q("UPDATE accounts SET name = ?, secrets = ?, updated = ? "
                                  "WHERE name = ?"), (new, secrets, iso(utcnow()), old))

    def _checked_fingerprints(self, write: AccountWrite, known: Optional[dict] = None
                              ) -> dict[str, str]:
        """The given fingerprints, completed from the secrets; a wrong one is refused.
        ``known``: fingerprints computed before, by (path, value) (one batch's)."""
        fingerprints = dict(write.fingerprints)
        known = {} if known is None else known
        for path, value in write.secrets.items():
            actual = known.get((path, value))
            if actual is None:
                actual = known[(path, value)] = self._keys.fingerprint(path, value)
            if fingerprints.setdefault(path, actual) != actual:
                raise RegistryError(f"account {write.name}: the fingerprint given for {path} "
                                    "does not match its value")
        return fingerprints

    def delete(self, cur: Any, name: str) -> None:
        cur.execute(self._store.q("DELETE FROM accounts WHERE name = ?"), (name,))
        if cur.rowcount == 0:
            raise NotFoundError(f"account {name} is not in the registry")

    def set_field(self, cur: Any, name: str, path: str, value: Any) -> None:
        """Operator edit of the LIVE spec; a secret path re-encrypts and changes only
        the live fingerprint, so the next plan reports drift against the applied one."""
        if path in SECRET_FIELDS:
            self._set_secret(cur, name, path, value)
        else:
            self._set_spec_field(cur, name, path, value)

    def _set_spec_field(self, cur: Any, name: str, path: str, value: Any) -> None:
        (spec,) = self._load_row(cur, name, "spec")
        new_spec = set_path(loads(spec), path, value)
        sql = f"UPDATE accounts SET applied = {_KEEP_APPLIED}, spec = ?, updated = ?"
        params: tuple = (dumps(new_spec), iso(utcnow()))
        if path == "type":
            sql, params = sql + ", type = ?", params + (str(value),)
        cur.execute(self._store.q(sql + " WHERE name = ?"), params + (name,))

    def _set_secret(self, cur: Any, name: str, path: str, value: Any) -> None:
        if not isinstance(value, str):
            raise RegistryError(f"{path} of account {name} must be a string")
        fps, blob = self._load_row(cur, name, "fingerprints, secrets")
        secrets = self._keys.decrypt(blob, name)
        secrets[path] = value
        fingerprints = {**loads(fps), path: self._keys.fingerprint(path, value)}
        cur.execute(self._store.q(
            f"UPDATE accounts SET applied_fingerprints = {_KEEP_APPLIED_FPS}, "
            "secrets = ?, fingerprints = ?, updated = ? WHERE name = ?"),
            (self._keys.encrypt(secrets, name), dumps(fingerprints), iso(utcnow()), name))

    def activate(self, cur: Any, name: str) -> None:
        """A pending marketing account becomes active (an operator's decision)."""
        (status,) = self._load_row(cur, name, "status")
        current = loads(status).get("activation")
        if current != "pending_activation":
            raise RegistryError(f"account {name} is not pending activation "
                                f"(activation: {current or 'unset'})")
        self.merge_status(cur, name, {"activation": "active"})

    def merge_status(self, cur: Any, name: str, status: dict,
                     add: Optional[dict[str, dict[str, int]]] = None) -> None:
        """``status`` merged into the account's; ``add``: counters added to those under
        each key (a scan's bounce totals: two scans never lose each other's counts)."""
        (current,) = self._load_row(cur, name, "status")
        merged = deep_merge(loads(current), status)
        for key, counts in (add or {}).items():
            totals = dict(merged.get(key) or {})
            for counter, count in counts.items():
                totals[counter] = totals.get(counter, 0) + count
            merged[key] = totals
        cur.execute(self._store.q("UPDATE accounts SET status = ? WHERE name = ?"),
                    (dumps(merged), name))

    def _load_row(self, cur: Any, name: str, columns: str) -> tuple:
        """The account's ``columns``, for an update of its row in this transaction: the
        row stays locked until it ends where BEGIN alone does not serialise writers
        (PostgreSQL), so two read-modify-writes of one account never lose one another."""
        cur.execute(self._store.q(f"SELECT {columns} FROM accounts WHERE name = ?"
                                  + self._store.backend.row_lock), (name,))
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"account {name} is not in the registry")
        return row


def _accounts(rows: list[tuple], memo: Optional[dict[str, Any]] = None
              ) -> list[StoredAccount]:
    """Rows as ``StoredRow``: the specs stay JSON text until looked at (``rows``).
    Fingerprints and statuses repeat across accounts (a shared secret, an "active"):
    each distinct text is decoded once per read (``memo``) and shared."""
    return stored_rows(rows, {} if memo is None else memo)


_UPSERT = """INSERT INTO accounts (name, type, spec, applied, fingerprints, applied_fingerprints,
                                   secrets, status, created, updated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET type = excluded.type, spec = excluded.spec,
    applied = excluded.applied, fingerprints = excluded.fingerprints,
    applied_fingerprints = excluded.applied_fingerprints, secrets = excluded.secrets,
    status = excluded.status, updated = excluded.updated"""
