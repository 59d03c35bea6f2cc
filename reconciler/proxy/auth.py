"""Who may log in to the proxy, checked against the registry (SPEC §7).

A client logs in with an account's email and its SMTP password. The password
is checked against the keyed fingerprint the registry holds
(``fingerprints["smtp.password"]``) with a constant-time compare; nothing is
decrypted for a login. Only ``smtp`` accounts with ``proxy: true`` and no
pending activation may log in. Unknown address, wrong password and "not
allowed" are one and the same answer to the caller (``None``), so the proxy
cannot be used to find out which addresses exist.

The registry is re-read when the cached copy is older than ``ttl`` seconds
(default 2), so an apply takes effect without a restart. The registry object
is shared by the proxy's worker threads under a lock.
"""
from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from ..bounces.tags import tag_raw
from ..servers import ServerSettings, servers_of

SMTP_PASSWORD = "smtp.password"
DEFAULT_TTL = 2.0
# compared against when the address is unknown, so that every login costs the same
_NO_FINGERPRINT = "0" * 64


@dataclass(frozen=True)
class ProxyAccount:
    """An account a client logged in as. Holds no secret."""

    name: str
    email: str


def may_log_in(account_type: str, spec: Mapping, status: Mapping) -> bool:
    """The rule: smtp accounts with ``proxy: true`` and no pending activation."""
    return (account_type == "smtp" and spec.get("proxy") is True
            and isinstance(spec.get("smtp"), Mapping)
            and (status or {}).get("activation") != "pending_activation")


def same_address(a: Optional[str], b: Optional[str]) -> bool:
    return bool(a) and bool(b) and a.strip().casefold() == b.strip().casefold()


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _text(value) -> Optional[str]:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


class AccountDirectory:
    """The proxy's view of the registry: logins, and fresh settings for relaying."""

    def __init__(self, open_registry: Callable[[], object], ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._open = open_registry
        self._registry = None
        self._lock = threading.RLock()
        self._ttl = ttl
        self._clock = clock
        self._cached: dict = {}
        self._cached_at: Optional[float] = None

    def _reg(self):
        if self._registry is None:
            self._registry = self._open()
        return self._registry

    def _accounts(self) -> dict:
        now = self._clock()
        if self._cached_at is None or now - self._cached_at >= self._ttl:
            try:
                self._cached = self._reg().accounts()
            except Exception:
                self._drop()   # reopen on the next try (a lost database connection)
                raise
            self._cached_at = now
        return self._cached

    def _drop(self) -> None:
        registry, self._registry = self._registry, None
        if registry is not None:
            try:
                registry.close()
            except Exception:  # noqa: BLE001 - it is being thrown away anyway
                pass

    def refresh(self) -> int:
        """Re-read the registry now; returns how many accounts may log in."""
        with self._lock:
            self._cached_at = None
            accounts = self._accounts()
            return sum(1 for a in accounts.values() if may_log_in(a.type, a.spec, a.status))

    def authenticate(self, login, password) -> Optional[ProxyAccount]:
        """The account for (email, SMTP password), or None. Raises RegistryError (or
        the backend's error) when the registry cannot be read: a temporary failure."""
        login, password = _text(login), _text(password)
        with self._lock:
            accounts = self._accounts()
            offered = self._reg().fingerprint(SMTP_PASSWORD, password or "")
            candidates = sorted((a for a in accounts.values()
                                 if same_address(a.spec.get("email"), login)),
                                key=lambda a: a.name)
        found = None
        for account in candidates:
            stored = account.fingerprints.get(SMTP_PASSWORD) or _NO_FINGERPRINT
            if _equal(offered, stored) and found is None \
                    and may_log_in(account.type, account.spec, account.status):
                found = account
        if not candidates:
            _equal(offered, _NO_FINGERPRINT)   # the same work for an unknown address
        if password is None:
            return None
        if found is None:
            return None
        return ProxyAccount(found.name, found.spec["email"])

    def current(self, name: str, **options) -> tuple[Optional[ProxyAccount],
                                                     Optional[ServerSettings]]:
        """Fresh upstream settings (with the decrypted SMTP password) of an account that
        may still log in, read from the registry now; (None, None) when it no longer may.
        ``options`` (timeout, ca_file) go to ``servers_of``; a stored spec that describes
        no server raises ServerSettingsError."""
        with self._lock:
            try:
                registry = self._reg()
                account = registry.account(name)
                if account is None or not may_log_in(account.type, account.spec, account.status):
                    return None, None
                secrets = registry.secrets(name)
            except Exception:
                self._drop()
                raise
        upstream = servers_of(account.spec, secrets, **options)["smtp"]
        return ProxyAccount(account.name, account.spec["email"]), upstream

    def tag(self, account: ProxyAccount, recipients: list[str], data: bytes) -> bytes:
        """The message with its bounce tag, recorded in the registry (``bounces.tags``):
        the Message-ID when it has none, else an ``X-Mailform-Tag`` header. Raises when
        the registry cannot be written (the relay is then a temporary failure)."""
        with self._lock:
            try:
                return tag_raw(self._reg(), account.name, account.email, recipients, data)
            except Exception:
                self._drop()   # reopened on the next relay (a lost connection, a re-key)
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()


__all__ = ["AccountDirectory", "ProxyAccount", "may_log_in", "same_address", "SMTP_PASSWORD"]
