#!/usr/bin/env python3
"""Benchmark: `mailform plan` at scale against a floor and against octoDNS (issue 3).

For each N (default 1,000 / 10,000 / 100,000), under a temporary directory:

1. generate N accounts (three shapes in turn, 100 per file), apply them into a
   fresh SQLite registry with `mailform apply --auto-approve --skip-verify`
   (timed: ``apply_seconds``, N creates);
2. change 1% of the accounts in the manifests (display name), then time
   `mailform plan` as a whole process (best wall time of --repeat runs, peak RSS
   of the child from os.wait4);
3. the floor, one process: the same manifests parsed by PyYAML's CSafeLoader,
   each document validated by ``reconciler.model.EmailAccount.model_validate``,
   and the N registry rows read by a sqlite3 SELECT of the accounts table;
4. the peer: `octodns-sync` (no --doit: a plan) from a YamlProvider to a
   YamlProvider, one zone of N A records of which 1% changed. octoDNS is
   installed from PyPI into bench/.venv-octodns (created when missing); it is
   not a dependency of mailform.

Every timed command runs as a subprocess, so each pays interpreter start-up.
The table comes first; the last line is ``RESULT {...}`` for N = 10,000 (or the
largest size run).

    .venv/bin/python bench/plan_scale.py                      # 1k, 10k, 100k
    .venv/bin/python bench/plan_scale.py --sizes 1000,10000 --no-octodns
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCTO_VENV = os.path.join(ROOT, "bench", ".venv-octodns")
PER_FILE = 100
CHANGE_EVERY = 100            # 1% of the accounts change between apply and plan
SECRET_VARS = 50
GOALS = {"ratio_floor": 1.5, "ratio_octodns": 0.33, "peak_rss_mb": 250.0, "scale": 12.0,
         "apply_over_plan": 3.0}

FLOOR = r"""
import os, sqlite3, sys, yaml
from reconciler.model import EmailAccount
loader = yaml.CSafeLoader
count = 0
for dirpath, dirnames, names in sorted(os.walk(sys.argv[1])):
    for name in sorted(names):
        with open(os.path.join(dirpath, name), encoding="utf-8") as handle:
            for doc in yaml.load_all(handle.read(), Loader=loader):
                EmailAccount.model_validate(doc)
                count += 1
conn = sqlite3.connect(sys.argv[2])
rows = conn.execute("SELECT name, type, spec, applied, fingerprints, applied_fingerprints, "
                    "status FROM accounts").fetchall()
