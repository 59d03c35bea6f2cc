#!/usr/bin/env python3
"""Benchmark: `mailform validate` at scale against a floor (issue 2, Performance).

Generates 1,000 / 10,000 / 100,000 accounts (one file per 100 accounts) under a
temporary directory, runs `mailform validate` as a whole process, and measures
in the same run a floor: the same files parsed by libyaml (PyYAML's
CSafeLoader) plus pydantic validation of the loaded data with our models, in
one process, also run as a subprocess (so both pay interpreter start-up).

Wall time is the best of --repeat runs; peak RSS and CPU time are per child
(os.wait4). CPU time is shown beside wall time because on a shared machine wall
time at 100,000 suffers most from other load (compare the floor's own scaling).
The last line is `RESULT {...}` for n = 10,000 (or the largest size run).

    .venv/bin/python bench/validate_scale.py                 # 1k, 10k, 100k
    .venv/bin/python bench/validate_scale.py --sizes 1000,10000
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
PER_FILE = 100
GOAL_RATIO, GOAL_SCALE, GOAL_RSS_MB = 1.5, 12.0, 250.0

FLOOR = r"""
import os, sys, yaml
from reconciler.model import MODELS
loader = yaml.CSafeLoader
count = 0
for dirpath, _, names in os.walk(sys.argv[1]):
    for name in sorted(names):
        with open(os.path.join(dirpath, name), encoding="utf-8") as handle:
            for doc in yaml.load_all(handle.read(), Loader=loader):
                MODELS[doc["kind"]].model_validate(doc)
                count += 1
print(count, "documents")
"""


def account(i: int) -> str:
    """One account document; three shapes in turn so that every model is exercised."""
    name = f"acct-{i:06d}"
    head = (f"apiVersion: mailform/v1\nkind: EmailAccount\nmetadata:\n  name: {name}\n"
            f"  labels: {{team: team-{i % 17}, tier: \"{i % 3}\"}}\nspec:\n")
    shape = i % 3
    if shape == 0:
        return head + (
            f"  type: marketing\n  email: news{i}@example.com\n  display_name: News {i}\n"
            f"  reply_to:\n    email: replies{i}@example.com\n    name: Replies {i}\n"
            "  from_override:\n    email_detail: manager_email\n    name_detail: manager_name\n"
            "  shared: true\n")
    smtp = (f"  smtp:\n    host: smtp{i % 50}.example.com\n    port: 587\n    security: starttls\n"
            f"    username: user{i}\n    password: {{env: SMTP_PASSWORD_{i}}}\n")
    if shape == 1:
        return head + (f"  type: smtp\n  email: sales{i}@example.com\n  display_name: Sales {i}\n"
                       + smtp + f"  owner: owner{i % 40}@example.com\n"
                       "  lifecycle:\n    ignore_changes: [display_name, reply_to.name]\n")
    return head + (f"  type: smtp\n  email: support{i}@example.com\n  display_name: Support {i}\n"
                   + smtp + "  shared: true\n  proxy: true\n"
                   f"  inbox:\n    protocol: imap\n    host: imap{i % 50}.example.com\n"
                   "    port: 993\n    security: ssl\n    batch_size: 200\n    delete_bounces: false\n")


def generate(directory: str, n: int) -> None:
    os.makedirs(directory, exist_ok=True)
    for start in range(0, n, PER_FILE):
        sub = os.path.join(directory, f"group-{start // 10000:03d}")
        os.makedirs(sub, exist_ok=True)
        docs = [account(i) for i in range(start, min(start + PER_FILE, n))]
        with open(os.path.join(sub, f"accounts-{start // PER_FILE:05d}.yaml"), "w",
                  encoding="utf-8") as handle:
            handle.write("---\n".join(docs))


def run(argv: list[str]) -> tuple[float, float, int, str, float]:
    """(wall s, peak RSS MB, exit code, last output line, CPU s) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = output.decode(errors="replace").strip().splitlines()
    cpu = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss / 1024.0, proc.returncode, lines[-1] if lines else "", cpu


