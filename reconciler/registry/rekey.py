"""Re-keying a registry: every secret re-encrypted, every fingerprint re-keyed, at once.

Under the write lock and in one transaction: each account's secrets are
decrypted with the old key and encrypted with the new one; each fingerprint
(live and applied) is recomputed from the value it stands for, or — for an
applied secret whose value the registry no longer holds (an operator replaced
it since) — carried over by ``KeyRing.carry``, so that drift stays drift. The
key check value changes, the serial is bumped, a history entry is written and
``meta.rekeyed_serial`` records the serial: a saved plan made before it was
signed with the old key and is refused as stale (``rekeyed_serial``).

Where the new key is kept around the commit is ``rotation.Rotation``'s business.
"""
from __future__ import annotations

from typing import Any, Callable

from ..errors import RegistryError
from .accounts import SAME_AS_LIVE
from .base import Rekeyed
from .common import dumps, loads
from .crypto import KeyRing
from .rotation import Rotation
from .sent import SentLog
from .store import SQLStore

REKEYED_SERIAL = "rekeyed_serial"


def rekeyed_serial(store: SQLStore) -> int:
    """The serial of the last re-key (0: never re-keyed)."""
    rows = store.read("SELECT value FROM meta WHERE key = ?", (REKEYED_SERIAL,))
    return int(rows[0][0]) if rows else 0


def rekey(store: SQLStore, old: KeyRing, rotation: Rotation, holder: str,
          guard: Callable[[Any], None], add_history: Callable[[Any, dict], int]) -> Rekeyed:
    """Re-encrypt under ``rotation.keys``. The caller holds the write lock; ``guard``
    checks, first thing in the transaction, that the lock is still its own and the key
    still ``old``; ``add_history`` bumps the serial and writes the history entry."""
    rotation.stage()
    try:
        with store.write() as cur:
            guard(cur)
            count = reencrypt(cur, store, old, rotation.keys)
            SentLog(store).carry_tags(cur, old.sign)
            serial = add_history(cur, {"actor": holder, "action": "rekey", "accounts": count})
            _set_meta(cur, store, {"key_check": rotation.keys.check_value(),
                                   REKEYED_SERIAL: str(serial)})
    except BaseException:
        if not _stored_check_is(store, rotation.keys):
            rotation.discard()
        raise
    installed = rotation.install()
    return Rekeyed(serial, count, rotation.keys.source, rotation.env_name
                   if rotation.key_path is None else "", installed)


def reencrypt(cur: Any, store: SQLStore, old: KeyRing, new: KeyRing) -> int:
    """Every account's secrets and fingerprints under the new key; how many accounts."""
    cur.execute("SELECT name, fingerprints, applied_fingerprints, secrets FROM accounts")
    rows = cur.fetchall()
    updates = [_rekeyed(row, old, new) for row in rows]
    cur.executemany(store.q("UPDATE accounts SET fingerprints = ?, applied_fingerprints = ?, "
                            "secrets = ? WHERE name = ?"), updates)
    return len(rows)


def _rekeyed(row: tuple, old: KeyRing, new: KeyRing) -> tuple:
    name, live, applied, blob = row
    secrets = old.decrypt(blob, name)

    def rekey_all(fingerprints: str) -> str:
        return dumps({path: _fingerprint(path, fp, secrets, old, new)
                      for path, fp in loads(fingerprints).items()})

    new_applied = SAME_AS_LIVE if applied == SAME_AS_LIVE else rekey_all(applied)
    return rekey_all(live), new_applied, new.encrypt(secrets, name), name


def _fingerprint(path: str, fingerprint: str, secrets: dict, old: KeyRing,
                 new: KeyRing) -> str:
    """The new fingerprint of the value the old one stood for (when the registry holds
    it), else the old one carried over."""
    value = secrets.get(path)
    if value is not None and old.fingerprint(path, value) == fingerprint:
        return new.fingerprint(path, value)
    return new.carry(path, fingerprint)


def _set_meta(cur: Any, store: SQLStore, values: dict[str, str]) -> None:
    cur.executemany(store.q("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                            "DO UPDATE SET value = excluded.value"), list(values.items()))


def _stored_check_is(store: SQLStore, keys: KeyRing) -> bool:
    """Whether the registry holds data for ``keys`` (the rotation committed); True when
    that cannot be told, so that a new key is never thrown away while it may be needed."""
    try:
        rows = store.read("SELECT value FROM meta WHERE key = 'key_check'")
    except RegistryError:
        return True
    return bool(rows) and keys.matches(rows[0][0])
