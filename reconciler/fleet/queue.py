"""The task queue: procrastinate's tables in their own PostgreSQL schema of the registry's
database (``mailform_queue`` unless ``--queue-schema`` says otherwise).

Every connection of the queue sets ``search_path`` to that schema, so the queue's
tables, types and functions never mix with the registry's. ``migrate`` creates the
schema and procrastinate's objects when missing (under an advisory lock, so that
workers starting together do not race), and is a no-op afterwards.
"""
from __future__ import annotations

from typing import Any, Optional

import procrastinate
import psycopg
from procrastinate.schema import SchemaManager

from ..registry.postgres import split_url
from .config import FleetConfig

_MIGRATE_LOCK = 0x6D66_7131     # "mfq1"
KINDS = ("scan", "verify", "reconcile")


def conninfo(config: FleetConfig) -> str:
    """The registry's database as libpq sees it (our ``schema`` parameter removed)."""
    return split_url(config.registry_url)[0]


def _options(config: FleetConfig) -> dict[str, Any]:
    return {"options": f"-c search_path={config.queue_schema}", "connect_timeout": 10}


async def _autocommit(conn: psycopg.AsyncConnection) -> None:
    """Each new connection of the pool (and procrastinate's listener's) in autocommit."""
    await conn.set_autocommit(True)


def make_app(config: FleetConfig) -> procrastinate.App:
    """A procrastinate app on the queue's schema; tasks are registered by ``tasks``.

    Its pool's connections are in autocommit: each of procrastinate's queries is one
    statement (a call of its functions: fetch a job, finish it, ...), atomic by itself,
    so the BEGIN and COMMIT psycopg would send around each one are two round trips to
    the database per query (of four, with the pool's liveness check) that do nothing."""
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(config), kwargs=_options(config), configure=_autocommit,
        min_size=1, max_size=config.concurrency + 4)
    return procrastinate.App(connector=connector)


def connect(config: FleetConfig) -> psycopg.Connection:
    return psycopg.connect(conninfo(config), autocommit=True, **_options(config))


def installed(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = %s "
                       "AND tablename = 'procrastinate_jobs'", (schema,)).fetchone()
    return bool(row and row[0])


def migrate(config: FleetConfig) -> bool:
    """Create the queue's schema and tables when missing; True when it created them."""
    schema = config.queue_schema
    with connect(config) as conn:
        if installed(conn, schema):
            return False
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            if installed(conn, schema):
                return False
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(f'SET LOCAL search_path = "{schema}"')
            conn.execute(SchemaManager.get_schema())
    return True


def pending(config: FleetConfig, conn: Optional[psycopg.Connection] = None) -> int:
    """Jobs queued or running (``todo``/``doing``), periodic ticks left out (on ``conn``
    when given: a caller asking again and again keeps one connection)."""
    if conn is None:
        with connect(config) as own:
            return pending(config, own)
    row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status IN "
                       "('todo', 'doing') AND task_name = ANY(%s)", (list(KINDS),)).fetchone()
    return int(row[0])


def counts(config: FleetConfig) -> dict[str, int]:
    """status -> jobs, for the fleet's own tasks."""
    with connect(config) as conn:
        rows = conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs "
                            "WHERE task_name = ANY(%s) GROUP BY status",
                            (list(KINDS),)).fetchall()
    return {status: int(n) for status, n in rows}
