"""Bounces that can be trusted (SECURITY.md): anyone can mail a bounce inbox, so a report
naming a contact counts only when it carries a tag of a message mailform sent (and then
only for that message's recipients), or, untagged, when it comes from a mail system and
quotes this account's message — never when inbox.trust_untagged is false.

Unit tests of ``bounces.authenticity`` and ``bounces.tags``, the registry's records, the
scanner with a fake mailbox, and on the real stack: Postfix's own DSNs of a message
relayed by the proxy (tagged) and of one the account sent itself (untagged) count; a
forged report from an outside sender does not.
"""
from __future__ import annotations

import base64
import json
import os
import smtplib
import ssl
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

import clihelpers
from boundhelpers import in_child
from reconciler.bounces import authenticity as au
from reconciler.bounces import scan as scan_mod
from reconciler.bounces import tags
from reconciler.bounces.classify import classify
from reconciler.bounces.verdict import Verdict
from reconciler.registry import open_registry
from reconciler.registry.base import AccountWrite
from reconciler.registry.common import utcnow
from reconciler.registry.crypto import KeyRing, generate_key
from reconciler.servers import ServerSettings
from test_registry_support import backend, reg_url  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parents[2]
KEYS = KeyRing.from_master(b"k" * 32, "test key")
OLD_KEYS = KeyRing.from_master(b"o" * 32, "the key before a rekey")
ACCOUNT = "news@example.com"


class Recorder:
    """What ``tags`` needs of a registry: sign, record_sent, sent_message."""

    def __init__(self, keys=KEYS):
        self.sign, self.sent = keys.sign, {}

    def record_sent(self, tag, account, recipients):
        self.sent[tag] = {"account": account, "recipients": [r.lower() for r in recipients]}

    def sent_message(self, tag):
        return self.sent.get(tag)


