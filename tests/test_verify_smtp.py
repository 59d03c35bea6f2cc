"""SMTP checks against the real local Postfix (and hostile test listeners)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import pytest

from reconciler.servers import ServerSettings
from reconciler.verify import CODES, check
from reconciler.verify.runner import CheckItem, run_checks



def smtp(stack, port, security, **kw) -> ServerSettings:
    kw.setdefault("username", stack.address("alice"))
    kw.setdefault("secret", stack.user_password("alice"))
    kw.setdefault("mail_from", kw["username"])
    kw.setdefault("ca_file", stack.ca_file)
    port = stack.ports[port] if isinstance(port, str) else port
    return ServerSettings("smtp", kw.pop("host", "localhost"), port, security, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer:
    """A listener that misbehaves on purpose: silent, dribbling, or scripted."""

    def __init__(self, behaviour):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.conns: list[socket.socket] = []
        self.accepted = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            threading.Thread(target=self._handle, args=(conn, self.accepted), daemon=True).start()

    def _handle(self, conn, number):
        try:
            self.behaviour(conn, number, self.stop)
        except OSError:
            pass

    def close(self):
        self.stop.set()
        self.sock.close()
        for conn in self.conns:
            conn.close()


def silent(conn, number, stop):
    stop.wait(30)


def dribbler(conn, number, stop):
    while not stop.is_set():
        conn.sendall(b"220-still greeting\r\n")
        stop.wait(0.1)              # a line well within every read's timeout


def busy_then_ok(conn, number, stop):
    if number == 1:
        conn.sendall(b"421 4.3.2 too busy, try again\r\n")
        return
    conn.sendall(b"220 fake ESMTP\r\n")
    f = conn.makefile("rb")
    while not stop.is_set():
        line = f.readline()
        if not line:
            return
        verb = line[:4].upper()
        if verb == b"EHLO":
            conn.sendall(b"250-fake\r\n250 8BITMIME\r\n")
        elif verb == b"QUIT":
            conn.sendall(b"221 bye\r\n")
            return
        else:
            conn.sendall(b"250 ok\r\n")


@pytest.fixture
def fake():
    servers = []

    def make(behaviour):
        server = FakeServer(behaviour)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.mark.parametrize("port,security", [
    ("submission", "starttls"), ("smtps", "ssl"), ("smtp_notls", "none")])
def test_good_login(mailstack, port, security):
    res = check(smtp(mailstack, port, security), timeout=10, account_name="good")
    assert res.code == "ok", res.summary()
    assert res.ok and res.stage == "done" and res.reply_code == 235
    if security != "none":
        assert res.tls_version and res.tls_version.startswith("TLSv1")
        assert res.cipher and "CN=localhost" in res.cert_subject
    else:
        assert res.tls_version is None


def test_no_authentication_on_the_mx_port(mailstack):
    res = check(smtp(mailstack, "smtp", "starttls", authenticate=False), timeout=10)
    assert res.code == "ok", res.summary()


def test_wrong_password(mailstack):
    ep = smtp(mailstack, "submission", "starttls", secret="not-the-password")
    res = check(ep, timeout=10)
    assert res.code == "auth_failed"
    assert res.reply_code == 535
    assert res.attempts == 1  # terminal: never retried
    assert "not-the-password" not in json.dumps(res.to_dict())
    assert "not-the-password" not in repr(ep) and "not-the-password" not in repr(res)


def test_plain_text_on_implicit_tls_port_says_use_ssl(mailstack):
    res = check(smtp(mailstack, "smtps", "starttls"), timeout=5)
    assert res.code == "protocol_error"
    assert "use security: ssl" in res.hint
    assert res.elapsed < 3


def test_tls_on_plain_port_says_use_starttls(mailstack):
    res = check(smtp(mailstack, "submission", "ssl"), timeout=5)
    assert res.code == "tls_handshake_failed"
    assert "use security: starttls" in res.hint


def test_starttls_not_offered(mailstack):
    res = check(smtp(mailstack, "smtp_notls", "starttls"), timeout=5)
    assert res.code == "starttls_unsupported"
    assert res.stage == "starttls"


def test_auth_not_offered(mailstack):
    res = check(smtp(mailstack, "smtp_noauth", "starttls"), timeout=5)
    assert res.code == "auth_unsupported"
    assert res.tls_version  # STARTTLS itself worked


def test_auth_offered_only_after_starttls(mailstack):
    res = check(smtp(mailstack, "submission", "none"), timeout=5)
    assert res.code == "auth_unsupported"
    assert res.hint == "AUTH offered only after STARTTLS: use security: starttls"


@pytest.mark.parametrize("port,reason", [
    ("smtps_wronghost", "hostname mismatch"),
    ("smtps_expired", "expired"),
    ("smtps_selfsigned", "self-signed"),
])
def test_certificate_failures_name_their_reason(mailstack, port, reason):
    res = check(smtp(mailstack, port, "ssl"), timeout=5)
    assert (res.code, res.cert_reason) == ("certificate_invalid", reason)
    assert res.stage == "tls"


def test_unknown_issuer_when_the_ca_is_not_trusted(mailstack, monkeypatch):
    monkeypatch.delenv("MAILFORM_CA_FILE", raising=False)
    res = check(smtp(mailstack, "smtps", "ssl", ca_file=None), timeout=5)
    assert (res.code, res.cert_reason) == ("certificate_invalid", "unknown issuer")
    res = check(smtp(mailstack, "submission", "starttls", ca_file=None), timeout=5)
    assert (res.code, res.cert_reason, res.stage) == (
        "certificate_invalid", "unknown issuer", "starttls")


def test_ca_file_from_the_environment(mailstack, monkeypatch):
    monkeypatch.setenv("MAILFORM_CA_FILE", mailstack.ca_file)
    res = check(smtp(mailstack, "smtps", "ssl", ca_file=None), timeout=5)
    assert res.code == "ok", res.summary()


def test_verify_certificate_false_accepts_but_says_so(mailstack):
    res = check(smtp(mailstack, "smtps_selfsigned", "ssl", verify_certificate=False), timeout=5)
    assert res.code == "ok"
    assert "verify_certificate: false" in res.hint


def test_unknown_host():
    res = check(ServerSettings("smtp", "nothing.invalid", 587, "starttls", secret="x"), timeout=5)
    assert (res.code, res.stage) == ("dns_error", "resolve")


def test_nothing_listening():
    res = check(ServerSettings("smtp", "127.0.0.1", free_port(), "starttls", secret="x"), timeout=5)
    assert (res.code, res.stage) == ("connection_refused", "connect")


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
def test_silent_server_times_out_on_time(fake, security):
    server = fake(silent)
    res = check(ServerSettings("smtp", "127.0.0.1", server.port, security, secret="x"), timeout=0.4)
    assert res.code == "timeout"
    assert res.elapsed < 0.4 + 1.5


def test_dribbling_server_cannot_stretch_the_deadline(fake):
    server = fake(dribbler)
    started = time.monotonic()
    res = check(ServerSettings("smtp", "127.0.0.1", server.port, "none", secret="x"), timeout=0.5)
    assert res.code == "timeout"
    assert time.monotonic() - started < 0.5 + 1.5


def test_busy_greeting_is_retried_once(fake):
    server = fake(busy_then_ok)
    res = check(ServerSettings("smtp", "127.0.0.1", server.port, "none", authenticate=False), timeout=5)
    assert res.code == "ok", res.summary()
    assert res.attempts == 2 and server.accepted == 2


def test_sender_rejected(mailstack):
    ep = smtp(mailstack, "submission", "starttls", username=mailstack.address("blocked"),
              secret=mailstack.user_password("blocked"))
    res = check(ep, timeout=10, send_test_to=mailstack.address("bob"), account_name="blocked")
    assert res.code == "sender_rejected"
    assert res.reply_code == 554 and "Sender address rejected" in res.reply_text


def test_recipient_rejected_without_auth_outside_the_local_domain(mailstack):
    ep = smtp(mailstack, "smtp", "starttls", authenticate=False)
    res = check(ep, timeout=10, send_test_to="someone@example.com")
    assert res.code == "recipient_rejected"
    assert "Relay access denied" in res.reply_text


def test_test_message_arrives_in_the_mailbox(mailstack):
    name = f"newsletter-{uuid.uuid4().hex[:6]}"
    res = check(smtp(mailstack, "submission", "starttls"), timeout=10,
                send_test_to=mailstack.address("bob"), account_name=name)
    assert res.code == "ok", res.summary()
    assert res.message_id and name in res.message_id
    msg = mailstack.wait_for_mail("bob", lambda m: m["Message-ID"] == res.message_id, 20)
    assert name in msg["Subject"]
    assert msg["From"] == mailstack.address("alice")


def test_result_to_dict_is_json_and_complete(mailstack):
    res = check(smtp(mailstack, "smtps", "ssl"), timeout=10, account_name="acct")
    data = json.loads(json.dumps(res.to_dict()))
    assert data["code"] in CODES and data["ok"] is True
    assert {"stage", "reply_code", "reply_text", "elapsed", "tls_version", "cipher",
            "cert_subject", "cert_reason", "hint", "message_id", "account"} <= set(data)
    assert mailstack.user_password("alice") not in json.dumps(data)


def test_run_checks_keeps_input_order_and_reports_progress(mailstack, fake):
    server = fake(silent)
    items = [CheckItem(smtp(mailstack, "smtps", "ssl"), account="a"),
             CheckItem(ServerSettings("smtp", "127.0.0.1", server.port, "none", secret="x"),
                       account="tarpit"),
             CheckItem(smtp(mailstack, "smtp_noauth", "starttls"), account="b")]  # fails fast
    seen = []
    out = run_checks(items, concurrency=3, timeout=0.5,
                     progress=lambda done, total, res: seen.append((done, total, res.account)))
    assert [r.code for r in out] == ["ok", "timeout", "auth_unsupported"]
    assert [r.account for r in out] == ["a", "tarpit", "b"]
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    assert seen[-1][2] == "tarpit"  # the slow one finishes last


def test_run_checks_bounds_a_crowd_of_tarpits(fake):
    server = fake(silent)
    items = [ServerSettings("smtp", "127.0.0.1", server.port, "none", secret="x")
             for _ in range(20)]
    started = time.monotonic()
    out = run_checks(items, concurrency=10, timeout=0.4)
    assert {r.code for r in out} == {"timeout"}
    assert time.monotonic() - started < 2 * 0.4 + 1.5          # one at a time: 20 × 0.4


@pytest.mark.parametrize("line,expected", [
    ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AUTH PLAIN (redacted)"),
    ("AUTH LOGIN", "AUTH LOGIN"),
    ("c2VjcmV0", "(redacted)"),
    ("A001 LOGIN alice secret", "A001 LOGIN (redacted)"),
    ("A002 AUTHENTICATE PLAIN", "A002 AUTHENTICATE PLAIN"),
    ("PASS secret", "PASS (redacted)"),
    ("USER alice", "USER alice"),
])
def test_auth_lines_are_redacted(line, expected):
    from reconciler.servers import redact_auth_line

    assert redact_auth_line(line) == expected


def test_transcript_never_holds_the_password(mailstack):
    ep = smtp(mailstack, "smtp_notls", "none")
    res = check(ep, timeout=10, transcript=True)
    assert res.code == "ok"
    text = "\n".join(res.transcript)
    assert "C: AUTH PLAIN (redacted)" in text
    assert mailstack.user_password("alice") not in text
    assert "transcript" in res.to_dict()
    assert "transcript" not in check(ep, timeout=10).to_dict()
