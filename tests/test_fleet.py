"""The fleet on the real parts: worker processes on one PostgreSQL registry scanning real
Dovecot inboxes of real Postfix bounces (issue 13).

The issue's figure, 200 accounts (``MAILFORM_FLEET_ACCOUNTS`` changes it), for the round
with a worker killed and the connections cut; a few accounts for the rest.
"""
from __future__ import annotations

import json
import os
import urllib.request

import psycopg
import pytest

import fleetkit
from reconciler.registry import open_registry

pytestmark = pytest.mark.mailstack
ACCOUNTS = int(os.environ.get("MAILFORM_FLEET_ACCOUNTS", "200"))
BOUNCES = 4
PASSWORD = "fleet-Secret-1"


@pytest.fixture
def fleet(mailstack, tmp_path, monkeypatch, request):
    count = getattr(request, "param", ACCOUNTS)
    url, key = fleetkit.new_database(), fleetkit.master_key()
    monkeypatch.setenv("MAILFORM_MASTER_KEY", key)
    env = fleetkit.env_for(mailstack, url, key, PASSWORD)
    manifests, failed = fleetkit.make_accounts(mailstack, tmp_path, count, BOUNCES, PASSWORD)
    fleetkit.apply_with_contacts(env, manifests, failed, tmp_path)
    procs: list = []
    ns = type("Fleet", (), {"url": url, "env": env, "failed": failed, "procs": procs,
                            "tmp": tmp_path, "manifests": manifests})
    try:
        yield ns
    finally:
        fleetkit.stop_workers(procs, timeout=30)
        fleetkit.drop_database(url)


def _start(fleet, n: int, *extra: str):
    args = ["--concurrency", "3", "--scan-interval", "1h", "--verify-interval", "1h",
            "--stalled-timeout", "6", "--timeout", "20", "--name", f"w{n}", *extra]
    proc = fleetkit.start_worker(fleet.env, *args, log=fleet.tmp / f"worker{n}.log")
    fleet.procs.append(proc)
    return proc


def _scanned(fleet) -> dict[str, dict]:
    with open_registry(fleet.url, create=False) as registry:
        return {name: conds["InboxScanned"].as_dict()
                for name, conds in registry.conditions.all().items()
                if "InboxScanned" in conds}


def _totals(fleet) -> tuple[dict, dict, int]:
    """account -> hard bounces counted; account -> processed messages; faulty contacts."""
    with open_registry(fleet.url, create=False) as registry:
        hard = {n: (a.status.get("bounce_totals") or {}).get("hard", 0)
                for n, a in registry.accounts().items()}
        rows = registry.store.read("SELECT account, count(*) FROM processed_messages "
                                   "GROUP BY account")
        return hard, dict(rows), len(registry.contacts("faulty"))


def _metric(port: int, name: str, labels: str = "") -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + ("{" if labels else "")) and labels in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _wait_idle(fleet, timeout: float = 300) -> None:
    from reconciler.fleet import queue
    from reconciler.fleet.config import FleetConfig
    config = FleetConfig(fleet.url)
    fleetkit.wait_for(lambda: queue.pending(config) == 0, timeout, poll=1)


def test_four_workers_scan_every_inbox_once_despite_sigkill_and_cut_connections(fleet):
    ports = [_free_port() for _ in range(4)]
    for n in range(4):
        _start(fleet, n, "--metrics-listen", f"127.0.0.1:{ports[n]}", "--log-format", "json")
    # the first round starts by itself (no account scanned yet); kill one worker in it
    fleetkit.wait_for(lambda: len(_scanned(fleet)) >= 2, 240)
    fleet.procs[0].kill()
    fleetkit.wait_for(lambda: len(_scanned(fleet)) == ACCOUNTS and all(
        c["status"] == "True" for c in _scanned(fleet).values()), 600, poll=1)
    _wait_idle(fleet)
    hard, processed, faulty = _totals(fleet)
    assert processed == {name: BOUNCES for name in hard}       # every message processed once
    assert faulty == ACCOUNTS * BOUNCES                        # every bounce counted once
    # the accounts' bounce_totals summary is written when a scan ends: a scan cut short by
    # SIGKILL may leave it short (its messages are recorded), never counted twice
    assert all(count <= BOUNCES for count in hard.values())

    # every connection of the workers cut: they reconnect and the next round goes through
    before = sum(_metric(p, "mailform_jobs_total", 'kind="scan",outcome="ok"')
                 for p in ports[1:])
    _terminate_backends(fleet.url)
    queued = fleetkit.mailform(fleet.env, "worker", "--enqueue", "scan", "--wait", "300")
    assert queued.returncode == 0, queued.stdout + queued.stderr
    assert f"queued {ACCOUNTS} scan job(s)" in queued.stdout
    after = sum(_metric(p, "mailform_jobs_total", 'kind="scan",outcome="ok"')
                for p in ports[1:])
    assert after - before >= ACCOUNTS                          # ran by the surviving workers
    assert all(proc.poll() is None for proc in fleet.procs[1:])
    assert _totals(fleet) == (hard, processed, faulty)          # nothing counted twice
    assert _metric(ports[1], "mailform_registry_serial") >= 0
    assert urllib.request.urlopen(f"http://127.0.0.1:{ports[1]}/readyz").status == 200
    codes = fleetkit.stop_workers(fleet.procs[1:])
    assert codes == [0, 0, 0]
    _json_logs(fleet.tmp / "worker1.log")


def _json_logs(path):
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]
    assert {"worker stopped"} <= {e["message"] for e in events}


def _terminate_backends(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(fleetkit.PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                            "datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
    return len(rows)


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("fleet", [4], indirect=True)
def test_bad_credentials_are_recorded_once_and_not_retried(fleet, mailstack):
    with open_registry(fleet.url, create=False) as registry:
        names = sorted(registry.accounts())
    bad = names[0]
    mailstack.add_user(bad, "changed-" + PASSWORD)          # the stored password no longer works
    port = _free_port()
    _start(fleet, 9, "--scan-interval", "2s", "--verify-interval", "2s",
           "--metrics-listen", f"127.0.0.1:{port}")

    def settled():
        with open_registry(fleet.url, create=False) as registry:
            conds = registry.conditions.all()
        return all("Verified" in conds.get(n, {}) and "InboxScanned" in conds.get(n, {})
                   for n in names) and conds
    conds = fleetkit.wait_for(settled, 300, poll=1)
    assert conds[bad]["Verified"].status == "False"
    assert conds[bad]["Verified"].reason == "AuthFailed"
    assert conds[bad]["InboxScanned"].status == "False"
    assert conds[bad]["InboxScanned"].reason == "LoginRefused"
    assert all(conds[n]["Verified"].status == "True" for n in names[1:])
    terminal = _metric(port, "mailform_jobs_total", 'outcome="terminal"')
    import time
    time.sleep(8)                                           # several intervals
    assert _metric(port, "mailform_jobs_total", 'outcome="terminal"') == terminal == 2
    assert _metric(port, "mailform_accounts_condition",
                   'status="False",type="Verified"') == 1
    shown = fleetkit.mailform(fleet.env, "state", "show", bad, "--format", "json")
    reasons = {c["type"]: c["reason"] for c in json.loads(shown.stdout)["conditions"]}
    assert reasons["Verified"] == "AuthFailed"