def best(argv: list[str], repeat: int) -> tuple[float, float, int, str, float]:
    results = [run(argv) for _ in range(repeat)]
    wall = min(r[0] for r in results)
    rss = max(r[1] for r in results)
    return wall, rss, results[-1][2], results[-1][3], min(r[4] for r in results)


def measure(workdir: str, n: int, repeat: int) -> dict:
    directory = os.path.join(workdir, f"n{n}")
    generate(directory, n)
    python = sys.executable
    wall, rss, code, last, cpu = best([python, "-m", "reconciler", "validate", directory], repeat)
    if code != 0:
        raise SystemExit(f"validate failed on {n} accounts (exit {code}): {last}")
    floor, floor_rss, fcode, flast, floor_cpu = best([python, "-c", FLOOR, directory], repeat)
    if fcode != 0:
        raise SystemExit(f"floor failed on {n} accounts (exit {fcode}): {flast}")
    shutil.rmtree(directory)
    return {"n": n, "seconds": round(wall, 3), "floor_seconds": round(floor, 3),
            "ratio": round(wall / floor, 3), "peak_rss_mb": round(rss, 1),
            "floor_rss_mb": round(floor_rss, 1), "summary": last,
            "cpu": round(cpu, 3), "floor_cpu": round(floor_cpu, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000",
                        help="comma-separated account counts (default 1000,10000,100000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per size below 100,000 (best wall time kept); default 3")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mailform-bench-") as workdir:
        for n in sizes:
            rows.append(measure(workdir, n, args.repeat if n < 100000 else 1))
            row = rows[-1]
            print(f"  measured n={n}: {row['seconds']}s (floor {row['floor_seconds']}s)",
                  file=sys.stderr, flush=True)
    print(f"{'accounts':>9} {'validate s':>11} {'floor s':>9} {'ratio':>6} "
          f"{'peak RSS MB':>12} {'floor RSS MB':>13} {'CPU s':>8} {'floor CPU s':>12}")
    for row in rows:
        print(f"{row['n']:>9} {row['seconds']:>11.3f} {row['floor_seconds']:>9.3f} "
              f"{row['ratio']:>6.2f} {row['peak_rss_mb']:>12.1f} {row['floor_rss_mb']:>13.1f} "
              f"{row['cpu']:>8.2f} {row['floor_cpu']:>12.2f}")
    by_n = {row["n"]: row for row in rows}
    key = by_n.get(10000) or rows[-1]
    goals = [f"ratio {key['ratio']:.2f} <= {GOAL_RATIO}: "
             f"{'ok' if key['ratio'] <= GOAL_RATIO else 'MISSED'}",
             f"peak RSS {key['peak_rss_mb']:.0f} MB <= {GOAL_RSS_MB:.0f} MB: "
             f"{'ok' if key['peak_rss_mb'] <= GOAL_RSS_MB else 'MISSED'}"]
    if 10000 in by_n and 100000 in by_n:
        scale = by_n[100000]["seconds"] / by_n[10000]["seconds"]
        cpu_scale = by_n[100000]["cpu"] / by_n[10000]["cpu"]
        floor_scale = by_n[100000]["floor_seconds"] / by_n[10000]["floor_seconds"]
        goals.append(f"100k / 10k = {scale:.1f}x <= {GOAL_SCALE:.0f}x: "
                     f"{'ok' if scale <= GOAL_SCALE else 'MISSED'} (CPU time {cpu_scale:.1f}x; "
                     f"the floor's wall time {floor_scale:.1f}x — far above 10x means a busy machine)")
    print("goals: " + "; ".join(goals))
    print("RESULT " + json.dumps({"bench": "validate", "n": key["n"], "seconds": key["seconds"],
                                  "floor_seconds": key["floor_seconds"], "ratio": key["ratio"],
                                  "peak_rss_mb": key["peak_rss_mb"]}))


if __name__ == "__main__":
    main()
