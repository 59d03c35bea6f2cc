"""The SMTP submission proxy (SPEC §7, issue 12): what every session shares, and the
listening server with its graceful stop.

``ProxyCore`` holds the settings, the registry view (``auth``), the failed-login limiter
(``ratelimit``), the upstream sessions (``pool``) and three small thread pools: *login*
(password checks, the limiter), *relay* (settings, the tag: what a relay waits for) and
*log* (the delivery log and the contact ledger, written after the client's answer). Relays themselves run on the event loop (``upstream``), so no number
of stalled upstreams can hold up a login. ``ProxyServer.stop`` is the SIGTERM path: stop
accepting, 421 to idle sessions, let transactions in flight finish up to
``shutdown_grace`` seconds, then 421 to the rest (a message still being received is never
acknowledged; one being relayed waits for the upstream's answer, within its deadline).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import queue
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Callable, Optional

from .auth import AccountDirectory
from .config import (DEFAULT_MAX_MESSAGE_SIZE, ConfigError, ProxyConfig, check_config,
                     is_loopback, parse_listen, server_tls_context)
from .pool import UpstreamPool
from .ratelimit import LoginLimiter
from .records import record
from .relay import failure_reply
from .smtp import ProxySMTP
from .upstream import Upstream

log = logging.getLogger("mailform.proxy")


class _QuietAuthWarning(logging.Filter):
    """aiosmtpd warns that AUTH is not tied to TLS: we enforce that ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "auth_require_tls" not in record.getMessage()


_AIOSMTPD_LOG = logging.getLogger("mail.log")
_AIOSMTPD_LOG.addFilter(_QuietAuthWarning())


def _record_all(registry, deliveries: list) -> None:
    with registry.store.write():
        for delivery in deliveries:
            record(registry, delivery)


class Recorder:
    """One thread writing finished transactions' records (``records.record``) after the
    client has its answer: the first record of a batch waits ``LINGER`` seconds for others
    to join it, and whatever queued up while a batch was written goes into the next one,
    so a busy proxy wakes this thread and commits once per batch rather than once per
    message (each wake-up and each commit of a thread beside the event loop costs the GIL
    changing hands), and the event loop only puts a record on a queue."""

    BATCH = 200
    LINGER = 0.05
    _STOP = object()

    def __init__(self, write: Callable[[list], None]) -> None:
        self._write = write
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None     # started by the first record

    def put(self, delivery) -> None:
        """(From the event loop's thread only.)"""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="mailform-proxy-log")
            self._thread.start()
        self._queue.put(delivery)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            if batch[0] is not self._STOP:
                time.sleep(self.LINGER)
            while len(batch) < self.BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if self._STOP in batch:
                stopping = True
                batch = [item for item in batch if item is not self._STOP]
            if batch:
                self._write(batch)

    def close(self, timeout: float) -> None:
        """Write what is queued (up to ``timeout`` seconds), then stop."""
        if self._thread is None:
            return
        self._queue.put(self._STOP)
        self._thread.join(timeout)


