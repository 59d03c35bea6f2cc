#!/usr/bin/env python3
"""Benchmark: inbox scanning at scale, one process and the fleet (issue 13).

Starts a throwaway mail stack (devtools/mailstack.py); Postfix writes a few real DSNs,
which are copied (each with its own failed recipient, and the account's own address)
into Dovecot Maildirs, named as Dovecot's delivery names them (with their sizes:
``devtools.mailstack.maildir_name``); Dovecot indexes every mailbox before any clock starts.

(a) one inbox of ``--single`` messages (10,000) scanned by one ``mailform inbox scan``
    process on a SQLite registry (start-up included): messages/s and peak RSS;
(b) ``--inboxes`` inboxes (200) x ``--bounces`` bounces (50), each on its own fresh
    PostgreSQL registry holding the same accounts and contacts:
    ``inbox scan --all --concurrency 1`` (one process, start-up included) vs a round
    queued for ``--workers`` (4) ``mailform worker`` processes already started
    (``--no-schedule``, each running ``--per-worker`` (4) jobs at once, the worker's
    default ``--concurrency``: a scan mostly waits on its servers; start-up not counted:
    the clock starts once every worker has registered with the queue), from queueing
    until the queue is empty.
    Each worker's peak RSS (VmHWM) is read before it stops.
(c) what the machine allows without any queue, on a third registry: ``--workers``
    processes forked after their imports, each given its share of the accounts up front
    and scanning it with the sequential code, from a signal until the last one ends. It
    is not the fleet (no queue, no retries, no balancing of unequal inboxes), but it
    bounds any fleet of as many processes on this machine: ``sequential / this`` is the
    ratio a queue that cost nothing would reach. Printed beside the result.

Beside wall time each part prints the CPU seconds of the scan process (or of the
workers), of Dovecot's processes and of PostgreSQL's (all its users: the server may be
shared), and the transactions committed in the registry's database: the machine is
shared, so CPU seconds say where the time went when wall time varies.

The children run a copy of ``reconciler`` with its modules compiled, as installed
(``source_copy``; ``--no-bytecode``: compiled at every start). Every bounce must be
counted exactly once in both runs (checked). Last line:
``RESULT {"bench": "scan", "single_inbox_per_second": …, "sequential_seconds": …,
"fleet_seconds": …, "ratio": …, "peak_rss_mb": …}`` (peak_rss_mb: the largest of the
single-inbox scan and the workers).

    .venv/bin/python bench/scan_scale.py
    .venv/bin/python bench/scan_scale.py --single 2000 --inboxes 40 --bounces 20
"""
from __future__ import annotations

import argparse
import csv
import imaplib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]
import fleetkit  # noqa: E402
from scan_inbox import source_copy, tree_cpu  # noqa: E402  (one compiled copy, both benches)
from devtools.mailstack import MailStack  # noqa: E402

PASSWORD = "bench-Secret-1"
GOALS = {"single_inbox_per_second": 1500, "ratio": 1.8, "worker_rss_mb": 150}


SOURCE = ROOT        # the tree whose `reconciler` the children run: a compiled copy (main)


def index_all(stack, manifests: Path) -> None:
    """Dovecot indexes each mailbox on its first SELECT: before the clocks start."""
    text = manifests.joinpath("accounts.yaml").read_text()
    for local in fleetkit._locals(text.split("---\n")[1:]):
        with imaplib.IMAP4("127.0.0.1", stack.ports["imap"], timeout=600) as imap:
            imap.login(stack.address(local), PASSWORD)
            imap.select("INBOX", readonly=True)


def registry(env_base: dict, manifests: Path, failed: list[str], url: str, work: Path) -> dict:
    """A registry at ``url`` with the accounts applied and the failed recipients as contacts."""
    env = dict(env_base, MAILFORM_REGISTRY=url)
    for args in (["apply", str(manifests), "--auto-approve", "--skip-verify"],
                 ["contacts", "import", str(contacts_file(work, failed))]):
        done = fleetkit.mailform(env, *args, cwd=SOURCE)
        assert done.returncode == 0, done.stdout + done.stderr
    return env


def contacts_file(work: Path, failed: list[str]) -> Path:
    path = work / "contacts.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([["email"], *[[a] for a in failed]])
    return path


def counted(env: dict) -> int:
    os.environ["MAILFORM_MASTER_KEY"] = env["MAILFORM_MASTER_KEY"]
    from reconciler.registry import open_registry
    with open_registry(env["MAILFORM_REGISTRY"], create=False) as reg:
        return sum((a.status.get("bounce_totals") or {}).get("hard", 0)
                   for a in reg.accounts().values())


