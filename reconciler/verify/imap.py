"""IMAP probe: greeting, CAPABILITY, STARTTLS, AUTHENTICATE (or LOGIN), SELECT."""

from __future__ import annotations

import imaplib

from ..servers import (SaslError, ServerSettings, TokenFailure, choose_mechanism,
                       imap_authenticate)
from . import results as r
from .net import Attempt, ProbeFailure
from .token import fetch_token, token_failure


class _Logged:
    """Transcript hooks shared by the plain and the TLS client."""

    _att: Attempt

    def send(self, data):
        self._att.log("C", data)
        super().send(data)

    def readline(self):
        line = super().readline()
        self._att.log("S", line)
        return line


class _IMAP(_Logged, imaplib.IMAP4):
    def __init__(self, att: Attempt, host: str, port: int):
        self._att = att
        super().__init__(host, port, timeout=att.timeout_for())

    def _create_socket(self, timeout):
        return self._att.open_socket(use_tls=False)


class _IMAPSSL(_Logged, imaplib.IMAP4_SSL):
    def __init__(self, att: Attempt, host: str, port: int):
        self._att = att
        super().__init__(host, port, ssl_context=att.context(), timeout=att.timeout_for())

    def _create_socket(self, timeout):
        return self._att.open_socket(use_tls=True)


def probe(ep: ServerSettings, att: Attempt, mode: str, send_test_to: str | None,
          account_name: str | None) -> dict:
    att.stage = "connect"
    try:
        client = (_IMAPSSL if ep.security == "ssl" else _IMAP)(att, ep.host, ep.port)
    except imaplib.IMAP4.error as exc:
        raise _greeting_failure(exc, att) from None
    try:
        att.stage = "greeting"
        att.reply(None, client.welcome)
        if ep.security == "starttls":
            _starttls(client, att)
        if ep.authenticate:
            _require_login(client, ep, att)
            if mode != "probe":
                _login(client, ep, att)
                _select(client, ep, att)
        att.stage = "done"
        _quietly(client.logout)
        return {}
    finally:
        _quietly(client.shutdown)


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


def _greeting_failure(exc: Exception, att: Attempt) -> ProbeFailure:
    if att.expired:
        return ProbeFailure(r.TIMEOUT, f"no answer within the timeout (during {att.stage})")
    text = _error_text(exc)
    transient = "BYE" in text.upper()[:10]
    return ProbeFailure(r.PROTOCOL_ERROR, text, transient=transient,
                        hint="this does not look like an IMAP server" if not transient else None)


def _error_text(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    # imaplib: "LOGIN command error: BAD [b'...']" -> the server's words
    if "[b'" in text or '[b"' in text:
        text = text[text.index("[b") + 3:].rstrip("']\"")
    return text


def _starttls(client: imaplib.IMAP4, att: Attempt) -> None:
    att.stage = "starttls"
    if "STARTTLS" not in client.capabilities:
        raise ProbeFailure(r.STARTTLS_UNSUPPORTED, "the server does not offer STARTTLS",
                           hint="use security: ssl on the implicit-TLS port (993), or none")
    try:
        typ, data = client.starttls(ssl_context=att.context())
    except imaplib.IMAP4.error as exc:
        raise ProbeFailure(r.STARTTLS_UNSUPPORTED, _error_text(exc)) from None
    att.reply(None, data[0] if data else typ)


def _require_login(client: imaplib.IMAP4, ep: ServerSettings, att: Attempt) -> None:
    att.stage = "auth"
    caps = client.capabilities
    offered = [c[5:] for c in caps if c.upper().startswith("AUTH=")]
    if ep.uses_oauth2 and choose_mechanism(offered, ep) is None:
        raise ProbeFailure(r.AUTH_UNSUPPORTED, "the server offers neither OAUTHBEARER nor "
                           "XOAUTH2 here (server offers " + (" ".join(offered) or "none") + ")")
    if "LOGINDISABLED" in caps and choose_mechanism(offered) is None:
        hint = None
        if ep.security == "none" and "STARTTLS" in caps:
            hint = "login offered only after STARTTLS: use security: starttls"
        raise ProbeFailure(r.AUTH_UNSUPPORTED, "the server disables LOGIN here", hint=hint)


def _login(client: imaplib.IMAP4, ep: ServerSettings, att: Attempt) -> None:
    fetch_token(ep, att)
    att.stage = "auth"
    try:
        typ, data = imap_authenticate(client, ep)
    except imaplib.IMAP4.abort:
        raise
    except TokenFailure as exc:
        raise token_failure(exc) from None
    except imaplib.IMAP4.error as exc:
        raise ProbeFailure(r.AUTH_FAILED, _error_text(exc)) from None
    except SaslError as exc:
        raise ProbeFailure(r.AUTH_UNSUPPORTED, str(exc)) from None
    att.reply(None, data[0] if data else typ)


def quote_mailbox(name: str) -> str:
    if name and all(c.isalnum() or c in "-_./" for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _select(client: imaplib.IMAP4, ep: ServerSettings, att: Attempt) -> None:
    att.stage = "select"
    folder = ep.folder or "INBOX"
    typ, data = client.select(quote_mailbox(folder), readonly=True)
    text = data[0] if data and data[0] is not None else typ
    if typ == "OK":
        text = f"SELECT {folder}: {text.decode() if isinstance(text, bytes) else text} messages"
    att.reply(None, text)
    if typ != "OK":
        raise ProbeFailure(r.PROTOCOL_ERROR, att.reply_text,
                           hint=f"folder {folder!r} cannot be selected; check inbox.folder")
