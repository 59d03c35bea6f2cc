"""The scanner's bookkeeping with a fake mailbox on a real SQLite registry: batch size,
nothing counted twice, a server failing midway, blocked bounces on the account."""
from pathlib import Path

import pytest

from reconciler.bounces import scan as scan_mod
from reconciler.registry import open_registry
from reconciler.registry.base import AccountWrite
from reconciler.servers import ServerSettings

BOUNCES = Path(__file__).parent / "bounces"


def dsn(address: str, status: str = "5.1.1", action: str = "failed") -> bytes:
    """A report from a mail system quoting the account's message: trusted untagged."""
    return (f"From: MAILER-DAEMON@example.org\r\nTo: news@example.com\r\nSubject: failure\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
            f"boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--B\r\n"
            f"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n"
            f"\r\nFinal-Recipient: rfc822; {address}\r\nAction: {action}\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; 550 {status} failure\r\n\r\n--B\r\n"
            f"Content-Type: text/rfc822-headers\r\n\r\nFrom: news@example.com\r\n"
            f"To: {address}\r\nSubject: news\r\n\r\n--B--\r\n").encode()


ORDINARY = b"From: a@example.com\r\nTo: news@example.com\r\nSubject: hi\r\n\r\nhello\r\n"


class FakeMailbox:
    key = "imap:INBOX:1"

    def __init__(self, messages: dict, fail_after=None):
        self.messages, self.fail_after, self.fetched, self.deleted = messages, fail_after, 0, []

    def uids(self):
        return list(self.messages)

    def fetch(self, uid):
        if self.fail_after is not None and self.fetched >= self.fail_after:
            raise ConnectionResetError("server went away")
        self.fetched += 1
        return self.messages[uid]

    def delete(self, uids):
        self.deleted += uids
        for uid in uids:
            self.messages.pop(uid)

    def close(self):
        pass


SETTINGS = ServerSettings("imap", "imap.example.com", 993, "ssl", username="u",
                          secret="s3cret-pw")


@pytest.fixture
def registry(tmp_path):
    reg = open_registry(f"sqlite:///{tmp_path}/reg.db")
    with reg.lock("test"), reg.transaction() as tx:
        tx.put_account(AccountWrite("news", "smtp", {"email": "news@example.com"}, {}, {}))
        tx.add_history({"actor": "test", "counts": {}, "changes": []})
    reg.upsert_contacts([(f"c{i}@example.com", {}) for i in range(6)])
    yield reg
    reg.close()


def scan(registry, box, monkeypatch, batch=100, delete=False, policy=None):
    monkeypatch.setattr(scan_mod, "open_mailbox", lambda settings: box)
    return scan_mod.scan_account(registry, "news", SETTINGS, batch, delete, policy)


def test_batch_and_nothing_twice(registry, monkeypatch):
    box = FakeMailbox({"1": dsn("c0@example.com"), "2": ORDINARY, "3": dsn("c1@example.com"),
                       "4": dsn("stranger@example.com")})
    first = scan(registry, box, monkeypatch, batch=2)
    assert (first.scanned, first.remaining, first.newly_faulty) == (2, 2, ["c0@example.com"])
    second = scan(registry, box, monkeypatch, batch=2)
    assert second.newly_faulty == ["c1@example.com"] and second.unknown == ["stranger@example.com"]
    third = scan(registry, box, monkeypatch, batch=2)
    assert third.scanned == 0
    assert registry.contact("stranger@example.com") is None


def test_failure_midway_keeps_what_was_processed(registry, monkeypatch):
    messages = {str(i): dsn(f"c{i}@example.com") for i in range(1, 5)}
    broken = FakeMailbox(dict(messages), fail_after=2)
    report = scan(registry, broken, monkeypatch)
    assert not report.ok and "connection failed midway" in report.error
    assert report.newly_faulty == ["c1@example.com", "c2@example.com"]
    assert "s3cret-pw" not in report.error
    status = registry.account("news").status["last_scan"]
    assert status["result"] == "error"
    rest = scan(registry, FakeMailbox(dict(messages)), monkeypatch)
    assert rest.ok and rest.newly_faulty == ["c3@example.com", "c4@example.com"]


def test_soft_limit_blocked_and_delete(registry, monkeypatch):
    box = FakeMailbox({"1": dsn("c5@example.com", "4.2.2"), "2": dsn("c5@example.com", "5.2.2"),
                       "3": dsn("c4@example.com", "5.7.1"), "4": ORDINARY,
                       "5": dsn("c3@example.com", "4.4.7", action="delayed")})
    report = scan(registry, box, monkeypatch, delete=True,
                  policy={"soft_bounce_limit": 2, "soft_bounce_window_days": 30})
    assert report.bounces == {"hard": 0, "soft": 2, "blocked": 1, "complaint": 0}
    assert report.newly_faulty == ["c5@example.com"]
    assert registry.contact("c4@example.com")["status"] == "active"   # blocked: not the contact
    assert sorted(box.deleted) == ["1", "2", "3"] and report.other == 2
    totals = registry.account("news").status["bounce_totals"]
    assert totals["blocked"] == 1


def test_corpus_messages_through_the_scanner(registry, monkeypatch):
    files = sorted(BOUNCES.glob("*.eml"))[:40]
    box = FakeMailbox({str(i): f.read_bytes() for i, f in enumerate(files, start=1)})
    report = scan(registry, box, monkeypatch)
    assert report.ok and report.scanned == len(files)
