"""The client side of the proxy: aiosmtpd's SMTP with our AUTH policy (SPEC §7).

AUTH is offered and accepted only on an encrypted connection (after STARTTLS, or with
implicit TLS), unless ``allow_plain_auth`` is set (loopback listeners only). Each login
first takes an attempt slot from the limiter (``ratelimit``; with replicas, atomically
in the registry), then the password is checked in the proxy's *login* workers, which
relays never use: a login never waits behind a relay. Behind a load balancer
(``proxy_protocol``), the client's address comes from the PROXY v1/v2 header
(aiosmtpd parses it), so throttling and logs see the real client.

Logging (logger ``mailform.proxy``): one line per event, never a password or a
message body. aiosmtpd's own logger (``mail.log``) is kept at WARNING.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
import warnings
from typing import Optional

from aiosmtpd.smtp import SMTP, AuthResult

from .handler import ProxyHandler
from .ratelimit import LOCKED, OK, WAIT

log = logging.getLogger("mailform.proxy")

R_AUTH_OK = "235 2.7.0 Authentication successful"
R_AUTH_BAD = "535 5.7.8 Authentication credentials invalid"
R_AUTH_TEMP = "454 4.7.0 Temporary authentication failure, try again later"
R_AUTH_LOCKED = "454 4.7.0 Too many failed logins from your address, try again later"
R_NEED_TLS = "530 5.7.0 Must issue a STARTTLS command first"
R_NO_TLS = "530 5.7.0 Authentication is not available on this unencrypted connection"
RESERVE_PATIENCE = 10.0   # seconds a login waits for a check slot from its own address
R_SHUTDOWN = "421 4.3.2 Service shutting down, try again later"


def client_ip(session) -> str:
    """The client's address: the PROXY header's source when there is one."""
    proxied = getattr(session, "proxy_data", None)
    source = getattr(proxied, "src_addr", None) if proxied else None
    if source:
        return str(source)
    peer = getattr(session, "peer", None)
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "unknown")


def shown_login(login) -> str:
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
    """One client connection."""

    def __init__(self, core, tls_context: Optional[ssl.SSLContext]) -> None:
        config = core.config
        starttls = tls_context if (tls_context and not config.implicit_tls) else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "AUTH without requiring TLS": we enforce it
            super().__init__(
                ProxyHandler(core), hostname=core.hostname, ident="mailform proxy",
                tls_context=starttls,
                require_starttls=bool(starttls) and not config.allow_plain_auth,
                auth_required=True, auth_require_tls=False, authenticator=_stash,
                data_size_limit=config.max_message_size, timeout=config.session_timeout,
                proxy_protocol_timeout=config.session_timeout if config.proxy_protocol
                else None)
        self.core = core
        self.offered = None
        self.phase = "idle"          # idle | mail | data | relaying (for a graceful stop)

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.core.sessions.add(self)

    def connection_lost(self, exc) -> None:
        self.core.sessions.discard(self)
        if self.session is not None:
            self.event_handler.abandon(self.session)
        super().connection_lost(exc)

    def encrypted(self) -> bool:
        if self._tls_protocol is not None:
            return True
        transport = self.transport
        return transport is not None and transport.get_extra_info("ssl_object") is not None

    def may_authenticate(self) -> bool:
        return self.encrypted() or self.core.config.allow_plain_auth

    async def smtp_DATA(self, arg: str) -> None:
        self.phase = "data"
        try:
            await super().smtp_DATA(arg)
        finally:
            self.phase = "mail" if getattr(self.session, "tx", None) else "idle"

    async def close_for_shutdown(self) -> None:
        """421 and hang up (a graceful stop; the client keeps what it has not sent)."""
        if self.transport is not None and not self.transport.is_closing():
            try:
                await asyncio.wait_for(self.push(R_SHUTDOWN), 2)
            except Exception:  # noqa: BLE001 - the client may be gone already
                pass
            if self.transport is not None:
                self.transport.close()

    async def smtp_AUTH(self, arg: str) -> None:
        if not self.may_authenticate():
            await self.push(R_NEED_TLS if self.tls_context else R_NO_TLS)
            return
        client = client_ip(self.session)
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
        login = shown_login(creds.login)
        try:
            verdict, account, failures = await self._attempt(client, creds)
        except Exception as exc:  # noqa: BLE001 - registry unreachable: temporary
            log.error("login error user=%s client=%s reason=registry-unavailable (%s)",
                      login, client, type(exc).__name__)
            return R_AUTH_TEMP
        if verdict in (LOCKED, WAIT):
            log.warning("login refused user=%s client=%s reason=%s", login, client,
                        "too-many-failures" if verdict == LOCKED else "too-many-at-once")
            return R_AUTH_LOCKED if verdict == LOCKED else R_AUTH_TEMP
        if account is None:
            log.warning("login failed user=%s client=%s mechanism=%s failures=%d",
                        login, client, mechanism, failures)
            await asyncio.sleep(self.core.limiter.delay_for(failures))
            return R_AUTH_BAD
        return self._logged_in(account, login, client, mechanism)

    async def _attempt(self, client: str, creds):
        """``check_login`` in a login worker; while the address's check slots are all
        taken by checks in flight, again a little later."""
        deadline, pause = time.monotonic() + RESERVE_PATIENCE, 0.002
        while True:
            result = await self.core.run_login(check_login, self.core, client, creds.login,
                                               creds.password)
            if result[0] != WAIT or time.monotonic() > deadline:
                return result
            await asyncio.sleep(pause)      # checks take a millisecond or two
            pause = min(pause * 2, 0.05)

    def _logged_in(self, account, login: str, client: str, mechanism: str) -> str:
        self.session.authenticated = True
        self.session.auth_data = account
        log.info("login ok account=%s user=%s client=%s mechanism=%s tls=%s",
                 account.name, account.email, client, mechanism,
                 "yes" if self.encrypted() else "no")
        return R_AUTH_OK


def check_login(core, client: str, login, password) -> tuple[str, object, int]:
    """One login attempt, in one worker hop: a check slot (``ratelimit``), the password,
    the slot given back or counted. (verdict, account or None, failures so far)."""
    limiter = core.limiter
    verdict = limiter.reserve(client)
    if verdict != OK:
        return verdict, None, 0
    try:
        account = core.directory.authenticate(login, password)
    except Exception:
        _quietly(limiter.release, client)
        raise
    if account is None:
        return OK, None, limiter.failed(client)
    _quietly(limiter.release, client)
    return OK, account, 0


def _quietly(func, *args) -> None:
    try:
        func(*args)
    except Exception:  # noqa: BLE001 - giving a slot back is best effort
        pass
