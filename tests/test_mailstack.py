"""The local Postfix + Dovecot stack itself: listeners, users, delivery, bounces."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

from devtools.mailstack import PORT_NAMES, MailStack

ROOT = Path(__file__).resolve().parent.parent


def _send(stack, port_name, sender, rcpt, subject, login=None):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, rcpt, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{stack.domain}>"
    msg.set_content("hello from the mailstack tests\n")
    ctx = ssl.create_default_context(cafile=stack.ca_file)
    with smtplib.SMTP("localhost", stack.ports[port_name], timeout=10) as smtp:
        if login:
            smtp.starttls(context=ctx)
            smtp.login(*login)
        smtp.send_message(msg)
    return msg


def _dsn_status(msg) -> list[str]:
    statuses = []
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in part.get_payload():
                if block.get("Status"):
                    statuses.append(str(block["Status"]).strip())
    return statuses


def test_every_listener_is_up_on_a_high_loopback_port(mailstack):
    assert set(mailstack.ports) == set(PORT_NAMES)
    assert len(set(mailstack.ports.values())) == len(PORT_NAMES)
    for name, port in mailstack.ports.items():
        assert port >= 10000, name
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    assert Path(mailstack.ca_file).read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_new_user_can_log_in_and_receive_mail(mailstack):
    local = f"u{uuid.uuid4().hex[:8]}"
    address = mailstack.add_user(local, "pä:ss word")  # odd characters survive
    assert mailstack.messages(local) == []
    _send(mailstack, "smtp", mailstack.address("alice"), address, "welcome " + local)
    msg = mailstack.wait_for_mail(local, lambda m: m["Subject"] == "welcome " + local, 20)
    assert msg["To"] == address
    assert (mailstack.maildir(local)).is_dir()


def test_unknown_local_user_bounces_into_the_senders_mailbox(mailstack):
    sender = mailstack.add_user(f"s{uuid.uuid4().hex[:8]}", "sender-pw")
    local = sender.split("@")[0]
    subject = f"to nobody {uuid.uuid4().hex}"
    _send(mailstack, "submission", sender, f"nobody-{uuid.uuid4().hex[:6]}@{mailstack.domain}",
          subject, login=(sender, "sender-pw"))
    dsn = mailstack.wait_for_mail(local, lambda m: "Undelivered" in str(m["Subject"]), 30)
    assert dsn.get_content_type() == "multipart/report"
    assert _dsn_status(dsn) == ["5.1.1"]
    assert subject in dsn.as_string()


def test_full_mailbox_bounces_with_5_2_2(mailstack):
    sender = mailstack.add_user(f"q{uuid.uuid4().hex[:8]}", "q-pw")
    _send(mailstack, "smtp", sender, mailstack.address("full"), "for the full mailbox")
    dsn = mailstack.wait_for_mail(sender.split("@")[0],
                                  lambda m: "Undelivered" in str(m["Subject"]), 30)
    assert _dsn_status(dsn) == ["5.2.2"]


def test_blocked_sender_is_rejected(mailstack):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        _send(mailstack, "smtp", mailstack.address("blocked"), mailstack.address("bob"), "x")
    code, text = next(iter(info.value.recipients.values()))
    assert code == 554 and b"Sender address rejected" in text


def test_env_names_the_ca_ports_and_passwords(mailstack):
    env = mailstack.env()
    assert env["MAILFORM_CA_FILE"] == mailstack.ca_file
    assert env["MAILSTACK_PORT_SUBMISSION"] == str(mailstack.ports["submission"])
    assert env["MAILSTACK_PASSWORD_ALICE"] == mailstack.user_password("alice")


@pytest.mark.mailstack(own_stack=True)   # starts a stack of its own
def test_standalone_command_prints_json_and_stops_on_signal():
    workdir = tempfile.mkdtemp(prefix="mailform-stack-cli-")
    os.chmod(workdir, 0o755)
    proc = subprocess.Popen([sys.executable, "-m", "devtools.mailstack", "up", workdir],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("}"):
                break
        if proc.poll() is not None and os.geteuid() != 0:
            pytest.skip("needs root")
        info = json.loads("".join(lines))
        assert info["domain"] == "mailform.test"
        port = info["ports"]["imap"]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            assert s.recv(4) == b"* OK"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["rm", "-rf", workdir])


def test_stop_is_idempotent_and_safe_before_start(tmp_path):
    stack = MailStack(tmp_path)
    stack.stop()
    stack.stop()
