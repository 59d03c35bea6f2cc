"""The scanner's bookkeeping with a fake mailbox on a real SQLite registry: batch size,
nothing counted twice, a server failing midway, blocked bounces on the account, the
last-seen mark, UIDVALIDITY changes and pruning of what the server no longer has."""
from pathlib import Path

import pytest

from reconciler.bounces import scan as scan_mod
from reconciler.bounces.mailbox import FETCH_BATCH
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
    """An IMAP-like mailbox: numeric UIDs, a UIDVALIDITY, batch fetches (counted)."""

    place, ordered = "imap:INBOX", True

    def __init__(self, messages: dict, fail_after=None, validity="1"):
        self.messages, self.fail_after, self.validity = messages, fail_after, validity
        self.fetched, self.deleted, self.listed_above, self.batches = 0, [], [], []

    @property
    def key(self):
        return f"{self.place}:{self.validity}"

    def count(self):
        return len(self.messages)

    def uids(self, above=0):
        self.listed_above.append(above)
        return sorted((u for u in self.messages if int(u) > above), key=int)

    def fetch_many(self, uids):
        self.batches.append(list(uids))
        out = {}
        for uid in uids:
            if self.fail_after is not None and self.fetched >= self.fail_after:
                raise ConnectionResetError("server went away")
            self.fetched += 1
            if uid in self.messages:
                out[uid] = self.messages[uid]
        return out

    def delete(self, uids):
        self.deleted += uids
        for uid in uids:
            self.messages.pop(uid)

    def close(self):
        pass


class OldStyleBox:
    """The older protocol (uids/fetch one by one), still accepted."""

    key = "pop3"

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
    assert box.listed_above == [0, 2, 4]          # each run lists only what is newer


def test_failure_midway_keeps_whole_batches(registry, monkeypatch):
    """A server failing inside a batch: the batches before are kept, the failed one is not
    counted at all; the next scan counts each message exactly once."""
    messages = {str(i): dsn(f"c{i % 6}@example.com", "4.2.2") for i in range(1, 2 * FETCH_BATCH)}
    broken = FakeMailbox(dict(messages), fail_after=FETCH_BATCH + 3)
    report = scan(registry, broken, monkeypatch, batch=10000)
    assert not report.ok and "connection failed midway" in report.error
    assert report.scanned == FETCH_BATCH and "s3cret-pw" not in report.error
    assert registry.account("news").status["last_scan"]["result"] == "error"
    rest = scan(registry, FakeMailbox(dict(messages)), monkeypatch, batch=10000)
    assert rest.ok and rest.scanned == len(messages) - FETCH_BATCH
    totals = registry.account("news").status["bounce_totals"]
    assert totals["soft"] == len(messages)


def test_crash_inside_the_batch_transaction_counts_nothing(registry, monkeypatch):
    box = FakeMailbox({"1": dsn("c0@example.com", "4.2.2"), "2": dsn("c1@example.com", "4.2.2")})
    real = registry.record_messages
    calls = []

    def crash_after_writing(*args, **kwargs):
        """The batch's ledger writes made, then the process killed before the commit."""
        calls.append([m[0] for m in args[2]])
        real(*args, **kwargs)
        raise KeyboardInterrupt("killed")
    monkeypatch.setattr(registry, "record_messages", crash_after_writing)
    with pytest.raises(KeyboardInterrupt):
        scan(registry, box, monkeypatch)
    assert calls == [["1", "2"]]
    assert registry.processed_uids("news", box.key) == set()
    assert registry.scan_state.mark("news", "imap:INBOX") == ("1", 0)
    assert [len(registry.contact(f"c{i}@example.com")["soft_bounces"]) for i in (0, 1)] == [0, 0]
    assert registry.events.since() == []
    monkeypatch.setattr(registry, "record_messages", real)
    again = scan(registry, box, monkeypatch)
    assert again.scanned == 2 and again.bounces["soft"] == 2
    assert [len(registry.contact(f"c{i}@example.com")["soft_bounces"]) for i in (0, 1)] == [1, 1]


def test_a_previous_crash_leaves_processed_uids_above_the_mark(registry, monkeypatch):
    """Messages an older run recorded one by one (above the mark) are not counted again."""
    box = FakeMailbox({"1": dsn("c0@example.com"), "2": dsn("c1@example.com")})
    registry.record_message("news", box.key, "2", [("c1@example.com", "hard", "5.1.1")])
    report = scan(registry, box, monkeypatch)
    assert report.scanned == 1 and report.newly_faulty == ["c0@example.com"]
    assert registry.scan_state.mark("news", "imap:INBOX") == ("1", 2)
    registry.mark_processed("news", box.key, ["3", "4"])   # recorded, mark not moved
    box.messages.update({"3": ORDINARY, "4": ORDINARY})
    assert scan(registry, box, monkeypatch).scanned == 0
    assert registry.scan_state.mark("news", "imap:INBOX") == ("1", 4)


