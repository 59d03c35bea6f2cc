"""The worker delivers events to the project's outbound webhooks (issues 13 and 14): a
receiver that checks the signature and fails the first two attempts of every event gets
each event once in the end, in order per contact."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetkit import drop_database, master_key, new_database, stop_workers, wait_for
from reconciler.registry import open_registry
from test_webhooks_out import SECRET, Receiver, _events, _in_order_per_contact

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pg_url():
    url = new_database("mf_fleet_events")
    yield url
    drop_database(url)


def test_worker_delivers_events_to_webhooks(pg_url, tmp_path):
    receiver = Receiver(failures=2)
    key = master_key()
    env = dict(os.environ, MAILFORM_REGISTRY=pg_url, MAILFORM_MASTER_KEY=key,
               HOOK_SECRET=SECRET, NO_COLOR="1", PYTHONPATH=str(ROOT))
    (tmp_path / "mailform.yaml").write_text(
        "apiVersion: mailform/v1\nkind: Project\nmetadata: {name: demo}\nspec:\n"
        "  events:\n    retention_days: 30\n    webhooks:\n      - name: crm\n"
        f"        url: {receiver.url}\n        secret: {{env: HOOK_SECRET}}\n"
        "        backoff_seconds: 0\n        max_attempts: 5\n")
    os.environ["MAILFORM_MASTER_KEY"], saved = key, os.environ.get("MAILFORM_MASTER_KEY")
    try:
        with open_registry(pg_url) as registry:
            events = _events(registry)
    finally:
        os.environ.pop("MAILFORM_MASTER_KEY")
        if saved is not None:
            os.environ["MAILFORM_MASTER_KEY"] = saved
    log = open(tmp_path / "worker.log", "ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "worker", "--scan-interval", "1h",
         "--verify-interval", "1h", "--stalled-timeout", "6"],
        env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(receiver.accepted) == len(events) or worker.poll() is not None,
                 timeout=120)
    finally:
        codes = stop_workers([worker])
        receiver.close()
    assert codes == [0], (tmp_path / "worker.log").read_text()[-3000:]
    assert sorted(receiver.accepted) == sorted(e["id"] for e in events)
    assert receiver.bad_signatures == 0
    _in_order_per_contact(receiver.attempts, events)