print(count, "documents,", len(rows), "registry rows")
"""


# --- mailform manifests -----------------------------------------------------------

def account(i: int, changed: bool) -> str:
    """One account document; three shapes in turn so that every model part is used."""
    name = f"acct-{i:06d}"
    suffix = " (renamed)" if changed else ""
    head = (f"apiVersion: mailform/v1\nkind: EmailAccount\nmetadata:\n  name: {name}\n"
            f"  labels: {{team: team-{i % 17}, tier: \"{i % 3}\"}}\nspec:\n")
    shape = i % 3
    if shape == 0:
        return head + (
            f"  type: marketing\n  email: news{i}@example.com\n  display_name: News {i}{suffix}\n"
            f"  reply_to:\n    email: replies{i}@example.com\n    name: Replies {i}\n"
            "  from_override:\n    email_detail: manager_email\n    name_detail: manager_name\n"
            "  shared: true\n")
    smtp = (f"  smtp:\n    host: smtp{i % 50}.example.com\n    port: 587\n    security: starttls\n"
            f"    username: user{i}\n    password: {{env: BENCH_SMTP_PASSWORD_{i % SECRET_VARS}}}\n")
    if shape == 1:
        return head + (f"  type: smtp\n  email: sales{i}@example.com\n"
                       f"  display_name: Sales {i}{suffix}\n" + smtp
                       + f"  owner: owner{i % 40}@example.com\n")
    return head + (f"  type: smtp\n  email: support{i}@example.com\n"
                   f"  display_name: Support {i}{suffix}\n"
                   + smtp + "  shared: true\n  proxy: true\n"
                   f"  inbox:\n    protocol: imap\n    host: imap{i % 50}.example.com\n"
                   "    port: 993\n    security: ssl\n    batch_size: 200\n    delete_bounces: false\n")


def generate(directory: str, n: int, with_changes: bool) -> None:
    for start in range(0, n, PER_FILE):
        sub = os.path.join(directory, f"group-{start // 10000:03d}")
        os.makedirs(sub, exist_ok=True)
        docs = [account(i, with_changes and i % CHANGE_EVERY == 7)
                for i in range(start, min(start + PER_FILE, n))]
        with open(os.path.join(sub, f"accounts-{start // PER_FILE:05d}.yaml"), "w",
                  encoding="utf-8") as handle:
            handle.write("---\n".join(docs))


# --- octoDNS ----------------------------------------------------------------------

def octodns_sync() -> str:
    exe = os.path.join(OCTO_VENV, "bin", "octodns-sync")
    if not os.path.exists(exe):
        print("  creating bench/.venv-octodns and installing octodns from PyPI ...",
              file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", OCTO_VENV], check=True)
        subprocess.run([os.path.join(OCTO_VENV, "bin", "pip"), "install", "-q", "octodns"],
                       check=True)
    return exe


def octodns_setup(directory: str, n: int) -> str:
    """A config and two zone directories: dst as applied, src with 1% of the records changed."""
    for side in ("src", "dst"):
        os.makedirs(os.path.join(directory, side), exist_ok=True)
        changed = side == "src"
        lines = ["---"]
        for i in range(n):     # names sort in the order written (YamlProvider enforces order)
            last = (i % 250) + 1
            if changed and i % CHANGE_EVERY == 7:
                last = 254 - (i % 3)
            lines += [f"r{i:06d}:", "  ttl: 300", "  type: A",
                      f"  value: 10.{i // 65536 % 256}.{i // 256 % 256}.{last}"]
        with open(os.path.join(directory, side, "example.com.yaml"), "w",
                  encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    config = os.path.join(directory, "octodns.yaml")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write(
            "providers:\n"
            "  config:\n    class: octodns.provider.yaml.YamlProvider\n"
            f"    directory: {directory}/src\n"
            "  target:\n    class: octodns.provider.yaml.YamlProvider\n"
            f"    directory: {directory}/dst\n"
            "zones:\n  example.com.:\n    sources: [config]\n    targets: [target]\n")
    return config


# --- running ----------------------------------------------------------------------

def run(argv: list[str], env: dict, cwd: str) -> tuple[float, float, int, str]:
    """(wall seconds, peak RSS MB, exit code, tail of the output) of one child process."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - 4000))
        tail = out.read().decode(errors="replace").strip().splitlines()
    return wall, usage.ru_maxrss / 1024.0, proc.returncode, "\n".join(tail[-3:])


def best(argv: list[str], env: dict, cwd: str, repeat: int, what: str
         ) -> tuple[float, float, str]:
    results = [run(argv, env, cwd) for _ in range(repeat)]
    for wall, rss, code, tail in results:
        if code != 0:
            raise SystemExit(f"{what} failed (exit {code}):\n{tail}")
    return min(r[0] for r in results), max(r[1] for r in results), results[-1][3]


def measure(workdir: str, n: int, repeat: int, octodns: bool) -> dict:
    """Timed runs are interleaved (plan, floor, octoDNS; again) and the best of each kept,
    so that load from other processes on the machine hits all three alike."""
    directory = os.path.join(workdir, f"n{n}")
    manifests = os.path.join(directory, "manifests")
    db = os.path.join(directory, "registry.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFORM_")}
    env.update({f"BENCH_SMTP_PASSWORD_{k}": f"secret-{k}" for k in range(SECRET_VARS)})
    env.update({"MAILFORM_REGISTRY": f"sqlite:///{db}", "NO_COLOR": "1",
                "PYTHONPATH": ROOT})
    python = sys.executable
    generate(manifests, n, with_changes=False)
    apply_s, apply_rss, _ = best(
        [python, "-m", "reconciler", "apply", "--auto-approve", "--skip-verify", manifests],
        env, directory, 1, f"apply of {n} creates")
    shutil.rmtree(manifests)
    generate(manifests, n, with_changes=True)
    # --no-cache: every run parses and validates every file, as the floor does (a warm
    # plan reads the local cache; bench/scale_100k.py measures that one)
    jobs = {"plan": ([python, "-m", "reconciler", "plan", "--no-cache", manifests], env,
                     directory),
            "floor": ([python, "-c", FLOOR, manifests, db], env, directory)}
    if octodns:
        octo_dir = os.path.join(workdir, f"octo{n}")
        config = octodns_setup(octo_dir, n)
        jobs["octodns"] = ([octodns_sync(), "--config-file", config], dict(os.environ), octo_dir)
    runs: dict[str, list] = {name: [] for name in jobs}
    for _ in range(repeat):
        for name, (argv, job_env, cwd) in jobs.items():
            wall, rss, code, tail = run(argv, job_env, cwd)
            if code != 0:
                raise SystemExit(f"{name} at {n} failed (exit {code}):\n{tail}")
            runs[name].append((wall, rss, tail))
    got = {name: (min(r[0] for r in rs), max(r[1] for r in rs), rs[-1][2])
           for name, rs in runs.items()}
    plan_s, plan_rss, plan_tail = got["plan"]
    floor_s, floor_rss, _ = got["floor"]
    row = {"n": n, "seconds": round(plan_s, 3), "peak_rss_mb": round(plan_rss, 1),
           "floor_seconds": round(floor_s, 3), "floor_rss_mb": round(floor_rss, 1),
           "ratio_floor": round(plan_s / floor_s, 3), "apply_seconds": round(apply_s, 3),
           "apply_rss_mb": round(apply_rss, 1), "plan_summary": plan_tail.splitlines()[-1],
           "octodns_seconds": None, "octodns_rss_mb": None, "ratio_octodns": None}
    if octodns:
        octo_s, octo_rss, _ = got["octodns"]
        row.update(octodns_seconds=round(octo_s, 3), octodns_rss_mb=round(octo_rss, 1),
                   ratio_octodns=round(plan_s / octo_s, 3))
        shutil.rmtree(octo_dir)
    shutil.rmtree(directory)
    return row


