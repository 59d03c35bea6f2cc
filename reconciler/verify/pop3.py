"""POP3 probe: greeting, CAPA, STLS, AUTH (RFC 5034) or USER/PASS, STAT."""

from __future__ import annotations

import poplib

from ..servers import (NoCommonMechanism, SaslError, ServerSettings, TokenFailure,
                       choose_mechanism, pop3_authenticate)
from . import results as r
from .net import Attempt, ProbeFailure
from .token import fetch_token, token_failure


class _Logged:
    """Transcript hooks shared by the plain and the TLS client."""

    _att: Attempt

    def _putline(self, line):
        self._att.log("C", line)
        super()._putline(line)

    def _getline(self):
        line, octets = super()._getline()
        self._att.log("S", line)
        return line, octets


class _POP3(_Logged, poplib.POP3):
    def __init__(self, att: Attempt, host: str, port: int):
        self._att = att
        super().__init__(host, port, timeout=att.timeout_for())

    def _create_socket(self, timeout):
        return self._att.open_socket(use_tls=False)


class _POP3SSL(_Logged, poplib.POP3_SSL):
    def __init__(self, att: Attempt, host: str, port: int):
        self._att = att
        super().__init__(host, port, context=att.context(), timeout=att.timeout_for())

    def _create_socket(self, timeout):
        return self._att.open_socket(use_tls=True)


def probe(ep: ServerSettings, att: Attempt, mode: str, send_test_to: str | None,
          account_name: str | None) -> dict:
    att.stage = "connect"
    try:
        client = (_POP3SSL if ep.security == "ssl" else _POP3)(att, ep.host, ep.port)
    except poplib.error_proto as exc:
        text = _text(exc)
        raise ProbeFailure(r.PROTOCOL_ERROR, text, transient=text.startswith("-ERR"),
                           hint=None if text.startswith("-ERR")
                           else "this does not look like a POP3 server") from None
    try:
        att.stage = "greeting"
        att.reply(None, client.getwelcome())
        caps = _capa(client)
        if ep.security == "starttls":
            caps = _stls(client, att, caps)
        if ep.authenticate:
            _require_user(ep, att, caps)
            if mode != "probe":
                _login(client, ep, att, caps)
                att.stage = "stat"
                count, size = client.stat()
                att.reply(None, f"+OK {count} messages ({size} octets)")
        att.stage = "done"
        _quietly(client.quit)
        return {}
    finally:
        _quietly(client.close)


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001
        pass


def _text(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else exc
    if isinstance(arg, bytes):
        arg = arg.decode("utf-8", "replace")
    return " ".join(str(arg).split())


def _capa(client: poplib.POP3) -> dict:
    try:
        return client.capa()
    except poplib.error_proto:
        return {}  # CAPA is optional (RFC 2449)


def _stls(client: poplib.POP3, att: Attempt, caps: dict) -> dict:
    att.stage = "starttls"
    if "STLS" not in caps:
        raise ProbeFailure(r.STARTTLS_UNSUPPORTED, "the server does not offer STLS",
                           hint="use security: ssl on the implicit-TLS port (995), or none")
    try:
        resp = client.stls(context=att.context())
    except poplib.error_proto as exc:
        raise ProbeFailure(r.STARTTLS_UNSUPPORTED, _text(exc)) from None
    att.reply(None, resp)
    return _capa(client)


def _require_user(ep: ServerSettings, att: Attempt, caps: dict) -> None:
    att.stage = "auth"
    offered = caps.get("SASL") or ()
    if ep.uses_oauth2 and choose_mechanism(offered, ep) is None:
        raise ProbeFailure(r.AUTH_UNSUPPORTED, "the server offers neither OAUTHBEARER nor "
                           "XOAUTH2 here (SASL: " + (" ".join(offered) or "none") + ")")
    if caps and "USER" not in caps and choose_mechanism(offered) is None:
        hint = None
        if ep.security == "none" and "STLS" in caps:
            hint = "login offered only after STLS: use security: starttls"
        raise ProbeFailure(r.AUTH_UNSUPPORTED, "the server offers neither USER/PASS nor a "
                           "SASL mechanism we speak here", hint=hint)


def _login(client: poplib.POP3, ep: ServerSettings, att: Attempt, caps: dict) -> None:
    fetch_token(ep, att)
    att.stage = "auth"
    try:
        resp = pop3_authenticate(client, ep, caps)
    except poplib.error_proto as exc:
        raise ProbeFailure(r.AUTH_FAILED, _text(exc)) from None
    except TokenFailure as exc:
        raise token_failure(exc) from None
    except NoCommonMechanism as exc:
        raise ProbeFailure(r.AUTH_UNSUPPORTED, str(exc)) from None
    except SaslError as exc:
        raise ProbeFailure(r.PROTOCOL_ERROR, str(exc)) from None
    att.reply(None, resp)
