"""Assembling a proxy for ``proxy serve``: the registry view, the shared throttle, the
change listener, and the delivery log's reader for ``proxy log``."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from typing import Callable, Optional

from .auth import AccountDirectory
from .config import ConfigError, ProxyConfig
from .ratelimit import SharedLimiter
from .server import ProxyServer, new_loop


def relaxed(open_registry: Callable[[], object]) -> Callable[[], object]:
    """Registry connections whose commits do not wait for the disk: the proxy writes a
    throttle slot, a tag and a log row per message; losing the last second of those with
    the machine costs little, an fsync each would cap the proxy at a few hundred a second."""
    def opened():
        registry = open_registry()
        store = getattr(registry, "store", None)
        if store is not None:
            store.relax_durability()
        return registry
    return opened


class Proxy:
    """A ready-to-run proxy and what it holds open."""

    def __init__(self, config: ProxyConfig, open_registry: Callable[[], object],
                 ttl: float, sock: Optional[socket.socket] = None) -> None:
        open_registry = relaxed(open_registry)
        self.directory = AccountDirectory(open_registry, ttl=ttl)
        self.limiter = SharedLimiter(config.limits, open_registry)
        self.server = ProxyServer(config, self.directory, self.limiter)
        self.server.sock = sock
        self.allowed = 0
        self.listening = False

    def prepare(self) -> None:
        """Read the registry now (fail fast) and start listening for its changes."""
        self.allowed = self.directory.refresh()
        self.listening = self.directory.watcher.start()

    def ready(self) -> bool:
        """Whether the registry answers (``/readyz``)."""
        try:
            self.directory.write(lambda registry: registry.meta())
            return True
        except Exception:  # noqa: BLE001 - not ready, whatever the cause
            return False

    def close(self) -> None:
        self.directory.close()
        self.limiter.close()


def bind(config: ProxyConfig) -> socket.socket:
    """The listening socket, made before the workers are forked (they all accept on it)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    try:
        return socket.create_server((config.host, config.port), family=family, backlog=1024)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: "
                          f"{exc.strerror or exc}") from None


def fork_workers(count: int) -> list[int]:
    """``count`` more processes running from here on: their pids in the parent, [] in
    each child. Fork before any thread or connection is made."""
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            return []
        pids.append(pid)
    return pids


def stop_workers(pids: list[int], timeout: float) -> None:
    """SIGTERM to each worker (its own graceful stop), then wait for them."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.05)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:          # already reaped (an event loop's child watcher)
        return False


def run_loop(main) -> None:
    """Run the proxy's coroutine (one event loop per process; ``--workers`` for more)."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main)


def delivery_entries(registry, account: Optional[str], since) -> list[dict]:
    """The delivery log's rows (none for a registry that does not exist yet)."""
    log = getattr(registry, "delivery_log", None)
    return log.entries(account, since) if log is not None else []
