"""`mailform webhooks serve` as a process, and `events deliver` / `events --follow`, on both
registry backends (issue 14)."""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

from test_registry_support import REPO, backend, reg_url  # noqa: F401
from test_webhooks_out import SECRET, Receiver
from test_webhooks_providers import postmark_bounce

from reconciler.events.config import WebhookTarget
from reconciler.events.deliver import deliver_pending
from reconciler.registry import open_registry


def _serve(env, cwd):
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "webhooks", "serve",
                             "--listen", "127.0.0.1:0", "--no-ses"], env=env, cwd=cwd,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert found, line + (proc.stderr.read() if proc.poll() is not None else "")
    return proc, f"http://127.0.0.1:{found.group(1)}"


def test_serve_on_either_registry(reg_url, tmp_path):  # noqa: F811
    with open_registry(reg_url) as registry:
        registry.upsert_contacts([("ann@example.com", {})])
    env = dict(os.environ, MAILFORM_REGISTRY=reg_url, MAILFORM_POSTMARK_USER="hooks",
               MAILFORM_POSTMARK_PASSWORD="pm-Secret-9", PYTHONPATH=str(REPO))
    proc, url = _serve(env, tmp_path)
    try:
        auth = base64.b64encode(b"hooks:pm-Secret-9").decode()
        request = urllib.request.Request(
            url + "/postmark", data=json.dumps(postmark_bounce("ann@example.com")).encode(),
            headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=20) as answer:
            assert json.loads(answer.read())["newly_faulty"] == ["ann@example.com"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stderr.close()
    with open_registry(reg_url) as registry:
        assert registry.contact("ann@example.com")["status"] == "faulty"
        assert [e["kind"] for e in registry.events.since()] == ["bounce", "faulty"]


def test_deliver_on_either_registry(reg_url):  # noqa: F811
    receiver = Receiver(failures=1)
    try:
        with open_registry(reg_url) as registry:
            for n in range(5):
                registry.events.record("replied", f"c{n % 2}@example.com", "news")
            hook = WebhookTarget("crm", receiver.url, SECRET.encode(), backoff_seconds=0)
            deadline = time.monotonic() + 30
            while len(receiver.accepted) < 5 and time.monotonic() < deadline:
                deliver_pending(registry, [hook])
            assert len(receiver.accepted) == 5
            assert registry.events.deliveries.counts("crm") == {"delivered": 5}
    finally:
        receiver.close()


def test_events_follow_prints_new_events(tmp_path):
    url = f"sqlite:///{tmp_path}/reg.db"
    with open_registry(url) as registry:
        registry.events.record("replied", "a@example.com", "news")
    env = dict(os.environ, MAILFORM_REGISTRY=url, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "events", "--follow",
                             "--format", "json", "--stop-after", "30"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())["seq"] == 1
        with open_registry(url) as registry:
            registry.events.record("replied", "b@example.com", "news")
        assert json.loads(proc.stdout.readline())["email"] == "b@example.com"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()
