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
import re
import ssl
import time
import warnings
from types import MethodType
from typing import Optional

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, TLSSetupException, syntax

from .data import NOMINAL, TOO_LONG, read_data

from .handler import ProxyHandler
from .ratelimit import LOCKED, WAIT

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


# ``<dot-atom@domain>`` followed by nothing or by plain ESMTP parameters: the addresses
# mail clients send, parsed here as aiosmtpd's parser (the email package's, 10% of a
# message's time) would; anything else (quoted local parts, comments, literals) goes to it.
_PLAIN_PATH = re.compile(
    r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>([ \t][A-Za-z0-9=+_.: \t-]*)?\Z")

# What aiosmtpd's constructor computes by introspection (``inspect.getmembers`` of the
# class, ``dir()`` of the handler: a third of a short session's time) is the same for
# every connection of one server: computed once per server (kept on its ProxyCore as
# ``smtp_template``) and copied (``_fast_init``).


def _stash(server, session, envelope, mechanism, auth_data) -> AuthResult:
    """aiosmtpd's (synchronous) authenticator: keep the credentials for the asynchronous
    check in ``ProxySMTP.smtp_AUTH`` and let it answer."""
    server.offered = (mechanism, auth_data)
    return AuthResult(success=False, handled=True)


class ProxySMTP(SMTP):
    """One client connection."""

    def __init__(self, core, tls_context: Optional[ssl.SSLContext]) -> None:
        loop = asyncio.get_event_loop()
        template = getattr(core, "smtp_template", None)
        if template is not None and template[0] is tls_context and template[1] is loop:
            self._fast_init(template[2], loop)
        else:
            self._slow_init(core, tls_context)
            core.smtp_template = (tls_context, loop, self._template())
        self.core = core
        self.offered = None
        self._held: list[bytes] = []     # lines of a multi-line reply not yet written
        self.phase = "idle"          # idle | mail | data | relaying (for a graceful stop)

    def _slow_init(self, core, tls_context: Optional[ssl.SSLContext]) -> None:
        """aiosmtpd's own constructor (the first connection of a server)."""
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

    def _template(self) -> dict:
        """What the constructor set beyond asyncio's stream protocol: plain values as they
        are, methods bound to this connection by name (rebound for each new one). The
        handler holds no per-connection state: one serves every connection."""
        stream = asyncio.StreamReaderProtocol(asyncio.StreamReader(loop=self.loop),
                                              client_connected_cb=lambda r, w: None,
                                              loop=self.loop)
        skip = set(vars(stream))       # what asyncio's constructor sets: fresh each time
        plain, methods = {}, {}
        for name, value in vars(self).items():
            if name in skip:
                continue
            if name in ("_smtp_methods", "_auth_methods"):
                methods[name] = value
            else:
                plain[name] = value
        smtp = {key: bound.__func__ for key, bound in methods["_smtp_methods"].items()}
        auth = {key: (attr.method.__func__, attr.is_builtin) if attr.is_builtin
                else (attr.method, False) for key, attr in methods["_auth_methods"].items()}
        return {"plain": plain, "smtp": smtp, "auth": auth,
                "auth_type": type(next(iter(methods["_auth_methods"].values())))
                if methods["_auth_methods"] else None}

    def _fast_init(self, template: dict, loop) -> None:
        """The same attributes as aiosmtpd's constructor gives, from the template."""
        asyncio.StreamReaderProtocol.__init__(
            self, asyncio.StreamReader(loop=loop, limit=self.line_length_limit),
            client_connected_cb=self._cb_client_connected, loop=loop)
        self.__dict__.update(template["plain"])
        self.command_size_limits.clear()
        self._smtp_methods = {key: MethodType(func, self)
                              for key, func in template["smtp"].items()}
        make = template["auth_type"]
        self._auth_methods = {key: make(MethodType(func, self) if builtin else func, builtin)
                              for key, (func, builtin) in template["auth"].items()}

    async def push(self, status) -> None:
        """aiosmtpd's reply, but the lines of a multi-line reply (EHLO's) leave together:
        one TLS record and one write instead of one per line."""
        if isinstance(status, str):
            status = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
        if status[3:4] == b"-":
            self._held.append(status + b"\r\n")
            return
        if self._held:
            status, self._held = b"".join(self._held) + status, []
        self._writer.write(status + b"\r\n")
        await self._writer.drain()

    def _getaddr(self, arg: str):
        """aiosmtpd's address parsing, without its cost for a plain ``<user@domain>``."""
        found = _PLAIN_PATH.match(arg) if arg else None
        if found is None:
            return super()._getaddr(arg)
        local, domain, rest = found.groups()
        if self.local_part_limit and len(local) > self.local_part_limit:
            return None, None
        return f"{local}@{domain}", (rest or "").lstrip(" \t")

    async def smtp_STARTTLS(self, arg: str):
        """STARTTLS through the loop's own TLS (``loop.start_tls``: native and several
        times cheaper under uvloop than the pure-Python layer aiosmtpd builds), with
        aiosmtpd's rules: plaintext that came after the command is discarded (RFC 3207
        §4.2: no command injection), the session starts over, the handshake must succeed."""
        if arg:
            await self.push("501 Syntax: STARTTLS")
            return
        if not self.tls_context:
            await self.push("454 TLS not available")
            return
        if self.encrypted():
            await self.push("554 5.5.1 Error: TLS already active")
            return
        await self.push("220 Ready to start TLS")
        raw = self.transport
        try:
            secured = await self.loop.start_tls(raw, self, self.tls_context, server_side=True)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise TLSSetupException() from error
        if secured is None:                           # the connection went away meanwhile
            raise TLSSetupException()
        self._original_transport = raw
        self._tls_protocol = secured                  # aiosmtpd: "TLS is on" when set
        self._reader._transport = secured             # type: ignore[attr-defined]
        self._writer._transport = secured             # type: ignore[attr-defined]
        self.transport = secured
        self._reader._buffer.clear()                  # type: ignore[attr-defined]
        self._set_rset_state()
        before = self.session
        self.session = self._create_session()
        self.session.peer = getattr(before, "peer", None)
        self.session.proxy_data = getattr(before, "proxy_data", None)   # the connection's
        self.session.ssl = {"cipher": secured.get_extra_info("cipher"),
                            "peercert": secured.get_extra_info("peercert"),
                            "ssl_object": secured.get_extra_info("ssl_object")}
        self._tls_handshake_okay = True

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

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        self.phase = "data"
        try:
            if self._decode_data:
                await super().smtp_DATA(arg)
            else:
                await self._data(arg)
        finally:
            self.phase = "mail" if getattr(self.session, "tx", None) else "idle"

    async def _data(self, arg: str) -> None:
        """aiosmtpd's DATA with the message read in chunks (``data.read_data``): the same
        checks, replies and envelope."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            verdict, content = await read_data(self._reader, self.line_length_limit,
                                               self.data_size_limit)
        except asyncio.CancelledError:
            self._writer.close()          # the connection was lost during DATA
            raise
        if verdict != NOMINAL:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)" if verdict == TOO_LONG
                            else "552 Error: Too much mail data")
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

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
    return core.limiter.attempt(client, lambda: core.directory.authenticate(login, password))
