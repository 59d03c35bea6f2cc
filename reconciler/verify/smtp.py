"""SMTP probe: greeting, EHLO, STARTTLS, AUTH, and optionally an envelope or a test message."""

from __future__ import annotations

import smtplib
import uuid
from email.message import EmailMessage
from email.utils import formatdate

from ..servers import (NoCommonMechanism, SaslError, ServerSettings, TokenFailure,
                       smtp_authenticate)
from . import results as r
from .net import Attempt, ProbeFailure
from .token import fetch_token, token_failure


class _Logged:
    """Transcript hooks shared by the plain and the TLS client."""

    _att: Attempt

    def send(self, s):
        self._att.log("C", s)
        super().send(s)

    def getreply(self):
        code, msg = super().getreply()
        self._att.log("S", "\n".join(f"{code} {line}" for line in
                                     msg.decode("utf-8", "replace").splitlines() or [""]))
        return code, msg


class _SMTP(_Logged, smtplib.SMTP):
    def __init__(self, att: Attempt):
        self._att = att
        super().__init__(host="", local_hostname="localhost")

    def _get_socket(self, host, port, timeout):
        sock = self._att.open_socket(use_tls=False)
        self.local_hostname = _helo_name(sock)
        return sock


class _SMTPSSL(_Logged, smtplib.SMTP_SSL):
    def __init__(self, att: Attempt):
        self._att = att
        super().__init__(host="", local_hostname="localhost", context=att.context())

    def _get_socket(self, host, port, timeout):
        sock = self._att.open_socket(use_tls=True)
        self.local_hostname = _helo_name(sock)
        return sock


def _helo_name(sock) -> str:
    """An address literal of our side: always syntactically valid for EHLO."""
    host = sock.getsockname()[0]
    return f"[IPv6:{host}]" if ":" in host else f"[{host}]"


def probe(ep: ServerSettings, att: Attempt, mode: str, send_test_to: str | None,
          account_name: str | None, message_id: str | None = None) -> dict:
    """Run the SMTP dialogue; raises ProbeFailure; returns extras (message_id: the test
    message's, ``message_id`` when the caller gave one)."""
    client = _SMTPSSL(att) if ep.security == "ssl" else _SMTP(att)
    try:
        _greet(client, ep, att)
        if ep.security == "starttls":
            _starttls(client, att)
        if ep.authenticate:
            _require_auth(client, ep, att)
            if mode != "probe":
                _login(client, ep, att)
        extras: dict = {}
        if mode == "envelope":
            _envelope(client, ep, att, ep.mail_from or ep.username or "")
            client.rset()
        elif mode == "login" and send_test_to:
            extras["message_id"] = _send_test(client, ep, att, send_test_to, account_name,
                                              message_id)
        att.stage = "done"
        _quietly(client.quit)
        return extras
    finally:
        _quietly(client.close)


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - closing after the verdict is best-effort
        pass


def _greet(client: smtplib.SMTP, ep: ServerSettings, att: Attempt) -> None:
    att.stage = "connect"
    client._host = ep.host  # noqa: SLF001 - smtplib's STARTTLS checks the certificate against it
    code, msg = client.connect(ep.host, ep.port)
    att.stage = "greeting"
    att.reply(code, msg)
    if code != 220:
        raise ProbeFailure(r.PROTOCOL_ERROR, att.reply_text, reply_code=code,
                           transient=400 <= code < 500,
                           hint="the server refused the connection" if code >= 400 else None)
    _ehlo(client, att)


def _ehlo(client: smtplib.SMTP, att: Attempt) -> None:
    att.stage = "ehlo"
    code, msg = client.ehlo()
    att.reply(code, msg.splitlines()[0] if msg else msg)
    if code != 250:
        code, msg = client.helo()
        att.reply(code, msg)
        if code != 250:
            raise ProbeFailure(r.PROTOCOL_ERROR, att.reply_text, reply_code=code)


def _starttls(client: smtplib.SMTP, att: Attempt) -> None:
    att.stage = "starttls"
    if not client.has_extn("starttls"):
        raise ProbeFailure(
            r.STARTTLS_UNSUPPORTED, "the server does not offer STARTTLS",
            reply_code=att.reply_code,
            hint="use security: ssl on the server's implicit-TLS port, or security: none")
    code, msg = client.starttls(context=att.context())
    att.reply(code, msg)
    if code != 220:
        raise ProbeFailure(r.STARTTLS_UNSUPPORTED, att.reply_text, reply_code=code)
    _ehlo(client, att)


