"""The SMTP submission proxy (SPEC §7), on aiosmtpd.

A client logs in with an account's email and SMTP password (AUTH PLAIN or
LOGIN), sends as that account (MAIL FROM must be the account's email, else
553), and each message is relayed through the account's own upstream server
(``relay.py``), tagged first so that its bounces can be trusted. The client hears 250 only when the upstream accepted the
message; any upstream failure is a 451, so the client keeps the message.

AUTH is offered and accepted only on an encrypted connection (after STARTTLS,
or with implicit TLS), unless ``allow_plain_auth`` is set, which the caller
permits only on a loopback listener (``check_listen``). Failed logins are
throttled per client address (``ratelimit.py``).

Logging (logger ``mailform.proxy``): one line per event, never a password or a
message body. aiosmtpd's own logger (``mail.log``), which would echo AUTH
lines at debug level, is kept at WARNING.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from aiosmtpd.smtp import SMTP, AuthResult

from ..servers import ServerSettingsError
from .auth import AccountDirectory, ProxyAccount, same_address
from .ratelimit import LimitSettings, LoginLimiter
from .relay import DEFAULT_TIMEOUT, RelayResult, one_line, relay_message

log = logging.getLogger("mailform.proxy")

DEFAULT_MAX_MESSAGE_SIZE = 32 * 1024 * 1024
DEFAULT_MAX_RECIPIENTS = 100

R_AUTH_OK = "235 2.7.0 Authentication successful"
R_AUTH_BAD = "535 5.7.8 Authentication credentials invalid"
R_AUTH_TEMP = "454 4.7.0 Temporary authentication failure, try again later"
R_AUTH_LOCKED = "454 4.7.0 Too many failed logins from your address, try again later"
R_NEED_TLS = "530 5.7.0 Must issue a STARTTLS command first"
R_NO_TLS = "530 5.7.0 Authentication is not available on this unencrypted connection"


class _QuietAuthWarning(logging.Filter):
    """aiosmtpd warns that AUTH is not tied to TLS: we enforce that ourselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "auth_require_tls" not in record.getMessage()


_AIOSMTPD_LOG = logging.getLogger("mail.log")
_AIOSMTPD_LOG.addFilter(_QuietAuthWarning())


class ConfigError(ValueError):
    """The proxy cannot start with these settings (a usage error)."""


@dataclass(frozen=True)
class ProxyConfig:
    host: str
    port: int
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    implicit_tls: bool = False
    allow_plain_auth: bool = False
    limits: LimitSettings = field(default_factory=LimitSettings)
    upstream_timeout: float = DEFAULT_TIMEOUT
    hostname: Optional[str] = None
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_recipients: int = DEFAULT_MAX_RECIPIENTS
    session_timeout: float = 300.0
    ca_file: Optional[str] = None    # extra trust anchor for upstream servers

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--listen {value!r}: expected HOST:PORT (e.g. 127.0.0.1:2525)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True when every address the host resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback
                                   for a in addresses)


def check_config(config: ProxyConfig) -> None:
    if config.allow_plain_auth and not is_loopback(config.host):
        raise ConfigError(f"--allow-plain-auth is only allowed on a loopback listener; "
                          f"{config.host} is not loopback (use TLS: --tls-cert/--tls-key)")
    if config.implicit_tls and not config.tls_cert:
        raise ConfigError("--implicit-tls needs --tls-cert (and --tls-key unless the key "
                          "is in the certificate file)")
    if config.tls_key and not config.tls_cert:
        raise ConfigError("--tls-key needs --tls-cert")


def server_tls_context(cert: str, key: Optional[str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate/key ({cert}"
                          f"{', ' + key if key else ''}): {exc}") from None
    return ctx


class ProxyCore:
    """What every session shares: settings, the registry view, the limiter, workers."""

    def __init__(self, config: ProxyConfig, directory: AccountDirectory,
                 limiter: Optional[LoginLimiter] = None) -> None:
        self.config = config
        self.directory = directory
        self.limiter = limiter or LoginLimiter(config.limits)
        self.hostname = config.hostname or socket.gethostname()
        self.executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mailform-proxy")

    def relay(self, account: ProxyAccount, sender: str, recipients: list[str],
              data: bytes, eightbit: bool) -> RelayResult:
        """Runs in a worker thread: fresh settings from the registry, the message tagged
        and recorded there (``bounces.tags``), then the upstream."""
        try:
            current, upstream = self.directory.current(
                account.name, timeout=self.config.upstream_timeout, ca_file=self.config.ca_file)
            if current is not None:
                data = self.directory.tag(current, recipients, data)
        except ServerSettingsError as exc:
            return RelayResult(False, "account", None, str(exc))
        except Exception as exc:  # noqa: BLE001 - the registry is down: temporary
            return RelayResult(False, "registry", None,
                               f"registry unavailable ({type(exc).__name__})")
        if current is None:
            return RelayResult(False, "account", None, "account no longer allowed to use the proxy")
        return relay_message(upstream, sender, recipients, data,
                             local_hostname=self.hostname, eightbit=eightbit)


def _client_ip(session) -> str:
    peer = getattr(session, "peer", None)
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "unknown")


def _shown_login(login) -> str:
    if isinstance(login, bytes):
        login = login.decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() and not ch.isspace() else "?" for ch in str(login))
    return text[:100] or "(empty)"


def _stash(server, session, envelope, mechanism, auth_data) -> AuthResult:
    """aiosmtpd's (synchronous) authenticator: keep the credentials for the asynchronous
    check in ``ProxySMTP.smtp_AUTH`` and let it answer."""
    server.offered = (mechanism, auth_data)
    return AuthResult(success=False, handled=True)


