"""The embedded registry: one SQLite file (WAL), its key file beside it.

One connection per Registry object, opened in autocommit mode
(``isolation_level=None``) so that every transaction here is explicit:
``BEGIN IMMEDIATE`` takes the write lock of the file up front (no deadlocking
upgrade from a read), ``COMMIT`` at the end, ``ROLLBACK`` on any exception. A
process killed in the middle leaves only uncommitted WAL frames, which SQLite
ignores: the database is exactly as it was before.

``busy_timeout`` makes a writer wait for another process's short transaction
instead of failing at once. The schema version is ``PRAGMA user_version``
(mirrored in ``meta.schema_version``). Where the file or its folder cannot be
written (a read-only mount), the registry is opened read-only (``sqlfile``).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Optional

from ..errors import RegistryError
from .crypto import KeyRing
from .keyfile import key_from_file
from .sqlfile import connect
from .sqlbase import SQLRegistry
from .store import Backend


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

    def __init__(self, key_path: Path, read_only: str = "") -> None:
        self.key_path, self.read_only = key_path, read_only

    def schema_version(self, cur: Any) -> int:
        cur.execute("PRAGMA user_version")
        return int(cur.fetchone()[0])

    def set_schema_version(self, cur: Any, version: int) -> None:
        cur.execute(f"PRAGMA user_version = {int(version)}")
        super().set_schema_version(cur, version)

    def key_from_store(self, create: bool, check: str = "") -> KeyRing:
        return key_from_file(self.key_path, create=create, check=check)

    def key_file(self) -> Optional[Path]:
        return self.key_path

    def relax_durability(self, conn: Any) -> None:
        conn.execute("PRAGMA synchronous = NORMAL")    # WAL: no fsync per commit


class SQLiteRegistry(SQLRegistry):
    """The registry in one SQLite file; the key file beside it unless the key is in the env."""

    def __init__(self, url: str, migrations: Any = None) -> None:
        self.path = sqlite_path(url)
        self.key_path = self.path.with_name(self.path.name + ".key")
        conn, read_only = connect(self.path)
        super().__init__(url, conn, SQLiteBackend(self.key_path, read_only), migrations)
