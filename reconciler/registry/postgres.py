"""The shared registry: PostgreSQL through psycopg 3, same behaviour as SQLite.

URL: ``postgresql://user[:password]@host[:port]/database[?schema=NAME&…]``. The
``schema`` parameter (ours, not libpq's) puts the registry's tables into that
schema, created when missing; other parameters go to libpq unchanged.

The key must come from ``MAILFORM_MASTER_KEY``: there is no file "beside" a
server database. Transactions are explicit (``BEGIN`` … ``COMMIT``, autocommit
connection); the serial is bumped with ``UPDATE … RETURNING``, which row-locks
it, so two writers can never hand out the same serial. Taking the write lock
holds ``LOCK TABLE lock IN EXCLUSIVE MODE`` for its check-and-insert, and a
first open (migrations) holds a transaction-scoped advisory lock, so concurrent
first opens do not race to create the tables.

A connection the server ends (``pg_terminate_backend``, a restart) fails the
transaction it was in — rolled back by the server — with a registry error;
the next use outside a transaction connects again (see ``store``).

``url`` (shown in messages) has any password replaced by ``***``.
"""
from __future__ import annotations

from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import RegistryError
from .crypto import ENV_VAR, KeyRing
from .sqlbase import SQLRegistry
from .store import Backend

try:
    import psycopg
    from psycopg import sql
except ImportError:  # pragma: no cover - psycopg is a declared dependency
    psycopg = None

_MIGRATION_LOCK = 0x6D61696C   # "mail": first half of the advisory lock key


def split_url(url: str) -> tuple[str, str | None, str]:
    """(libpq conninfo URL, schema or None, URL safe to show)."""
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://", 1))
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    conninfo = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
    shown_netloc = parts.netloc
    if parts.password is not None:
        shown_netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    shown = urlunsplit((parts.scheme, shown_netloc, parts.path, parts.query, ""))
    return conninfo, schema or None, shown


class PostgresBackend(Backend):
    """BEGIN alone does not serialise a check-and-insert or first opens here: locks do."""

    begin_sql = "BEGIN"
    row_lock = " FOR UPDATE"
    json_rows = True
    blob_type = "BYTEA"
    errors = (psycopg.Error,) if psycopg else ()
    paramstyle = "format"

    def schema_version(self, cur: Any) -> int:
        # A catalog scan, not to_regclass(): its cached "no such table" answer can
        # outlive another session's commit that we just waited for.
        cur.execute("SELECT count(*) FROM pg_catalog.pg_tables "
                    "WHERE schemaname = current_schema() AND tablename = 'meta'")
        if cur.fetchone()[0] == 0:
            return 0
        cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def before_migrations(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))",
                    (_MIGRATION_LOCK,))

    def lock_table(self, cur: Any, table: str) -> None:
        cur.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")

    def __init__(self, reconnect: Callable[[], Any]) -> None:
        self._reconnect = reconnect

    def key_from_store(self, create: bool, check: str = "") -> KeyRing:
        raise RegistryError(f"a PostgreSQL registry needs {ENV_VAR} (urlsafe base64 of 32 "
                            "bytes): there is no key file beside a server database")

    def lost(self, conn: Any) -> bool:
        return bool(conn.closed or getattr(conn, "broken", False))

    def reconnect(self) -> Any:
        return self._reconnect()

    def notify(self, cur: Any, channel: str, payload: str) -> None:
        cur.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def listen_connection(self) -> Any:
        return self._reconnect()

    def relax_durability(self, conn: Any) -> None:
        conn.execute("SET synchronous_commit = off")

    def commit_failed(self, exc: BaseException) -> bool:
        # The server's answer to COMMIT was an error (it has a SQLSTATE, e.g. 57P01 for a
        # terminated backend): not committed. No answer at all: it may have committed.
        return getattr(exc, "sqlstate", None) is not None


class PostgresRegistry(SQLRegistry):
    """The registry in a PostgreSQL schema; the key only from MAILFORM_MASTER_KEY."""

    def __init__(self, url: str, migrations: Any = None) -> None:
        if psycopg is None:
            raise RegistryError("PostgreSQL registry: the psycopg package is not installed")
        conninfo, self.schema, shown = split_url(url)
        conn = _connect(conninfo, self.schema, shown)
        backend = PostgresBackend(lambda: _connect(conninfo, self.schema, shown))
        super().__init__(shown, conn, backend, migrations)


def postgres_registry_exists(url: str) -> bool:
    """Whether the registry's tables exist (in its schema), without creating anything."""
    if psycopg is None:
        raise RegistryError("PostgreSQL registry: the psycopg package is not installed")
    conninfo, schema, shown = split_url(url)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = "
                               "coalesce(%s, current_schema()) AND tablename = 'meta'",
                               (schema,)).fetchone()
    except psycopg.Error as exc:
        raise RegistryError(f"cannot open the registry {shown}: "
                            f"{str(exc).strip() or exc.__class__.__name__}") from None
    return bool(row and row[0])


def _connect(conninfo: str, schema: str | None, shown: str) -> Any:
    """An autocommit connection whose search path is ``schema`` (created when missing)."""
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
        if schema:
            name = sql.Identifier(schema)
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
            conn.execute(sql.SQL("SET search_path TO {}").format(name))
    except psycopg.Error as exc:
        raise RegistryError(f"cannot open the registry {shown}: "
                            f"{str(exc).strip() or exc.__class__.__name__}") from None
    return conn