def report(recipients, original: str = "", sender="MAILER-DAEMON@mx.example.org",
           return_path: str | None = "<>", original_type="message/rfc822", extra="") -> bytes:
    """A Postfix-shaped DSN: notification, delivery status, the returned message."""
    blocks = "".join(f"Final-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                     f"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n" for r in recipients)
    head = f"Return-Path: {return_path}\r\n" if return_path is not None else ""
    returned = (f"--B\r\nContent-Type: {original_type}\r\n\r\n{original}\r\n"
                if original else "")
    return (f"{head}From: Mail Delivery System <{sender}>\r\nTo: {ACCOUNT}\r\n{extra}"
            f"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
            f"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            f"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx.example.org\r\n\r\n{blocks}{returned}--B--\r\n").encode()


def original(sender=ACCOUNT, to="c0@example.com", message_id="<x1@example.com>", extra=""):
    return (f"Return-Path: <{sender}>\r\nFrom: News <{sender}>\r\nTo: {to}\r\n"
            f"Subject: news\r\nMessage-ID: {message_id}\r\n{extra}\r\nHello.\r\n")


# --------------------------------------------------------------------------- tags

def test_a_tag_verifies_only_with_the_registry_key_it_was_made_with():
    tag = au.make_tag("a" * 26, KEYS.sign)
    assert str(tag) == f"mf1.{'a' * 26}.{tag.mac}" and len(tag.mac) == 32
    assert au.genuine([tag], KEYS.sign) == [tag]
    assert au.genuine([tag], OLD_KEYS.sign) == []                   # after `registry rekey`
    forged = au.Tag(tag.id, "0" * 32)
    assert au.genuine([forged], KEYS.sign) == []
    assert au.make_tag("b" * 26, KEYS.sign).mac != tag.mac
    assert KEYS.fingerprint("x", "y")[12:44] != tag.mac             # its own purpose


def _b64_part(text: str) -> str:
    body = base64.encodebytes(text.encode()).decode()
    return f"Content-Transfer-Encoding: base64\r\n\r\n{body}"


@pytest.mark.parametrize("where", ["message-id", "header", "references", "base64", "qp"])
def test_tags_are_found_where_reports_return_them(where):
    tag = tags.new_tag(Recorder(), "news", [])
    mid = au.message_id(tag, "example.com")
    raw = {
        "message-id": report(["c0@example.com"], original(message_id=mid)),
        "header": report(["c0@example.com"], original(extra=f"X-Mailform-Tag: {tag}\r\n"),
                         original_type="text/rfc822-headers"),
        "references": report(["c0@example.com"], extra=f"References: {mid}\r\n"),
        "base64": report(["c0@example.com"]).replace(b"--B--", (
            "--B\r\nContent-Type: text/plain\r\n" + _b64_part(original(message_id=mid))
            + "--B--").encode()),
        "qp": report(["c0@example.com"]).replace(b"--B--", (
            "--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable"
            f"\r\n\r\nMessage-ID: {mid[:20]}=\r\n{mid[20:]}\r\n--B--").encode()),
    }[where]
    assert au.genuine(au.find_tags(raw), KEYS.sign) == [tag]


def test_tag_shaped_noise_is_not_a_tag():
    noise = ("mf1." * 1000 + "mf1.short.0123 mf1." + "A" * 26 + "." + "g" * 32).encode()
    assert au.find_tags(noise) == []
    many = "".join(f"mf1.{'a' * 25}{c}.{'0' * 32} " for c in "abcdefghijklmnopqrstuvwxyz234567")
    assert len(au.find_tags((many * 3).encode())) == 32


def test_tag_raw_sets_a_message_id_or_adds_a_header():
    rec = Recorder()
    plain = b"From: news@example.com\r\nTo: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    tagged = tags.tag_raw(rec, "news", ACCOUNT, ["A@example.org"], plain)
    assert tagged.endswith(plain) and tagged.startswith(b"Message-ID: <mf1.")
    assert tagged.split(b"\r\n")[0].endswith(b"@example.com>")
    (found,) = au.find_tags(tagged)
    assert rec.sent[found.id] == {"account": "news", "recipients": ["a@example.org"]}
    theirs = b"Message-Id: <theirs@example.com>\r\n" + plain
    kept = tags.tag_raw(rec, "news", ACCOUNT, ["a@example.org"], theirs)
    assert kept.startswith(b"X-Mailform-Tag: mf1.") and kept.endswith(theirs)
    body_only = plain.replace(b"body", b"Message-ID: <in the body>")
    assert tags.tag_raw(rec, "news", ACCOUNT, [], body_only).startswith(b"Message-ID: <mf1.")


def test_tag_message_for_the_platform_sender():
    rec, msg = Recorder(), EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = f"News <{ACCOUNT}>", "a@example.org", "x"
    msg.set_content("hello")
    tag = tags.tag_message(rec, "news", msg, ["a@example.org", "bcc@example.org"])
    assert msg["Message-ID"] == f"<{tag}@example.com>" and msg[au.TAG_HEADER] is None
    again = tags.tag_message(rec, "news", msg, ["a@example.org"])        # a second send
    assert msg["Message-ID"] == f"<{tag}@example.com>" and msg[au.TAG_HEADER] == again
    assert len(rec.sent) == 2 and au.find_tags(msg.as_bytes())


# --------------------------------------------------------------------------- the rules

def _trust(raw: bytes, rec: Recorder, trust_untagged=True, email=ACCOUNT) -> au.Trust:
    return scan_mod.BounceJudge(rec, email, trust_untagged)(raw)


def test_a_tagged_report_counts_for_the_recipients_of_that_message_only():
    rec = Recorder()
    tag = tags.new_tag(rec, "news", ["c0@example.com", "C1@example.com"])
    raw = report(["c0@example.com", "c1@example.com", "c2@example.com"],
                 original(message_id=au.message_id(tag, "example.com")),
                 sender="attacker@evil.example", return_path="<attacker@evil.example>")
    trust = _trust(raw, rec, trust_untagged=False)
    assert trust.basis == "tag"
    assert [trust.counts(a) for a in ("c0@example.com", "C1@EXAMPLE.com", "c2@example.com")] \
        == [True, True, False]
    assert "not a recipient" in trust.doubt()


@pytest.mark.parametrize("case, counts", [
    ("null sender quoting the account", True),
    ("daemon sender with Reporting-MTA, no Return-Path", True),
    ("postmaster envelope sender with Reporting-MTA", True),
    ("outside sender quoting the account", False),
    ("daemon From but an outside envelope sender", False),
    ("null sender quoting another sender", False),
    ("null sender quoting nothing", False),
])
def test_the_untagged_rule(case, counts):
    raw = {
        "null sender quoting the account": report(["c0@example.com"], original()),
        "daemon sender with Reporting-MTA, no Return-Path":
            report(["c0@example.com"], original(), return_path=None),
        "postmaster envelope sender with Reporting-MTA":
            report(["c0@example.com"], original(), return_path="<postmaster@mx.example.org>"),
        "outside sender quoting the account":
            report(["c0@example.com"], original(), sender="someone@evil.example",
                   return_path="<someone@evil.example>"),
        "daemon From but an outside envelope sender":
            report(["c0@example.com"], original(), return_path="<someone@evil.example>"),
        "null sender quoting another sender":
            report(["c0@example.com"], original(sender="other@example.com")),
        "null sender quoting nothing": report(["c0@example.com"]),
    }[case]
    trust = _trust(raw, Recorder())
    assert trust.counts("c0@example.com") is counts, trust
    assert _trust(raw, Recorder(), trust_untagged=False).basis == ""
    if not counts:
        assert trust.doubt().startswith("untagged")


def test_text_bounces_quote_headers_in_their_text():
    raw = (f"Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.example.org\r\nTo: {ACCOUNT}\r\n"
           "Subject: Mail delivery failed\r\n\r\nA message could not be delivered:\r\n"
           "  c0@example.com\r\n    unknown user\r\n\r\n------ This is a copy of the message, "
           f"including all the headers. ------\r\nFrom: News <{ACCOUNT}>\r\n"
           "To: c0@example.com\r\n\r\nHello.\r\n").encode()
    assert _trust(raw, Recorder()).basis == "mail system"


def test_a_tag_that_does_not_verify_falls_back_to_the_untagged_rules():
    old = Recorder(OLD_KEYS)                    # signed before `registry rekey`
    tag = tags.new_tag(old, "news", ["c0@example.com"])
    mid = au.message_id(tag, "example.com")
    rec = Recorder()
    rec.sent = old.sent                          # still on record
    trusted = _trust(report(["c0@example.com"], original(message_id=mid)), rec)
    assert trusted.basis == "mail system"
    forged = _trust(report(["c0@example.com"], original(message_id=mid),
                           sender="x@evil.example", return_path="<x@evil.example>"), rec)
    assert forged.basis == "" and forged.why.startswith("its tag does not verify")


def _find_and_judge(raw: bytes) -> float:
    started = time.perf_counter()
    au.find_tags(raw)
    au.origin_of(raw)
    return time.perf_counter() - started


@pytest.mark.parametrize("unit", ["mf1.", "mf1.a", "mf1." + "a" * 26 + ".", "m", "From: ",
                                  "> from:a@b.cc\n", "<>", "\n"])
def test_finding_and_judging_is_linear(unit):
    body = unit * (200_000 // len(unit))
    raw = report(["c0@example.com"], original(extra=f"X-Mailform-Tag: {body}\r\n"),
                 original_type="text/rfc822-headers") + body.encode()
    plain = (f"Return-Path: <>\r\nFrom: MAILER-DAEMON@x\r\n\r\n{body}").encode()
    for message in (raw, plain):
        status, took = in_child(_find_and_judge, message)
        assert status == "ok" and took < 2.0, (unit, took)


# --------------------------------------------------------------------------- registry

@pytest.fixture
def registry(reg_url):
    """A registry (SQLite, and PostgreSQL when a server answers) with account news."""
    reg = open_registry(reg_url)
    spec = {"email": ACCOUNT, "inbox": {"protocol": "imap", "trust_untagged": True}}
    with reg.lock("test"), reg.transaction() as tx:
        tx.put_account(AccountWrite("news", "smtp", spec, {}, {}))
        tx.add_history({"actor": "test", "counts": {}, "changes": []})
    reg.upsert_contacts([(f"c{i}@example.com", {}) for i in range(4)])
    yield reg
    reg.close()


def test_sent_messages_are_recorded_and_pruned(registry):
    registry.record_sent("old", "news", ["a@example.org"], when=utcnow() - timedelta(days=31))
    registry.record_sent("new", "news", ["A@Example.org", "b@example.org"])
    assert registry.sent_message("old") is None                        # past the retention
    got = registry.sent_message("new")
    assert got["account"] == "news" and got["recipients"] == ["a@example.org", "b@example.org"]
    with registry.lock("test"), registry.transaction() as tx:
        tx.delete_account("news")
    assert registry.sent_message("new") is None


def test_expired_sent_messages_are_pruned_at_most_once_a_minute(registry, monkeypatch):
    from reconciler.registry import sent
    clock = [1000.0]
    monkeypatch.setattr(sent.time, "monotonic", lambda: clock[0])
    registry.record_sent("first", "news", ["a@example.org"])              # prunes
    registry.record_sent("old", "news", ["a@example.org"], when=utcnow() - timedelta(days=31))
    assert registry.sent_message("old") is not None      # within the minute: not yet
    clock[0] += sent.PRUNE_EVERY
    registry.record_sent("next", "news", ["a@example.org"])
    assert registry.sent_message("old") is None and registry.sent_message("next") is not None


def test_unverified_bounces_are_kept_apart_for_contacts(registry):
    out = registry.record_message("news", "imap:INBOX:1", 7, [], unverified=[
        ("C0@example.com", "hard", "5.1.1", "user unknown", "untagged"),
        ("stranger@example.org", "hard", "5.1.1", None, "untagged")])
    assert out == [] and registry.processed_uids("news", "imap:INBOX:1") == {"7"}
    (row,) = registry.unverified_bounces("c0@example.com")
    assert row["why"] == "untagged" and row["reason"] == "user unknown" and row["uid"] == "7"
    assert registry.contact("c0@example.com")["status"] == "active"
    assert registry.unverified_bounces("stranger@example.org") == []   # nothing invented


def test_the_classifier_reason_is_kept_with_the_bounce(registry):
    registry.record_message("news", "imap:INBOX:1", 1, [
        ("c1@example.com", "soft", "4.2.2", "mailbox full"), ("c2@example.com", "hard", "5.1.1")])
    registry.record_message("news", "imap:INBOX:1", 2, [("c1@example.com", "soft", "4.2.2")],
                            when=utcnow() + timedelta(seconds=1))
    soft = registry.contact("c1@example.com")["soft_bounces"]
    assert [b.get("reason") for b in soft] == ["mailbox full", None]
    assert "reason" not in registry.contact("c2@example.com")["last_bounce"]


# --------------------------------------------------------------------------- scanner

class Box:
    key = "imap:INBOX:1"

    def __init__(self, messages):
        self.messages = messages

    def uids(self):
        return list(self.messages)

    def fetch(self, uid):
        return self.messages[uid]

    def delete(self, uids):
        pass

    def close(self):
        pass


@dataclass(frozen=True)
class Reasoned:
    address: str
    kind: str
    status: str
    reason: str


SETTINGS = ServerSettings("imap", "imap.example.com", 993, "ssl", username="u", secret="pw")


def _scan(registry, monkeypatch, messages, **kwargs):
    monkeypatch.setattr(scan_mod, "open_mailbox", lambda settings: Box(messages))
    return scan_mod.scan_account(registry, "news", SETTINGS, 100, False, **kwargs)


def test_the_scanner_counts_what_it_can_trust(registry, monkeypatch):
    tag = tags.new_tag(registry, "news", ["c0@example.com"])
    tagged = report(["c0@example.com", "c1@example.com"],
                    original(message_id=au.message_id(tag, "example.com")),
                    sender="x@evil.example", return_path="<x@evil.example>")
    forged = report(["c2@example.com"], original(), sender="x@evil.example",
                    return_path="<x@evil.example>")
    got = _scan(registry, monkeypatch, {"1": tagged, "2": forged, "3": report(
        ["c3@example.com"], original())})
    assert got.newly_faulty == ["c0@example.com", "c3@example.com"] and got.unverified == 2
    assert got.to_dict()["unverified"] == 2 and got.bounces["hard"] == 2
    assert [registry.contact(f"c{i}@example.com")["status"] for i in range(4)] == [
        "faulty", "active", "active", "faulty"]
    assert "not a recipient" in registry.unverified_bounces("c1@example.com")[0]["why"]
    assert "not from a mail system" in registry.unverified_bounces("c2@example.com")[0]["why"]
    assert registry.account("news").status["bounce_totals"]["unverified"] == 2


def test_the_scanner_carries_the_classifier_reason(registry, monkeypatch):
    def classifier(raw):
        return Verdict(True, (Reasoned("c1@example.com", "hard", "5.1.1", "no such user"),))
    _scan(registry, monkeypatch, {"1": report(["c1@example.com"], original())},
          classifier=classifier)
    assert registry.contact("c1@example.com")["last_bounce"]["reason"] == "no such user"


def test_a_tag_recorded_before_a_rekey_keeps_verifying(registry, monkeypatch, backend):
    """`registry rekey` re-keys tags too: it keeps each recorded tag's MAC under the old key,
    so a bounce of mail sent before the rotation still counts; a made-up MAC for the same
    id does not."""
    tag = tags.new_tag(registry, "news", ["c0@example.com"])
    raw = report(["c0@example.com"], original(message_id=au.message_id(tag, "example.com")),
                 sender="x@evil.example", return_path="<x@evil.example>")
    forged_tag = au.Tag(tag.id, "0" * len(tag.mac))
    forged = report(["c0@example.com"],
                    original(message_id=au.message_id(forged_tag, "example.com")),
                    sender="x@evil.example", return_path="<x@evil.example>")
    if backend == "postgres":
        monkeypatch.setenv("NEW_KEY", generate_key())
    registry.rekey("NEW_KEY" if backend == "postgres" else None, "test")
    assert au.genuine([tag], registry.sign) == []          # not under the new key ...
    got = _scan(registry, monkeypatch, {"1": raw, "2": forged})
    assert got.unverified == 1                             # ... but on record: only the forgery
    assert got.scanned == 2 and sum(got.bounces.values()) == 1


# --------------------------------------------------------------------------- real stack

MANIFEST = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: {name}
spec:
  type: smtp
  email: {email}
  display_name: Trust Test
  shared: true
  proxy: {proxy}
  smtp: {{host: 127.0.0.1, port: {submission}, security: starttls,
          password: {{env: TRUST_PASSWORD}}}}
  inbox:
    protocol: imap
    host: 127.0.0.1
    port: {imaps}
    security: ssl
    trust_untagged: {trust}
"""


def mailform(args, env):
    proc = clihelpers.mailform(*args, env=env, cwd=ROOT)
    assert proc.returncode == 0, f"mailform {args}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


@pytest.fixture
def account(mailstack, tmp_path):
    def make(proxy=False, trust=True):
        local, password = "trust" + uuid.uuid4().hex[:8], "pw-" + uuid.uuid4().hex
        mailstack.add_user(local, password)
        folder = tmp_path / local
        folder.mkdir()
        (folder / "account.yaml").write_text(MANIFEST.format(
            name=local, email=mailstack.address(local), proxy=str(proxy).lower(),
            submission=mailstack.ports["submission"], imaps=mailstack.ports["imaps"],
            trust=str(trust).lower()))
        env = dict(os.environ, TRUST_PASSWORD=password, MAILFORM_CA_FILE=mailstack.ca_file,
                   MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/{local}.db", NO_COLOR="1")
        env.pop("MAILFORM_MASTER_KEY", None)
        mailform(["apply", str(folder), "--auto-approve"], env)
        return type("Account", (), {"local": local, "email": mailstack.address(local),
                                    "password": password, "env": env, "folder": folder})
    return make


def _contacts(acc, *emails):
    path = acc.folder / "contacts.csv"
    path.write_text("email\n" + "".join(f"{e}\n" for e in emails))
    mailform(["contacts", "import", str(path)], acc.env)


def _show(acc, email):
    return json.loads(mailform(["contacts", "show", email], acc.env).stdout)


def _scan_cli(acc):
    (got,) = json.loads(mailform(["inbox", "scan", acc.local, "--format", "json"],
                                 acc.env).stdout)
    assert got["result"] == "ok", got
    return got


def _message(sender, to, message_id=None):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, f"trust {uuid.uuid4().hex[:8]}"
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content("Hello.\n")
    return msg


def _unknown(stack):
    return f"gone-{uuid.uuid4().hex[:8]}@{stack.domain}"


def _wait_dsns(stack, acc, *addresses):
    for address in addresses:
        stack.wait_for_mail(acc.local, lambda m: m.get_content_type() == "multipart/report"
                            and address in m.as_string(), 30)


def mailstack_dsn(stack, acc, address) -> bytes:
    (dsn,) = [m for m in stack.messages(acc.local) if address in m.as_string()]
    return dsn.as_bytes()


def _submit(stack, acc, msg):
    """The account sends by itself (not through mailform): untagged."""
    with smtplib.SMTP("127.0.0.1", stack.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=stack.ca_file))
        smtp.login(acc.email, acc.password)
        smtp.send_message(msg)


def test_postfix_dsn_of_a_message_the_proxy_tagged_counts(mailstack, account):
    """(1) Relayed through the proxy to unknown users; trust_untagged: false, so only the
    tags can make Postfix's DSNs count."""
    from reconciler.proxy.auth import AccountDirectory
    from reconciler.proxy.ratelimit import LimitSettings
    from reconciler.proxy.server import ProxyConfig, ProxyServer, ThreadedProxy
    acc = account(proxy=True, trust=False)
    bare, theirs = _unknown(mailstack), _unknown(mailstack)
    _contacts(acc, bare, theirs)
    config = ProxyConfig("127.0.0.1", 0, allow_plain_auth=True, hostname="proxy.test",
                         limits=LimitSettings(base_delay=0), upstream_timeout=15,
                         ca_file=mailstack.ca_file)
    directory = AccountDirectory(lambda: open_registry(acc.env["MAILFORM_REGISTRY"]))
    with ThreadedProxy(ProxyServer(config, directory)) as running:
        with smtplib.SMTP(*running.server.address, timeout=20) as client:
            client.login(acc.email, acc.password)
            client.send_message(_message(acc.email, bare))
            client.send_message(_message(acc.email, theirs, f"<own-{uuid.uuid4().hex}@x.test>"))
    directory.close()
    _wait_dsns(mailstack, acc, bare, theirs)
    returned = [m.as_string() for m in mailstack.messages(acc.local)]
    assert any("Message-ID: <mf1." in text for text in returned)
    assert any("<own-" in text and "X-Mailform-Tag:" in text for text in returned)
    assert all(len(au.find_tags(text.encode())) == 1 for text in returned)
    got = _scan_cli(acc)
    assert sorted(got["newly_faulty"]) == sorted([bare, theirs]) and got["unverified"] == 0
    assert _show(acc, bare)["status"] == "faulty"


def test_postfix_dsn_of_an_untagged_message_counts(mailstack, account):
    """(2) The account sent it itself: Postfix's DSN, null sender, quoting its headers."""
    acc = account()
    gone = _unknown(mailstack)
    _contacts(acc, gone)
    _submit(mailstack, acc, _message(acc.email, gone, f"<{uuid.uuid4().hex}@x.test>"))
    _wait_dsns(mailstack, acc, gone)
    got = _scan_cli(acc)
    assert got["newly_faulty"] == [gone] and got["unverified"] == 0
    shown = _show(acc, gone)
    assert shown["status"] == "faulty" and shown["unverified_count"] == 0
    reason = getattr(classify(mailstack_dsn(mailstack, acc, gone)).recipients[0], "reason", None)
    assert shown["last_bounce"].get("reason") == reason      # the classifier's, carried through


def _forged_report(acc, contact) -> bytes:
    return report([contact], original(sender=acc.email, to=contact),
                  sender="MAILER-DAEMON@outside.example", return_path=None).replace(
        ACCOUNT.encode(), acc.email.encode())


def test_a_forged_report_from_an_outside_sender_does_not_count(mailstack, account):
    """(3) A multipart/report from anyone, naming a contact with Action: failed / 5.1.1 and
    even quoting the account's headers, delivered into the inbox by the stack's port 25."""
    acc = account()
    contact = f"loyal-{uuid.uuid4().hex[:6]}@example.com"
    _contacts(acc, contact)
    with smtplib.SMTP("127.0.0.1", mailstack.ports["smtp"], timeout=20) as smtp:
        smtp.sendmail("attacker@outside.example", [acc.email], _forged_report(acc, contact))
    mailstack.wait_for_mail(acc.local, lambda m: contact in m.as_string(), 30)
    got = _scan_cli(acc)
    assert got["bounces"]["hard"] == 0 and got["unverified"] == 1 and got["newly_faulty"] == []
    shown = _show(acc, contact)
    assert shown["status"] == "active" and shown["unverified_count"] == 1
    assert "not from a mail system" in shown["unverified_bounces"][0]["why"]


def test_trust_untagged_false_makes_the_untagged_dsn_unverified(mailstack, account):
    """(4) As (2), with inbox.trust_untagged: false."""
    acc = account(trust=False)
    gone = _unknown(mailstack)
    _contacts(acc, gone)
    _submit(mailstack, acc, _message(acc.email, gone, f"<{uuid.uuid4().hex}@x.test>"))
    _wait_dsns(mailstack, acc, gone)
    got = _scan_cli(acc)
    assert got["newly_faulty"] == [] and got["unverified"] == 1
    shown = _show(acc, gone)
    assert shown["status"] == "active"
    assert "trust_untagged is false" in shown["unverified_bounces"][0]["why"]


def test_verify_send_test_tags_its_message(mailstack, account):
    """`verify --send-test` to an unknown user: its DSN counts by the tag alone."""
    acc = account(trust=False)
    gone = _unknown(mailstack)
    _contacts(acc, gone)
    proc = mailform(["verify", str(acc.folder), "--send-test", gone, "--format", "json"],
                    acc.env)
    (sent,) = [r for r in json.loads(proc.stdout)["results"] if r["role"] == "smtp"]
    assert sent["message_id"].startswith("<mf1.") and "Warning" not in proc.stderr
    _wait_dsns(mailstack, acc, gone)
    got = _scan_cli(acc)
    assert got["newly_faulty"] == [gone] and got["unverified"] == 0
