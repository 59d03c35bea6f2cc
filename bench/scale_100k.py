#!/usr/bin/env python3
"""Benchmark: 100,000 accounts — memory, incremental plans, apply and validate (issue 16).

Under a temporary directory, with the generators of bench/plan_scale.py (plan, apply) and
bench/validate_scale.py (validate, and its libyaml+pydantic floor):

at N (default 100,000), every command a whole child process (peak RSS from os.wait4):
1. apply of N creates into a fresh SQLite registry (``apply_seconds``, ``apply_rss_mb``);
2. cold plan: the same manifests, no cache in ``.mailform/`` (``plan_seconds``, ``plan_rss_mb``);
3. warm plan: 1% of the files changed (one account each), the cache the cold plan left
   (``warm_plan_seconds``; ``warm_ratio`` = warm / cold);
4. cold validate of N accounts (``validate_rss_mb``);

at 10,000, the existing ratios, best of --repeat runs interleaved:
5. apply of 10,000 creates over the plan of the same manifests with 1% of the accounts
   changed, as bench/plan_scale.py measures them (``apply_over_plan_10k``);
6. cold validate over the libyaml+pydantic floor, as bench/validate_scale.py measures it
   (``validate_ratio_floor_10k``).

Every child (the floor too) runs a copy of ``reconciler`` with its modules compiled, as
installed (``scan_inbox.source_copy``; ``--no-bytecode``: compiled at every start, as a
process started with PYTHONDONTWRITEBYTECODE=1 and no bytecode does).

    .venv/bin/python bench/scale_100k.py                 # n = 100,000 (a few minutes)
    .venv/bin/python bench/scale_100k.py --n 20000       # a quicker look
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
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plan_scale  # noqa: E402  (the generators are shared)
import validate_scale  # noqa: E402
from scan_inbox import source_copy  # noqa: E402  (the compiled copy the benches run)

GOALS = {"plan_rss_mb": 400.0, "apply_rss_mb": 600.0, "validate_rss_mb": 300.0,
         "warm_ratio": 0.25, "apply_over_plan_10k": 1.5, "validate_ratio_floor_10k": 0.7}
FILES_CHANGED_EVERY = 100     # 1% of the files: one account changed in each
SOURCE = plan_scale.ROOT      # the tree whose `reconciler` the children run (main: a copy)


def bench_env(db: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFORM_")}
    env.update({f"BENCH_SMTP_PASSWORD_{k}": f"secret-{k}" for k in range(plan_scale.SECRET_VARS)})
    env.update({"MAILFORM_REGISTRY": f"sqlite:///{db}", "NO_COLOR": "1",
                "PYTHONPATH": SOURCE})
    return env


def mailform(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler", *args]


CPU: dict[str, list[float]] = {}       # what -> CPU seconds of each run (user + system)


def timed(argv: list[str], env: dict, cwd: str, what: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child process; its CPU time is noted in CPU
    (on a shared machine wall time suffers from others' load; CPU time much less)."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        tail = out.read()[-2000:].decode(errors="replace")
    if code not in (0, 2):
        raise SystemExit(f"{what} failed (exit {code}):\n{tail}")
    cpu, rss = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0
    CPU.setdefault(what, []).append(cpu)
    print(f"  {what}: {wall:.2f}s ({cpu:.2f}s CPU), {rss:.0f} MB", file=sys.stderr, flush=True)
    return wall, rss


def change_files(manifests: str, n: int) -> int:
    """Rewrite 1% of the files with one account changed in each; how many files."""
    per = plan_scale.PER_FILE
    changed = 0
    for index, start in enumerate(range(0, n, per)):
        if index % FILES_CHANGED_EVERY:
            continue
        docs = [plan_scale.account(i, i == start) for i in range(start, min(start + per, n))]
        path = os.path.join(manifests, f"group-{start // 10000:03d}",
                            f"accounts-{index:05d}.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("---\n".join(docs))
        changed += 1
    return changed


def at_scale(workdir: str, n: int) -> dict:
    directory = os.path.join(workdir, f"n{n}")
    manifests = os.path.join(directory, "manifests")
    env = bench_env(os.path.join(directory, "registry.db"))
    plan_scale.generate(manifests, n, with_changes=False)
    apply_s, apply_rss = timed(mailform("apply", "--auto-approve", "--skip-verify", manifests),
                               env, directory, f"apply of {n} creates")
    shutil.rmtree(os.path.join(directory, ".mailform"), ignore_errors=True)
    plan_s, plan_rss = timed(mailform("plan", manifests), env, directory, f"cold plan at {n}")
    change_files(manifests, n)
    warm_s, warm_rss = timed(mailform("plan", manifests), env, directory,
                             f"warm plan at {n}, 1% of the files changed")
    validate_s, validate_rss = timed(mailform("validate", manifests), env, directory,
                                     f"validate at {n}")
    shutil.rmtree(directory)
    return {"plan_seconds": round(plan_s, 3), "plan_rss_mb": round(plan_rss, 1),
            "warm_plan_seconds": round(warm_s, 3), "warm_plan_rss_mb": round(warm_rss, 1),
            "apply_seconds": round(apply_s, 3), "apply_rss_mb": round(apply_rss, 1),
            "validate_seconds": round(validate_s, 3), "validate_rss_mb": round(validate_rss, 1),
            "warm_ratio": round(warm_s / plan_s, 3)}


def apply_over_plan(workdir: str, n: int, repeat: int) -> dict:
    """plan_scale's pair: apply of n creates, then plan with 1% of the accounts changed."""
    directory = os.path.join(workdir, f"ap{n}")
    manifests = os.path.join(directory, "manifests")
    env = bench_env(os.path.join(directory, "registry.db"))
    applies, plans = [], []
    for _ in range(repeat):
        shutil.rmtree(directory, ignore_errors=True)
        plan_scale.generate(manifests, n, with_changes=False)
        applies.append(timed(mailform("apply", "--auto-approve", "--skip-verify", manifests),
                             env, directory, f"apply of {n} creates")[0])
        shutil.rmtree(manifests)
        plan_scale.generate(manifests, n, with_changes=True)
        plans.append(timed(mailform("plan", "--no-cache", manifests), env, directory,
                           f"plan at {n}")[0])
    shutil.rmtree(directory)
    return {"apply_10k": round(min(applies), 3), "plan_10k": round(min(plans), 3),
            "apply_over_plan_10k": round(min(applies) / min(plans), 3)}


