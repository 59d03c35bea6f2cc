"""Who may log in to the proxy, checked against the registry (SPEC §7).

A client logs in with an account's email and its SMTP password — or its
``proxy_password`` when it has one (an upstream that logs in with OAuth2 has no SMTP
password for clients). The password
is checked against the keyed fingerprint the registry holds
(``fingerprints["smtp.password"]`` / ``["proxy_password"]``) with a constant-time compare; nothing is
decrypted for a login. Only ``smtp`` accounts with ``proxy: true`` and no
pending activation may log in. Unknown address, wrong password and "not
allowed" are one and the same answer to the caller (``None``), so the proxy
cannot be used to find out which addresses exist.

The accounts are re-read when the registry changed: on PostgreSQL as soon as a
change is notified (LISTEN/NOTIFY, ``ChangeWatcher``), elsewhere when its serial
moved (read at most every ``ttl`` seconds, default 2), so an apply takes effect
without a restart and without re-reading every account all the time.
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
PROXY_PASSWORD = "proxy_password"   # when set, clients log in with it instead (issue 15)
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


_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def exclusive(registry, func: Callable, *args):
    """``func(registry, *args)`` — on a SQLite registry, a write, under this process's
    lock for that file. SQLite has one writer at a time anyway; a connection that finds
    the file locked sleeps in SQLite's busy handler (1, 2, 5, … ms) and tries again, so
    the proxy's own connections (logins, tags, the log) waited on one another for
    milliseconds per message. Queued on a lock, the next write starts as soon as the last
    commits. Other stores (PostgreSQL: row locks) are called as they are."""
    url = str(getattr(getattr(registry, "store", None), "url", "") or "")
    if not url or ("://" in url and not url.startswith("sqlite:")):
        return func(registry, *args)
    with _FILE_LOCKS_GUARD:
        lock = _FILE_LOCKS.setdefault(url, threading.Lock())
    with lock:
        return func(registry, *args)


class _Connection:
    """One registry connection with its own lock, reopened after a failure."""

    def __init__(self, open_registry: Callable[[], object]) -> None:
        self._open = open_registry
        self.registry = None
        self.lock = threading.RLock()

    def get(self):
        if self.registry is None:
            self.registry = self._open()
        return self.registry

    def run(self, func: Callable, *args):
        """``func(registry, *args)`` under the lock; a failure drops the connection."""
        with self.lock:
            try:
                return func(self.get(), *args)
            except Exception:
                self.drop()
                raise

    def drop(self) -> None:
        registry, self.registry = self.registry, None
        if registry is not None:
            try:
                registry.close()
            except Exception:  # noqa: BLE001 - it is being thrown away anyway
                pass


class AccountDirectory:
    """The proxy's view of the registry: logins (from a cached copy of the accounts,
    re-read when the registry changed), and fresh settings, tags and records for relaying
    on a second connection, so that a slow write never holds up a login."""

    def __init__(self, open_registry: Callable[[], object], ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reader = _Connection(open_registry)      # logins
        self._writer = _Connection(open_registry)      # settings and tags, before relaying
        self._recorder = _Connection(open_registry)    # the delivery log, the ledger
        self._settings: dict = {}                      # name -> (serial, account, secrets)
        self._built: dict = {}                         # name -> (key, ServerSettings)
        self._ttl, self._clock = ttl, clock
        self._cached: dict = {}
        self._cached_at: Optional[float] = None
        self._serial: Optional[int] = None
        self.watcher = ChangeWatcher(open_registry)

    def _accounts(self, registry) -> dict:
        now = self._clock()
        if self._cached_at is None or (now - self._cached_at >= self._ttl
                                       and self._changed(registry)):
            self._serial = _serial(registry)
            self._cached = registry.accounts()
        if self._cached_at is None or now - self._cached_at >= self._ttl:
            self._cached_at = now
        return self._cached

    def _changed(self, registry) -> bool:
        if self.watcher.quiet():
            return False            # PostgreSQL: nothing notified since the last read
        serial = _serial(registry)
        return serial is None or serial != self._serial

    def refresh(self) -> int:
        """Re-read the registry now; returns how many accounts may log in."""
        self._cached_at = None
        accounts = self._reader.run(self._accounts)
        return sum(1 for a in accounts.values() if may_log_in(a.type, a.spec, a.status))

    def authenticate(self, login, password) -> Optional[ProxyAccount]:
        """The account for (email, SMTP password), or None. Raises RegistryError (or
        the backend's error) when the registry cannot be read: a temporary failure."""
        login, password = _text(login), _text(password)
        accounts, offered = self._reader.run(
            lambda reg: (self._accounts(reg), {path: reg.fingerprint(path, password or "")
                                               for path in (SMTP_PASSWORD, PROXY_PASSWORD)}))
        candidates = sorted((a for a in accounts.values()
                             if same_address(a.spec.get("email"), login)), key=lambda a: a.name)
        found = None
        for account in candidates:
            path = PROXY_PASSWORD if account.fingerprints.get(PROXY_PASSWORD) else SMTP_PASSWORD
            stored = account.fingerprints.get(path) or _NO_FINGERPRINT
            if _equal(offered[path], stored) and found is None \
                    and may_log_in(account.type, account.spec, account.status):
                found = account
        if not candidates:
            _equal(offered[SMTP_PASSWORD], _NO_FINGERPRINT)   # the same work when unknown
        if password is None or found is None:
            return None
        return ProxyAccount(found.name, found.spec["email"])

    def current(self, name: str, **options) -> tuple[Optional[ProxyAccount],
                                                     Optional[ServerSettings]]:
        """Fresh upstream settings (with the decrypted SMTP password) of an account that
        may still log in, read from the registry now; (None, None) when it no longer may.
        ``options`` (timeout, ca_file) go to ``servers_of``; a stored spec that describes
        no server raises ServerSettingsError."""
        account, secrets = self._writer.run(self._fresh, name)
        if account is None:
            return None, None
        upstream = servers_of(account.spec, secrets, **options)["smtp"]
        return ProxyAccount(account.name, account.spec["email"]), upstream

    def known_current(self, name: str, **options) -> Optional[ServerSettings]:
        """``current``'s settings without touching the registry, when the copy read for
        the last message is as fresh as a login's view (the serial checked within ``ttl``
        seconds and unchanged); None: ask ``current``."""
        cached, checked = self._settings.get(name), self._cached_at
        if cached is None or checked is None or self._clock() - checked >= self._ttl \
                or cached[0] is None or cached[0] != self._serial:
            return None
        key = (name, cached[0], tuple(sorted(options.items())))
        built = self._built.get(name)
        if built is None or built[0] != key:     # settings are frozen: built once a serial
            built = (key, servers_of(cached[1].spec, cached[2], **options)["smtp"])
            self._built[name] = built
        return built[1]

    def _fresh(self, registry, name: str):
        """(account, secrets) that may log in, or (None, {}); read again only when the
        registry's serial moved (every write that changes an account bumps it)."""
        serial = _serial(registry)
        cached = self._settings.get(name)
        if serial is not None and cached is not None and cached[0] == serial:
            return cached[1:]
        account = registry.account(name)
        if account is None or not may_log_in(account.type, account.spec, account.status):
            self._settings.pop(name, None)
            self._built.pop(name, None)
            return None, {}
        secrets = registry.secrets(name)
        self._settings[name] = (serial, account, secrets)
        return account, secrets

    def tag(self, account: ProxyAccount, recipients: list[str], data: bytes) -> bytes:
        """The message with its bounce tag, recorded in the registry (``bounces.tags``):
        the Message-ID when it has none, else an ``X-Mailform-Tag`` header. Raises when
        the registry cannot be written (the relay is then a temporary failure)."""
        return self._writer.run(exclusive, tag_raw, account.name, account.email,
                                recipients, data)

    def write(self, func: Callable, *args):
        """``func(registry, *args)`` on the recording connection (the log, the ledger)."""
        return self._recorder.run(exclusive, func, *args)

    def close(self) -> None:
        self.watcher.stop()
        for conn in (self._reader, self._writer, self._recorder):
            with conn.lock:
                conn.drop()


def _serial(registry) -> Optional[int]:
    changes = getattr(registry, "changes", None)
    return changes.serial() if changes is not None else None


class ChangeWatcher:
    """On PostgreSQL, a thread LISTENing for the registry's change notifications
    (``registry.notify``); ``quiet()`` is True while nothing was notified since it was
    last asked and the listener is up. Elsewhere it never starts: the serial is polled.
    A lost listening connection (a restart, ``pg_terminate_backend``) is opened again,
    after ``RETRY`` seconds doubling up to ``MAX_RETRY``; meanwhile the serial is polled,
    and once listening again the serial is read once more (a change may have come and
    gone unheard)."""

    SAFETY_POLL = 60.0      # seconds: the serial is read at least this often anyway
    RETRY, MAX_RETRY = 1.0, 30.0

    def __init__(self, open_registry: Callable[[], object]) -> None:
        self._open = open_registry
        self._dirty = True
        self._stop = threading.Event()
        self._listening = False
        self._asked = 0.0
        self._thread: Optional[threading.Thread] = None

    def start(self) -> bool:
        """Start listening where the registry can notify; whether it does."""
        registry = self._open()
        try:
            feed = getattr(registry, "changes", None)
            listener = feed.listener() if feed is not None else None
        finally:
            registry.close()
        if listener is None:
            return False
        self._thread = threading.Thread(target=self._run, args=(listener,), daemon=True,
                                        name="mailform-proxy-listen")
        self._listening = True
        self._thread.start()
        return True

    def _run(self, listener) -> None:
        delay = self.RETRY
        while not self._stop.is_set():
            if listener is not None and self._listen(listener):
                delay = self.RETRY                  # it listened a while: retry soon
            listener = None
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.MAX_RETRY)
            listener = self._reopen()
            if listener is not None:
                self._dirty, self._listening = True, True

    def _listen(self, listener) -> bool:
        """Until stopped or the connection is lost; whether it listened a minute."""
        started = time.monotonic()
        try:
            while not self._stop.is_set():
                if listener.wait(1.0):
                    self._dirty = True
        except Exception:  # noqa: BLE001 - the connection was lost: poll until it is back
            pass
        finally:
            self._listening = False
            listener.close()
        return time.monotonic() - started > 60

    def _reopen(self):
        try:
            registry = self._open()
        except Exception:  # noqa: BLE001 - the database is still away: try again later
            return None
        try:
            return registry.changes.listener()
        except Exception:  # noqa: BLE001 - as above
            return None
        finally:
            registry.close()

    def quiet(self) -> bool:
        now = time.monotonic()
        if not self._listening or self._dirty or now - self._asked >= self.SAFETY_POLL:
            self._dirty, self._asked = False, now
            return False
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


__all__ = ["AccountDirectory", "ChangeWatcher", "ProxyAccount", "may_log_in", "same_address", "SMTP_PASSWORD"]