def test_uidvalidity_change_forgets_the_old_id_space(registry, monkeypatch):
    box = FakeMailbox({"1": ORDINARY, "2": ORDINARY})
    assert scan(registry, box, monkeypatch).scanned == 2
    assert registry.processed_uids("news", "imap:INBOX:1") == {"1", "2"}
    renumbered = FakeMailbox({"1": ORDINARY, "2": ORDINARY, "3": ORDINARY}, validity="7")
    report = scan(registry, renumbered, monkeypatch)
    assert report.scanned == 3 and renumbered.listed_above == [0]
    assert registry.processed_uids("news", "imap:INBOX:1") == set()
    assert registry.scan_state.mark("news", "imap:INBOX") == ("7", 3)


def test_a_registry_from_before_marks_keeps_its_processed_uids(registry, monkeypatch):
    """Upgrading: processed ids recorded by the older scanner (no mark yet) still count."""
    registry.mark_processed("news", "imap:INBOX:1", ["1", "2"])
    box = FakeMailbox({"1": ORDINARY, "2": ORDINARY, "3": ORDINARY})
    assert scan(registry, box, monkeypatch).scanned == 1


def test_another_server_with_the_same_uidvalidity_starts_afresh(registry, monkeypatch):
    box = FakeMailbox({"1": ORDINARY, "2": ORDINARY})
    box.server = "old.example.com:993/u"
    scan(registry, box, monkeypatch)
    moved = FakeMailbox({"1": dsn("c0@example.com"), "2": ORDINARY})
    moved.server = "new.example.com:993/u"
    report = scan(registry, moved, monkeypatch)
    assert report.scanned == 2 and report.newly_faulty == ["c0@example.com"]
    assert registry.scan_state.mark("news", "imap:INBOX") == ("1@new.example.com:993/u", 2)


def test_uids_the_server_no_longer_has_are_forgotten(registry, monkeypatch):
    box = FakeMailbox({str(i): ORDINARY for i in range(1, 6)})
    scan(registry, box, monkeypatch)
    for uid in ("2", "4"):
        box.messages.pop(uid)
    box.messages["6"] = ORDINARY
    assert scan(registry, box, monkeypatch).scanned == 1
    assert registry.processed_uids("news", box.key) == {"1", "3", "5", "6"}
    assert box.listed_above == [0, 5, 0]      # one sweep, only because two were gone
    scan(registry, box, monkeypatch)
    assert box.listed_above[-1] == 6          # nothing gone since: no sweep


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


def test_batches_are_fetched_together(registry, monkeypatch):
    box = FakeMailbox({str(i): ORDINARY for i in range(1, FETCH_BATCH + 11)})
    report = scan(registry, box, monkeypatch, batch=FETCH_BATCH + 5)
    assert report.scanned == FETCH_BATCH + 5 and report.remaining == 5
    assert [len(b) for b in box.batches] == [FETCH_BATCH, 5]


def test_old_style_mailbox_still_scans(registry, monkeypatch):
    box = OldStyleBox({"a": dsn("c0@example.com"), "b": ORDINARY})
    assert scan(registry, box, monkeypatch).newly_faulty == ["c0@example.com"]
    assert scan(registry, box, monkeypatch).scanned == 0
    box.messages.pop("a")
    scan(registry, box, monkeypatch)
    assert registry.processed_uids("news", "pop3") == {"b"}


def test_corpus_messages_through_the_scanner(registry, monkeypatch):
    files = sorted(BOUNCES.glob("*.eml"))[:40]
    box = FakeMailbox({str(i): f.read_bytes() for i, f in enumerate(files, start=1)})
    report = scan(registry, box, monkeypatch)
    assert report.ok and report.scanned == len(files)


def test_batches_are_bounded_in_bytes_too(registry, monkeypatch):
    """Large messages: fewer per FETCH, so that one batch fits in one step's time."""
    box = FakeMailbox({str(i): ORDINARY for i in range(1, 41)})
    box.sizes = {str(i): 1024 * 1024 for i in range(1, 41)}   # 1 MiB each (as listed)
    assert scan(registry, box, monkeypatch).scanned == 40
    assert [len(b) for b in box.batches] == [16, 16, 8]     # 256 KiB of each is read
