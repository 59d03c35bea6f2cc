"""Two scans of one inbox at the same time (an `inbox scan` beside a fleet's job, or two
operators), on the real stack and a PostgreSQL registry: every bounce is counted once,
and the two reports and the account's bounce totals add up to the inbox."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import fleetkit
from reconciler.registry import open_registry

pytestmark = pytest.mark.mailstack
PASSWORD = "overlap-Secret-1"
BOUNCES = 300


def test_two_scans_at_once_count_every_bounce_once(mailstack, tmp_path, monkeypatch):
    url, key = fleetkit.new_database("mf_overlap"), fleetkit.master_key()
    monkeypatch.setenv("MAILFORM_MASTER_KEY", key)
    try:
        env = fleetkit.env_for(mailstack, url, key, PASSWORD)
        manifests, failed = fleetkit.make_accounts(mailstack, tmp_path, 1, BOUNCES, PASSWORD)
        fleetkit.apply_with_contacts(env, manifests, failed, tmp_path)
        scans = [subprocess.Popen([sys.executable, "-m", "reconciler", "inbox", "scan",
                                   "--all", "--format", "json"], env=env, cwd=fleetkit.ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outputs = [scan.communicate(timeout=300) for scan in scans]
        assert [scan.returncode for scan in scans] == [0, 0], outputs
        reports = [json.loads(out)[0] for out, _ in outputs]
        with open_registry(url, create=False) as registry:
            (stored,) = registry.accounts().values()
            faulty = registry.contacts("faulty")
            bounces = [e for e in registry.events.since() if e["kind"] == "bounce"]
            (processed,), = registry.store.read("SELECT count(*) FROM processed_messages")
    finally:
        fleetkit.drop_database(url)
    assert sum(r["bounces"].get("hard", 0) for r in reports) == BOUNCES, reports
    assert sum(r["scanned"] for r in reports) == BOUNCES
    assert len(faulty) == len(bounces) == processed == BOUNCES
    assert stored.status["bounce_totals"]["hard"] == BOUNCES
