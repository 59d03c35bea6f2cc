"""Opening a registry: migrate the schema when needed, set up meta, find the key.

The first open of a database creates the tables, a lineage (a random id that
tells registries apart), serial 0 and a key check value, all in one
transaction. Later opens of an up-to-date database only read, so that opening
never waits behind an apply in progress (and works on a read-only file). The
key is checked against the registry's key check value; a key file rotation
that committed but did not finish is completed here (``keyfile``).
"""
from __future__ import annotations

import uuid
from typing import Any, Sequence

from . import schema
from .common import iso, utcnow
from .crypto import KeyRing, key_from_env
from .rekey import REKEYED_SERIAL
from .store import SQLStore


def open_schema(store: SQLStore, migrations: Sequence[schema.Migration]) -> KeyRing:
    """Bring the database up to date (or refuse one newer than the code); its key ring."""
    schema.check_order(migrations)
    newer = _newer_than_code(store, migrations)
    if newer:
        store.backend.read_only = newer
        return _existing_key(store, _meta(store.raw_cursor()))
    keys = _open_read_only(store, migrations)
    if keys is not None:
        return keys
    backend = store.backend
    with store.write() as cur:
        backend.before_migrations(cur)
        for step in schema.pending(backend.schema_version(cur), migrations, store.url):
            for statement in step.statements:
                cur.execute(statement.format(blob=backend.blob_type))
            backend.set_schema_version(cur, step.version)
        return _init_meta(store, cur)


def _newer_than_code(store: SQLStore, migrations: Sequence[schema.Migration]) -> str:
    """Why the registry cannot be written by this code ("" when its schema is known)."""
    latest = migrations[-1].version if migrations else 0
    try:
        current = store.backend.schema_version(store.raw_cursor())
    except store.backend.errors:
        return ""
    if current <= latest:
        return ""
    return (f"its schema version {current} is newer than this mailform understands (up to "
            f"{latest}); upgrade mailform to write to it")


def _meta(cur) -> dict:
    cur.execute("SELECT key, value FROM meta")
    return dict(cur.fetchall())


def _open_read_only(store: SQLStore, migrations: Sequence[schema.Migration]) -> KeyRing | None:
    """The key ring of an initialised, up-to-date registry, found with plain reads only.

    A write transaction here would wait behind any writer (an apply in progress
    holds one until it commits) and fail after the busy timeout with "database is
    locked" instead of the lock's holder being reported. None when migrating or
    initialising is needed (then a write runs).
    """
    try:
        cur = store.raw_cursor()
        if schema.pending(store.backend.schema_version(cur), migrations, store.url):
            return None
        meta = _meta(cur)
    except store.backend.errors:
        return None
    if "lineage" not in meta:
        return None
    return _existing_key(store, meta)


def _existing_key(store: SQLStore, meta: dict) -> KeyRing:
    check = meta.get("key_check", "")
    keys = key_from_env() or store.backend.key_from_store(create=False, check=check)
    keys.verify(check, store.url, _rekey_hint(meta))
    return keys


def _rekey_hint(meta: dict) -> str:
    """After a re-key, a wrong key is most likely the one it replaced: say so."""
    serial = meta.get(REKEYED_SERIAL)
    if not serial:
        return ""
    return (f"; the registry's key was changed by `mailform registry rekey` at serial {serial}: "
            "use the new key")


def _init_meta(store: SQLStore, cur: Any) -> KeyRing:
    cur.execute("SELECT key, value FROM meta")
    meta = dict(cur.fetchall())
    if "lineage" in meta:
        return _existing_key(store, meta)
    keys = key_from_env() or store.backend.key_from_store(create=True)
    rows = [("lineage", str(uuid.uuid4())), ("serial", "0"), ("event_seq", "0"),
            ("key_check", keys.check_value()), ("created", iso(utcnow()))]
    cur.executemany(store.q("INSERT INTO meta (key, value) VALUES (?, ?)"), rows)
    return keys
