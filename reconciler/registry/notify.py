"""Telling long-running readers (the proxy) that the registry changed (issue 12).

Every write that bumps the serial (``history.bump_serial``) also sends a notification
on ``CHANNEL`` where the backend has them (PostgreSQL ``NOTIFY``, delivered when the
transaction commits). ``ChangeFeed`` is what a reader holds:

* ``serial()``: the registry's serial now (one small read): SQLite readers poll it;
* ``listener()``: on PostgreSQL a ``Listener`` on its own connection, whose ``wait``
  returns as soon as a change was committed anywhere; None elsewhere.
"""
from __future__ import annotations

from typing import Any, Optional

from .store import SQLStore

CHANNEL = "mailform_registry"


class Listener:
    """A dedicated connection LISTENing on ``CHANNEL`` (PostgreSQL)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        conn.execute(f"LISTEN {CHANNEL}")

    def wait(self, timeout: float) -> bool:
        """True when at least one change was notified within ``timeout`` seconds."""
        got = False
        for _ in self._conn.notifies(timeout=timeout, stop_after=1):
            got = True
        return got

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - closing a connection that may be gone
            pass


class ChangeFeed:
    """The registry's serial and, where there are notifications, a listener."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def serial(self) -> int:
        rows = self._store.read("SELECT value FROM meta WHERE key = 'serial'")
        return int(rows[0][0]) if rows else 0

    def listener(self) -> Optional[Listener]:
        conn = self._store.backend.listen_connection()
        return Listener(conn) if conn is not None else None
