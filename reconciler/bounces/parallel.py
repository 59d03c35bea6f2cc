"""Scanning many accounts' inboxes at once, on one machine, without the task queue.

``scan_many`` runs ``scan_stored`` for each account on ``concurrency`` threads. Each
thread opens its own registry (``open_registry()``): a registry object serialises its
users on one connection (an RLock around it), so sharing one would serialise the
scans' writes and reads too; with its own connection each thread's transactions are
its own (SQLite's file lock and busy timeout, PostgreSQL's rows). With one thread the
caller's registry is used. Each account's scan has its own deadline, so a slow
server holds up only its own thread. Reports come back sorted by account name,
whatever order the scans finished in.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

from ..errors import MailformError
from .scan import ScanReport, scan_stored


def scan_many(registry: Any, accounts: list, timeout: float, concurrency: int = 1,
              open_registry: Optional[Callable[[], Any]] = None,
              deadline: Optional[float] = None) -> list[ScanReport]:
    """Scan ``accounts`` (``StoredAccount``); the reports sorted by account."""
    ordered = sorted(accounts, key=lambda stored: stored.name)
    if concurrency <= 1 or open_registry is None or len(ordered) <= 1:
        return [_one(lambda: registry, stored, timeout, deadline) for stored in ordered]
    pool = _Registries(open_registry)
    try:
        with ThreadPoolExecutor(max_workers=concurrency,
                                thread_name_prefix="inbox-scan") as executor:
            futures = [executor.submit(_one, pool.mine, stored, timeout, deadline)
                       for stored in ordered]
            return [future.result() for future in futures]
    finally:
        pool.close()


def _one(registry: Callable[[], Any], stored, timeout: float,
         deadline: Optional[float]) -> ScanReport:
    """One account's scan; an account the registry cannot describe (its stored settings,
    its secrets) is reported as that account's error, and the others are scanned."""
    try:
        return scan_stored(registry(), stored, timeout, deadline)
    except MailformError as exc:
        return ScanReport(stored.name, error=str(exc))


class _Registries:
    """One registry per thread, opened on first use, all closed at the end."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self._opener, self._local = opener, threading.local()
        self._opened: list = []
        self._lock = threading.Lock()

    def mine(self) -> Any:
        registry = getattr(self._local, "registry", None)
        if registry is None:
            registry = self._local.registry = self._opener()
            with self._lock:
                self._opened.append(registry)
        return registry

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for registry in opened:
            registry.close()
