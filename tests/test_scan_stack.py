"""Scanning at scale on the real stack (Postfix DSNs in Dovecot): a second run fetches only
what is new, a UIDVALIDITY change resets the memory, POP3 diffs UIDLs (pipelined), and
`inbox scan --concurrency 4` leaves the same ledger as `--concurrency 1` (SQLite and
PostgreSQL)."""
from __future__ import annotations

import base64
import imaplib
import json
import os
import uuid

import psycopg
import pytest

from fleetkit import drop_database, new_database
from reconciler.bounces import pop3_fetch
from reconciler.bounces.scan import scan_stored
from reconciler.registry import open_registry
from test_inbox_scan import (account, contacts, flags, imap_session, is_dsn,  # noqa: F401
                             mailform, send)

pytestmark = pytest.mark.mailstack


class Counting:
    """Wraps a mailbox class's ``uids`` and ``fetch_many``: what each run listed/fetched."""

    def __init__(self, monkeypatch, cls):
        self.listed, self.fetched, self.pipelining = [], [], []
        real_uids, real_fetch = cls.uids, cls.fetch_many

        def uids(box, above=0):
            self.listed.append(above)
            return real_uids(box, above)

        def fetch_many(box, wanted):
            self.fetched.extend(wanted)
            self.pipelining.append(getattr(box, "pipelining", None))
            return real_fetch(box, wanted)
        monkeypatch.setattr(cls, "uids", uids)
        monkeypatch.setattr(cls, "fetch_many", fetch_many)


def scan_direct(acc, monkeypatch, stack):
    """scan_stored on the account's registry, in this process (so wrappers see it)."""
    monkeypatch.setenv("MAILFORM_CA_FILE", stack.ca_file)
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    with open_registry(acc.env["MAILFORM_REGISTRY"]) as registry:
        return scan_stored(registry, registry.account(acc.name), 20)


def bounce(stack, acc, to, subject="campaign"):
    send(stack, acc.local, to, subject)
    stack.wait_for_mail(acc.local, lambda m: is_dsn(m) and to in m.as_string())


def test_second_run_fetches_only_new_uids(mailstack, account, monkeypatch):
    acc = account("imap")
    first_gone, later_gone = (f"gone{i}-{uuid.uuid4().hex[:6]}@{mailstack.domain}"
                              for i in (1, 2))
    contacts(acc, first_gone, later_gone)
    bounce(mailstack, acc, first_gone)
    sent = []                                  # the UID commands sent to Dovecot
    real = imaplib.IMAP4.uid
    monkeypatch.setattr(imaplib.IMAP4, "uid", lambda self, command, *args: (
        sent.append(f"{command} {args[0]} {args[1]}"), real(self, command, *args))[1])
    first = scan_direct(acc, monkeypatch, mailstack)
    assert first.ok and first.newly_faulty == [first_gone]
    assert sent == ["FETCH 1:* (UID RFC822.SIZE)", "FETCH 1 (BODY.PEEK[]<0.262144>)"]
    bounce(mailstack, acc, later_gone)
    second = scan_direct(acc, monkeypatch, mailstack)
    assert second.newly_faulty == [later_gone] and second.bounces["hard"] == 1
    assert sent[2:] == ["FETCH 2:* (UID RFC822.SIZE)", "FETCH 2 (BODY.PEEK[]<0.262144>)"]
    third = scan_direct(acc, monkeypatch, mailstack)
    assert third.scanned == 0 and len(sent) == 4     # UIDNEXT: nothing newer, nothing sent


def test_uidvalidity_change_resets_the_memory(mailstack, account, monkeypatch):
    acc = account("imap", folder="Bounces")
    gone = f"gone-{uuid.uuid4().hex[:6]}@{mailstack.domain}"
    contacts(acc, gone)
    bounce(mailstack, acc, gone)
    (dsn,) = [m.as_bytes() for m in mailstack.messages(acc.local) if is_dsn(m)]
    with imap_session(mailstack, acc.local) as imap:
        for _ in range(2):
            imap.append("Bounces", None, None, dsn)
    first = scan_direct(acc, monkeypatch, mailstack)
    assert first.scanned == 2 and first.newly_faulty == [gone]
    assert scan_direct(acc, monkeypatch, mailstack).scanned == 0
    with open_registry(acc.env["MAILFORM_REGISTRY"]) as registry:
        old = registry.scan_state.mark(acc.name, "imap:Bounces")[0].partition("@")[0]
        assert registry.processed_uids(acc.name, f"imap:Bounces:{old}") == {"1", "2"}
    with imap_session(mailstack, acc.local) as imap:       # a new folder: a new UIDVALIDITY
        imap.delete("Bounces")
        imap.create("Bounces")
        imap.append("Bounces", None, None, dsn)
    after = scan_direct(acc, monkeypatch, mailstack)
    assert after.ok and after.scanned == 1
    with open_registry(acc.env["MAILFORM_REGISTRY"]) as registry:
        new, last = registry.scan_state.mark(acc.name, "imap:Bounces")
        new = new.partition("@")[0]
        assert new != old and last == 1
        assert registry.processed_uids(acc.name, f"imap:Bounces:{old}") == set()
        assert registry.processed_uids(acc.name, f"imap:Bounces:{new}") == {"1"}


