"""The proxy on the real stack (issue 12): mail clients (smtplib, swaks) → proxy →
Postfix with the account's credentials → Dovecot, read back over IMAP; a non-ASCII
password; a recipient Postfix refuses at RCPT beside one it accepts; the delivery log
and `proxy log`; SIGTERM during DATA."""
from __future__ import annotations

import imaplib
import json
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

from devtools.mailstack import DOMAIN, REJECTED_LOCAL
from reconciler.registry import open_registry
from test_proxy import applied_world, mailform

ROOT = Path(__file__).resolve().parent.parent
SERVE = [sys.executable, "-m", "reconciler", "proxy", "serve"]
# Postfix refuses this address at RCPT with 550 5.1.1, as a server refuses an unknown user
# (devtools/mailstack.py REJECTED_LOCAL)
REFUSED = f"{REJECTED_LOCAL}@{DOMAIN}"

@pytest.fixture(scope="module")
def world(mailstack, tmp_path_factory):
    """sender (ASCII password), umlaut (a non-ASCII password), reader (receives)."""
    tmp = tmp_path_factory.mktemp("proxystack")
    suffix = uuid.uuid4().hex[:6]
    users = {name: (f"ps{name}{suffix}", password) for name, password in (
        ("sender", f"sender-pw-{suffix}"), ("umlaut", f"pässwörd-ü-{suffix}"),
        ("reader", f"reader-pw-{suffix}"))}
    for local, password in users.values():
        mailstack.add_user(local, password)
    env = dict(os.environ, MAILFORM_CA_FILE=mailstack.ca_file, NO_COLOR="1",
               MAILFORM_REGISTRY=f"sqlite:///{tmp}/reg.db")
    env.pop("MAILFORM_MASTER_KEY", None)
    return applied_world(mailstack, tmp, env, users, "PS")


