"""The write lock: one row naming its holder, host, pid, start time and lease.

Taking it is a short transaction of its own, so the lock is visible to other
processes at once while the apply's own transaction is still to come. The row is
free to take when:

* there is none;
* its lease has expired (a holder that was killed leaves a row that ages out);
* its holder ran on this same host (same ``socket.gethostname()``) and its pid
  no longer exists: such a holder is certainly dead, so there is no point in
  waiting for the lease (pid reuse can only make us wait, never steal).

Otherwise the caller polls until ``timeout`` seconds have passed, then gets
``LockedError`` with the holder's details. The lock is released on every exit
path of the ``with`` block, and only if it is still ours (an expired lease taken
over by someone else is theirs now); when the block failed, a failing release
never hides the block's error.
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator, Optional

from ..errors import LockedError, MailformError, NotFoundError, RegistryError
from .base import LockInfo
from .common import iso, later, parse_iso, pid_alive, utcnow
from .store import SQLStore

_LOCK_COLUMNS = "id, holder, host, pid, started, expires"
POLL_SECONDS = 0.1


def can_take_over(held: LockInfo, now: datetime, host: str) -> bool:
    """Whether a held lock may be taken anyway: its lease ran out, or its holder was
    on this host and is certainly dead (see the module docstring)."""
    if parse_iso(held.expires) <= now:
        return True
    return held.host == host and not pid_alive(held.pid)


class WriteLock:
    """The lock row of one registry, taken and released through its store."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def current(self) -> Optional[LockInfo]:
        rows = self._store.read(f"SELECT {_LOCK_COLUMNS} FROM lock")
        return _info(rows[0]) if rows else None

    @contextmanager
    def hold(self, holder: str, lease_seconds: float = 300,
             timeout: float = 0) -> Iterator[LockInfo]:
        """Hold the write lock for the ``with`` block; released on every exit path."""
        info = self._acquire(holder, lease_seconds, timeout)
        try:
            yield info
        except BaseException as exc:
            self._release_after(exc, info)
            raise
        self._release(info.id)

    def _release_after(self, exc: BaseException, info: LockInfo) -> None:
        """Release after the block failed, without hiding why it failed: a release that
        fails too (the database is gone) adds how the lock ends to the first error."""
        try:
            self._release(info.id)
        except RegistryError:
            if isinstance(exc, MailformError) and len(exc.args) == 1:
                exc.args = (f"{exc.args[0]}; the registry lock {info.id} stays until its lease "
                            f"ends ({info.expires}) or `mailform force-unlock {info.id}`",)

    def check_held(self, cur: Any, lock_id: str) -> None:
        """Inside a transaction: the lock is still ``lock_id`` (a lease that ran out may
        have been taken over), else nothing may be written."""
        cur.execute(f"SELECT {_LOCK_COLUMNS} FROM lock")
        row = cur.fetchone()
        if row is None or row[0] != lock_id:
            if row is not None:
                raise LockedError(_info(row).as_dict())
            raise RegistryError("the registry lock's lease ran out before writing; nothing "
                                "was written — run the command again")

    def _acquire(self, holder: str, lease_seconds: float, timeout: float) -> LockInfo:
        deadline = time.monotonic() + max(timeout, 0)
        while True:
            info, held = self._try_acquire(holder, lease_seconds)
            if info is not None:
                return info
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                assert held is not None
                raise LockedError(held.as_dict())
            time.sleep(min(POLL_SECONDS, remaining))

    def _try_acquire(self, holder: str, lease_seconds: float
                     ) -> tuple[Optional[LockInfo], Optional[LockInfo]]:
        """(ours, None) when taken; (None, the holder's) when someone else holds it."""
        host = socket.gethostname()
        held = self.current()     # a plain read first: never waits on a writer
        if held is not None and not can_take_over(held, utcnow(), host):
            return None, held
        try:
            return self._take(holder, lease_seconds, host)
        except RegistryError:
            # the database stayed busy (SQLite: the holder, who took the lock just after
            # our read, is writing its apply): it is held, if the lock row says so
            held = self.current()
            if held is not None and not can_take_over(held, utcnow(), host):
                return None, held
            raise

    def _take(self, holder: str, lease_seconds: float, host: str
              ) -> tuple[Optional[LockInfo], Optional[LockInfo]]:
        with self._store.write() as cur:
            self._store.backend.lock_table(cur, "lock")
            cur.execute(f"SELECT {_LOCK_COLUMNS} FROM lock")
            row = cur.fetchone()
            now = utcnow()
            if row is not None and not can_take_over(_info(row), now, host):
                return None, _info(row)
            cur.execute("DELETE FROM lock")
            info = LockInfo(id=str(uuid.uuid4()), holder=holder, host=host, pid=os.getpid(),
                            started=iso(now), expires=iso(later(now, lease_seconds)))
            cur.execute(self._store.q(
                f"INSERT INTO lock (slot, {_LOCK_COLUMNS}) VALUES (1, ?, ?, ?, ?, ?, ?)"),
                (info.id, info.holder, info.host, info.pid, info.started, info.expires))
            return info, None

    def _release(self, lock_id: str) -> None:
        """Remove the row only if it is still ours (an expired lease may be someone else's)."""
        with self._store.write() as cur:
            cur.execute(self._store.q("DELETE FROM lock WHERE id = ?"), (lock_id,))

    def force_unlock(self, lock_id: str) -> None:
        """An operator's removal of a lock known by its id (never "whatever is there")."""
        with self._store.write() as cur:
            cur.execute(self._store.q("DELETE FROM lock WHERE id = ?"), (lock_id,))
            if cur.rowcount == 0:
                cur.execute(f"SELECT {_LOCK_COLUMNS} FROM lock")
                row = cur.fetchone()
                now_held = f"the current lock is {row[0]}" if row else "the registry is not locked"
                raise NotFoundError(f"no lock with id {lock_id}; {now_held}")


def _info(row: tuple) -> LockInfo:
    lock_id, holder, host, pid, started, expires = row
    return LockInfo(id=lock_id, holder=holder, host=host, pid=int(pid),
                    started=started, expires=expires)