def single(stack, work: Path, count: int) -> dict:
    manifests, failed = fleetkit.make_accounts(stack, work / "single", 1, count, PASSWORD)
    index_all(stack, manifests)
    env = fleetkit.env_for(stack, f"sqlite:///{work}/single.db", "", PASSWORD)
    env.pop("MAILFORM_MASTER_KEY")
    env = registry(env, manifests, failed, env["MAILFORM_REGISTRY"], work / "single")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    dovecot = tree_cpu(stack.pids["dovecot"])
    started = time.monotonic()
    done = fleetkit.mailform(env, "inbox", "scan", "--all", "--format", "json", cwd=SOURCE)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    time.sleep(0.5)          # Dovecot's imap process ends after the LOGOUT
    dovecot = tree_cpu(stack.pids["dovecot"]) - dovecot
    assert done.returncode == 0, done.stdout + done.stderr
    (report,) = json.loads(done.stdout)
    assert report["scanned"] == count and report["bounces"]["hard"] == count, report
    cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
    return {"messages": count, "seconds": round(seconds, 2),
            "per_second": round(count / seconds, 1),
            "peak_rss_mb": round(max(after.ru_maxrss, usage.ru_maxrss) / 1024, 1),
            "scan_cpu_seconds": round(cpu, 2), "dovecot_cpu_seconds": round(dovecot, 2)}


class Servers:
    """CPU seconds of the servers while a phase runs: Dovecot's process tree and
    PostgreSQL's (the postmaster and its backends, the reaped ones included: the
    machine's PostgreSQL is shared, so other users' work counts too), and the
    transactions committed in the phase's database."""

    def __init__(self, stack, url: str) -> None:
        self.dovecot = stack.pids["dovecot"]
        self.url, self.database = url, url.rsplit("/", 1)[1].split("?")[0]
        self.postmaster = _postmaster()

    def sample(self) -> tuple[float, float, int]:
        import psycopg
        with psycopg.connect(fleetkit.PG_ADMIN, autocommit=True) as conn:
            (commits,) = conn.execute("SELECT xact_commit FROM pg_stat_database "
                                      "WHERE datname = %s", (self.database,)).fetchone()
        postgres = tree_cpu(self.postmaster) if self.postmaster else 0.0
        return tree_cpu(self.dovecot), postgres, int(commits)

    def since(self, before: tuple[float, float, int]) -> str:
        time.sleep(0.6)        # Dovecot's imap processes end after their LOGOUT; stats
        after = self.sample()
        return (f"Dovecot {after[0] - before[0]:.2f} CPU s, PostgreSQL "
                f"{after[1] - before[1]:.2f} CPU s (all its users), "
                f"{after[2] - before[2]} commits in the registry's database")


def _postmaster() -> int:
    """The PostgreSQL server's pid (the process whose parent is not a postgres)."""
    names = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            names[int(entry.name)] = (stat[stat.index("(") + 1:stat.rindex(")")],
                                      int(stat.rsplit(")", 1)[1].split()[1]))
    for pid, (name, parent) in names.items():
        if name == "postgres" and names.get(parent, ("",))[0] != "postgres":
            return pid
    return 0


def sequential(env: dict, expected: int, servers: Servers) -> float:
    base = servers.sample()
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = fleetkit.mailform(env, "inbox", "scan", "--all", "--concurrency", "1",
                             "--format", "json", timeout=3600, cwd=SOURCE)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    spent = servers.since(base)
    assert counted(env) == expected
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"(b) sequential scan process: {cpu:.2f} CPU seconds; {spent}", flush=True)
    return seconds


def fleet(env: dict, workers: int, work: Path, expected: int, servers: Servers,
          per_worker: int = 4) -> tuple[float, float]:
    from reconciler.fleet import queue, worker
    from reconciler.fleet.config import FleetConfig
    os.environ["MAILFORM_MASTER_KEY"] = env["MAILFORM_MASTER_KEY"]    # enqueue reads it
    config = FleetConfig(env["MAILFORM_REGISTRY"], timeout=120)
    queue.migrate(config)
    procs = [fleetkit.start_worker(env, "--no-schedule", "--concurrency", str(per_worker),
                                   "--name", f"bench{n}", log=work / f"worker{n}.log",
                                   cwd=SOURCE)
             for n in range(workers)]
    try:
        ready(config, procs)
        cpu = sum(_cpu_seconds(p.pid) for p in procs)
        base = servers.sample()
        started = time.monotonic()
        queued = worker.enqueue(config, "scan")
        assert worker.wait_idle(config, 3600, poll=0.1) and queued
        seconds = time.monotonic() - started
        cpu = sum(_cpu_seconds(p.pid) for p in procs) - cpu
        rss = max(_hwm_mb(p.pid) for p in procs)
        print(f"(b) fleet workers: {cpu:.2f} CPU seconds in all; {servers.since(base)}",
              flush=True)
    finally:
        codes = fleetkit.stop_workers(procs)
    assert codes == [0] * workers, codes
    assert counted(env) == expected
    return seconds, rss


