"""`contacts reactivate|list --reason --since|purge|erase` on a real registry (issue 14)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from clihelpers import mailform
from reconciler.registry import open_registry


@pytest.fixture
def env(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "MAILFORM_REGISTRY": f"sqlite:///{tmp_path}/reg.db",
           "NO_COLOR": "1", "MAILFORM_ACTOR": "ops-ann"}
    now = datetime.now(timezone.utc)
    with open_registry(env["MAILFORM_REGISTRY"]) as registry:
        registry.upsert_contacts([(f"{n}@example.com", {}) for n in ("a", "b", "c")])
        registry.ledger.record_message("news", "INBOX", 1, [
            ("a@example.com", "hard", "5.1.1", "user-unknown", "550 5.1.1 unknown")],
            when=now - timedelta(days=20), message_id="<m1@example.com>")
        registry.ledger.record_message("news", "INBOX", 2, [
            ("b@example.com", "hard", "5.1.2", "host-unknown")])
        registry.ledger.record_message("news", "INBOX", 3, [
            ("c@example.com", "soft", "4.2.2", "mailbox-full")], when=now - timedelta(days=40),
            window_days=90)
    return env


def run(env, tmp_path, *args):
    return mailform(*args, env=env, cwd=tmp_path)


def test_list_by_reason_and_since(env, tmp_path):
    out = run(env, tmp_path, "contacts", "list", "--status", "faulty", "--reason",
              "user-unknown", "--format", "json")
    (row,) = json.loads(out.out)
    assert row["email"] == "a@example.com"
    assert row["last_bounce"]["diagnostic"] == "550 5.1.1 unknown"
    assert row["last_bounce"]["message_id"] == "<m1@example.com>"
    assert row["last_bounce"]["source"] == "inbox:news/INBOX/1"
    since = (datetime.now(timezone.utc) - timedelta(days=1)).date().isoformat()
    out = run(env, tmp_path, "contacts", "list", "--status", "faulty", "--since", since)
    assert "b@example.com" in out.out and "a@example.com" not in out.out
    assert "host-unknown" in out.out
    bad = run(env, tmp_path, "contacts", "list", "--since", "last week")
    assert bad.code == 64 and "not a date" in bad.err


def test_reactivate_is_an_event_never_silent(env, tmp_path):
    missing = run(env, tmp_path, "contacts", "reactivate", "a@example.com")
    assert missing.code == 64 and "--reason" in missing.err
    done = run(env, tmp_path, "contacts", "reactivate", "a@example.com", "zz@example.com",
               "--reason", "address confirmed by phone")
    assert done.code == 1
    assert "a@example.com: reactivated" in done.out and "zz@example.com: unknown" in done.out
    events = run(env, tmp_path, "events", "--kind", "reactivated", "--format", "json")
    event = json.loads(events.out)
    assert event["data"]["reason"] == "address confirmed by phone"
    assert event["data"]["actor"] == "ops-ann" and event["data"]["last_bounce"]["kind"] == "hard"
    shown = json.loads(run(env, tmp_path, "contacts", "show", "a@example.com").out)
    assert shown["status"] == "active"


def test_purge_and_erase(env, tmp_path):
    assert "1 soft-bounce record(s) purged" in run(env, tmp_path, "contacts", "purge",
                                                   "--older-than", "30").out
    erased = run(env, tmp_path, "contacts", "erase", "a@example.com", "nobody@example.com")
    assert erased.code == 0 and "a@example.com: erased (contacts 1, events 2)" in erased.out
    assert "nobody@example.com: nothing held" in erased.out
    listed = run(env, tmp_path, "events", "--format", "json").out
    assert "a@example.com" not in listed
    assert [json.loads(line)["kind"] for line in listed.splitlines()][-1] == "erased"
    assert run(env, tmp_path, "contacts", "show", "a@example.com").code == 1


def test_events_prune_by_the_project_retention(env, tmp_path):
    with open_registry(env["MAILFORM_REGISTRY"]) as registry:
        registry.events.record("replied", "b@example.com", "news",
                               when=datetime.now(timezone.utc) - timedelta(days=400))
    none = run(env, tmp_path, "events", "prune")
    assert none.code == 1 and "retention_days" in none.err
    (tmp_path / "mailform.yaml").write_text(
        "apiVersion: mailform/v1\nkind: Project\nmetadata: {name: demo}\n"
        "spec:\n  events:\n    retention_days: 365\n")
    pruned = run(env, tmp_path, "events", "prune")
    assert pruned.code == 0 and pruned.out.startswith("1 event(s)")
    assert "replied" not in run(env, tmp_path, "events").out
