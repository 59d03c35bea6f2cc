"""The scanner's batch of messages in the ledger (``record_messages``): the same contacts,
events and processed ids as ``record_message`` one message after another, in a few
statements; on both backends."""
from __future__ import annotations

from datetime import datetime, timezone

from reconciler.registry import open_registry
from test_registry_support import backend, reg_url  # noqa: F401

WHEN = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")     # kept 90 days
BATCH = [
    ("1", [("a@x.io", "soft", "4.2.2", "mailbox_full", "552 full")], [], "<m1@x>"),
    ("2", [("A@x.io", "soft", "4.2.2"), ("b@x.io", "hard", "5.1.1", "no_such_user")], [],
     "<m2@x>"),
    ("3", [], [("c@x.io", "hard", "5.1.1", None, "untagged"),
               ("stranger@x.io", "hard", "5.1.1", None, "untagged")], None),
    ("4", [("a@x.io", "soft", "4.2.2"), ("blocked@x.io", "blocked", "5.7.1"),
           ("stranger@x.io", "hard", "5.1.1")], [], "<m4@x>"),
    ("5", [("b@x.io", "hard", "5.1.1"), ("c@x.io", "complaint", None)], [], None),
]


def _state(registry) -> dict:
    events = [{k: e[k] for k in ("seq", "kind", "email", "account", "source", "data", "time")}
              for e in registry.events.since()]
    contacts = [{k: v for k, v in c.items() if k != "updated"} for c in registry.contacts()]
    unverified = {e: registry.unverified_bounces(e) for e in ("c@x.io", "stranger@x.io")}
    return {"contacts": contacts, "events": events, "unverified": unverified,
            "processed": registry.processed_uids("news", "imap:INBOX:1")}


def _fresh(url: str):
    registry = open_registry(url)
    registry.upsert_contacts([(e, {}) for e in ("a@x.io", "b@x.io", "c@x.io", "blocked@x.io")])
    return registry


def test_a_batch_records_what_one_message_after_another_records(reg_url):
    one = _fresh(reg_url)
    try:
        singly = [one.record_message("news", "imap:INBOX:1", uid, rcpts, soft_limit=2,
                                     when=WHEN, unverified=doubted, message_id=mid)
                  for uid, rcpts, doubted, mid in BATCH]
        expected = _state(one)
        with one.store.write() as cur:       # the same registry, emptied again
            for table in ("events", "processed_messages", "unverified_bounces", "contacts"):
                cur.execute(f"DELETE FROM {table}")
            cur.execute("DELETE FROM meta WHERE key = 'event_seq'")
        one.upsert_contacts([(e, {}) for e in ("a@x.io", "b@x.io", "c@x.io",
                                                "blocked@x.io")])
        batched = one.record_messages("news", "imap:INBOX:1", BATCH, soft_limit=2, when=WHEN)
        assert batched == singly
        got = _state(one)
    finally:
        one.close()
    assert got == expected
    assert singly[0] == [("active", "active")]
    assert singly[1] == [("active", "faulty"), ("active", "faulty")]
    assert singly[3] == [("faulty", "faulty"), ("active", "active"), (None, None)]
    assert [e["kind"] for e in got["events"]] == [
        "bounce", "bounce", "faulty", "bounce", "faulty", "bounce", "bounce", "bounce",
        "complaint", "faulty"]
    assert [e["seq"] for e in got["events"]] == list(range(1, 11))
    assert got["unverified"]["c@x.io"] and not got["unverified"]["stranger@x.io"]
    assert got["processed"] == {"1", "2", "3", "4", "5"}


def test_a_batch_continues_the_event_numbers(reg_url):
    registry = _fresh(reg_url)
    try:
        registry.events.record("reactivated", "a@x.io")
        registry.record_messages("news", "imap:INBOX:1", BATCH[:2], soft_limit=2)
        registry.events.record("reactivated", "b@x.io")
        seqs = [e["seq"] for e in registry.events.since()]
    finally:
        registry.close()
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 1 + 5 + 1


def test_a_message_already_processed_is_not_counted_again(reg_url):
    registry = _fresh(reg_url)
    try:
        first = registry.record_messages("news", "imap:INBOX:1", BATCH[:2], soft_limit=2,
                                         when=WHEN)
        before = _state(registry)
        again = registry.record_messages("news", "imap:INBOX:1", BATCH[1:3], soft_limit=2,
                                         when=WHEN)
        after = _state(registry)
        single = registry.record_message("news", "imap:INBOX:1", "1", BATCH[0][1], when=WHEN)
    finally:
        registry.close()
    assert first[1] == [("active", "faulty"), ("active", "faulty")]
    assert again == [None, []]             # message 2 left alone; 3 has only doubted ones
    assert single == []
    assert after["contacts"] == before["contacts"]
    assert after["processed"] == {"1", "2", "3"}


def test_two_scans_of_one_inbox_at_once_count_each_bounce_once(reg_url):
    """Two scans of the same messages at the same time, each on its own connection (an
    `inbox scan` beside a fleet's job): each message is recorded by one of them (the
    other's batch waits for the first's claim to commit, then leaves it), so every
    bounce is counted once and the two reports add up to the inbox."""
    import threading
    setup = _fresh(reg_url)
    emails = [f"u{n}@x.io" for n in range(120)]
    setup.upsert_contacts([(e, {}) for e in emails])
    setup.close()
    messages = [(str(n), [(e, "hard", "5.1.1")], [], None) for n, e in enumerate(emails)]
    batches = [messages[start:start + 10] for start in range(0, len(messages), 10)]
    results: dict[int, list] = {0: [], 1: []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def scan(who: int) -> None:
        try:
            with open_registry(reg_url) as registry:
                barrier.wait(10)
                for batch in (batches if who == 0 else batches[::-1]):
                    results[who] += registry.record_messages("news", "imap:INBOX:1", batch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=scan, args=(who,)) for who in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counted = [o for who in (0, 1) for o in results[who] if o is not None]
    assert len(counted) == len(messages)              # each message recorded by one scan
    with open_registry(reg_url) as registry:
        faulty = {c["email"] for c in registry.contacts() if c["status"] == "faulty"}
        bounces = [e for e in registry.events.since() if e["kind"] == "bounce"]
    assert faulty == set(emails) and len(bounces) == len(emails)