def test_pop3_diffs_uidls_pipelined_and_forgets_deleted(mailstack, account, monkeypatch):
    acc = account("pop3")
    gone = [f"gone{i}-{uuid.uuid4().hex[:6]}@{mailstack.domain}" for i in range(3)]
    contacts(acc, *gone)
    for address in gone[:2]:
        bounce(mailstack, acc, address)
    counting = Counting(monkeypatch, pop3_fetch.Pop3Mailbox)
    first = scan_direct(acc, monkeypatch, mailstack)
    assert first.ok and sorted(first.newly_faulty) == sorted(gone[:2])
    assert len(counting.fetched) == 2 and counting.pipelining == [True]   # Dovecot: CAPA
    bounce(mailstack, acc, gone[2])
    second = scan_direct(acc, monkeypatch, mailstack)
    assert second.newly_faulty == [gone[2]] and len(counting.fetched) == 3
    with imap_session(mailstack, acc.local) as imap:         # someone deletes one message
        imap.select("INBOX")
        imap.store("1", "+FLAGS", r"(\Deleted)")
        imap.expunge()
    assert scan_direct(acc, monkeypatch, mailstack).scanned == 0
    with open_registry(acc.env["MAILFORM_REGISTRY"]) as registry:
        assert len(registry.processed_uids(acc.name, "pop3")) == 2     # its UIDL forgotten


# --------------------------------------------------------------------------- concurrency

ACCOUNT = """\
---
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: {name}}}
spec:
  type: smtp
  email: {email}
  display_name: Many {name}
  shared: true
  smtp: {{host: 127.0.0.1, port: {submission}, security: starttls,
         password: {{env: {variable}}}}}
  inbox: {{protocol: imap, host: 127.0.0.1, port: {imaps}, security: ssl, batch_size: 1000}}
"""
POLICY = """\
apiVersion: mailform/v1
kind: BouncePolicy
metadata: {name: default}
spec: {soft_bounce_limit: 3, soft_bounce_window_days: 30}
"""


@pytest.fixture
def postgres_url():
    try:
        url = new_database("mf_scan")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    yield url
    drop_database(url)


def many_accounts(stack, tmp_path, count):
    """``count`` accounts, each with real DSNs in its inbox: two hard bounces of its own
    and one soft (mailbox full) for the contact all of them share."""
    docs, env, names = [POLICY], {}, []
    for i in range(count):
        local = f"many{i}{uuid.uuid4().hex[:6]}"
        stack.add_user(local, f"pw-{local}")
        env[f"MANY_PW_{i}"] = f"pw-{local}"
        docs.append(ACCOUNT.format(name=local, email=stack.address(local),
                                   variable=f"MANY_PW_{i}", imaps=stack.ports["imaps"],
                                   submission=stack.ports["submission"]))
        names.append(local)
    (tmp_path / "many").mkdir()
    (tmp_path / "many" / "accounts.yaml").write_text("".join(docs))
    gone = []
    for local in names:
        acc = type("A", (), {"local": local})
        for n in range(2):
            gone.append(f"gone{n}-{local}@{stack.domain}")
            bounce(stack, acc, gone[-1])
        send(stack, local, stack.address("full"), "to the full mailbox")
        stack.wait_for_mail(local, lambda m: is_dsn(m) and "full@" in m.as_string())
    return env, gone


def ledger_after_scan(tmp_path, env, url, gone, concurrency):
    env = dict(os.environ, **env, MAILFORM_CA_FILE=env["CA"], MAILFORM_REGISTRY=url,
               NO_COLOR="1", MAILFORM_MASTER_KEY=env["KEY"])
    mailform(["apply", str(tmp_path / "many"), "--auto-approve"], env)
    csv = tmp_path / "contacts.csv"
    csv.write_text("email\n" + "".join(f"{a}\n" for a in [*gone, env["FULL"]]))
    mailform(["contacts", "import", str(csv)], env)
    proc = mailform(["inbox", "scan", "--all", "--concurrency", str(concurrency),
                     "--format", "json"], env)
    reports = json.loads(proc.stdout)
    with open_registry(url) as registry:
        contacts_now = {c["email"]: (c["status"], len(c["soft_bounces"]))
                        for c in registry.contacts()}
    return reports, contacts_now


