"""The contact ledger's lifecycle and the event log, on both registry backends (issue 14)."""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

from test_registry_support import backend, reg_url, registry  # noqa: F401

from reconciler.policy import Bounce

NOW = datetime.now(timezone.utc)


def _hard(registry, email, uid=1, account="news", when=None):
    return registry.ledger.record_message(
        account, "INBOX", uid, [(email, "hard", "5.1.1", "user-unknown", "550 5.1.1 no user")],
        when=when, message_id=f"<m{uid}@example.com>")


def test_a_bounce_is_an_event_and_the_last_bounce_is_kept_for_review(registry):
    registry.upsert_contacts([("ann@example.com", {})])
    serial = registry.meta().serial
    assert _hard(registry, "Ann@Example.com") == [("active", "faulty")]
    kinds = [(e["kind"], e["email"], e["source"]) for e in registry.events.since()]
    assert kinds == [("bounce", "ann@example.com", "inbox:news/INBOX/1"),
                     ("faulty", "ann@example.com", "inbox:news/INBOX/1")]
    last = registry.contact("ann@example.com")["last_bounce"]
    assert last["diagnostic"] == "550 5.1.1 no user" and last["message_id"] == "<m1@example.com>"
    assert last["source"] == "inbox:news/INBOX/1" and last["reason"] == "user-unknown"
    assert registry.meta().serial == serial      # contacts and events do not bump it


def test_not_a_contact_gives_no_event(registry):
    assert _hard(registry, "nobody@example.com") == [(None, None)]
    assert registry.events.since() == []


def test_reactivated_contact_counts_again_and_is_an_event(registry):
    registry.upsert_contacts([("bo@example.com", {})])
    _hard(registry, "bo@example.com", uid=1)
    done = registry.ledger.reactivate(["bo@example.com", "x@example.com"], "typo fixed", "ops")
    assert done == {"bo@example.com": "reactivated", "x@example.com": "unknown"}
    contact = registry.contact("bo@example.com")
    assert contact["status"] == "active" and contact["faulty_since"] is None
    event = registry.events.since(kinds=["reactivated"])[0]
    assert event["data"]["reason"] == "typo fixed" and event["data"]["actor"] == "ops"
    assert registry.ledger.reactivate(["bo@example.com"], "again", "ops") == {
        "bo@example.com": "already active"}
    assert _hard(registry, "bo@example.com", uid=2) == [("active", "faulty")]
    assert [e["kind"] for e in registry.events.since()].count("faulty") == 2


def test_reactivation_forgets_soft_bounces(registry):
    registry.upsert_contacts([("cy@example.com", {})])
    for uid in range(3):
        registry.ledger.record_message("news", "INBOX", uid, [("cy@example.com", "soft",
                                                               "4.2.2", "mailbox-full")])
    assert registry.contact("cy@example.com")["status"] == "faulty"
    registry.ledger.reactivate(["cy@example.com"], "mailbox emptied", "ops")
    registry.ledger.record_message("news", "INBOX", 9, [("cy@example.com", "soft", "4.2.2")])
    assert registry.contact("cy@example.com")["status"] == "active"


def test_listing_by_status_reason_and_date(registry):
    registry.upsert_contacts([(f"{n}@example.com", {}) for n in ("a", "b", "c")])
    _hard(registry, "a@example.com", uid=1, when=NOW - timedelta(days=10))
    registry.ledger.record_message("news", "INBOX", 2, [("b@example.com", "complaint", None,
                                                         "complaint")])
    listing = registry.ledger.listing
    assert [r["email"] for r in listing("faulty")] == ["a@example.com", "b@example.com"]
    assert [r["email"] for r in listing("faulty", "user-unknown")] == ["a@example.com"]
    assert [r["email"] for r in listing("faulty", since=NOW - timedelta(days=1))] == [
        "b@example.com"]
    assert [r["email"] for r in listing("active")] == ["c@example.com"]


def test_purge_drops_old_soft_bounce_records_only(registry):
    registry.upsert_contacts([("d@example.com", {})])
    for uid, age in ((1, 40), (2, 1)):
        registry.ledger.record_message("news", "INBOX", uid, [("d@example.com", "soft",
                                                               "4.2.2")],
                                       when=NOW - timedelta(days=age), window_days=90)
    assert registry.ledger.purge_soft(30) == 1
    assert len(registry.contact("d@example.com")["soft_bounces"]) == 1
    assert registry.ledger.purge_soft(30) == 0


def _log_delivery(registry, recipients):
    registry.delivery_log.record({
        "id": uuid.uuid4().hex, "account": "news", "message_id": "<x@y>",
        "mail_from": "news@example.com", "size": 10,
        "recipients": [{"address": r, "code": 250} for r in recipients]})