class Served:
    """`mailform proxy serve` in a child process (STARTTLS with the stack's certificate)."""

    def __init__(self, world, *options: str) -> None:
        cert = str(world.stack.certs["server"])
        self.proc = subprocess.Popen(
            [*SERVE, "--listen", "127.0.0.1:0", "--tls-cert", cert, "--hostname", "proxy.test",
             "--auth-failure-delay", "0", *options], cwd=ROOT, env=world.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not found:
            self.proc.kill()
            raise AssertionError(line + self.proc.stderr.read())
        self.address = ("127.0.0.1", int(found.group(1)))

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return self.proc.returncode, err


@pytest.fixture
def served(world):
    running = []

    def start(*options):
        running.append(Served(world, *options))
        return running[-1]

    yield start
    for one in running:
        one.stop()


def message(world, sender, to, subject=None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"] = world.email(sender), to
    msg["Subject"] = subject or f"proxy stack {uuid.uuid4().hex}"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@mailform.test>"
    msg.set_content("Sent through the mailform proxy, über STARTTLS.\n")
    return msg


def client(world, address) -> smtplib.SMTP:
    smtp = smtplib.SMTP(*address, timeout=60)
    smtp.starttls(context=ssl.create_default_context(cafile=world.stack.ca_file))
    smtp.ehlo("client.test")
    return smtp


def imap_subjects(world, name, timeout=30.0) -> list[str]:
    """The Subject of every message in ``name``'s INBOX, read over IMAP (STARTTLS)."""
    deadline, subjects = time.monotonic() + timeout, []
    with imaplib.IMAP4("127.0.0.1", world.stack.ports["imap"]) as imap:
        imap.starttls(ssl.create_default_context(cafile=world.stack.ca_file))
        imap.login(world.email(name), world.password(name))
        while time.monotonic() < deadline:
            imap.select("INBOX")
            _, data = imap.search(None, "ALL")
            subjects = []
            for num in data[0].split():
                _, parts = imap.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                subjects.append(parts[0][1].decode().partition(":")[2].strip())
            yield subjects
            time.sleep(0.3)


def arrived(world, name, subject, timeout=30.0) -> int:
    """How many copies of ``subject`` reached ``name`` (waits for the first)."""
    for subjects in imap_subjects(world, name, timeout):
        if subject in subjects:
            time.sleep(1.0)       # a duplicate would follow at once
            return list(next(imap_subjects(world, name))).count(subject)
    return 0


@pytest.mark.mailstack
def test_smtplib_client_through_the_proxy_to_the_mailbox(world, served):
    proxy = served()
    msg = message(world, "sender", world.email("reader"))
    with client(world, proxy.address) as smtp:
        smtp.login(world.email("sender"), world.password("sender"))
        assert smtp.send_message(msg) == {}
    assert arrived(world, "reader", msg["Subject"]) == 1


@pytest.mark.mailstack
def test_swaks_with_a_non_ascii_password(world, served):
    """swaks speaks TLS only with Perl's Net::SSLeay; without it, plain AUTH on the
    loopback listener (``--allow-plain-auth``)."""
    proxy = served("--allow-plain-auth")
    subject = f"swaks {uuid.uuid4().hex}"
    tls = ["--tls", "--tls-verify", "--tls-ca-path", world.stack.ca_file] \
        if subprocess.run(["perl", "-MNet::SSLeay", "-e", "1"]).returncode == 0 else []
    proc = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{proxy.address[1]}", *tls,
         "--auth", "PLAIN", "--auth-user", world.email("umlaut"),
         "--auth-password", world.password("umlaut"), "--from", world.email("umlaut"),
         "--to", world.email("reader"), "--header", f"Subject: {subject}",
         "--body", "hello from swaks"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert arrived(world, "reader", subject) == 1


@pytest.mark.mailstack
def test_a_refused_recipient_beside_an_accepted_one(world, served):
    registry = open_registry(world.url)
    try:
        registry.upsert_contacts([(REFUSED, {}), (world.email("reader"), {})])
    finally:
        registry.close()
    proxy = served()
    msg = message(world, "sender", world.email("reader"))
    with client(world, proxy.address) as smtp:
        smtp.login(world.email("sender"), world.password("sender"))
        refused = smtp.send_message(msg, to_addrs=[REFUSED, world.email("reader")])
    code, text = refused[REFUSED]
    assert code == 550 and text.startswith(b"5.1.1") and b"User unknown" in text   # Postfix's
    assert arrived(world, "reader", msg["Subject"]) == 1
    proxy.stop()
    registry = open_registry(world.url)
    try:
        assert registry.contact(REFUSED)["status"] == "faulty"
        assert registry.contact(REFUSED)["last_bounce"]["status"] == "5.1.1"
        assert registry.contact(world.email("reader"))["status"] == "active"
    finally:
        registry.close()
    shown = mailform(["proxy", "log", "sender", "--format", "json"], world.env).stdout
    rows = [json.loads(line) for line in shown.splitlines()]
    row = next(r for r in rows if r.get("message_id") == msg["Message-ID"])
    results = {r["address"]: r for r in row["recipients"]}
    assert results[REFUSED]["kind"] == "hard" and results[REFUSED]["code"] == 550
    assert results[REFUSED]["reason"] == "user-unknown"
    assert results[world.email("reader")]["result"] == "accepted"
    assert row["upstream_reply"].startswith("250") and row["size"] > 0
    text = mailform(["proxy", "log", "--since", "2000-01-01"], world.env).stdout
    assert msg["Message-ID"] in text and world.password("sender") not in text


def _start_data(world, proxy, subject) -> socket.socket:
    """A raw client inside DATA, the message half sent."""
    smtp = client(world, proxy.address)
    smtp.login(world.email("sender"), world.password("sender"))
    assert smtp.mail(world.email("sender"))[0] == 250
    assert smtp.rcpt(world.email("reader"))[0] == 250
    smtp.putcmd("DATA")
    assert smtp.getreply()[0] == 354
    smtp.send(f"From: {world.email('sender')}\r\nSubject: {subject}\r\n\r\n".encode())
    return smtp


@pytest.mark.mailstack
def test_sigterm_during_data_lets_the_message_finish(world, served):
    proxy = served("--shutdown-grace", "20")
    subject = f"sigterm finish {uuid.uuid4().hex}"
    smtp = _start_data(world, proxy, subject)
    proxy.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    with pytest.raises(OSError):                      # no longer accepting
        socket.create_connection(proxy.address, timeout=2).close()
    smtp.send(b"the rest of the body\r\n.\r\n")
    code, _ = smtp.getreply()
    assert code == 250
    assert proxy.stop()[0] == 0
    assert arrived(world, "reader", subject) == 1


@pytest.mark.mailstack
def test_sigterm_after_the_grace_answers_4xx_and_relays_nothing(world, served):
    proxy = served("--shutdown-grace", "1")
    subject = f"sigterm cut {uuid.uuid4().hex}"
    smtp = _start_data(world, proxy, subject)
    proxy.proc.send_signal(signal.SIGTERM)
    time.sleep(3.0)                                  # past the grace, still in DATA
    try:
        smtp.send(b"too late\r\n.\r\n")
        code, _ = smtp.getreply()
    except (smtplib.SMTPServerDisconnected, OSError):
        code = 421                                    # hung up after its 421
    assert 400 <= code < 500
    assert proxy.stop()[0] == 0
    assert arrived(world, "reader", subject, timeout=5) == 0


@pytest.mark.mailstack
def test_metrics_and_health_endpoints(world, served):
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    served("--metrics-listen", f"127.0.0.1:{port}")
    for path in ("/healthz", "/readyz", "/metrics"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            assert reply.status == 200


@pytest.mark.mailstack
def test_several_workers_share_the_listener_and_stop_together(world, served):
    proxy = served("--workers", "3")
    subjects = []
    for _ in range(6):
        msg = message(world, "sender", world.email("reader"))
        subjects.append(msg["Subject"])
        with client(world, proxy.address) as smtp:
            smtp.login(world.email("sender"), world.password("sender"))
            assert smtp.send_message(msg) == {}
    for subject in subjects:
        assert arrived(world, "reader", subject) == 1
    code, err = proxy.stop()
    assert code == 0, err[-3000:]
    assert err.count("relayed account=sender") == 6
    assert "mailform proxy stopped." in err
