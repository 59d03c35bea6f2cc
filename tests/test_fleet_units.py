"""The fleet's pieces without workers: intervals, what is due, backoff, the SQLite refusal,
the stale-checkout rule of reconcile passes (real git repositories)."""
from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

import clihelpers
from reconciler.fleet.config import FleetConfig, FleetError, parse_duration, require_postgres
from reconciler.fleet.schedule import is_due, lock_of
from reconciler.fleet.tasks import Backoff, cron
from reconciler.fleet.jobs import Transient
from reconciler.registry import open_registry
from reconciler.registry.common import iso, utcnow
from reconciler.registry.conditions import Condition
from reconciler.workflow.checkout import StaleCheckoutError, commit_of, refuse_if_stale
from reconciler.workflow.inputs import Inputs
from reconciler.workflow.reconcile import PassOptions, run_pass

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("5m", 300), ("1h", 3600),
                                           ("1.5h", 5400), ("1d", 86400), (30, 30)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "-1m", "0", "m"])
def test_bad_durations(text):
    with pytest.raises(FleetError):
        parse_duration(text, "--scan-interval")


def test_tick_divides_a_minute_and_follows_the_shortest_interval():
    assert FleetConfig("postgresql://x/y").tick_seconds == 10          # stalled 30 s
    assert FleetConfig("postgresql://x/y", scan_interval=3, stalled_seconds=6).tick_seconds == 1
    assert 60 % FleetConfig("postgresql://x/y", scan_interval=47).tick_seconds == 0
    assert cron(5) == "* * * * * */5"


def _cond(status="True", reason="Scanned", age=0.0, observed="v1"):
    probe = iso(utcnow() - timedelta(seconds=age))
    return Condition("InboxScanned", status, reason, "", observed, probe, probe)


def test_due_after_an_interval_and_never_again_on_a_terminal_failure_until_a_change():
    now = utcnow()
    assert is_due(None, 300, now, "v1", 1)
    assert not is_due(_cond(age=10), 300, now, "v1", 1)
    assert is_due(_cond(age=301), 300, now, "v1", 1)
    terminal = _cond("False", "LoginRefused", age=9999)
    assert not is_due(terminal, 300, now, "v1", 1)          # same settings: not retried
    assert is_due(terminal, 300, now, "v2", 1)              # settings changed: again
    assert is_due(_cond("False", "ScanFailed", age=301), 300, now, "v1", 1)


def test_locks_one_inbox_one_pass():
    assert lock_of("scan", "news") == "inbox:news"
    assert lock_of("verify", "news") == "verify:news"
    assert lock_of("reconcile", None) == "reconcile"


def test_backoff_is_exponential_with_jitter_and_only_for_transient_failures():
    backoff = Backoff(base=5, cap=600, attempts=8)
    for attempts in range(8):
        ceiling = min(600, 5 * 2 ** attempts)
        assert all(ceiling / 2 <= backoff.wait(attempts) <= ceiling for _ in range(50))
    job = type("Job", (), {"attempts": 1})()
    assert backoff.get_retry_decision(exception=Transient("timeout"), job=job) is not None
    assert backoff.get_retry_decision(exception=ValueError("bug"), job=job) is None
    job.attempts = 7
    assert backoff.get_retry_decision(exception=Transient("timeout"), job=job) is None