def _require_auth(client: smtplib.SMTP, ep: ServerSettings, att: Attempt) -> None:
    att.stage = "auth"
    if client.has_extn("auth"):
        return
    hint = None
    if ep.security == "none" and client.has_extn("starttls"):
        hint = "AUTH offered only after STARTTLS: use security: starttls"
    else:
        hint = ("the server offers no AUTH here: set authenticate: false if it accepts mail "
                "without a login, or use its submission port")
    raise ProbeFailure(r.AUTH_UNSUPPORTED, "the server does not offer AUTH", hint=hint)


def _login(client: smtplib.SMTP, ep: ServerSettings, att: Attempt) -> None:
    fetch_token(ep, att)
    att.stage = "auth"
    try:
        code, msg = smtp_authenticate(client, ep)
    except NoCommonMechanism as exc:
        raise ProbeFailure(r.AUTH_UNSUPPORTED, str(exc)) from None
    except TokenFailure as exc:
        raise token_failure(exc) from None
    except SaslError as exc:
        raise ProbeFailure(r.PROTOCOL_ERROR, str(exc)) from None
    att.reply(code, msg)
    if code not in (235, 503):  # 503: already authenticated
        raise ProbeFailure(r.AUTH_FAILED, att.reply_text, reply_code=code)


def _envelope(client: smtplib.SMTP, ep: ServerSettings, att: Attempt, rcpt: str) -> None:
    att.stage = "mail_from"
    sender = ep.mail_from or ep.username or ""
    code, msg = client.mail(sender)
    att.reply(code, msg)
    if code != 250:
        failure = r.AUTH_FAILED if code == 530 else r.SENDER_REJECTED
        raise ProbeFailure(failure, att.reply_text, reply_code=code,
                           hint=_envelope_hint(att.reply_text, ep))
    att.stage = "rcpt_to"
    code, msg = client.rcpt(rcpt)
    att.reply(code, msg)
    if code not in (250, 251):
        text = (att.reply_text or "").lower()
        sender_problem = "sender" in text and "recipient address rejected" not in text
        failure = r.SENDER_REJECTED if sender_problem else r.RECIPIENT_REJECTED
        if code == 530:
            failure = r.AUTH_FAILED
        raise ProbeFailure(failure, att.reply_text, reply_code=code,
                           hint=_envelope_hint(att.reply_text, ep))


def _envelope_hint(text: str | None, ep: ServerSettings) -> str | None:
    text = (text or "").lower()
    if "relay" in text and not ep.authenticate:
        return "the server does not relay for unauthenticated clients: set authenticate: true"
    if "starttls" in text:
        return "the server requires STARTTLS first: use security: starttls"
    if "authentication required" in text:
        return "the server requires authentication: set authenticate: true"
    return None


def _send_test(client: smtplib.SMTP, ep: ServerSettings, att: Attempt, rcpt: str,
               account_name: str | None, message_id: str | None = None) -> str:
    _envelope(client, ep, att, rcpt)
    att.stage = "data"
    sender = ep.mail_from or ep.username or ""
    msg, message_id = build_test_message(account_name or sender, sender, rcpt, message_id)
    try:
        code, reply = client.data(msg.as_bytes())
    except smtplib.SMTPDataError as exc:
        code, reply = exc.smtp_code, exc.smtp_error
    att.reply(code, reply)
    if code != 250:
        raise ProbeFailure(r.PROTOCOL_ERROR, att.reply_text, reply_code=code,
                           hint="the server refused the test message")
    return message_id


def build_test_message(account_name: str, sender: str, rcpt: str,
                       message_id: str | None = None) -> tuple[EmailMessage, str]:
    """The --send-test message: Subject and Message-ID carry the account and a unique id.
    ``message_id``: a tagged one (the caller's, from the registry), so that a bounce of
    the test message is trusted like the proxy's (SECURITY.md)."""
    unique = uuid.uuid4().hex[:16]
    domain = sender.rpartition("@")[2] or "mailform.invalid"
    safe_name = "".join(c if c.isalnum() or c in "-_." else "-" for c in account_name)
    message_id = message_id or f"<mailform-test.{safe_name}.{unique}@{domain}>"
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = rcpt
    msg["Subject"] = f"mailform test message for account {account_name} [{unique}]"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id
    msg["X-Mailform-Account"] = account_name
    msg["X-Mailform-Test-Id"] = unique
    msg.set_content(
        f"This message was sent by `mailform verify --send-test` to check that the\n"
        f"account {account_name!r} can send mail.  It can be deleted.\n\nTest id: {unique}\n")
    return msg, message_id
