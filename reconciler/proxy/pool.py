"""Upstream sessions per account: at most N open at once, idle ones kept for reuse.

An account's sessions are keyed by its settings (host, port, login, a digest of the
password): a changed password never reuses a session logged in with the old one. At
most ``max_sessions`` sessions of one account are open at a time (busy or idle); a
transaction that finds none free waits up to ``timeout`` seconds, then fails (a 451).
A released session is RSET and kept idle for ``idle`` seconds; a broken one is closed.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Awaitable, Callable, Optional

from ..servers import ServerSettings
from .upstream import StepFailed, Upstream


def pool_key(name: str, settings: ServerSettings) -> tuple:
    digest = hashlib.sha256((settings.secret or "").encode("utf-8")).hexdigest()[:16]
    return (name, settings.host, settings.port, settings.security, settings.username,
            settings.authenticate, digest)


class _Account:
    def __init__(self, limit: int) -> None:
        self.slots = asyncio.Semaphore(limit)
        self.idle: list[Upstream] = []


class UpstreamPool:
    """Sessions of every account, on one event loop."""

    def __init__(self, max_sessions: int, idle: float, timeout: float) -> None:
        self.max_sessions, self.idle, self.timeout = max_sessions, idle, timeout
        self._accounts: dict[tuple, _Account] = {}

    def _account(self, key: tuple) -> _Account:
        if key not in self._accounts:
            self._accounts[key] = _Account(self.max_sessions)
        return self._accounts[key]

    async def acquire(self, key: tuple, opener: Callable[[], Awaitable[Upstream]]
                      ) -> tuple[Upstream, bool]:
        """A session of ``key`` (an idle one when there is one, else a new one) and
        whether it was reused; StepFailed when none is free in time or it cannot open."""
        account = self._account(key)
        try:
            async with asyncio.timeout(self.timeout):    # (no task when a slot is free)
                await account.slots.acquire()
        except TimeoutError:
            raise StepFailed("connect", None, f"{self.max_sessions} upstream sessions of the "
                             f"account are busy", broken=False) from None
        fresh = self._fresh_idle(account)
        if fresh is not None:
            return fresh, True
        try:
            return await opener(), False
        except BaseException:
            account.slots.release()
            raise

    def _fresh_idle(self, account: _Account) -> Optional[Upstream]:
        while account.idle:
            session = account.idle.pop()
            if time.monotonic() - session.idle_since < self.idle and not session.broken:
                return session
            asyncio.ensure_future(session.close())
        return None

    async def release(self, key: tuple, session: Upstream, reuse: bool = True) -> None:
        """Give a session back: RSET and kept idle, or closed."""
        account = self._account(key)
        try:
            if reuse and not session.broken and await session.reset():
                account.idle.append(session)
            else:
                await session.close(polite=not session.broken)
        finally:
            account.slots.release()

    async def expire(self) -> None:
        """Close idle sessions older than ``idle`` seconds."""
        now = time.monotonic()
        for account in list(self._accounts.values()):
            old = [s for s in account.idle if now - s.idle_since >= self.idle]
            account.idle = [s for s in account.idle if s not in old]
            for session in old:
                await session.close()

    async def close(self) -> None:
        for account in self._accounts.values():
            idle, account.idle = account.idle, []
            for session in idle:
                await session.close()
