#!/usr/bin/env python3
"""Benchmark: bounce classification throughput and memory against flufl.bounce (issue 5).

Since issue 11 every verdict carries reasons (reconciler/bounces/reasons.py); the goal
stays ``GOAL_RATIO`` times flufl.bounce's messages per second on the same files.

The project's corpus (tests/bounces/*.eml) is repeated to 2,000 and 10,000
messages. Each classifier runs as a whole process (interpreter start-up and
imports included) over the same list of files, reading each file and
classifying it:

* mailform: ``reconciler.bounces.classify.classify(raw)``;
* flufl.bounce (PyPI, in its own venv at bench/.venv-bounces, created on
  first use): ``email.message_from_bytes(raw)`` then ``scan_message(msg)``
  and ``all_failures(msg)``.

Wall time is the best of --repeat runs; peak RSS is per child (os.wait4), so
memory flatness shows as the same peak at 2,000 and 10,000 messages. The last
line is ``RESULT {...}`` for 10,000 messages.

    .venv/bin/python bench/bounces.py
    .venv/bin/python bench/bounces.py --repeat 5 --sizes 2000,10000
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import venv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "bounces")
FLUFL_VENV = os.path.join(ROOT, "bench", ".venv-bounces")
GOAL_RATIO = 3.0

MAILFORM = r"""
import sys
sys.path.insert(0, sys.argv[2])
from reconciler.bounces.classify import classify
count = bounces = recipients = 0
with open(sys.argv[1], encoding="utf-8") as listing:
    for line in listing:
        with open(line.rstrip("\n"), "rb") as handle:
            verdict = classify(handle.read())
        count += 1
        bounces += verdict.bounce
        recipients += len(verdict.recipients)
print(count, bounces, recipients, 0)
"""

FLUFL = r"""
import email, logging, sys
from flufl.bounce import all_failures, scan_message
logging.disable(logging.CRITICAL)
count = bounces = recipients = errors = 0
with open(sys.argv[1], encoding="utf-8") as listing:
    for line in listing:
        with open(line.rstrip("\n"), "rb") as handle:
            msg = email.message_from_bytes(handle.read())
        count += 1
        try:  # flufl.bounce raises on some malformed messages; a scan loop must go on
            permanent = scan_message(msg)
            temporary, failed = all_failures(msg)
        except Exception:
            errors += 1
            continue
        found = set(permanent) | set(temporary) | set(failed)
        bounces += bool(found)
        recipients += len(found)
print(count, bounces, recipients, errors)
"""


def flufl_python() -> str:
    """The bench venv's interpreter, with flufl.bounce installed on first use."""
    python = os.path.join(FLUFL_VENV, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {os.path.relpath(FLUFL_VENV, ROOT)} with flufl.bounce ...", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(FLUFL_VENV)
    probe = subprocess.run([python, "-c", "import flufl.bounce"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "flufl.bounce"], check=True)
    return python


def write_listing(directory: str, count: int) -> str:
    """A file naming the corpus files, repeated in order up to `count` lines."""
    files = sorted(glob.glob(os.path.join(CORPUS, "*.eml")))
    if not files:
        raise SystemExit(f"no corpus under {CORPUS}")
    path = os.path.join(directory, f"messages-{count}.txt")
    with open(path, "w", encoding="utf-8") as listing:
        listing.writelines(files[i % len(files)] + "\n" for i in range(count))
    return path


def run_once(python: str, code: str, listing: str) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout) of one whole-process run, RSS from os.wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen([python, "-c", code, listing, ROOT], stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode:
            raise SystemExit(f"{python} failed:\n{err.read().decode(errors='replace')[-2000:]}")
        return wall, usage.ru_maxrss / 1024, out.read().decode().strip()


def summarise(runs: list[tuple[float, float, str]]) -> dict:
    wall = min(r[0] for r in runs)
    count, bounces, recipients, errors = (int(x) for x in runs[0][2].split())
    return {"seconds": wall, "per_second": count / wall, "rss_mb": max(r[1] for r in runs),
            "messages": count, "bounces": bounces, "recipients": recipients, "errors": errors}


def measure_pair(ours: str, theirs: str, listing: str, repeat: int) -> tuple[dict, dict]:
    """Both classifiers, runs interleaved so that a busy machine hurts both alike."""
    mine, flufl = [], []
    for _ in range(repeat):
        mine.append(run_once(ours, MAILFORM, listing))
        flufl.append(run_once(theirs, FLUFL, listing))
    return summarise(mine), summarise(flufl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="2000,10000", help="message counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best time)")
    args = parser.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    ours, theirs = sys.executable, flufl_python()
    corpus = len(glob.glob(os.path.join(CORPUS, "*.eml")))
    rows = []
    with tempfile.TemporaryDirectory(prefix="mailform-bounces-bench-") as tmp:
        for size in sizes:
            listing = write_listing(tmp, size)
            rows.append((size, *measure_pair(ours, theirs, listing, args.repeat)))
    print(f"corpus: {corpus} messages, repeated; best of {args.repeat} runs; whole process each")
    print(f"{'messages':>9}  {'classifier':<13}{'seconds':>8}{'msg/s':>10}{'peak RSS MiB':>14}"
          f"{'bounces':>9}{'recipients':>12}{'errors':>8}")
    for size, mine, flufl in rows:
        for name, m in (("mailform", mine), ("flufl.bounce", flufl)):
            print(f"{size:>9}  {name:<13}{m['seconds']:>8.2f}{m['per_second']:>10.0f}{m['rss_mb']:>14.1f}"
                  f"{m['bounces']:>9}{m['recipients']:>12}{m['errors']:>8}")
    size, mine, flufl = rows[-1]
    ratio = mine["per_second"] / flufl["per_second"]
    small = rows[0][1]["rss_mb"]
    print(f"ratio at {size}: {ratio:.2f}x (goal >= {GOAL_RATIO:g}x); mailform peak RSS "
          f"{small:.1f} MiB at {rows[0][0]} vs {mine['rss_mb']:.1f} MiB at {size} messages")
    print("RESULT " + json.dumps({"bench": "bounces", "messages": size,
                                  "per_second": round(mine["per_second"], 1),
                                  "flufl_per_second": round(flufl["per_second"], 1),
                                  "ratio": round(ratio, 2), "peak_rss_mb": round(mine["rss_mb"], 1)}))


if __name__ == "__main__":
    main()
