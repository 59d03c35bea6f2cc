"""Reconcile passes on the fleet: two fleets (each its own queue schema) on one PostgreSQL
registry and one git checkout; every change is applied exactly once, by one of them,
with its manifest digest and commit recorded."""
from __future__ import annotations

import collections
import os
import subprocess

import pytest

import fleetkit
from reconciler.registry import open_registry

ACCOUNTS = 20
ACCOUNT = """\
---
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: acct{n}}}
spec: {{type: marketing, email: acct{n}@example.com, display_name: {display}, shared: true}}
"""


def _git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@x")
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def _commit(repo, version: int) -> str:
    (repo / "m").mkdir(exist_ok=True)
    (repo / "m" / "accounts.yaml").write_text("".join(
        ACCOUNT.format(n=n, display=f"Version {version}" if n < 3 else "Base")
        for n in range(ACCOUNTS)))     # 3 of 20 change each time: under the 30% guard
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", f"version {version}")
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def registry_url(monkeypatch):
    url, key = fleetkit.new_database("mf_recon"), fleetkit.master_key()
    monkeypatch.setenv("MAILFORM_MASTER_KEY", key)
    yield url
    fleetkit.drop_database(url)


def _displays(url) -> set[str]:
    with open_registry(url, create=False) as registry:
        return {a.spec["display_name"] for a in registry.accounts().values()}


def test_two_fleets_never_apply_the_same_change_twice(registry_url, tmp_path):
    repo = tmp_path / "checkout"
    repo.mkdir()
    _git(repo, "init", "-q")
    commits = [_commit(repo, 1)]
    env = dict(os.environ, MAILFORM_REGISTRY=registry_url, NO_COLOR="1")
    procs = []
    try:
        for n, schema in enumerate(["fleet_a", "fleet_a", "fleet_b"]):
            procs.append(fleetkit.start_worker(
                env, "--queue-schema", schema, "--reconcile", str(repo / "m"), "--auto-apply",
                "--reconcile-interval", "1s", "--stalled-timeout", "6", "--name", f"r{n}",
                "--log-format", "json",
                log=tmp_path / f"worker{n}.log"))
        fleetkit.wait_for(lambda: _pending_ok(registry_url, "Version 1"), 120)
        for version in (2, 3, 4):
            commits.append(_commit(repo, version))
            fleetkit.wait_for(lambda: _pending_ok(registry_url, f"Version {version}"), 120)
        assert fleetkit.stop_workers(procs) == [0, 0, 0]
    finally:
        fleetkit.stop_workers(procs, timeout=10)
    with open_registry(registry_url, create=False) as registry:
        applies = [e for e in registry.history() if e.get("manifest_digest")]
        passed = registry.conditions.get("@fleet", "ReconcilePass")
    per_digest = collections.Counter(e["manifest_digest"] for e in applies)
    assert len(per_digest) == 4 and set(per_digest.values()) == {1}   # each change once
    assert [e["commit"] for e in applies] == commits
    assert passed.status == "True"


def _pending_ok(url, display) -> bool:
    try:
        return _displays(url) == {display, "Base"}
    except Exception:
        return False