class ProxyCore:
    """What every session shares (see the module docstring)."""

    def __init__(self, config: ProxyConfig, directory: AccountDirectory,
                 limiter: Optional[LoginLimiter] = None) -> None:
        self.config = config
        self.directory = directory
        self.limiter = limiter or LoginLimiter(config.limits)
        self.hostname = config.hostname or socket.gethostname()
        self.login_workers = ThreadPoolExecutor(4, thread_name_prefix="mailform-proxy-login")
        self.relay_workers = ThreadPoolExecutor(4, thread_name_prefix="mailform-proxy-relay")
        self.log_workers = ThreadPoolExecutor(1, thread_name_prefix="mailform-proxy-log")
        self.recorder = Recorder(self._record)
        self.pool = UpstreamPool(config.max_upstream_sessions, config.upstream_idle,
                                 config.upstream_timeout)
        self.sessions: set = set()
        self._tasks: set[asyncio.Task] = set()
        self.smtp_template = None     # (tls context, loop, what ProxySMTP copies per connection)

    @staticmethod
    def now() -> datetime:
        return datetime.now(timezone.utc)

    async def run_login(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(self.login_workers, func, *args)

    async def run_relay(self, func, *args):
        """Registry work a relay waits for (settings, the tag)."""
        return await asyncio.get_running_loop().run_in_executor(self.relay_workers, func, *args)

    async def run_log(self, func, *args):
        """Registry work nobody waits for (the delivery log, the ledger, pruning)."""
        return await asyncio.get_running_loop().run_in_executor(self.log_workers, func, *args)

    async def settings_of(self, name: str):
        options = {"timeout": self.config.upstream_timeout, "ca_file": self.config.ca_file}
        known = getattr(self.directory, "known_current", None)
        settings = known(name, **options) if known is not None else None
        if settings is None:
            _, settings = await self.run_relay(lambda: self.directory.current(name, **options))
        return settings

    async def open_upstream(self, settings) -> Upstream:
        upstream = Upstream(settings, self.hostname, self.config.upstream_timeout)
        try:
            await upstream.open()
        except BaseException:
            await upstream.close(polite=False)
            raise
        return upstream

    async def tag(self, delivery, recipients: list[str], data: bytes) -> bytes:
        from .auth import ProxyAccount
        account = ProxyAccount(delivery.account, delivery.mail_from)
        return await self.run_relay(self.directory.tag, account, recipients, data)

    async def finish(self, tx) -> None:
        """A transaction's upstream session back to the pool; its records written."""
        if tx.upstream is not None:
            await self.pool.release(tx.key, tx.upstream, reuse=not tx.upstream.broken)
            tx.upstream = None
        tx.delivery.finished = self.now()
        self.recorder.put(tx.delivery)

    def _record(self, deliveries: list) -> None:
        """Deliveries' records in one transaction; when that fails, one by one, so that a
        row that cannot be written costs only itself."""
        if len(deliveries) > 1:
            try:
                self.directory.write(_record_all, deliveries)
                return
            except Exception:  # noqa: BLE001 - each on its own below
                pass
        for delivery in deliveries:
            try:
                self.directory.write(record, delivery)
            except Exception as exc:  # noqa: BLE001 - a log row must not fail a relay
                log.error("delivery log not written account=%s id=%s (%s)", delivery.account,
                          delivery.id, type(exc).__name__)

    def background(self, awaitable) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def housekeeping(self) -> None:
        """Once a second, free the reference cycles closed connections leave (asyncio
        transports, SSL objects): collected in bursts by Python's own schedule they peak
        at tens of MB. Every few seconds, expire idle upstream sessions; once an hour,
        prune the delivery log and the throttle's finished windows."""
        tick = 0
        while True:
            await asyncio.sleep(1.0)
            gc.collect()
            if tick % 5 == 0:
                await self.pool.expire()
            if tick % 3600 == 0:
                self.background(self.run_log(self._prune))
            tick += 1

    def _prune(self) -> None:
        try:
            self.directory.write(self._prune_in)
        except Exception as exc:  # noqa: BLE001 - tried again in an hour
            log.error("delivery log not pruned (%s)", type(exc).__name__)

    def _prune_in(self, registry) -> None:
        registry.delivery_log.prune(self.config.log_retention_days)
        registry.login_throttle.prune(self.config.limits.window)

    async def drain(self) -> None:
        """Wait for background records; close the pool and the workers."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=30)
        await asyncio.get_running_loop().run_in_executor(None, self.recorder.close, 30.0)
        await self.pool.close()
        self.login_workers.shutdown(wait=False, cancel_futures=True)
        self.relay_workers.shutdown(wait=True)
        self.log_workers.shutdown(wait=True)


class ProxyServer:
    """The listening proxy on an asyncio loop: ``await start()``, ``await stop()``."""

    def __init__(self, config: ProxyConfig, directory: AccountDirectory,
                 limiter: Optional[LoginLimiter] = None) -> None:
        check_config(config)
        self.config = config
        self.core = ProxyCore(config, directory, limiter)
        self.tls_context = server_tls_context(config.tls_cert, config.tls_key) \
            if config.tls else None
        self._server: Optional[asyncio.base_events.Server] = None
        self._housekeeping: Optional[asyncio.Task] = None
        self.address: Optional[tuple[str, int]] = None
        self.sock: Optional[socket.socket] = None     # a listening socket shared by workers

    async def start(self) -> tuple[str, int]:
        _AIOSMTPD_LOG.setLevel(logging.WARNING)   # its debug lines would show AUTH data
        loop = asyncio.get_running_loop()
        implicit = self.tls_context if self.config.implicit_tls else None
        try:
            where = {"sock": self.sock} if self.sock is not None else {
                "host": self.config.host, "port": self.config.port, "backlog": 1024}
            self._server = await loop.create_server(
                lambda: ProxySMTP(self.core, self.tls_context), ssl=implicit, **where)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.config.host}:{self.config.port}: "
                              f"{exc.strerror or exc}") from None
        sockname = self._server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])
        self._housekeeping = asyncio.ensure_future(self.core.housekeeping())
        return self.address

    def describe(self) -> str:
        host, port = self.address or (self.config.host, self.config.port)
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if self.config.implicit_tls:
            mode = "implicit TLS"
        elif self.tls_context:
            mode = "STARTTLS" + (", AUTH also without TLS" if self.config.allow_plain_auth else "")
        else:
            mode = "no TLS, " + ("plain AUTH allowed (loopback)" if self.config.allow_plain_auth
                                 else "AUTH refused (no TLS configured)")
        extra = ", PROXY protocol" if self.config.proxy_protocol else ""
        return f"{shown} ({mode}{extra})"

    async def stop(self, grace: Optional[float] = None) -> None:
        """Stop accepting; let transactions in flight finish up to ``grace`` seconds."""
        if self._server is not None:
            self._server.close()
            self._server = None
        grace = self.config.shutdown_grace if grace is None else grace
        await self._close_sessions(("idle",))
        deadline = time.monotonic() + grace
        while self._busy(("mail", "data", "relaying")) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            await self._close_sessions(("idle",))
        await self._close_sessions(("idle", "mail", "data"))
        relay_deadline = time.monotonic() + 2 * self.config.upstream_timeout + 2
        while self._busy(("relaying",)) and time.monotonic() < relay_deadline:
            await asyncio.sleep(0.05)
        await self._close_sessions(("idle", "mail", "data", "relaying"))
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        await self.core.drain()

    def _busy(self, phases) -> bool:
        return any(s.phase in phases for s in self.core.sessions)

    async def _close_sessions(self, phases) -> None:
        closing = [s for s in list(self.core.sessions) if s.phase in phases]
        if closing:
            await asyncio.gather(*(s.close_for_shutdown() for s in closing))
            for session in closing:
                self.core.sessions.discard(session)


def new_loop() -> asyncio.AbstractEventLoop:
    """The proxy's event loop: uvloop's where it is installed (its transports and TLS are
    native code: about a third less CPU per relayed message), asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:     # pragma: no cover - a platform without uvloop's wheels
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ThreadedProxy:
    """The proxy on its own loop in a background thread (tests, embedding)."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.loop = new_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="mailform-proxy-loop")

    def start(self) -> tuple[str, int]:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def stop(self, grace: float = 0.0) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(grace), self.loop).result(
            grace + 4 * self.server.config.upstream_timeout + 40)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> "ThreadedProxy":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


async def serve_until(server: ProxyServer, stop: asyncio.Event, on_ready=None) -> None:
    """Listen until ``stop`` is set; ``on_ready(server)`` once listening."""
    await server.start()
    if on_ready is not None:
        on_ready(server)
    try:
        await stop.wait()
    finally:
        await server.stop()


__all__ = ["ProxyConfig", "ProxyServer", "ProxyCore", "ThreadedProxy", "new_loop", "ConfigError",
           "serve_until", "parse_listen", "is_loopback", "check_config", "failure_reply",
           "DEFAULT_MAX_MESSAGE_SIZE"]
