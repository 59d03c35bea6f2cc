"""`mailform reconcile --once`: plan, report drift, apply when asked; terminal vs transient."""
import json
import os
import subprocess
import sys
from pathlib import Path

import clihelpers

ROOT = Path(__file__).resolve().parent.parent

ACCOUNT = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {name: news}
spec:
  type: marketing
  email: news@example.com
  display_name: News
  shared: true
"""


def run(tmp_path, *args):
    env = dict(os.environ, MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/reg.db", NO_COLOR="1")
    env.pop("MAILFORM_MASTER_KEY", None)
    return clihelpers.mailform("reconcile", str(tmp_path / "m"), *args, env=env, cwd=ROOT)


def test_once_reports_then_applies_then_in_sync(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(ACCOUNT)
    pending = run(tmp_path, "--once", "--detailed-exitcode")
    assert pending.returncode == 2 and "reconcile changes +1" in pending.stdout
    applied = run(tmp_path, "--once", "--auto-apply", "--format", "json")
    assert applied.returncode == 0
    assert json.loads(applied.stdout)["result"] == "applied"
    again = run(tmp_path, "--once", "--auto-apply", "--format", "json")
    assert json.loads(again.stdout)["result"] == "in_sync"


def test_invalid_manifest_is_a_terminal_error(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(ACCOUNT.replace("shared: true", "shared: maybe"))
    proc = run(tmp_path, "--once")
    assert proc.returncode == 1 and "manifest error" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_loop_stops_on_sigterm(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(ACCOUNT)
    env = dict(os.environ, MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/reg.db", NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "reconcile", str(tmp_path / "m"),
                             "--interval", "0.1", "--auto-apply"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "reconcile applied +1" in first
        second = proc.stdout.readline()
        assert "reconcile in_sync" in second
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode == 0
