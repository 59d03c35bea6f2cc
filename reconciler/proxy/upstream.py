"""One SMTP session with an account's own server, on asyncio (aiosmtplib).

Every step (connect with its greeting, TLS, EHLO, AUTH, MAIL, each RCPT, DATA and its
final reply, RSET) has its own deadline, ``timeout`` seconds, enforced with
``asyncio.timeout`` around the whole step: an upstream that trickles one byte a second
is cut at the deadline just like one that never answers. A step that fails that way (or
loses the connection) raises ``StepFailed`` with ``broken`` set: the session is then
closed and never reused. An SMTP refusal is an answer, not a failure: ``rcpt`` and
``data`` return it.

The login is the one SASL client of ``reconciler.servers`` (its mechanism choice and
UTF-8 credentials); TLS contexts are ``ServerSettings.tls_context`` (``trust``). Nothing
here logs, and no failure's text holds the password.
"""
from __future__ import annotations

import asyncio
import re
import ssl
import time
from typing import Optional

import aiosmtplib

from ..servers import SaslError, SaslSession, ServerSettings, decode, encode, refused
from .relay import one_line

Reply = tuple[int, str]
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")     # each line ending, a lone CR or LF included
ADDED_BYTES = 1024      # a Received: line and a tag header, at most


class StepFailed(Exception):
    """A step with the upstream failed: where, the upstream's code and text (or why)."""

    def __init__(self, stage: str, code: Optional[int], detail: str, broken: bool = True):
        super().__init__(detail)
        self.stage, self.code, self.detail, self.broken = stage, code, detail, broken


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate invalid: " + one_line(exc.verify_message or exc)
    if isinstance(exc, OSError) and exc.strerror:
        return one_line(exc.strerror)
    return one_line(str(exc) or type(exc).__name__)


