"""The SQL store: one connection, its dialect, reads and explicit transactions.

Every part of a registry (accounts, lock, contact ledger, history) receives the
same ``SQLStore`` and uses only its public methods, so the parts know nothing of
the backend beyond what ``Backend`` says.

The connection is in autocommit mode: every transaction is begun and ended here
explicitly, committed at the end of its ``with`` block and rolled back on any
exception. A write started while this store already has a transaction open
(``registry.set_status`` inside an apply) joins that transaction. A
``threading.RLock`` serialises threads sharing one store.

A connection that the server ended (PostgreSQL's backend terminated) fails the
transaction it was in with a registry error that says so; outside a
transaction, a new connection replaces it (the lock's release after a failed
apply goes through). A registry opened read-only (``Backend.read_only``) reads
and refuses every write with the reason.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from ..errors import RegistryError
from .crypto import KeyRing

_ROLLED_BACK = "; the transaction was rolled back: nothing was written"
_IN_DOUBT = ("; the commit was not confirmed: `mailform history` shows whether it was "
             "written")


class Backend:
    """What differs between SQLite and PostgreSQL: the SQL dialect, where the schema
    version is kept, the master key's source, and locks BEGIN alone does not take."""

    begin_sql = "BEGIN"
    blob_type = "BLOB"
    errors: tuple[type[BaseException], ...] = ()
    paramstyle = "qmark"
    read_only = ""      # why the registry cannot be written here ("": it can)
    # appended to a SELECT whose row the transaction then updates: a row lock where
    # concurrent writers are not already serialised by BEGIN (PostgreSQL: FOR UPDATE)
    row_lock = ""
    # rows can be passed as one JSON text (json_array_elements: PostgreSQL)
    json_rows = False

    def q(self, sql: str) -> str:
        """Our ``?`` placeholders in the driver's style."""
        return sql.replace("?", "%s") if self.paramstyle == "format" else sql

    def schema_version(self, cur: Any) -> int:
        raise NotImplementedError

    def set_schema_version(self, cur: Any, version: int) -> None:
        cur.execute(self.q("INSERT INTO meta (key, value) VALUES (?, ?) "
                           "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                    ("schema_version", str(version)))

    def key_from_store(self, create: bool, check: str = "") -> KeyRing:
        """The key when it is not in the environment; ``check`` is the registry's key
        check value ("" for a registry being created)."""
        raise NotImplementedError

    def key_file(self) -> Optional[Path]:
        """The key file a rotation writes (None: the key lives in the environment)."""
        return None

    def lost(self, conn: Any) -> bool:
        """Whether the connection to the database is gone (a server's backend ended)."""
        return False

    def reconnect(self) -> Any:
        """A new connection replacing a lost one (None: there is no way to get one)."""
        return None

    def commit_failed(self, exc: BaseException) -> bool:
        """Whether a COMMIT that raised ``exc`` certainly did not commit."""
        return True

    def before_migrations(self, cur: Any) -> None:
        """Serialise concurrent first opens where BEGIN alone does not (PostgreSQL)."""

    def lock_table(self, cur: Any, table: str) -> None:
        """Make a check-and-insert on ``table`` exclusive where BEGIN alone does not."""

    def notify(self, cur: Any, channel: str, payload: str) -> None:
        """Tell listeners on ``channel`` (at commit) where the backend can (PostgreSQL)."""

    def listen_connection(self) -> Any:
        """A new connection for LISTEN (None: this backend has no notifications)."""
        return None

    def relax_durability(self, conn: Any) -> None:
        """Commits on ``conn`` stop waiting for the disk (a busy writer of records whose
        last seconds may be lost with the machine, never corrupted: the proxy's)."""


class SQLStore:
    """One connection of one registry, shared by its parts."""

    def __init__(self, url: str, conn: Any, backend: Backend) -> None:
        self.url, self.backend = url, backend
        self._conn = conn
        self._mutex = threading.RLock()
        self._depth = 0

    def q(self, sql: str) -> str:
        return self.backend.q(sql)

    def fail(self, exc: BaseException, committing: bool = False) -> RegistryError:
        """A driver error as the registry error a user sees, naming the registry; a lost
        connection says so, and what became of the transaction it was in."""
        if self._conn is None or not self.backend.lost(self._conn):
            return RegistryError(f"registry {self.url}: {exc}".strip())
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        in_doubt = committing and not self.backend.commit_failed(exc)
        after = _IN_DOUBT if in_doubt else _ROLLED_BACK if self._depth else ""
        return RegistryError(f"registry {self.url}: the connection to the database was lost "
                             f"({cause}){after}")

    def _connection(self) -> Any:
        """The connection; outside a transaction, a lost one is replaced when possible."""
        if self._conn is None:
            raise RegistryError(f"registry {self.url} is closed")
        if not self._depth and self.backend.lost(self._conn):
            fresh = self.backend.reconnect()
            if fresh is not None:
                self._conn = fresh
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
            self._writable()
            yield from self._outer_transaction(conn)

    def _writable(self) -> None:
        if self.backend.read_only:
            raise RegistryError(f"the registry {self.url} is read-only here "
                                f"({self.backend.read_only}): it can be read (plan, state, "
                                "history) but this command writes to it")

    def write_one(self, sql: str, params: tuple = ()) -> list[tuple]:
        """One statement that writes, atomic by itself, and the rows it returns: its own
        transaction without a BEGIN and a COMMIT around it (two round trips to a
        database server), or a part of the transaction open on this store."""
        with self._mutex:
            if not self._depth:
                self._writable()
            return self._one(sql, params, committing=not self._depth)

    def _outer_transaction(self, conn: Any) -> Iterator[Any]:
        errors = self.backend.errors
        try:
            cur = conn.cursor()
            cur.execute(self.backend.begin_sql)
        except errors as exc:
            raise self.fail(exc) from exc
        self._depth, committing = 1, False
        try:
            yield cur
            committing = True
            cur.execute("COMMIT")
        except BaseException as exc:
            self._rollback(cur)
            if isinstance(exc, errors):
                raise self.fail(exc, committing) from exc
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
            return self._one(sql, params)

    def _one(self, sql: str, params: tuple, committing: bool = False) -> list[tuple]:
        """One statement on the connection and the rows it gives (``read``, ``write_one``;
        the caller holds the mutex)."""
        conn = self._connection()
        try:
            cur = conn.cursor()
            cur.execute(self.q(sql), params)
            return cur.fetchall() if cur.description else []
        except self.backend.errors as exc:
            raise self.fail(exc, committing) from exc

    def relax_durability(self) -> None:
        """See ``Backend.relax_durability``; for this connection only."""
        with self._mutex:
            self.backend.relax_durability(self._connection())

    def raw_cursor(self) -> Any:
        """A plain cursor for opening, where a failed query means "not initialised yet"."""
        return self._connection().cursor()

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
