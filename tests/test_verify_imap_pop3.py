"""IMAP and POP3 checks against the real local Dovecot."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from reconciler.servers import ServerSettings
from reconciler.verify import check



def inbox(stack, kind, port, security, **kw) -> ServerSettings:
    kw.setdefault("username", stack.address("alice"))
    kw.setdefault("secret", stack.user_password("alice"))
    kw.setdefault("ca_file", stack.ca_file)
    port = stack.ports[port] if isinstance(port, str) else port
    return ServerSettings(kind, kw.pop("host", "localhost"), port, security, **kw)


CASES = [
    ("imap", "imap", "none"), ("imap", "imap", "starttls"), ("imap", "imaps", "ssl"),
    ("pop3", "pop3", "none"), ("pop3", "pop3", "starttls"), ("pop3", "pop3s", "ssl"),
]


@pytest.mark.parametrize("kind,port,security", CASES)
def test_good_login(mailstack, kind, port, security):
    res = check(inbox(mailstack, kind, port, security), timeout=10)
    assert res.code == "ok", res.summary()
    assert res.stage == "done"
    assert bool(res.tls_version) == (security != "none")
    if security != "none":
        assert "CN=localhost" in res.cert_subject


@pytest.mark.parametrize("kind,port", [("imap", "imaps"), ("pop3", "pop3s")])
def test_wrong_password(mailstack, kind, port):
    res = check(inbox(mailstack, kind, port, "ssl", secret="wrong-one"), timeout=10)
    assert (res.code, res.stage) == ("auth_failed", "auth")
    assert "Authentication failed" in res.reply_text
    assert "wrong-one" not in json.dumps(res.to_dict())


@pytest.mark.parametrize("kind,port", [("imap", "imaps"), ("pop3", "pop3s")])
def test_plain_text_on_implicit_tls_port(mailstack, kind, port):
    for security in ("none", "starttls"):
        res = check(inbox(mailstack, kind, port, security), timeout=5)
        assert res.code == "protocol_error"
        assert "use security: ssl" in res.hint


@pytest.mark.parametrize("kind,port", [("imap", "imap"), ("pop3", "pop3")])
def test_tls_on_plain_port(mailstack, kind, port):
    res = check(inbox(mailstack, kind, port, "ssl"), timeout=5)
    assert res.code == "tls_handshake_failed"
    assert "use security: starttls" in res.hint


@pytest.mark.parametrize("kind,port,security", [
    ("imap", "imaps", "ssl"), ("imap", "imap", "starttls"),
    ("pop3", "pop3s", "ssl"), ("pop3", "pop3", "starttls")])
def test_unknown_issuer(mailstack, monkeypatch, kind, port, security):
    monkeypatch.delenv("MAILFORM_CA_FILE", raising=False)
    res = check(inbox(mailstack, kind, port, security, ca_file=None), timeout=5)
    assert (res.code, res.cert_reason) == ("certificate_invalid", "unknown issuer")


def test_missing_imap_folder(mailstack):
    res = check(inbox(mailstack, "imap", "imaps", "ssl", folder="No Such Folder"), timeout=5)
    assert (res.code, res.stage) == ("protocol_error", "select")
    assert "No Such Folder" in res.hint


def test_other_folder_is_selected(mailstack):
    res = check(inbox(mailstack, "imap", "imaps", "ssl", folder="INBOX"), timeout=5)
    assert res.code == "ok" and "SELECT INBOX" in res.reply_text


@pytest.mark.parametrize("kind", ["imap", "pop3"])
def test_unknown_host_and_closed_port(kind):
    res = check(ServerSettings(kind, "nothing.invalid", 993, "ssl", secret="x"), timeout=5)
    assert res.code == "dns_error"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = check(ServerSettings(kind, "127.0.0.1", port, "ssl", secret="x"), timeout=5)
    assert res.code == "connection_refused"


@pytest.mark.parametrize("kind", ["imap", "pop3"])
def test_silent_server_times_out_on_time(kind):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(10)
    held = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        for security in ("none", "ssl"):
            res = check(ServerSettings(kind, "127.0.0.1", port, security, secret="x"), timeout=0.4)
            assert res.code == "timeout"
            assert res.elapsed < 0.4 + 1.5
    finally:
        stop.set()
        listener.close()
        for conn in held:
            conn.close()


def test_pop3_login_sees_delivered_mail(mailstack):
    local = "popuser"
    mailstack.add_user(local, "pop-secret")
    import smtplib

    with smtplib.SMTP("127.0.0.1", mailstack.ports["smtp"], timeout=10) as smtp:
        smtp.sendmail(mailstack.address("alice"), [mailstack.address(local)],
                      b"Subject: for pop\r\n\r\nhello\r\n")
    mailstack.wait_for_mail(local, lambda m: m["Subject"] == "for pop", 20)
    ep = inbox(mailstack, "pop3", "pop3s", "ssl", username=mailstack.address(local),
               secret="pop-secret")
    res = check(ep, timeout=5)
    assert res.code == "ok" and "+OK 1 messages" in res.reply_text