class Upstream:
    """An open (or opening) session with one account's SMTP server."""

    def __init__(self, settings: ServerSettings, local_hostname: Optional[str],
                 timeout: float) -> None:
        self.settings, self.timeout = settings, timeout
        self.broken = False
        self.in_transaction = False     # MAIL accepted, no final reply to a message yet
        self.idle_since = time.monotonic()
        implicit = settings.security == "ssl"
        self.client = aiosmtplib.SMTP(
            hostname=settings.host, port=settings.port, local_hostname=local_hostname,
            timeout=timeout, use_tls=implicit, start_tls=False,
            tls_context=settings.tls_context() if implicit else None)

    async def _step(self, stage: str, awaitable, ok: tuple[int, ...] = (),
                    limit: Optional[float] = None):
        try:
            async with asyncio.timeout(limit or self.timeout):   # no task per step
                reply = await awaitable
        except (asyncio.TimeoutError, aiosmtplib.SMTPTimeoutError):
            raise self._failed(stage, None, f"no complete answer within {self.timeout:g} s")
        except aiosmtplib.SMTPResponseException as exc:
            raise self._failed(stage, exc.code, self.settings.redact(one_line(exc.message)),
                               broken=exc.code == 421)
        except (aiosmtplib.SMTPException, OSError, ValueError) as exc:
            raise self._failed(stage, None, self.settings.redact(_why(exc)))
        if ok and reply.code not in ok:
            raise self._failed(stage, reply.code, self.settings.redact(one_line(reply.message)),
                               broken=reply.code == 421)
        return reply

    def _failed(self, stage: str, code, detail: str, broken: bool = True) -> StepFailed:
        self.broken = self.broken or broken
        return StepFailed(stage, code, detail, broken)

    async def open(self) -> None:
        """Connect, greet, secure and log in; StepFailed on any failure."""
        await self._step("connect", self.client.connect())
        await self._step("greeting", self.client.ehlo(), (250,))
        if self.settings.security == "starttls":
            if not self.client.supports_extension("starttls"):
                raise self._failed("tls", None, "the upstream server does not offer STARTTLS")
            await self._step("tls", self.client.starttls(tls_context=self.settings.tls_context()))
            await self._step("greeting", self.client.ehlo(), (250,))
        if self.settings.authenticate:
            await self._login()

    async def _login(self) -> None:
        if not self.client.supports_extension("auth"):
            raise self._failed("auth", None, "the upstream server does not offer AUTH")
        offered = self.client.esmtp_extensions.get("auth", "").split()
        try:       # an OAuth2 login may fetch a token over HTTP: not on the event loop
            session = await asyncio.wait_for(asyncio.to_thread(
                SaslSession.for_offer, offered, self.settings), self.timeout) \
                if self.settings.uses_oauth2 else SaslSession.for_offer(offered, self.settings)
        except (SaslError, asyncio.TimeoutError) as exc:
            raise self._failed("auth", None, str(exc) or "no token in time") from None
        initial = session.initial()
        words = [session.mechanism] + ([] if initial is None else [encode(initial) or "="])
        reply = await self._step("auth", self.client.execute_command(
            b"AUTH", *(w.encode("ascii") for w in words)))
        while reply.code == 334:
            reply = await self._step("auth", self._answer(session, reply.message))
        if reply.code not in (235, 503):
            refused(self.settings)         # a cached OAuth2 token is not used again
            raise self._failed("auth", reply.code,
                               self.settings.redact(one_line(reply.message)), broken=False)

    async def _answer(self, session: SaslSession, challenge: str):
        try:
            response = session.respond(decode(challenge))
        except SaslError:
            await self.client.execute_command(b"*")   # RFC 4954: cancel the exchange
            raise
        return await self.client.execute_command(encode(response).encode("ascii"))

    async def mail(self, sender: str, eightbit: bool, size: Optional[int] = None) -> None:
        """MAIL FROM, with BODY=8BITMIME and the client's declared SIZE (plus room for
        the lines the proxy adds) where the upstream offers them, so that an upstream's
        size limit refuses a message before it is sent (RFC 1870)."""
        options = ["BODY=8BITMIME"] if eightbit and self.client.supports_extension(
            "8bitmime") else []
        if size is not None and self.client.supports_extension("size"):
            options.append(f"SIZE={size + ADDED_BYTES}")
        await self._step("mail", self.client.execute_command(
            b"MAIL", b"FROM:<" + sender.encode("utf-8") + b">",
            *(o.encode("ascii") for o in options)), (250,))
        self.in_transaction = True

    async def rcpt(self, recipient: str) -> Reply:
        """The upstream's answer for one recipient (a refusal is an answer)."""
        try:
            reply = await self._step("rcpt", self.client.execute_command(
                b"RCPT", b"TO:<" + recipient.encode("utf-8") + b">"))
        except StepFailed as failed:
            if failed.code is None or failed.broken:
                raise
            return failed.code, failed.detail
        return reply.code, one_line(reply.message)

    async def data(self, message: bytes) -> Reply:
        """The message and the final reply, each answer within the step deadline: one
        ``BDAT … LAST`` where the upstream offers CHUNKING (RFC 3030: no 354 round trip,
        no dot-stuffing, no end-of-data line to smuggle past), else DATA."""
        if not message.endswith(b"\n"):
            message += b"\r\n"
        protocol = self.client.protocol
        if protocol is None:
            raise self._failed("data", None, "the connection was lost")
        send = self._bdat(protocol, message) if self.client.supports_extension("chunking") \
            else protocol.execute_data_command(message, timeout=self.timeout)
        try:
            reply = await self._step("data", send, limit=2 * self.timeout + 1)
        except StepFailed as failed:
            if failed.code is None or failed.broken:
                raise
            return failed.code, failed.detail
        self.in_transaction = False     # the message's final reply ends the transaction
        return reply.code, one_line(reply.message)

    async def _bdat(self, protocol, message: bytes):
        """The message as one last chunk: the octets DATA would carry (every line ending
        CRLF, as aiosmtplib's DATA makes them), unstuffed; its reply is the final one."""
        message = _LINE_ENDS.sub(b"\r\n", message)
        protocol.write(b"BDAT %d LAST\r\n" % len(message) + message)
        reply = await protocol.read_response(timeout=self.timeout)
        if reply.code != 250:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        return reply

    async def reset(self) -> bool:
        """Ready for the next message: RSET when a transaction was left open (the client
        gave up after MAIL or RCPT, a refusal); none is needed after a message's final
        reply, which ends the transaction (RFC 5321 §4.1.1.4). False: no longer usable."""
        if not self.in_transaction:
            self.idle_since = time.monotonic()
            return True
        try:
            await self._step("rset", self.client.rset(), (250,))
        except StepFailed:
            return False
        self.in_transaction = False
        self.idle_since = time.monotonic()
        return True

    async def close(self, polite: bool = True) -> None:
        if polite and not self.broken and self.client.is_connected:
            try:
                await asyncio.wait_for(self.client.quit(), min(self.timeout, 5))
            except Exception:  # noqa: BLE001 - tidying up a connection that may be gone
                pass
        self.client.close()
