"""The SQL store: one connection, its dialect, reads and explicit transactions.

Every part of a registry (accounts, lock, contact ledger, history) receives the
same ``SQLStore`` and uses only its public methods, so the parts know nothing of
the backend beyond what ``Backend`` says.

The connection is in autocommit mode: every transaction is begun and ended here
explicitly, committed at the end of its ``with`` block and rolled back on any
exception. A write started while this store already has a transaction open
(``registry.set_status`` inside an apply) joins that transaction. A
``threading.RLock`` serialises threads sharing one store.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import RegistryError
from .crypto import KeyRing


class Backend:
    """What differs between SQLite and PostgreSQL: the SQL dialect, where the schema
    version is kept, the master key's source, and locks BEGIN alone does not take."""

    begin_sql = "BEGIN"
    blob_type = "BLOB"
    errors: tuple[type[BaseException], ...] = ()
    paramstyle = "qmark"

    def q(self, sql: str) -> str:
        """Our ``?`` placeholders in the driver's style."""
        return sql.replace("?", "%s") if self.paramstyle == "format" else sql

    def schema_version(self, cur: Any) -> int:
        raise NotImplementedError

    def set_schema_version(self, cur: Any, version: int) -> None:
        cur.execute(self.q("INSERT INTO meta (key, value) VALUES (?, ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                    ("schema_version", str(version)))

    def key_from_store(self, create: bool) -> KeyRing:
        raise NotImplementedError

    def before_migrations(self, cur: Any) -> None:
        """Serialise concurrent first opens where BEGIN alone does not (PostgreSQL)."""

    def lock_table(self, cur: Any, table: str) -> None:
        """Make a check-and-insert on ``table`` exclusive where BEGIN alone does not."""


class SQLStore:
    """One connection of one registry, shared by its parts."""

    def __init__(self, url: str, conn: Any, backend: Backend) -> None:
        self.url, self.backend = url, backend
        self._conn = conn
        self._mutex = threading.RLock()
        self._depth = 0

    def q(self, sql: str) -> str:
        return self.backend.q(sql)

    def fail(self, exc: BaseException) -> RegistryError:
        """A driver error as the registry error a user sees, naming the registry."""
        return RegistryError(f"registry {self.url}: {exc}".strip())

    def _connection(self) -> Any:
        if self._conn is None:
            raise RegistryError(f"registry {self.url} is closed")
        return self._conn

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One explicit transaction (or join the one already open on this store)."""
        with self._mutex:
            conn = self._connection()
            if self._depth:
                self._depth += 1
                try:
                    yield conn.cursor()
                finally:
                    self._depth -= 1
                return
            yield from self._outer_transaction(conn.cursor())

    def _outer_transaction(self, cur: Any) -> Iterator[Any]:
        errors = self.backend.errors
        try:
            cur.execute(self.backend.begin_sql)
        except errors as exc:
            raise self.fail(exc) from exc
        self._depth = 1
        try:
            yield cur
            cur.execute("COMMIT")
        except BaseException as exc:
            self._rollback(cur)
            if isinstance(exc, errors):
                raise self.fail(exc) from exc
            raise
        finally:
            self._depth = 0

    def _rollback(self, cur: Any) -> None:
        try:
            cur.execute("ROLLBACK")
        except self.backend.errors:
            pass   # the connection already ended the transaction

    def read(self, sql: str, params: tuple = ()) -> list[tuple]:
        """All rows of one query, outside any transaction of ours (or inside the open one)."""
        with self._mutex:
            conn = self._connection()
            try:
                cur = conn.cursor()
                cur.execute(self.q(sql), params)
                return cur.fetchall()
            except self.backend.errors as exc:
                raise self.fail(exc) from exc

    def raw_cursor(self) -> Any:
        """A plain cursor for opening, where a failed query means "not initialised yet"."""
        return self._connection().cursor()

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
