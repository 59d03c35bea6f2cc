#!/usr/bin/env python3
"""Benchmark: the plan's field comparison by deepdiff vs by hand (issue 8, item 8).

``reconciler.diff.compare`` lets DeepDiff find the changed fields inside the
top-level sections of a record that plain equality found different (plan only
compares an account whose record already differs; drift likewise). The
hand-written comparison it replaced is kept here, as ``handwritten_compare``,
so that the two can be measured on the same inputs:

1. equivalence: both return exactly the same (changes, unchanged) on the
   benchmark's changed records and on a few thousand random record pairs
   (lists are leaves, a missing key equals None, ignore_changes prefixes,
   secrets by fingerprint, a mapping replaced by a scalar and back);
2. in-process: CPU time per changed account of each function;
3. end to end: `mailform plan` of ``bench/plan_scale.py``'s manifests (10,000
   accounts, 1% changed, against a SQLite registry they were applied to), run
   as a child process through a small launcher that either leaves ``compare``
   as it is ("deepdiff") or swaps in ``handwritten_compare`` before the CLI is
   imported ("hand"). Runs alternate (hand, deepdiff, hand, ...) so that load
   from other processes hits both alike; the figure is the child's CPU time
   (user + system, from os.wait4), best of --repeat runs of each, and the two
   variants' plan output must be identical.

The acceptance bar is ``deepdiff / hand <= 1.05`` on the end-to-end CPU time.

    .venv/bin/python bench/deepdiff_compare.py                 # 10,000 accounts, 7 runs each
    .venv/bin/python bench/deepdiff_compare.py --n 2000 --repeat 5
    .venv/bin/python bench/deepdiff_compare.py --tree /tmp/snapshot   # time another checkout

The last line is ``RESULT {...}``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Iterable, Mapping, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [ROOT, BENCH]

import plan_scale  # noqa: E402  (bench/plan_scale.py: the manifests and the registry)
from reconciler.diff import Change, compare, flatten, is_ignored  # noqa: E402

BAR = 1.05


# --- the hand-written comparison that deepdiff replaced ------------------------------

def handwritten_compare(before: Optional[Mapping], after: Optional[Mapping],
                        before_fps: Mapping[str, str], after_fps: Mapping[str, str],
                        ignore: Iterable[str] = ()) -> tuple[list[Change], int]:
    """``reconciler.diff.compare`` before deepdiff: flatten both records, compare leaves."""
    flat_b = flatten(before or {})
    flat_a = flatten(after or {})
    changes: list[Change] = []
    unchanged = 0
    for path in sorted(flat_b.keys() | flat_a.keys()):
        old, new = flat_b.get(path), flat_a.get(path)
        if is_ignored(path, ignore):
            continue
        if old == new:
            unchanged += old is not None
        else:
            changes.append(Change(path, old, new))
    for path in sorted(before_fps.keys() | after_fps.keys()):
        if is_ignored(path, ignore):
            continue
        old, new = before_fps.get(path), after_fps.get(path)
        if old == new:
            unchanged += 1
        else:
            changes.append(Change(path, old, new, sensitive=True))
    changes.sort(key=lambda c: c.path)
    return changes, unchanged


# --- equivalence --------------------------------------------------------------------

def _random_value(rng: random.Random, depth: int) -> Any:
    pick = rng.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False, 0, 1, 1.0])
    if pick == 2:
        return rng.choice(["a", "b", "ü", "a.b"])
    if pick == 3:
        return rng.randrange(4)
    if pick in (4, 5):
        return [rng.choice([1, "x", None, True]) for _ in range(rng.randrange(3))]
    return _random_record(rng, depth + 1)


def _random_record(rng: random.Random, depth: int = 0) -> dict:
    return {k: _random_value(rng, depth) for k in rng.sample(["a", "b", "c", "d.e", "f"],
                                                             rng.randrange(5))}


def _mutate(rng: random.Random, record: Any, depth: int = 0) -> Any:
    if depth and (not isinstance(record, dict) or rng.random() < 0.2):
        return _random_value(rng, depth) if rng.random() < 0.5 else record
    out = dict(record)
    for key in list(out):
        if rng.random() < 0.3:
            out[key] = _mutate(rng, out[key], depth + 1)
        elif rng.random() < 0.1:
            del out[key]
    if rng.random() < 0.2:
        out[rng.choice(["a", "g", "h"])] = _random_value(rng, depth)
    return out


def check_equivalence(pairs: list[tuple], randoms: int = 3000) -> int:
    """Both functions on the benchmark's pairs and on random pairs; returns the count."""
    rng = random.Random(8)
    cases = list(pairs)
    for _ in range(randoms):
        before = _random_record(rng)
        after = _mutate(rng, before)
        ignore = rng.sample(["a", "b.c", "c", "d.e", "f.a", "smtp.password"], rng.randrange(3))
        fps_b = rng.choice([{}, {"smtp.password": "x"}])
        fps_a = rng.choice([{}, {"smtp.password": "x"}, {"smtp.password": "y"}])
        cases.append((before, after, fps_b, fps_a, ignore))
    for case in cases:
        want, got = handwritten_compare(*case), compare(*case)
        if want != got:
            raise SystemExit(f"compare differs on {case!r}:\n  hand {want}\n  dd   {got}")
    return len(cases)


# --- in-process timing --------------------------------------------------------------