def queue_free(env: dict, workers: int, expected: int, servers: Servers) -> float:
    """Part (c): the round split over ``workers`` forked processes with no queue."""
    for key in ("MAILFORM_MASTER_KEY", "FLEET_PASSWORD", "MAILFORM_CA_FILE"):
        os.environ[key] = env[key]
    from reconciler.bounces.parallel import scan_many
    from reconciler.bounces.scan import inbox_accounts
    from reconciler.registry import open_registry
    url = env["MAILFORM_REGISTRY"]
    with open_registry(url, create=False) as reg:
        accounts = inbox_accounts(reg, (), True)
    go_read, go_write = os.pipe()
    done_read, done_write = os.pipe()
    children = []
    for share in (accounts[n::workers] for n in range(workers)):
        pid = os.fork()
        if pid == 0:                                    # a child: scan the share, say so
            code = 1
            try:
                with open_registry(url, create=False) as mine:
                    mine.accounts()                     # connected and warm before the clock
                    os.read(go_read, 1)
                    reports = scan_many(mine, share, 120)
                code = 0 if all(r.ok for r in reports) else 1
            finally:
                os.write(done_write, bytes([code]))
                os._exit(code)
        children.append(pid)
    time.sleep(2)                                       # every child connected
    base = servers.sample()
    started = time.monotonic()
    os.write(go_write, b"x" * workers)
    codes = [os.read(done_read, 1)[0] for _ in children]
    seconds = time.monotonic() - started
    cpu = 0.0
    for pid in children:
        cpu += sum(os.wait4(pid, 0)[2][:2])
    assert codes == [0] * workers, codes
    print(f"(c) no queue, {workers} processes: {cpu:.2f} CPU seconds (start included); "
          f"{servers.since(base)}", flush=True)
    assert counted(env) == expected
    return seconds


def ready(config, procs: list, timeout: float = 300) -> None:
    """Until every worker has started (imported, registered with the queue), then a
    second more for its listener: start-up is not counted. (A fixed sleep was not enough
    where Python compiles every module at each start, PYTHONDONTWRITEBYTECODE, and four
    workers start at once on two cores: the fleet's clock then ran during start-up.)"""
    from reconciler.fleet import queue
    deadline = time.monotonic() + timeout
    while True:
        assert all(p.poll() is None for p in procs), "a worker stopped"
        with queue.connect(config) as conn:
            (count,) = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
        if count >= len(procs):
            break
        assert time.monotonic() < deadline, f"{count} of {len(procs)} workers started"
        time.sleep(0.2)
    time.sleep(1)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=10000)
    parser.add_argument("--inboxes", type=int, default=200)
    parser.add_argument("--bounces", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--per-worker", type=int, default=4,
                        help="jobs each worker runs at once (its --concurrency)")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="no precompiled bytecode: every module compiled at start")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailform-scan-scale-"))
    os.chmod(work, 0o755)
    global SOURCE
    SOURCE = source_copy(work, ROOT, compiled=not args.no_bytecode)
    urls = []
    with MailStack(work / "stack") as stack:
        one = single(stack, work, args.single)
        print(f"(a) one inbox: {one}", flush=True)
        manifests, failed = fleetkit.make_accounts(stack, work / "many", args.inboxes,
                                                   args.bounces, PASSWORD)
        index_all(stack, manifests)
        key = fleetkit.master_key()
        base = fleetkit.env_for(stack, "", key, PASSWORD)
        urls = [fleetkit.new_database("mf_bench") for _ in range(3)]
        try:
            envs = [registry(base, manifests, failed, url, work / "many") for url in urls]
            expected = args.inboxes * args.bounces
            seq = sequential(envs[0], expected, Servers(stack, urls[0]))
            print(f"(b) sequential: {seq:.2f}s", flush=True)
            free = queue_free(envs[2], args.workers, expected, Servers(stack, urls[2]))
            print(f"(c) no queue: {free:.2f}s", flush=True)
            fleet_seconds, rss = fleet(envs[1], args.workers, work, expected,
                                       Servers(stack, urls[1]), args.per_worker)
            print(f"(b) fleet of {args.workers}: {fleet_seconds:.2f}s, worker peak RSS "
                  f"{rss:.1f} MB", flush=True)
        finally:
            for url in urls:
                fleetkit.drop_database(url)
    shutil.rmtree(work, ignore_errors=True)
    result = {"bench": "scan", "single_inbox_per_second": one["per_second"],
              "sequential_seconds": round(seq, 2), "fleet_seconds": round(fleet_seconds, 2),
              "ratio": round(seq / fleet_seconds, 2),
              "peak_rss_mb": round(max(one["peak_rss_mb"], rss), 1)}
    print(f"goals: {GOALS} (worker RSS {rss:.1f} MB, single scan RSS {one['peak_rss_mb']} MB)")
    print(f"without a queue ({args.workers} processes, shares given up front): ratio "
          f"{seq / free:.2f}; the fleet reaches {free / fleet_seconds:.0%} of it")
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