class ProxySMTP(SMTP):
    """aiosmtpd's SMTP with our AUTH policy, registry check and throttling."""

    def __init__(self, core: ProxyCore, tls_context: Optional[ssl.SSLContext]) -> None:
        config = core.config
        starttls = tls_context if (tls_context and not config.implicit_tls) else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "AUTH without requiring TLS": we enforce it
            super().__init__(
                ProxyHandler(core), hostname=core.hostname, ident="mailform proxy",
                tls_context=starttls,
                require_starttls=bool(starttls) and not config.allow_plain_auth,
                auth_required=True, auth_require_tls=False, authenticator=_stash,
                data_size_limit=config.max_message_size, timeout=config.session_timeout)
        self.core = core
        self.offered = None

    def encrypted(self) -> bool:
        if self._tls_protocol is not None:
            return True
        transport = self.transport
        return transport is not None and transport.get_extra_info("ssl_object") is not None

    def may_authenticate(self) -> bool:
        return self.encrypted() or self.core.config.allow_plain_auth

    async def smtp_AUTH(self, arg: str) -> None:
        if not self.may_authenticate():
            await self.push(R_NEED_TLS if self.tls_context else R_NO_TLS)
            return
        client = _client_ip(self.session)
        if self.core.limiter.retry_after(client) > 0:
            log.warning("login refused client=%s reason=too-many-failures", client)
            await self.push(R_AUTH_LOCKED)
            return
        self.offered = None
        await super().smtp_AUTH(arg)
        offered, self.offered = self.offered, None
        if offered is not None:
            await self.push(await self._check(client, *offered))

    async def _check(self, client: str, mechanism: str, creds) -> str:
        loop = asyncio.get_running_loop()
        login = _shown_login(creds.login)
        try:
            account = await loop.run_in_executor(
                self.core.executor, self.core.directory.authenticate, creds.login, creds.password)
        except Exception as exc:  # noqa: BLE001 - registry unreachable: temporary
            log.error("login error user=%s client=%s reason=registry-unavailable (%s)",
                      login, client, type(exc).__name__)
            return R_AUTH_TEMP
        if account is None:
            delay = self.core.limiter.failure(client)
            log.warning("login failed user=%s client=%s mechanism=%s failures=%d",
                        login, client, mechanism, self.core.limiter.failures(client))
            await asyncio.sleep(delay)
            return R_AUTH_BAD
        self.session.authenticated = True
        self.session.auth_data = account
        log.info("login ok account=%s user=%s client=%s mechanism=%s tls=%s",
                 account.name, account.email, client, mechanism,
                 "yes" if self.encrypted() else "no")
        return R_AUTH_OK


class ProxyHandler:
    """aiosmtpd handler hooks: sender policy, recipient limit, relaying."""

    def __init__(self, core: ProxyCore) -> None:
        self.core = core

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not server.may_authenticate():
            responses = [line for line in responses if not line.startswith("250-AUTH")]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        account: ProxyAccount = session.auth_data
        if not same_address(address, account.email):
            log.warning("sender refused account=%s client=%s mail_from=%s",
                        account.name, _client_ip(session), _shown_login(address or "<>"))
            return f"553 5.7.1 Sender address must be {account.email}, the account you logged in as"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if len(envelope.rcpt_tos) >= self.core.config.max_recipients:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        account: ProxyAccount = session.auth_data
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8")
        eightbit = any(o.upper() == "BODY=8BITMIME" for o in envelope.mail_options)
        recipients = list(envelope.rcpt_tos)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self.core.executor, self.core.relay, account,
                                            envelope.mail_from, recipients, data, eightbit)
        client = _client_ip(session)
        if result.ok:
            log.info("relayed account=%s client=%s recipients=%d size=%d upstream_reply=%s",
                     account.name, client, len(recipients), len(data),
                     f"{result.code} {result.detail}")
            return f"250 2.0.0 Relayed: {one_line(result.detail, 120)}"
        log.error("upstream failure account=%s client=%s recipients=%d stage=%s detail=%s",
                  account.name, client, len(recipients), result.stage,
                  one_line(result.describe(), 300))
        return failure_reply(result)


def failure_reply(result: RelayResult) -> str:
    """Always a 451: the client keeps the message and tries again later."""
    status = {"connect": "4.4.1", "tls": "4.7.0", "auth": "4.7.0", "account": "4.7.0",
              "registry": "4.3.0"}.get(result.stage, "4.4.0")
    code = f"{result.code} " if result.code else ""
    detail = one_line(f"{code}{result.detail}", 160) or "no reply"
    return (f"451 {status} Upstream {result.stage} failed ({detail}); "
            "message not sent, try again later")


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
        self.address: Optional[tuple[str, int]] = None

    async def start(self) -> tuple[str, int]:
        _AIOSMTPD_LOG.setLevel(logging.WARNING)   # its debug lines would show AUTH data
        loop = asyncio.get_running_loop()
        implicit = self.tls_context if self.config.implicit_tls else None
        try:
            self._server = await loop.create_server(
                lambda: ProxySMTP(self.core, self.tls_context),
                host=self.config.host, port=self.config.port, ssl=implicit)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.config.host}:{self.config.port}: "
                              f"{exc.strerror or exc}") from None
        sockname = self._server.sockets[0].getsockname()
        self.address = (sockname[0], sockname[1])
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
        return f"{shown} ({mode})"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.core.executor.shutdown(wait=False, cancel_futures=True)


class ThreadedProxy:
    """The proxy on its own loop in a background thread (tests, embedding)."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="mailform-proxy-loop")

    def start(self) -> tuple[str, int]:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
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


__all__ = ["ProxyConfig", "ProxyServer", "ThreadedProxy", "ConfigError", "serve_until",
           "parse_listen", "is_loopback", "check_config", "failure_reply"]
