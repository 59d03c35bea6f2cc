"""Failed-login throttling shared by every proxy replica on one registry (issue 12).

One row per client address: when its window started (epoch milliseconds), its
``attempts`` (password checks in flight plus failed ones) and its ``failures``. A check
slot is taken with ONE atomic upsert ... RETURNING *before* a password is checked, and
given back in the same transaction when the slots are all taken: two replicas, or 200
simultaneous attempts, can never check more passwords than the limit, because the slots
are counted by the database (a row lock on PostgreSQL, the file's write lock on SQLite).
A failed check keeps its slot and counts a failure; a successful one gives its slot back.
Everything is forgotten when the window (from the first attempt) ends.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from .store import SQLStore

_RESERVE = (
    "INSERT INTO login_throttle (client, window_start, attempts, failures) VALUES (?, ?, 1, 0) "
    "ON CONFLICT (client) DO UPDATE SET "
    "attempts = CASE WHEN login_throttle.window_start <= ? THEN 1 "
    "ELSE login_throttle.attempts + 1 END, "
    "failures = CASE WHEN login_throttle.window_start <= ? THEN 0 "
    "ELSE login_throttle.failures END, "
    "window_start = CASE WHEN login_throttle.window_start <= ? THEN excluded.window_start "
    "ELSE login_throttle.window_start END "
    "RETURNING attempts, failures")
_RELEASE = "UPDATE login_throttle SET attempts = attempts - 1 WHERE client = ? AND attempts > 0"
_FAILED = "UPDATE login_throttle SET failures = failures + 1 WHERE client = ? RETURNING failures"


def _now_ms() -> int:
    return int(time.time() * 1000)


class LoginThrottle:
    """The ``login_throttle`` table."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def reserve(self, client: str, limit: int, window: float,
                now_ms: Optional[int] = None) -> str:
        """"ok" (a slot is taken), "wait" (all taken by checks in flight) or "locked"."""
        now = _now_ms() if now_ms is None else now_ms
        cutoff = now - int(window * 1000)
        with self._store.write() as cur:
            cur.execute(self._store.q(_RESERVE), (client, now, cutoff, cutoff, cutoff))
            attempts, failures = cur.fetchone()
            if attempts <= limit:
                return "ok"
            cur.execute(self._store.q(_RELEASE), (client,))
        return "locked" if failures >= limit else "wait"

    def attempt(self, client: str, limit: int, window: float, check: Callable[[], object],
                now_ms: Optional[int] = None) -> tuple[str, object, int]:
        """A whole login attempt in ONE transaction: a slot taken, ``check()`` (the
        password; no I/O of this connection) run while the row (PostgreSQL) or the file
        (SQLite) is locked, then the slot given back when it passed or the failure counted.
        (verdict, what ``check`` returned or None, failures). Concurrent attempts queue on
        the lock, so they never check more than ``limit``; an older replica's slots in
        flight still count ("wait"). ``check`` raising rolls the slot back."""
        now = _now_ms() if now_ms is None else now_ms
        cutoff = now - int(window * 1000)
        with self._store.write() as cur:
            cur.execute(self._store.q(_RESERVE), (client, now, cutoff, cutoff, cutoff))
            attempts, failures = cur.fetchone()
            if attempts > limit:
                cur.execute(self._store.q(_RELEASE), (client,))
                return ("locked" if failures >= limit else "wait"), None, int(failures)
            passed = check()
            if passed is not None:
                cur.execute(self._store.q(_RELEASE), (client,))
                return "ok", passed, int(failures)
            cur.execute(self._store.q(_FAILED), (client,))
            row = cur.fetchone()
        return "ok", None, int(row[0]) if row else int(failures) + 1

    def release(self, client: str) -> None:
        """Give a slot back (the check did not fail)."""
        with self._store.write() as cur:
            cur.execute(self._store.q(_RELEASE), (client,))

    def failed(self, client: str) -> int:
        """The check failed: its slot stays taken; the failures in the window."""
        with self._store.write() as cur:
            cur.execute(self._store.q(_FAILED), (client,))
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def failures(self, client: str, window: float) -> int:
        """Failures of ``client`` in its current window."""
        rows = self._store.read("SELECT failures FROM login_throttle WHERE client = ? "
                                "AND window_start > ?", (client, _now_ms() - int(window * 1000)))
        return int(rows[0][0]) if rows else 0

    def prune(self, window: float) -> None:
        """Forget addresses whose window ended."""
        with self._store.write() as cur:
            cur.execute(self._store.q("DELETE FROM login_throttle WHERE window_start <= ?"),
                        (_now_ms() - int(window * 1000),))
