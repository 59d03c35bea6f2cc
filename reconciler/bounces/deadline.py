"""Hard time limits for one inbox scan: per network step and for the whole account.

Like the probes' watchdog (``reconciler.verify.net``), but for a scan: every socket
of the scan is registered here; each network step (connect, login, SELECT, one
batch FETCH...) runs under ``step(stage)``, which gives the sockets a timeout no
longer than what is left and arms a watchdog thread that shuts the sockets down
when the step's time (``per_step`` seconds) or the account's (``total``) is up.
A server trickling a literal one byte every few seconds — which resets an
ordinary socket timeout on every byte — is cut off all the same: the blocked
read fails, ``expired`` says why, and the scan reports a timeout.

One watchdog thread serves every scan of the process (``inbox scan --concurrency N``
and a worker's jobs run many at once). It sleeps until the earliest time any scan's
step or whole deadline is up, and is woken only when a step ends sooner than that:
a step that starts later than the one it waits for, or a step that ends, does not
wake it (it wakes at the time it chose, finds the new one later and sleeps again),
so a scan's dozen steps cost no thread of their own and no thread switches.
"""
from __future__ import annotations

import math
import os
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Optional


class ScanDeadline:
    """The time a scan may take; shuts its sockets when it is up (see the module doc)."""

    def __init__(self, total: float, per_step: float) -> None:
        self.end = time.monotonic() + total
        self.total, self.per_step = total, per_step
        self.stage, self.expired = "connect", False
        self._socks: list[socket.socket] = []
        self._until = self.end
        _WATCHDOG.add(self)

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def step_timeout(self) -> float:
        """A socket timeout for the next step: never past the account's deadline."""
        return max(0.01, min(self.per_step, self.remaining()))

    def watch(self, sock: Optional[socket.socket]) -> None:
        """Register a socket: shut down when time is up (at once if it already is)."""
        if sock is None:
            return
        with _WATCHDOG.cond:
            self._socks.append(sock)
            fired = self.expired
        if fired:
            _shutdown(sock)

    @contextmanager
    def step(self, stage: str) -> Iterator[None]:
        """One network step: it may last ``per_step`` seconds, and not past the end."""
        if self.expired or self.remaining() <= 0:
            self.expired = True
            raise TimeoutError(f"deadline passed before {stage}")
        timeout = self.step_timeout()
        with _WATCHDOG.cond:
            self.stage, self._until = stage, time.monotonic() + timeout
            socks = list(self._socks)
            _WATCHDOG.due(self._until)
        for sock in socks:
            _settimeout(sock, timeout)
        try:
            yield
        finally:
            with _WATCHDOG.cond:
                self._until = self.end      # later: the watchdog need not wake for it

    def close(self) -> None:
        with _WATCHDOG.cond:
            self._socks = []
            _WATCHDOG.active.discard(self)

    def _fire(self) -> list[socket.socket]:
        """Time is up (called by the watchdog, its lock held): the sockets to shut."""
        self.expired = True
        return list(self._socks)

    def describe(self) -> str:
        """What ran out, for the scan's error."""
        if self.remaining() <= 0:
            return f"the scan's deadline of {self.total:g}s passed (during {self.stage})"
        return f"no answer within {self.per_step:g}s (during {self.stage})"


class _Watchdog:
    """The process's one watchdog thread (started on first use) for every open
    ``ScanDeadline``: it shuts the sockets of those whose time is up."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.active: set[ScanDeadline] = set()
        self._wake = math.inf         # when the thread looks next (inf: when woken)
        self._thread: Optional[threading.Thread] = None

    def add(self, deadline: ScanDeadline) -> None:
        with self.cond:
            self.active.add(deadline)
            self.due(deadline._until)

    def due(self, until: float) -> None:
        """Someone's time is up at ``until`` (the lock held): wake the thread only if it
        would look later than that."""
        if until >= self._wake:
            return
        self._wake = until
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="scan-deadline")
            self._thread.start()
        else:
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                now = time.monotonic()
                fired = [d for d in self.active if d._until <= now]
                socks = [sock for d in fired for sock in d._fire()]
                self.active.difference_update(fired)
                self._wake = min((d._until for d in self.active), default=math.inf)
                if not socks:
                    self.cond.wait(None if self._wake == math.inf else self._wake - now)
            for sock in socks:
                _shutdown(sock)

    def _forked(self) -> None:
        """In a forked child: no thread, no scans (they belong to the parent)."""
        self.cond, self.active = threading.Condition(), set()
        self._wake, self._thread = math.inf, None


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG._forked)


class WatchedClient:
    """Mixed into an imaplib/poplib client class: its socket is watched by the client's
    ``deadline`` from the moment it exists."""

    deadline: ScanDeadline

    def _create_socket(self, timeout):
        sock = super()._create_socket(timeout)   # type: ignore[misc]
        self.deadline.watch(sock)
        return sock


class WatchedContext:
    """An ``ssl.SSLContext`` stand-in for imaplib/poplib: the TLS socket is watched
    before its handshake, so a stalling handshake is cut off too."""

    def __init__(self, ctx: ssl.SSLContext, deadline: ScanDeadline) -> None:
        self.ctx, self.deadline = ctx, deadline

    def wrap_socket(self, sock: socket.socket, server_hostname: Optional[str] = None,
                    **_ignored) -> ssl.SSLSocket:
        sock.settimeout(self.deadline.step_timeout())
        ssock = self.ctx.wrap_socket(sock, server_hostname=server_hostname,
                                     do_handshake_on_connect=False)
        self.deadline.watch(ssock)
        ssock.do_handshake()
        return ssock


ACTIVE: ContextVar[Optional[ScanDeadline]] = ContextVar("scan_deadline", default=None)
"""The deadline of the scan running in this thread (``open_mailbox`` uses it)."""


def _settimeout(sock: socket.socket, timeout: float) -> None:
    try:
        sock.settimeout(timeout)
    except OSError:
        pass


def _shutdown(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass
