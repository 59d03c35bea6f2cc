"""Failed-login throttling per client address: slowed, then refused (SPEC §7).

Every failed login from an address is remembered for ``window`` seconds. A
failed login is answered only after a delay that doubles with each failure
still in the window (``base_delay``, 2×, 4×, … capped at ``max_delay``); once
``max_failures`` failures are in the window, further logins from the address
are refused at once (a temporary 454) until the oldest of them leaves the
window. A successful login does not wipe the record: otherwise one known
password would reset the counter for guessing the others.
"""
from __future__ import annotations

import ipaddress
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from .auth import exclusive

DEFAULT_MAX_FAILURES = 5
DEFAULT_WINDOW = 600.0
DEFAULT_BASE_DELAY = 1.0
DEFAULT_MAX_DELAY = 15.0
MAX_TRACKED = 100_000   # addresses; the stalest are forgotten beyond this
OK, WAIT, LOCKED = "ok", "wait", "locked"     # what ``reserve`` says


def client_key(address: str | None) -> str:
    """The address a failure is counted against: IPv4-mapped IPv6 folds to IPv4."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


@dataclass(frozen=True)
class LimitSettings:
    max_failures: int = DEFAULT_MAX_FAILURES
    window: float = DEFAULT_WINDOW
    base_delay: float = DEFAULT_BASE_DELAY
    max_delay: float = DEFAULT_MAX_DELAY

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window <= 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("max_failures >= 1, window > 0 and delays >= 0 are required")


class LoginLimiter:
    """Counts failed logins per client address within a sliding window. Thread-safe."""

    def __init__(self, settings: LimitSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or LimitSettings()
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._inflight: dict[str, int] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.settings.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, address: str | None) -> float:
        """Seconds until the address may try again; 0 when it is not refused."""
        with self._lock:
            now = self._clock()
            times = self._recent(client_key(address), now)
            if len(times) < self.settings.max_failures:
                return 0.0
            # refused until enough failures have left the window
            oldest_relevant = times[len(times) - self.settings.max_failures]
            return max(0.0, oldest_relevant + self.settings.window - now)

    def failure(self, address: str | None) -> float:
        """Record a failed login; returns the delay to wait before answering it."""
        with self._lock:
            return self.delay_for(self._count_failure(client_key(address)))

    def _count_failure(self, key: str) -> int:
        times = self._recent(key, self._clock())
        times.append(self._clock())
        self._failures[key] = times
        if len(self._failures) > MAX_TRACKED:
            self._forget_stalest()
        return len(times)

    def delay_for(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        s = self.settings
        return min(s.base_delay * (2 ** min(failures - 1, 30)), s.max_delay)

    def reserve(self, address: str | None) -> str:
        """Before a password is checked: "ok" (a check slot is taken: ``failed`` or
        ``release`` it), "wait" (the slots are taken by checks in flight: ask again in a
        moment) or "locked" (the failures reached the limit)."""
        with self._lock:
            key = client_key(address)
            failures = len(self._recent(key, self._clock()))
            if failures >= self.settings.max_failures:
                return LOCKED
            if failures + self._inflight.get(key, 0) >= self.settings.max_failures:
                return WAIT
            self._inflight[key] = self._inflight.get(key, 0) + 1
            return OK

    def _done(self, key: str) -> None:
        left = self._inflight.get(key, 0) - 1
        if left > 0:
            self._inflight[key] = left
        else:
            self._inflight.pop(key, None)

    def release(self, address: str | None) -> None:
        """Give back the slot of a check that did not fail (a login, a registry error)."""
        with self._lock:
            self._done(client_key(address))

    def failed(self, address: str | None) -> int:
        """The check of a reserved slot failed: it counts; the failures in the window."""
        with self._lock:
            key = client_key(address)
            self._done(key)
            return self._count_failure(key)

    def failures(self, address: str | None) -> int:
        with self._lock:
            return len(self._recent(client_key(address), self._clock()))

    def attempt(self, address: str | None, check: Callable[[], object]) -> tuple[str, object, int]:
        """One login attempt: a check slot, ``check()`` (None: the password was wrong),
        the slot given back or the failure counted. (verdict, check's result, failures)."""
        verdict = self.reserve(address)
        if verdict != OK:
            return verdict, None, 0
        try:
            passed = check()
        except Exception:
            self.release(address)
            raise
        if passed is None:
            return OK, None, self.failed(address)
        self.release(address)
        return OK, passed, 0

    def _forget_stalest(self) -> None:
        by_last = sorted(self._failures, key=lambda k: self._failures[k][-1])
        for key in by_last[: len(by_last) - MAX_TRACKED]:
            del self._failures[key]


class SharedLimiter(LoginLimiter):
    """The same rule kept in the registry (``registry.login_throttle``), shared by every
    replica and atomic there: each attempt is one transaction of the database
    (``attempt``); the in-memory reserve/release/failed of the base class are not used."""

    def __init__(self, settings: LimitSettings, open_registry: Callable[[], object]) -> None:
        super().__init__(settings)
        self._open = open_registry
        self._registry = None

    def _throttle(self):
        if self._registry is None:
            self._registry = self._open()
        return self._registry.login_throttle

    def attempt(self, address: str | None, check: Callable[[], object]) -> tuple[str, object, int]:
        """The whole attempt in one registry transaction (``LoginThrottle.attempt``)."""
        with self._lock:
            try:
                throttle = self._throttle()
                return exclusive(self._registry, lambda _: throttle.attempt(
                    client_key(address), self.settings.max_failures, self.settings.window,
                    check))
            except Exception:
                self.close()      # reopened on the next attempt (a lost connection)
                raise

    def retry_after(self, address: str | None) -> float:
        return 0.0     # decided by ``attempt``, atomically

    def close(self) -> None:
        registry, self._registry = self._registry, None
        if registry is not None:
            try:
                registry.close()
            except Exception:  # noqa: BLE001 - being thrown away
                pass


__all__ = ["LimitSettings", "LoginLimiter", "SharedLimiter", "client_key", "DEFAULT_MAX_FAILURES",
           "DEFAULT_WINDOW", "DEFAULT_BASE_DELAY", "DEFAULT_MAX_DELAY"]
