"""Debug settings: the candidate matrix, its ranking, and finding the working pair."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from reconciler.servers import ServerSettings
from reconciler.verify.debug import candidates, debug


def test_candidate_order_follows_the_spec():
    assert candidates("smtp", 587, "starttls") == [
        (587, "ssl"), (587, "starttls"), (465, "ssl"), (25, "starttls"), (2525, "starttls"),
        (587, "none"), (25, "none")]
    assert candidates("smtp", 2600, "none") == [
        (2600, "ssl"), (2600, "starttls"), (465, "ssl"), (587, "starttls"), (25, "starttls"),
        (2525, "starttls"), (2600, "none"), (587, "none"), (25, "none")]
    assert candidates("imap", 993, "ssl") == [
        (993, "ssl"), (993, "starttls"), (143, "starttls"), (993, "none"), (143, "none")]
    assert candidates("pop3", 110, "none") == [
        (110, "ssl"), (110, "starttls"), (995, "ssl"), (110, "none")]


def _stack_map(stack) -> dict[int, int]:
    p = stack.ports
    return {465: p["smtps"], 587: p["submission"], 25: p["smtp"], 2525: p["smtp_notls"],
            993: p["imaps"], 143: p["imap"], 995: p["pop3s"], 110: p["pop3"]}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ep(stack, kind, port, security, **kw) -> ServerSettings:
    kw.setdefault("username", stack.address("alice"))
    kw.setdefault("secret", stack.user_password("alice"))
    kw.setdefault("ca_file", stack.ca_file)
    if kind == "smtp":
        kw.setdefault("mail_from", kw["username"])
    return ServerSettings(kind, "localhost", port, security, **kw)


@pytest.mark.mailstack
def test_smtp_wrong_port_finds_implicit_tls_first(mailstack):
    ep = _ep(mailstack, "smtp", _closed_port(), "starttls")
    rep = debug(ep, timeout=5, port_map=_stack_map(mailstack))
    assert rep.ok and rep.changed
    assert (rep.proposal.port, rep.proposal.security) == (mailstack.ports["smtps"], "ssl")
    assert rep.login.code == "ok" and rep.login.stage == "done"
    by_pair = {(row.port, row.security): row for row in rep.rows}
    assert by_pair[(ep.port, "starttls")].code == "connection_refused"
    assert by_pair[(ep.port, "starttls")].declared
    assert by_pair[(mailstack.ports["smtps"], "ssl")].step == "login"
    assert by_pair[(mailstack.ports["submission"], "starttls")].code == "ok"
    assert by_pair[(mailstack.ports["submission"], "none")].hint == \
        "AUTH offered only after STARTTLS: use security: starttls"
    assert by_pair[(mailstack.ports["smtp"], "starttls")].code == "auth_unsupported"
    assert by_pair[(mailstack.ports["smtp_notls"], "starttls")].code == "starttls_unsupported"
    json.dumps(rep.to_dict())


@pytest.mark.mailstack
def test_smtp_wrong_security_on_the_right_port(mailstack):
    ep = _ep(mailstack, "smtp", mailstack.ports["submission"], "ssl")
    rep = debug(ep, timeout=5)  # standard ports are not ours: only the declared port works
    assert (rep.proposal.port, rep.proposal.security) == (mailstack.ports["submission"],
                                                          "starttls")
    row = next(r for r in rep.rows if r.declared)
    assert row.code == "tls_handshake_failed" and "starttls" in row.hint


@pytest.mark.mailstack
def test_smtp_declared_starttls_on_implicit_tls_port(mailstack):
    ep = _ep(mailstack, "smtp", mailstack.ports["smtps"], "starttls")
    rep = debug(ep, timeout=5)
    assert (rep.proposal.port, rep.proposal.security) == (mailstack.ports["smtps"], "ssl")
    row = next(r for r in rep.rows if r.declared)
    assert "use security: ssl" in row.hint


@pytest.mark.mailstack
@pytest.mark.parametrize("kind,wrong,right", [
    ("imap", ("imap", "ssl"), ("imap", "starttls")),
    ("imap", ("imaps", "none"), ("imaps", "ssl")),
    ("pop3", ("pop3s", "starttls"), ("pop3s", "ssl")),
    ("pop3", ("pop3", "ssl"), ("pop3", "starttls")),
])
def test_inbox_wrong_security(mailstack, kind, wrong, right):
    ep = _ep(mailstack, kind, mailstack.ports[wrong[0]], wrong[1])
    rep = debug(ep, timeout=5)
    assert (rep.proposal.port, rep.proposal.security) == (mailstack.ports[right[0]], right[1])
    assert rep.login.code == "ok"


@pytest.mark.mailstack
def test_inbox_wrong_port(mailstack):
    ep = _ep(mailstack, "pop3", _closed_port(), "none")
    rep = debug(ep, timeout=5, port_map=_stack_map(mailstack))
    assert (rep.proposal.port, rep.proposal.security) == (mailstack.ports["pop3s"], "ssl")


@pytest.mark.mailstack
def test_wrong_password_proposes_nothing_and_stops(mailstack):
    ep = _ep(mailstack, "smtp", mailstack.ports["submission"], "starttls", secret="nope")
    rep = debug(ep, timeout=5, port_map=_stack_map(mailstack))
    assert rep.proposal is None and not rep.ok
    logins = [row for row in rep.rows if row.step == "login"]
    assert len(logins) == 1 and logins[0].code == "auth_failed"
    assert "nope" not in json.dumps(rep.to_dict())


@pytest.mark.mailstack
def test_certificate_failures_are_reported_never_accepted(mailstack):
    ep = _ep(mailstack, "smtp", mailstack.ports["smtps_wronghost"], "ssl")
    rep = debug(ep, timeout=5, port_map={465: mailstack.ports["smtps_expired"],
                                         587: mailstack.ports["submission"]})
    rows = {(r.port, r.security): r for r in rep.rows}
    assert rows[(mailstack.ports["smtps_wronghost"], "ssl")].cert_reason == "hostname mismatch"
    assert rows[(mailstack.ports["smtps_expired"], "ssl")].cert_reason == "expired"
    assert (rep.proposal.port, rep.proposal.security) == (mailstack.ports["submission"],
                                                          "starttls")


def test_debug_is_bounded_when_everything_is_silent():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(50)  # never accepts: connections complete, nobody speaks
    try:
        port = listener.getsockname()[1]
        ep = ServerSettings("imap", "127.0.0.1", port, "ssl", username="u", secret="p")
        started = time.monotonic()
        rep = debug(ep, timeout=0.4, port_map={993: port, 143: port})
        assert time.monotonic() - started < 0.4 + 1.5
        assert rep.proposal is None
        assert {row.code for row in rep.rows} == {"timeout"}
    finally:
        listener.close()