def test_concurrency_gives_the_same_ledger(mailstack, tmp_path, postgres_url, monkeypatch):
    env, gone = many_accounts(mailstack, tmp_path, 5)
    env.update(CA=mailstack.ca_file, FULL=mailstack.address("full"),
               KEY=base64.urlsafe_b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("MAILFORM_MASTER_KEY", env["KEY"])
    runs = {}
    for label, url, concurrency in (("sqlite-1", f"sqlite:///{tmp_path}/one.db", 1),
                                    ("sqlite-4", f"sqlite:///{tmp_path}/four.db", 4),
                                    ("postgres-4", postgres_url, 4)):
        runs[label] = ledger_after_scan(tmp_path, env, url, gone, concurrency)
    (one_reports, one_ledger) = runs["sqlite-1"]
    assert [r["account"] for r in one_reports] == sorted(r["account"] for r in one_reports)
    assert all(r["result"] == "ok" and r["scanned"] == 3 for r in one_reports)
    assert one_ledger[mailstack.address("full")][0] == "faulty"     # 5 soft, limit 3
    assert all(one_ledger[a][0] == "faulty" for a in gone)
    for label in ("sqlite-4", "postgres-4"):
        reports, ledger = runs[label]
        assert ledger == one_ledger, label
        assert [_stable(r) for r in reports] == [_stable(r) for r in one_reports], label


def _stable(report):
    """A report without what may differ between equal runs (time, who saw a limit hit)."""
    return {k: v for k, v in report.items() if k not in ("seconds", "newly_faulty")} | {
        "newly_faulty": sorted(a for a in report["newly_faulty"] if "full@" not in a)}


@pytest.mark.parametrize("protocol,port", [("imap", "imap"), ("pop3", "pop3")])
def test_starttls_connections_are_watched_too(mailstack, account, monkeypatch, protocol, port):
    from dataclasses import replace

    from reconciler.bounces.scan import scan_account
    from reconciler.servers import servers_of
    acc = account(protocol)
    gone = f"gone-{uuid.uuid4().hex[:6]}@{mailstack.domain}"
    bounce(mailstack, acc, gone)
    monkeypatch.setenv("MAILFORM_CA_FILE", mailstack.ca_file)
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    with open_registry(acc.env["MAILFORM_REGISTRY"]) as registry:
        stored = registry.account(acc.name)
        inbox = servers_of(stored.spec, registry.secrets(acc.name), timeout=10)["inbox"]
        inbox = replace(inbox, security="starttls", port=mailstack.ports[port])
        report = scan_account(registry, acc.name, inbox, 100, False)
    assert report.ok and report.unknown == [gone], report.error


def test_scan_records_a_contacts_reply_as_one_event_and_leaves_it_unread(mailstack, account):
    """Issue 14 through the scanner: `inbox scan` turns a contact's human reply into one
    `replied` event (`mailform events`), twice scanned still one, and the reply stays
    unread; a hard bounce beside it keeps its diagnostic and message-id for review."""
    acc = account("imap")
    alice = mailstack.address("alice")
    gone = f"nobody-{uuid.uuid4().hex[:6]}@{mailstack.domain}"
    contacts(acc, alice, gone)
    send(mailstack, "alice", mailstack.address(acc.local), "Re: our offer",
         headers={"In-Reply-To": "<offer-1@example.com>"}, body="Interested, call me.\n")
    send(mailstack, acc.local, gone, "campaign")
    mailstack.wait_for_mail(acc.local, lambda m: "alice" in str(m["From"]))
    mailstack.wait_for_mail(acc.local, lambda m: is_dsn(m) and gone in m.as_string())
    for _ in range(2):
        mailform(["inbox", "scan", acc.name], acc.env)
    out = mailform(["events", "--format", "json"], acc.env).stdout
    events = [json.loads(line) for line in out.splitlines() if line.strip()]   # JSON Lines
    replied = [e for e in events if e["kind"] == "replied"]
    assert len(replied) == 1 and replied[0]["email"] == alice
    assert replied[0]["data"]["subject"] == "Re: our offer"
    assert all("\\Seen" not in f for f in flags(mailstack, acc.local))
    shown = json.loads(mailform(["contacts", "show", gone], acc.env).stdout)
    last = shown["last_bounce"]
    assert shown["status"] == "faulty" and last["message_id"] and last["diagnostic"]
