"""Relaying one message through an account's own upstream SMTP server (SPEC §7).

All or nothing: the upstream gets MAIL FROM, every RCPT TO, then DATA on one
connection; when any step fails (connection, TLS, greeting, login, a refused
sender or recipient, the DATA reply, a timeout) the transaction is abandoned
before DATA where possible and the result says so, so that the proxy answers
its client with a temporary failure and the client keeps the message. A
success is reported only when the upstream answered DATA with 250.

Every socket operation is bounded by the settings' ``timeout``. The settings
and the login (SASL, UTF-8 credentials) are the shared ones of
``reconciler.servers``. Nothing here logs, and no result holds the password.
"""
from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from typing import Iterable, Optional

from ..servers import DEFAULT_TIMEOUT, SaslError, ServerSettings, smtp_authenticate


@dataclass(frozen=True)
class RelayResult:
    ok: bool
    stage: str                 # connect | tls | greeting | auth | mail | rcpt | data | done
    code: Optional[int] = None
    detail: str = ""

    def describe(self) -> str:
        code = f"{self.code} " if self.code else ""
        return f"{self.stage}: {code}{self.detail}".strip()


class _Failed(Exception):
    def __init__(self, stage: str, code: Optional[int], detail: str):
        super().__init__(detail)
        self.stage, self.code, self.detail = stage, code, detail


def one_line(text, limit: int = 200) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_detail(exc: BaseException) -> tuple[Optional[int], str]:
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code, one_line(exc.smtp_error)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return None, "certificate invalid: " + one_line(exc.verify_message or exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return None, "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return None, one_line(exc.strerror)
    return None, one_line(str(exc) or type(exc).__name__)


def _step(stage: str, func, *args, **kwargs):
    """Run one client step; any failure becomes _Failed(stage, …)."""
    try:
        return func(*args, **kwargs)
    except (smtplib.SMTPException, OSError, SaslError, ValueError) as exc:
        raise _Failed(stage, *_error_detail(exc)) from None


def _open(up: ServerSettings, local_hostname: Optional[str]) -> smtplib.SMTP:
    if up.security == "ssl":
        return _step("connect", smtplib.SMTP_SSL, up.host, up.port, local_hostname=local_hostname,
                     timeout=up.timeout, context=up.tls_context())
    return _step("connect", smtplib.SMTP, up.host, up.port, local_hostname=local_hostname,
                 timeout=up.timeout)


def _greet_and_login(smtp: smtplib.SMTP, up: ServerSettings) -> None:
    _step("greeting", smtp.ehlo_or_helo_if_needed)
    if up.security == "starttls":
        if not smtp.has_extn("starttls"):
            raise _Failed("tls", None, "the upstream server does not offer STARTTLS")
        _step("tls", smtp.starttls, context=up.tls_context())
        _step("greeting", smtp.ehlo)
    if up.authenticate:
        _login(smtp, up)


def _login(smtp: smtplib.SMTP, up: ServerSettings) -> None:
    """The shared SASL client: UTF-8 credentials (smtplib.login encodes them as ASCII)."""
    if not smtp.has_extn("auth"):
        raise _Failed("auth", None, "the upstream server does not offer AUTH")
    code, text = _step("auth", smtp_authenticate, smtp, up)
    if code not in (235, 503):  # 503: already authenticated
        raise _Failed("auth", code, up.redact(one_line(text)))


def _expect(stage: str, reply: tuple[int, bytes], ok: Iterable[int]) -> None:
    code, text = reply
    if code not in tuple(ok):
        raise _Failed(stage, code, one_line(text))


def _transaction(smtp: smtplib.SMTP, sender: str, recipients: list[str], data: bytes,
                 eightbit: bool) -> tuple[int, bytes]:
    options = ["BODY=8BITMIME"] if eightbit and smtp.has_extn("8bitmime") else []
    _expect("mail", _step("mail", smtp.mail, sender, options), (250,))
    for rcpt in recipients:
        _expect("rcpt", _step("rcpt", smtp.rcpt, rcpt), (250, 251))
    reply = _step("data", smtp.data, data)
    _expect("data", reply, (250,))
    return reply


def relay_message(up: ServerSettings, sender: str, recipients: list[str], data: bytes, *,
                  local_hostname: Optional[str] = None, eightbit: bool = False) -> RelayResult:
    """Send one message through ``up`` (every step bounded by ``up.timeout``); never
    raises for a network or SMTP failure."""
    smtp = None
    try:
        smtp = _open(up, local_hostname)
        _greet_and_login(smtp, up)
        code, text = _transaction(smtp, sender, recipients, data, eightbit)
        return RelayResult(True, "done", code, one_line(text))
    except _Failed as failed:
        if failed.stage in ("mail", "rcpt"):
            _quietly(smtp.rset)
        return RelayResult(False, failed.stage, failed.code, failed.detail)
    finally:
        if smtp is not None:
            _quietly(smtp.quit)
            _quietly(smtp.close)


def _quietly(func) -> None:
    try:
        func()
    except Exception:  # noqa: BLE001 - tidying up a connection that may be gone
        pass


__all__ = ["RelayResult", "relay_message", "DEFAULT_TIMEOUT"]
