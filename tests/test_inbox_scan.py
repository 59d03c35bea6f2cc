"""End to end on the real stack: Postfix writes real DSNs into an account's Dovecot
mailbox, `mailform inbox scan` turns them into faulty contacts (IMAP and POP3)."""
from __future__ import annotations

import imaplib
import json
import os
import smtplib
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

import clihelpers

pytestmark = pytest.mark.mailstack
ROOT = Path(__file__).resolve().parent.parent

MANIFEST = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: {name}
spec:
  type: smtp
  email: {email}
  display_name: Scan Test
  shared: true
  smtp:
    host: 127.0.0.1
    port: {submission}
    security: starttls
    password: {{env: SCAN_PASSWORD}}
  inbox:
    protocol: {protocol}
    host: 127.0.0.1
    port: {inbox_port}
    security: ssl
    batch_size: {batch}
    delete_bounces: {delete}
{extra}---
apiVersion: mailform/v1
kind: BouncePolicy
metadata:
  name: default
spec:
  soft_bounce_limit: 2
  soft_bounce_window_days: 30
"""


def mailform(args, env, check=True):
    proc = clihelpers.mailform(*args, env=env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"mailform {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def send(stack, local, to, subject="hello", headers=None, body="Hello there.\n"):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = stack.address(local), to, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{stack.domain}>"
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", stack.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=_ctx(stack))
        smtp.login(stack.address(local), stack.user_password(local))
        smtp.send_message(msg)
    return msg["Message-ID"]


def _ctx(stack):
    import ssl
    return ssl.create_default_context(cafile=stack.ca_file)


def is_dsn(msg):
    return msg.get_content_type() == "multipart/report"


@pytest.fixture
def account(mailstack, tmp_path):
    """A fresh mailbox user and an applied account reading it; returns a small namespace."""
    def make(protocol="imap", delete=False, batch=100, folder=None):
        local = "scan" + uuid.uuid4().hex[:8]
        password = "pw-" + uuid.uuid4().hex
        mailstack.add_user(local, password)
        if folder:
            with imap_session(mailstack, local) as imap:
                imap.create(folder)
        manifests = tmp_path / f"manifests-{local}"
        manifests.mkdir()
        port = mailstack.ports["imaps" if protocol == "imap" else "pop3s"]
        (manifests / "account.yaml").write_text(MANIFEST.format(
            name=local, email=mailstack.address(local), submission=mailstack.ports["submission"],
            protocol=protocol, inbox_port=port, batch=batch, delete=str(delete).lower(),
            extra=f"    folder: {folder}\n" if folder else ""))
        env = dict(os.environ, SCAN_PASSWORD=password, MAILFORM_CA_FILE=mailstack.ca_file,
                   MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/registry-{local}.db", NO_COLOR="1")
        env.pop("MAILFORM_MASTER_KEY", None)
        applied = mailform(["apply", str(manifests), "--auto-approve"], env)
        assert "Apply complete!" in applied.stdout
        return type("Account", (), {"local": local, "env": env, "name": local,
                                    "manifests": manifests})
    return make


def scan(acc, *extra):
    proc = mailform(["inbox", "scan", acc.name, "--format", "json", *extra], acc.env)
    (report,) = json.loads(proc.stdout)
    return report


def contacts(acc, *emails):
    path = Path(acc.manifests) / "contacts.csv"
    path.write_text("email,first_name\n" + "".join(f"{e},X\n" for e in emails))
    mailform(["contacts", "import", str(path)], acc.env)


def contact_status(acc, email):
    proc = mailform(["contacts", "show", email], acc.env)
    return json.loads(proc.stdout)["status"]


def imap_session(stack, local):
    imap = imaplib.IMAP4("127.0.0.1", stack.ports["imap"], timeout=10)
    imap.login(stack.address(local), stack.user_password(local))
    return imap


def flags(stack, local):
    with imap_session(stack, local) as imap:
        imap.select("INBOX", readonly=True)
        _, data = imap.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [item[0].decode() + item[1].decode() for item in data if isinstance(item, tuple)]


def test_imap_hard_bounce_marks_contact_faulty_once(mailstack, account):
    acc = account("imap")
    gone = f"nobody-{uuid.uuid4().hex[:6]}@{mailstack.domain}"
    stranger = f"stranger-{uuid.uuid4().hex[:6]}@{mailstack.domain}"
    contacts(acc, gone, "fine@example.com")
    send(mailstack, acc.local, gone, "campaign")
    send(mailstack, acc.local, stranger, "campaign to a non-contact")
    send(mailstack, "bob", mailstack.address(acc.local), "Out of office: back Monday",
         headers={"Auto-Submitted": "auto-replied"}, body="I am away until Monday.\n")
    mailstack.wait_for_mail(acc.local, lambda m: is_dsn(m) and gone in m.as_string())
    mailstack.wait_for_mail(acc.local, lambda m: is_dsn(m) and stranger in m.as_string())
    mailstack.wait_for_mail(acc.local, lambda m: "Out of office" in str(m["Subject"]))

    report = scan(acc)
    assert report["result"] == "ok"
    assert report["scanned"] == 3 and report["other"] == 1
    assert report["bounces"]["hard"] == 2
    assert report["newly_faulty"] == [gone]
    assert report["unknown"] == [stranger]
    assert report["unverified"] == 0      # Postfix's own DSNs quoting this account's mail
    assert contact_status(acc, gone) == "faulty"
    assert contact_status(acc, "fine@example.com") == "active"

    again = scan(acc)
    assert again["scanned"] == 0 and again["newly_faulty"] == [] and again["bounces"]["hard"] == 0
    ooo = [f for f in flags(mailstack, acc.local) if "Out of office" in f]
    assert ooo and "\\Seen" not in ooo[0]                     # left untouched and unread
    assert len(mailstack.messages(acc.local)) == 3            # nothing deleted

    state = json.loads(mailform(["state", "show", acc.name, "--format", "json"], acc.env).stdout)
    assert state["status"]["last_scan"]["result"] == "ok"
    assert state["status"]["verification"]["smtp"]["code"] == "ok"


def test_pop3_delete_bounces(mailstack, account):
    acc = account("pop3", delete=True)
    gone = f"nobody-{uuid.uuid4().hex[:6]}@{mailstack.domain}"
    contacts(acc, gone)
    send(mailstack, acc.local, gone, "campaign")
    send(mailstack, "bob", mailstack.address(acc.local), "Je suis absent",
         headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"})
    mailstack.wait_for_mail(acc.local, is_dsn)
    mailstack.wait_for_mail(acc.local, lambda m: "absent" in str(m["Subject"]))

    report = scan(acc)
    assert report["result"] == "ok", report
    assert report["newly_faulty"] == [gone] and report["deleted"] == 1
    remaining = mailstack.messages(acc.local)
    assert [str(m["Subject"]) for m in remaining] == ["Je suis absent"]
    assert scan(acc)["scanned"] == 0


def test_imap_delete_bounces_leaves_the_rest_unread(mailstack, account):
    """With delete_bounces the bounce is deleted once recorded; the other mail stays,
    unread."""
    acc = account("imap", delete=True)
    gone = f"nobody-{uuid.uuid4().hex[:6]}@{mailstack.domain}"
    contacts(acc, gone)
    send(mailstack, acc.local, gone, "campaign")
    send(mailstack, "bob", mailstack.address(acc.local), "Lunch on Friday?")
    mailstack.wait_for_mail(acc.local, is_dsn)
    mailstack.wait_for_mail(acc.local, lambda m: "Lunch" in str(m["Subject"]))

    report = scan(acc)
    assert report["result"] == "ok", report
    assert report["newly_faulty"] == [gone] and report["deleted"] == 1
    left = flags(mailstack, acc.local)
    assert len(left) == 1 and "Lunch on Friday?" in left[0] and "\\Seen" not in left[0]
    assert scan(acc)["scanned"] == 0


def test_soft_bounces_reach_the_limit(mailstack, account):
    """Mail to a mailbox over quota bounces 5.2.2: soft; the policy's limit is 2."""
    acc = account("imap")
    full = mailstack.address("full")
    contacts(acc, full)
    send(mailstack, acc.local, full, "first")
    mailstack.wait_for_mail(acc.local, is_dsn)
    first = scan(acc)
    assert first["bounces"]["soft"] == 1 and first["newly_faulty"] == []
    assert contact_status(acc, full) == "active"
    send(mailstack, acc.local, full, "second")
    mailstack.wait_for_mail(acc.local, lambda m: is_dsn(m) and "second" in m.as_string())
    second = scan(acc)
    assert second["bounces"]["soft"] == 1 and second["newly_faulty"] == [full]
    assert contact_status(acc, full) == "faulty"


def test_batch_size_limits_one_run(mailstack, account):
    acc = account("imap", batch=2)
    for i in range(3):
        send(mailstack, "bob", mailstack.address(acc.local), f"note {i}")
    mailstack.wait_for_mail(acc.local, lambda m: "note 2" in str(m["Subject"]))
    first = scan(acc)
    assert first["scanned"] == 2 and first["remaining"] == 1
    assert scan(acc)["scanned"] == 1
    assert scan(acc)["scanned"] == 0


def test_scan_failure_is_reported_and_stored(mailstack, account, tmp_path):
    acc = account("imap")
    mailform(["registry", "set", acc.name, "inbox.password=wrong-password"], acc.env)
    proc = mailform(["inbox", "scan", acc.name], acc.env, check=False)
    assert proc.returncode == 1 and "login failed" in proc.stderr
    assert "wrong-password" not in proc.stdout + proc.stderr
    state = json.loads(mailform(["state", "show", acc.name, "--format", "json"], acc.env).stdout)
    assert state["status"]["last_scan"]["result"] == "error"
