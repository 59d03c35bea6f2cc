"""Memory stays lean as accounts grow: peak RSS of whole `mailform` processes (os.wait4)
under generous caps, and the growth from 1,000 to 3,000 accounts per account bounded.
Precise figures come from bench/scale_100k.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clihelpers import ROOT, dump, marketing_account, smtp_account

PER_ACCOUNT_KB = {"validate": 6, "plan": 12, "apply": 40}   # at 100,000: 0.6 / 1.2 / 4 GB


def _write(folder: Path, count: int) -> None:
    for start in range(0, count, 100):
        docs = [smtp_account(f"s{i:05d}", password_env="SCALE_PASSWORD",
                             labels={"team": f"t{i % 7}"}) if i % 2 else
                marketing_account(f"m{i:05d}") for i in range(start, start + 100)]
        (folder / f"f{start // 100:03d}.yaml").write_text(dump(docs))


# The command is started by a small launcher: a process forked straight from this one
# (a pytest worker of some hundreds of MB) would count this process's memory in its own
# ru_maxrss (Linux keeps the high-water mark of the memory it had before its exec).
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
sys.stderr.write(proc.stderr.read().decode(errors="replace"))
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def _peak_kb(args: list[str], cwd: Path) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILFORM_")}
    env.update({"SCALE_PASSWORD": "pw", "PYTHONPATH": str(ROOT), "NO_COLOR": "1",
                "MAILFORM_REGISTRY": f"sqlite:///{cwd}/reg.db", "MAILFORM_JOBS": "1"})
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "reconciler",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    code, peak = (int(word) for word in done.stdout.split())
    assert code == 0, done.stderr
    return peak


def _peaks(tmp_path: Path, count: int) -> dict[str, int]:
    work = tmp_path / str(count)
    (work / "m").mkdir(parents=True)
    _write(work / "m", count)
    return {"validate": _peak_kb(["validate", "m"], work),
            "apply": _peak_kb(["apply", "--auto-approve", "--skip-verify", "m"], work),
            "plan": _peak_kb(["plan", "--no-cache", "m"], work)}


def test_peak_memory_grows_little_per_account(tmp_path):
    small, large = _peaks(tmp_path, 1000), _peaks(tmp_path, 3000)
    for command, budget in PER_ACCOUNT_KB.items():
        grown = (large[command] - small[command]) / 2000
        print(command, small[command], large[command], f"{grown:.1f} KB per account")
        assert grown <= budget, f"{command}: {grown:.1f} KB per account"
        assert large[command] < 400 * 1024, command