def validate_over_floor(workdir: str, n: int, repeat: int) -> dict:
    """validate_scale's pair: cold validate against libyaml + pydantic, interleaved."""
    directory = os.path.join(workdir, f"v{n}")
    validate_scale.generate(directory, n)
    ours, floor = [], []
    for _ in range(repeat):
        ours.append(timed(mailform("validate", directory), {**os.environ},
                          SOURCE, f"validate at {n}")[0])
        floor.append(timed([sys.executable, "-c", validate_scale.FLOOR, directory],
                           {**os.environ}, SOURCE, f"floor at {n}")[0])
    shutil.rmtree(directory)
    return {"validate_10k": round(min(ours), 3), "floor_10k": round(min(floor), 3),
            "validate_ratio_floor_10k": round(min(ours) / min(floor), 3)}


def cpu_ratios(n: int, small: int) -> str:
    """The ratios again from CPU time (best runs), for a machine others are using."""
    best = {what: min(runs) for what, runs in CPU.items()}
    pairs = [("warm/cold plan", f"warm plan at {n}, 1% of the files changed", f"cold plan at {n}"),
             (f"apply/plan at {small}", f"apply of {small} creates", f"plan at {small}"),
             (f"validate/floor at {small}", f"validate at {small}", f"floor at {small}")]
    return "; ".join(f"{name} {best[a] / best[b]:.3f}" for name, a, b in pairs
                     if a in best and b in best)


def report(row: dict, n: int) -> None:
    for key in ("plan_seconds", "plan_rss_mb", "warm_plan_seconds", "apply_seconds",
                "apply_rss_mb", "validate_seconds", "validate_rss_mb", "warm_ratio",
                "apply_10k", "plan_10k", "apply_over_plan_10k", "validate_10k", "floor_10k",
                "validate_ratio_floor_10k"):
        print(f"{key:>26}: {row[key]}")
    goals = [f"{key} {row[key]} <= {limit}: {'ok' if row[key] <= limit else 'MISSED'}"
             for key, limit in GOALS.items()]
    print("goals: " + "; ".join(goals))
    print("the same ratios from CPU time: " + cpu_ratios(n, row.get("small", 10000)))
    keys = ("plan_seconds", "plan_rss_mb", "warm_plan_seconds", "apply_seconds",
            "apply_rss_mb", "validate_rss_mb", "warm_ratio", "apply_over_plan_10k",
            "validate_ratio_floor_10k")
    print("RESULT " + json.dumps({"bench": "scale", "n": n, **{k: row[k] for k in keys}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100000, help="accounts (default 100,000)")
    parser.add_argument("--small", type=int, default=10000,
                        help="accounts for the ratios (default 10,000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each ratio's pair (best kept); default 3")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="the children compile every module at every start")
    args = parser.parse_args()
    global SOURCE
    with tempfile.TemporaryDirectory(prefix="mailform-scale-bench-") as workdir:
        SOURCE = str(source_copy(Path(workdir), Path(plan_scale.ROOT),
                                 compiled=not args.no_bytecode))
        row = at_scale(workdir, args.n)
        row.update(apply_over_plan(workdir, args.small, args.repeat))
        row.update(validate_over_floor(workdir, args.small, args.repeat))
        row["small"] = args.small
    report(row, args.n)


if __name__ == "__main__":
    main()
