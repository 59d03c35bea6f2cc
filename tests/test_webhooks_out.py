"""Outbound webhooks (issue 14): a local receiver that checks the HMAC signature and fails
the first two attempts of every event still gets every event exactly once in the end
(deduplicating by event id, as receivers of an at-least-once feed do), in order per
contact; deliveries that give up are dead letters that `events --failed` shows and
`events redeliver` retries."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clihelpers import mailform
from reconciler.events.config import WebhookTarget
from reconciler.events.deliver import deliver_pending
from reconciler.registry import open_registry

SECRET = "whsec-test-0123456789"


class Receiver:
    """Checks each request's signature (its own HMAC code, from the documented scheme),
    fails the first ``failures`` attempts of every event, keeps what it accepted."""

    def __init__(self, failures: int = 2) -> None:
        self.failures, self.attempts, self.accepted = failures, [], {}
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(receiver.take(body, self.headers))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def take(self, body: bytes, headers) -> int:
        parts = dict(p.split("=", 1) for p in headers["X-Mailform-Signature"].split(","))
        mac = hmac.new(SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
        with self.lock:
            if not hmac.compare_digest(mac.hexdigest(), parts["v1"]) or \
                    abs(time.time() - int(parts["t"])) > 300:
                self.bad_signatures += 1
                return 401
            event = json.loads(body)
            assert headers["X-Mailform-Event-Id"] == event["id"]
            self.attempts.append(event)
            tries = sum(1 for e in self.attempts if e["id"] == event["id"])
            if tries <= self.failures:
                return 503
            self.accepted.setdefault(event["id"], event)     # dedupe by event id
            return 200

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def _events(registry):
    registry.upsert_contacts([("ann@example.com", {}), ("bob@example.com", {})])
    registry.ledger.record_message("news", "INBOX", 1, [
        ("ann@example.com", "hard", "5.1.1", "user-unknown"),
        ("bob@example.com", "soft", "4.2.2", "mailbox-full")])
    registry.events.record("replied", "bob@example.com", "news", data={"subject": "Re: hi"})
    return registry.events.since()


def _in_order_per_contact(attempts, events):
    seq_of = {e["id"]: e["seq"] for e in events}
    for email in {e["email"] for e in events}:
        tried = [seq_of[a["id"]] for a in attempts if a["email"] == email]
        assert tried == sorted(tried), f"{email}: attempts out of order: {tried}"


def test_every_event_exactly_once_in_the_end(tmp_path, receiver):
    registry = open_registry(f"sqlite:///{tmp_path}/reg.db")
    events = _events(registry)
    hook = WebhookTarget("crm", receiver.url, SECRET.encode(), timeout=5,
                         backoff_seconds=0.05, max_attempts=5)
    deadline = time.monotonic() + 30
    while len(receiver.accepted) < len(events) and time.monotonic() < deadline:
        report = deliver_pending(registry, [hook])
        assert report.dead == 0
        time.sleep(0.1)
    assert sorted(receiver.accepted) == sorted(e["id"] for e in events)
    assert receiver.bad_signatures == 0
    assert len(receiver.attempts) == 3 * len(events)        # two failures, then delivered
    _in_order_per_contact(receiver.attempts, events)
    assert deliver_pending(registry, [hook]).delivered == 0   # nothing twice
    assert registry.events.deliveries.counts("crm") == {"delivered": len(events)}
    registry.close()


def test_backoff_waits_between_attempts(tmp_path, receiver):
    registry = open_registry(f"sqlite:///{tmp_path}/reg.db")
    registry.events.record("replied", "x@example.com", "news")
    hook = WebhookTarget("crm", receiver.url, SECRET.encode(), backoff_seconds=3600)
    assert deliver_pending(registry, [hook]).retrying == 1
    assert deliver_pending(registry, [hook]).retrying == 0    # not due for an hour
    later = datetime.now(timezone.utc) + timedelta(hours=1, seconds=1)
    assert deliver_pending(registry, [hook], now=later).retrying == 1
    registry.close()


def _project(tmp_path, url, attempts=5):
    (tmp_path / "mailform.yaml").write_text(
        "apiVersion: mailform/v1\nkind: Project\nmetadata: {name: demo}\nspec:\n"
        "  events:\n    webhooks:\n      - name: crm\n"
        f"        url: {url}\n        secret: {{env: HOOK_SECRET}}\n"
        f"        kinds: [bounce, faulty, replied]\n        backoff_seconds: 0\n"
        f"        max_attempts: {attempts}\n")
    return {"PATH": "/usr/bin:/bin", "MAILFORM_REGISTRY": f"sqlite:///{tmp_path}/reg.db",
            "HOOK_SECRET": SECRET, "NO_COLOR": "1"}


def test_events_deliver_command_and_the_event_list(tmp_path, receiver):
    env = _project(tmp_path, receiver.url)
    with open_registry(env["MAILFORM_REGISTRY"]) as registry:
        events = _events(registry)
    for _ in range(10):      # each run: one attempt per contact's next event (in order)
        result = mailform("events", "deliver", env=env, cwd=tmp_path)
        assert result.returncode == 0, result.err
        if len(receiver.accepted) == len(events):
            break
    assert sorted(receiver.accepted) == sorted(e["id"] for e in events)
    listed = mailform("events", "--format", "json", env=env, cwd=tmp_path)
    assert [json.loads(line)["kind"] for line in listed.out.splitlines()] == [
        "bounce", "faulty", "bounce", "replied"]
    assert json.loads(listed.out.splitlines()[0]) == receiver.accepted[events[0]["id"]]
    human = mailform("events", "--kind", "replied", env=env, cwd=tmp_path)
    assert "replied" in human.out and "Re: hi" in human.out and "faulty" not in human.out
    assert SECRET not in listed.text + human.text


def test_dead_letters_are_shown_and_redelivered(tmp_path):
    receiver = Receiver(failures=2)
    env = _project(tmp_path, receiver.url, attempts=2)
    try:
        with open_registry(env["MAILFORM_REGISTRY"]) as registry:
            registry.events.record("replied", "cy@example.com", "news")
        assert mailform("events", "deliver", env=env, cwd=tmp_path).returncode == 0
        gave_up = mailform("events", "deliver", env=env, cwd=tmp_path)
        assert gave_up.returncode == 1 and "HTTP 503" in gave_up.err
        failed = mailform("events", "--failed", "--format", "json", env=env, cwd=tmp_path)
        row = json.loads(failed.out)
        assert row["webhook"] == "crm" and row["attempts"] == 2 and row["kind"] == "replied"
        assert "1 delivery queued" in mailform("events", "redeliver", env=env,
                                               cwd=tmp_path).out
        assert mailform("events", "deliver", env=env, cwd=tmp_path).returncode == 0
        assert len(receiver.accepted) == 1
        assert mailform("events", "--failed", "--format", "json", env=env,
                        cwd=tmp_path).out == ""
    finally:
        receiver.close()


def test_an_unset_secret_is_named_not_shown(tmp_path):
    env = _project(tmp_path, "http://127.0.0.1:9/hook")
    del env["HOOK_SECRET"]
    result = mailform("events", "deliver", env=env, cwd=tmp_path)
    assert result.returncode == 1 and "HOOK_SECRET" in result.err
    assert "Traceback" not in result.text
