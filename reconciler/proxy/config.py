"""The proxy's settings and the checks made before it listens (SPEC §7, issue 12)."""
from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass, field
from typing import Optional

from .ratelimit import LimitSettings
from .relay import DEFAULT_TIMEOUT

DEFAULT_MAX_MESSAGE_SIZE = 32 * 1024 * 1024
DEFAULT_MAX_RECIPIENTS = 100
DEFAULT_MAX_UPSTREAM_SESSIONS = 4
DEFAULT_UPSTREAM_IDLE = 30.0        # seconds an idle upstream session is kept for reuse
DEFAULT_LOG_RETENTION_DAYS = 30
DEFAULT_SHUTDOWN_GRACE = 30.0       # seconds sessions in flight get after SIGTERM


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
    max_upstream_sessions: int = DEFAULT_MAX_UPSTREAM_SESSIONS
    upstream_idle: float = DEFAULT_UPSTREAM_IDLE
    proxy_protocol: bool = False     # a PROXY v1/v2 header precedes every connection
    log_retention_days: float = DEFAULT_LOG_RETENTION_DAYS
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE

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
    if config.proxy_protocol and config.implicit_tls:
        raise ConfigError("--proxy-protocol needs STARTTLS, not --implicit-tls: the PROXY "
                          "header comes before any TLS (terminate TLS on the proxy after it)")
    if config.max_upstream_sessions < 1:
        raise ConfigError("--max-upstream-sessions must be at least 1")


def server_tls_context(cert: str, key: Optional[str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate/key ({cert}"
                          f"{', ' + key if key else ''}): {exc}") from None
    return ctx