def test_worker_refuses_a_sqlite_registry_and_says_what_to_use(tmp_path):
    with pytest.raises(FleetError, match="inbox scan --all --concurrency N"):
        require_postgres(f"sqlite:///{tmp_path}/r.db")
    env = dict(os.environ, MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/r.db")
    done = clihelpers.mailform("worker", env=env, cwd=ROOT)
    assert done.returncode != 0
    assert "needs a PostgreSQL registry" in done.stderr
    assert "`mailform reconcile`" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r.db").exists()


# --- stale checkouts ---------------------------------------------------------------------

ACCOUNT = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: news}}
spec: {{type: marketing, email: news@example.com, display_name: {display}, shared: true}}
"""


def _git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True, env=dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x",
                                              GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@x")).stdout


def _commit(repo, display):
    (repo / "m").mkdir(exist_ok=True)
    (repo / "m" / "a.yaml").write_text(ACCOUNT.format(display=display))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", display)
    return _git(repo, "rev-parse", "HEAD").strip()


def test_a_pass_from_an_older_checkout_refuses_to_apply(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    url = f"sqlite:///{tmp_path}/registry.db"
    new, old = tmp_path / "new", tmp_path / "old"
    new.mkdir()
    _git(new, "init", "-q")
    _commit(new, "First")
    _git(tmp_path, "clone", "-q", str(new), str(old))          # old stays at First
    second = _commit(new, "Second")
    options = PassOptions(url, auto_apply=True)
    applied = run_pass(Inputs(paths=(str(new / "m"),)), options, None)
    assert applied.result == "applied", applied.message
    with open_registry(url) as registry:
        entry = registry.history()[-1]
        assert entry["commit"] == second and entry["manifest_digest"]
    stale = run_pass(Inputs(paths=(str(old / "m"),)), options, None)
    assert stale.result == "stale" and stale.terminal and "does not have" in stale.message
    _git(old, "fetch", "-q")                        # knows the commit, still checked out behind
    stale = run_pass(Inputs(paths=(str(old / "m"),)), options, None)
    assert stale.result == "stale"
    assert "stale checkout" in stale.message and "older than the last applied" in stale.message
    with open_registry(url) as registry:
        assert registry.account("news").spec["display_name"] == "Second"   # not undone
        assert registry.conditions.get("news", "Applied").reason == "StaleCheckout"
    _git(old, "pull", "-q")
    assert run_pass(Inputs(paths=(str(old / "m"),)), options, None).result == "in_sync"


def test_a_checkout_that_does_not_know_the_last_commit_is_stale(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    _git(repo, "init", "-q")
    ours = _commit(repo, "Mine")
    assert commit_of([str(repo / "m")]) == ours
    with pytest.raises(StaleCheckoutError, match="does not have"):
        refuse_if_stale([str(repo / "m")], ours, [{"commit": "f" * 40}])
    refuse_if_stale([str(repo / "m")], ours, [{"commit": ours}])      # the same: fine
    refuse_if_stale([str(repo / "m")], None, [{"commit": ours}])      # not in git: fine
    assert commit_of([str(tmp_path / "nowhere")]) is None


def test_the_prune_job_keeps_the_projects_retention(tmp_path):
    """spec.events.retention_days, applied by the worker's hourly prune job: older events
    go, newer ones stay."""
    from datetime import datetime, timedelta, timezone

    from reconciler.fleet import jobs
    from reconciler.fleet.config import FleetConfig
    from reconciler.registry import open_registry

    url = f"sqlite:///{tmp_path}/reg.db"
    now = datetime.now(timezone.utc)
    with open_registry(url) as registry:
        registry.events.record("replied", "old@example.com", "news", when=now - timedelta(40))
        registry.events.record("replied", "new@example.com", "news", when=now - timedelta(2))
    try:
        assert jobs.prune(FleetConfig(registry_url=url, retention_days=30)) == "ok"
    finally:
        jobs.drop_registry()
    with open_registry(url) as registry:
        assert [e["email"] for e in registry.events.since()] == ["new@example.com"]


def test_a_job_queued_before_a_terminal_failure_waits_for_a_change(tmp_path):
    """A scan or check queued before its account failed for good (bad credentials) does
    not try again on the same settings; after they change, it runs."""
    from reconciler.fleet import jobs
    from reconciler.registry import AccountWrite

    url = f"sqlite:///{tmp_path}/reg.db"
    spec = {"email": "a@example.com", "inbox": {"protocol": "imap", "host": "127.0.0.1",
                                                "port": 9, "security": "none"}}
    with open_registry(url) as registry:
        with registry.transaction() as tx:
            tx.put_account(AccountWrite("a", "smtp", spec, {}, {}))
        stored = registry.account("a")
        registry.conditions.set("a", jobs.SCANNED, "False", "LoginRefused", "bad password",
                                jobs.observed(stored))
        assert jobs._recent(registry, stored, jobs.SCANNED, 300)
        registry.set_field("a", "inbox.port", 10)                  # the settings changed
        assert not jobs._recent(registry, registry.account("a"), jobs.SCANNED, 300)


def test_a_worker_warms_each_job_thread_before_its_first_job(monkeypatch):
    """Every thread of the job pool runs ``jobs.warm`` once (its registry connection
    opened before the worker takes a job), each in a thread of its own."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from reconciler.fleet import jobs, worker
    warmed: list[str] = []
    monkeypatch.setattr(jobs, "warm", lambda config: warmed.append(
        threading.current_thread().name))
    with ThreadPoolExecutor(5, thread_name_prefix="job") as pool:
        worker._warm_threads(object(), pool, 5)
    assert len(warmed) == 5 and len(set(warmed)) == 5


def test_warming_a_job_thread_opens_its_registry_once(tmp_path, monkeypatch):
    from reconciler.fleet import jobs
    url = f"sqlite:///{tmp_path}/reg.db"
    open_registry(url).close()
    config = FleetConfig(url)
    jobs.drop_registry()
    jobs.warm(config)
    first = jobs.registry_of(config)
    jobs.warm(config)
    assert jobs.registry_of(config) is first
    jobs.drop_registry()
    jobs.warm(FleetConfig(f"sqlite:///{tmp_path}/missing/reg.db"))   # unreachable: no raise
    jobs.drop_registry()


def test_warming_never_stops_a_worker(tmp_path, monkeypatch):
    """An unreadable extra trust anchor or an unreachable registry is said by the jobs
    that need them, not by a worker that fails to start."""
    from reconciler.fleet import jobs
    monkeypatch.setenv("MAILFORM_CA_FILE", str(tmp_path / "missing-ca.pem"))
    jobs.drop_registry()
    jobs.warm(FleetConfig(f"sqlite:///{tmp_path}/missing/reg.db"))
    jobs.drop_registry()