def benchmark_pairs(n: int) -> list[tuple]:
    """(stored, desired) record pairs of every account that changes in the benchmark."""
    import yaml
    from reconciler.diff import record_of
    from reconciler.model import EmailAccount
    pairs = []
    for i in range(7, n, plan_scale.CHANGE_EVERY):
        old, new = (EmailAccount.model_validate(yaml.safe_load(plan_scale.account(i, changed)))
                    for changed in (False, True))
        fps = {"smtp.password": "hmac-sha256:x"} if old.spec.smtp else {}
        pairs.append((record_of(old), record_of(new), fps, dict(fps),
                      old.spec.lifecycle.ignore_changes))
    return pairs


def time_functions(pairs: list[tuple], rounds: int) -> dict[str, float]:
    """Best CPU seconds per call of each function over ``rounds`` interleaved rounds."""
    best = {"hand": float("inf"), "deepdiff": float("inf")}
    compare(*pairs[0])          # the import of deepdiff, outside the timing
    for _ in range(rounds):
        for name, fn in (("hand", handwritten_compare), ("deepdiff", compare)):
            start = time.process_time()
            for case in pairs:
                fn(*case)
            best[name] = min(best[name], (time.process_time() - start) / len(pairs))
    return best


# --- end to end ---------------------------------------------------------------------

LAUNCHER = r"""
import sys
mode, bench = sys.argv.pop(1), sys.argv.pop(1)
import reconciler.diff                # first, so that the package comes from PYTHONPATH
sys.path.insert(0, bench)             # both modes import this script: the same cost
from deepdiff_compare import handwritten_compare
if mode == "hand":                    # before anything did `from .diff import compare`
    reconciler.diff.compare = handwritten_compare
from reconciler.cli import main
main(sys.argv[1:])
"""


def cpu_run(argv: list[str], env: dict, cwd: str) -> tuple[float, int, list[str]]:
    """(child CPU seconds, exit code, output lines)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        lines = out.read().decode(errors="replace").strip().splitlines()
    return usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status), lines


def end_to_end(workdir: str, n: int, repeat: int, tree: str) -> dict:
    manifests, db = os.path.join(workdir, "manifests"), os.path.join(workdir, "registry.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFORM_")}
    env.update({f"BENCH_SMTP_PASSWORD_{k}": f"secret-{k}" for k in range(plan_scale.SECRET_VARS)})
    env.update({"MAILFORM_REGISTRY": f"sqlite:///{db}", "NO_COLOR": "1", "PYTHONPATH": tree})
    plan_scale.generate(manifests, n, with_changes=False)
    _, code, out = cpu_run([sys.executable, "-m", "reconciler", "apply", "--auto-approve",
                            "--skip-verify", manifests], env, workdir)
    if code != 0:
        raise SystemExit(f"apply failed (exit {code}): {out[-3:]}")
    shutil.rmtree(manifests)
    plan_scale.generate(manifests, n, with_changes=True)
    runs: dict[str, list[float]] = {"hand": [], "deepdiff": []}
    outputs = {}
    for _ in range(repeat):
        for mode in runs:
            cpu, code, out = cpu_run([sys.executable, "-c", LAUNCHER, mode, BENCH, "plan",
                                      manifests], env, workdir)
            if code not in (0, 2):           # 2: changes present (detailed exit code)
                raise SystemExit(f"plan ({mode}) failed (exit {code}): {out[-3:]}")
            runs[mode].append(cpu)
            outputs[mode] = out
    if outputs["hand"] != outputs["deepdiff"]:
        raise SystemExit("the plan's output differs between hand and deepdiff")
    return {"runs": runs, "summary": outputs["hand"][-1] if outputs["hand"] else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="accounts (default 10,000)")
    parser.add_argument("--repeat", type=int, default=7,
                        help="interleaved plan runs of each variant (default 7, at least 5)")
    parser.add_argument("--tree", default=ROOT,
                        help="the checkout whose `mailform plan` is timed (default: this one); "
                             "e.g. an unpacked `git archive HEAD` while the work tree is in flux")
    args = parser.parse_args()
    pairs = benchmark_pairs(args.n)
    checked = check_equivalence(pairs)
    per_call = time_functions(pairs, rounds=20)
    print(f"equivalent on {checked} record pairs ({len(pairs)} from the benchmark)")
    print(f"per changed account, CPU: hand {per_call['hand'] * 1e6:.0f} us, "
          f"deepdiff {per_call['deepdiff'] * 1e6:.0f} us "
          f"({per_call['deepdiff'] / per_call['hand']:.1f}x)")
    with tempfile.TemporaryDirectory(prefix="mailform-deepdiff-bench-") as workdir:
        e2e = end_to_end(workdir, args.n, max(args.repeat, 5), os.path.abspath(args.tree))
    hand, dd = min(e2e["runs"]["hand"]), min(e2e["runs"]["deepdiff"])
    ratio = dd / hand
    median = statistics.median(e2e["runs"]["deepdiff"]) / statistics.median(e2e["runs"]["hand"])
    for mode, cpus in e2e["runs"].items():
        print(f"plan CPU s ({mode:8}): " + " ".join(f"{c:.3f}" for c in cpus))
    print(f"plan output: {e2e['summary']}")
    print(f"best plan CPU at n={args.n}: hand {hand:.3f}s, deepdiff {dd:.3f}s, "
          f"ratio {ratio:.3f} ({'within' if ratio <= BAR else 'over'} the {BAR} bar); "
          f"ratio of the medians {median:.3f}")
    print("RESULT " + json.dumps({
        "bench": "deepdiff_compare", "n": args.n, "runs": len(e2e["runs"]["hand"]),
        "hand_cpu_s": round(hand, 3), "deepdiff_cpu_s": round(dd, 3), "ratio": round(ratio, 3),
        "median_ratio": round(median, 3),
        "per_call_us": {k: round(v * 1e6, 1) for k, v in per_call.items()},
        "within_bar": ratio <= BAR}))


if __name__ == "__main__":
    main()