def test_erase_removes_a_person_everywhere_and_keeps_only_a_digest(registry):
    registry.upsert_contacts([("eve@example.com", {"n": "Eve"}), ("fay@example.com", {})])
    _hard(registry, "eve@example.com")
    _hard(registry, "fay@example.com", uid=2)
    registry.ledger.record_message("news", "INBOX", 3, [], unverified=[
        ("eve@example.com", "hard", "5.1.1", "user-unknown", "untagged")])
    _log_delivery(registry, ["eve@example.com"])
    _log_delivery(registry, ["eve@example.com", "fay@example.com"])
    last = registry.events.last_seq()
    counts = registry.ledger.erase(["EVE@example.com"], registry.events.erase)["eve@example.com"]
    assert counts == {"contacts": 1, "unverified_bounces": 1, "events": 2,
                      "delivery_log": 2, "sent_messages": 0}
    assert registry.contact("eve@example.com") is None
    assert registry.unverified_bounces("eve@example.com") == []
    logged = [r["address"] for e in registry.delivery_log.entries() for r in e["recipients"]]
    assert logged == ["fay@example.com"]
    erased = registry.events.since(kinds=["erased"])[0]
    assert erased["email"] is None and erased["seq"] > last
    digest = hashlib.sha256(b"eve@example.com").hexdigest()
    assert erased["data"]["email_sha256"] == f"sha256:{digest}"
    assert "eve@example.com" not in str(registry.events.since())


def test_provider_bounce_is_idempotent_by_event_id(registry):
    registry.upsert_contacts([("gus@example.com", {})])
    bounce = Bounce("hard", NOW, "5.1.1", "ses")
    record = registry.ledger.record_provider_bounce
    more = {"reason": "user-unknown", "diagnostic": "smtp; 550", "message_id": "m-1"}
    assert record("ses", "fb-1:gus", "gus@example.com", bounce, 3, 30, more) == (
        "active", "faulty")
    assert record("ses", "fb-1:gus", "gus@example.com", bounce, 3, 30, more) is None
    assert [e["source"] for e in registry.events.since()] == ["ses", "ses"]
    assert registry.contact("gus@example.com")["last_bounce"]["source"] == "ses"


def test_event_cursor_and_prune(registry):
    registry.upsert_contacts([("h@example.com", {})])
    registry.events.record("replied", "h@example.com", "news", when=NOW - timedelta(days=400))
    registry.events.record("replied", "h@example.com", "news")
    first, second = registry.events.since()
    assert second["seq"] == first["seq"] + 1 and first["id"] != second["id"]
    assert [e["seq"] for e in registry.events.since(first["seq"])] == [second["seq"]]
    assert registry.events.prune(NOW - timedelta(days=365)) == 1
    assert [e["seq"] for e in registry.events.since()] == [second["seq"]]


def test_provider_events_count_against_the_sending_account(registry):
    from test_registry_support import account, apply
    from reconciler.events.ingest import ingest, parse
    from test_webhooks_providers import ses_bounce
    apply(registry, account("news", email="news@example.com"))
    registry.upsert_contacts([("ann@example.com", {})])
    report = ingest(registry, parse("ses", ses_bounce("ann@example.com")))
    assert report.newly_faulty == ["ann@example.com"]
    assert registry.contact("ann@example.com")["last_bounce"]["account"] == "news"
    assert [e["account"] for e in registry.events.since()] == ["news", "news"]


def test_concurrent_bounces_of_one_contact_are_all_counted(reg_url):  # noqa: F811
    """Two scanners (own connections) count a soft bounce of the same contact at once:
    the second waits for the first's batch to commit and counts on top of it, instead
    of writing over it (a lost update once the event counter no longer serialised them)."""
    import threading

    from reconciler.registry import open_registry

    first, second = open_registry(reg_url), open_registry(reg_url)
    try:
        first.upsert_contacts([("shared@example.com", {})])
        release, done = threading.Event(), threading.Event()

        def other() -> None:
            second.record_message("b", "INBOX", 1, [("shared@example.com", "soft", "4.2.2")])
            done.set()

        with first.scan_state.batch():
            first.record_message("a", "INBOX", 1, [("shared@example.com", "soft", "4.2.2")])
            thread = threading.Thread(target=other)
            thread.start()
            assert not done.wait(0.5)            # it waits for this batch's commit
        thread.join(30)
        assert done.is_set()
        contact = first.contact("shared@example.com")
        assert len(contact["soft_bounces"]) == 2
        kinds = [e["kind"] for e in first.events.since()]
        assert kinds == ["bounce", "bounce"]
        assert [e["seq"] for e in first.events.since()] == [1, 2]
    finally:
        first.close()
        second.close()