def _goal(text: str, ok: bool) -> str:
    return f"{text}: {'ok' if ok else 'MISSED'}"


def report(rows: list[dict]) -> None:
    print(f"{'accounts':>9} {'plan s':>8} {'RSS MB':>7} {'floor s':>8} {'/floor':>7} "
          f"{'octoDNS s':>10} {'octo MB':>8} {'/octo':>6} {'apply s':>8} {'apply MB':>9}")
    for r in rows:
        octo = (f"{r['octodns_seconds']:>10.3f} {r['octodns_rss_mb']:>8.1f} "
                f"{r['ratio_octodns']:>6.2f}" if r["octodns_seconds"] is not None
                else f"{'-':>10} {'-':>8} {'-':>6}")
        print(f"{r['n']:>9} {r['seconds']:>8.3f} {r['peak_rss_mb']:>7.1f} "
              f"{r['floor_seconds']:>8.3f} {r['ratio_floor']:>7.2f} {octo} "
              f"{r['apply_seconds']:>8.3f} {r['apply_rss_mb']:>9.1f}")
    by_n = {r["n"]: r for r in rows}
    key = by_n.get(10000) or rows[-1]
    goals = [_goal(f"ratio_floor {key['ratio_floor']:.2f} <= {GOALS['ratio_floor']}",
                   key["ratio_floor"] <= GOALS["ratio_floor"]),
             _goal(f"peak RSS {key['peak_rss_mb']:.0f} MB <= {GOALS['peak_rss_mb']:.0f} MB",
                   key["peak_rss_mb"] <= GOALS["peak_rss_mb"]),
             _goal(f"apply {key['apply_seconds']:.2f}s <= {GOALS['apply_over_plan']:.0f}x plan",
                   key["apply_seconds"] <= GOALS["apply_over_plan"] * key["seconds"])]
    if key["ratio_octodns"] is not None:
        goals.append(_goal(f"ratio_octodns {key['ratio_octodns']:.2f} <= "
                           f"{GOALS['ratio_octodns']}",
                           key["ratio_octodns"] <= GOALS["ratio_octodns"]))
    if 10000 in by_n and 100000 in by_n:
        scale = by_n[100000]["seconds"] / by_n[10000]["seconds"]
        goals.append(_goal(f"100k / 10k = {scale:.1f}x <= {GOALS['scale']:.0f}x",
                           scale <= GOALS["scale"]))
    print(f"plan output at n={key['n']}: {key['plan_summary']}")
    print("goals: " + "; ".join(goals))
    print("RESULT " + json.dumps({
        "bench": "plan", "n": key["n"], "seconds": key["seconds"],
        "floor_seconds": key["floor_seconds"], "ratio_floor": key["ratio_floor"],
        "octodns_seconds": key["octodns_seconds"], "ratio_octodns": key["ratio_octodns"],
        "peak_rss_mb": key["peak_rss_mb"], "apply_seconds": key["apply_seconds"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="comma-separated account counts (default 1000,10000,100000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs per size below 100,000 (best kept); default 3")
    parser.add_argument("--no-octodns", action="store_true", help="skip the octoDNS peer")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mailform-plan-bench-") as workdir:
        for n in sizes:
            rows.append(measure(workdir, n, args.repeat if n < 100000 else 1,
                                not args.no_octodns))
            r = rows[-1]
            print(f"  measured n={n}: plan {r['seconds']}s, floor {r['floor_seconds']}s, "
                  f"octoDNS {r['octodns_seconds']}s, apply {r['apply_seconds']}s",
                  file=sys.stderr, flush=True)
    report(rows)


if __name__ == "__main__":
    main()
