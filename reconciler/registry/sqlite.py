"""The embedded registry: one SQLite file (WAL), its key file beside it.

One connection per Registry object, opened in autocommit mode
(``isolation_level=None``) so that every transaction here is explicit:
``BEGIN IMMEDIATE`` takes the write lock of the file up front (no deadlocking
upgrade from a read), ``COMMIT`` at the end, ``ROLLBACK`` on any exception. A
process killed in the middle leaves only uncommitted WAL frames, which SQLite
ignores: the database is exactly as it was before.

``busy_timeout`` makes a writer wait for another process's short transaction
instead of failing at once. The schema version is ``PRAGMA user_version``
(mirrored in ``meta.schema_version``).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ..errors import RegistryError
from .crypto import KeyRing, key_from_file
from .sqlbase import SQLRegistry
from .store import Backend

BUSY_TIMEOUT_MS = 10_000


def sqlite_path(url: str) -> Path:
    """``sqlite:///rel/path.db`` → rel/path.db; ``sqlite:////abs/path.db`` → /abs/path.db;
    anything without the scheme is a plain path."""
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///"):
            raise RegistryError(f"invalid SQLite registry URL {url!r}: use sqlite:///relative/path.db "
                                "or sqlite:////absolute/path.db")
        rest = url[len("sqlite:///"):].split("?", 1)[0]
    else:
        rest = url
    if not rest:
        raise RegistryError(f"invalid SQLite registry URL {url!r}: no file path")
    return Path(rest)


class SQLiteBackend(Backend):
    """BEGIN IMMEDIATE (no deadlocking upgrade from a read); version in PRAGMA user_version."""

    begin_sql = "BEGIN IMMEDIATE"
    blob_type = "BLOB"
    errors = (sqlite3.Error,)
    paramstyle = "qmark"

    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path

    def schema_version(self, cur: Any) -> int:
        cur.execute("PRAGMA user_version")
        return int(cur.fetchone()[0])

    def set_schema_version(self, cur: Any, version: int) -> None:
        cur.execute(f"PRAGMA user_version = {int(version)}")
        super().set_schema_version(cur, version)

    def key_from_store(self, create: bool) -> KeyRing:
        return key_from_file(self.key_path, create=create)


class SQLiteRegistry(SQLRegistry):
    """The registry in one SQLite file; the key file beside it unless the key is in the env."""

    def __init__(self, url: str, migrations: Any = None) -> None:
        self.path = sqlite_path(url)
        self.key_path = self.path.with_name(self.path.name + ".key")
        super().__init__(url, _connect(self.path), SQLiteBackend(self.key_path), migrations)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        conn.execute("PRAGMA foreign_keys = ON")
    except (OSError, sqlite3.Error) as exc:
        raise RegistryError(f"cannot open the registry {path}: {exc}") from exc
    if str(mode).lower() != "wal":
        conn.close()
        raise RegistryError(f"cannot put the registry {path} in WAL mode (got {mode})")
    return conn
