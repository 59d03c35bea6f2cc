"""A few real `python -m reconciler` processes, end to end — everything else runs the CLI
in-process (clihelpers.Cli.run) — and checks that the in-process runs are faithful:
same results as a process, nothing left behind in the test process."""
from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys

import pytest

from clihelpers import ROOT, Cli, marketing_account, smtp_account

SECRETS = {"SUPPORT_SMTP_PASSWORD": "pw-support-1"}


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path / "work", env=SECRETS)
    c.write_accounts([smtp_account("support"), marketing_account("news")])
    return c


def test_version_in_a_process():
    proc = subprocess.run([sys.executable, "-m", "reconciler", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("mailform, version "), proc


def test_validate_plan_apply_plan_in_processes(cli):
    assert cli.run_subprocess("validate").code == 0
    planned = cli.run_subprocess("plan", "--detailed-exitcode")
    assert planned.code == 2 and "Plan: 2 to add" in planned.out, planned
    applied = cli.run_subprocess("apply", "--auto-approve", "--skip-verify")
    assert applied.code == 0 and "2 added" in applied.out, applied
    after = cli.run_subprocess("plan", "--detailed-exitcode")
    assert after.code == 0 and "No changes" in after.out, after
    assert (cli.dir / ".mailform" / "reg.db.key").stat().st_mode & 0o777 == 0o600


def test_apply_refuses_when_stdin_is_not_a_terminal_in_a_process(cli):
    piped = cli.run_subprocess("apply", "--skip-verify", input="yes\n")
    assert piped.code == 1 and "--auto-approve" in piped.err, piped
    proc = subprocess.run([sys.executable, "-m", "reconciler", "apply", "--skip-verify"],
                          cwd=cli.dir, env=cli.env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "--auto-approve" in proc.stderr, proc
    assert "0 account(s)" in cli.run("state", "list").out


def test_usage_error_in_a_process(cli):
    usage = cli.run_subprocess("nosuchcommand")
    assert usage.code == 64 and "No such command" in usage.err, usage
    assert "Traceback" not in usage.err


def _normalised(result, workdir):
    out, err = (t.replace(str(workdir), "<DIR>") for t in (result.out, result.err))
    if out.startswith("{"):                  # a JSON plan: its registry's lineage differs
        body = json.loads(out)
        for volatile in ("registry", "checksum"):
            body.pop(volatile, None)
        out = body
    return result.code, out, err


@pytest.mark.parametrize("args", [
    ("plan", "--detailed-exitcode"),
    ("plan", "--format", "json"),
    ("apply", "--skip-verify"),                        # stdin is no terminal: refused
    ("state", "show", "support", "--format", "json"),
    ("--help",),
], ids=" ".join)
def test_in_process_run_answers_like_a_process(tmp_path, args):
    """Two identical users, one run in-process, one as processes: same code, same output."""
    here, there = Cli(tmp_path / "a", env=SECRETS), Cli(tmp_path / "b", env=SECRETS)
    for c in (here, there):
        c.write_accounts([smtp_account("support"), marketing_account("news")])
        if args[0] == "state":
            assert c.apply().code == 0
    got = _normalised(here.run(*args), here.dir)
    want = _normalised(there.run_subprocess(*args), there.dir)
    assert got == want


def test_in_process_run_leaves_the_test_process_as_it_was(cli, monkeypatch):
    """A plan freezes the garbage collector, commands read os.environ and the cwd:
    none of that outlives the call; a MAILFORM_* variable of the test process does not
    reach the Cli's run (a fresh process would not see it either)."""
    monkeypatch.setenv("MAILFORM_MASTER_KEY", "not-a-key")
    monkeypatch.setenv("MAILFORM_REGISTRY", "sqlite:////nonexistent/elsewhere.db")
    cwd, environ = os.getcwd(), dict(os.environ)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    streams = (sys.stdin, sys.stdout, sys.stderr)
    root_handlers = list(logging.getLogger().handlers)
    assert cli.apply().code == 0
    assert cli.plan("--detailed-exitcode").code == 0
    assert os.getcwd() == cwd and dict(os.environ) == environ
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert (sys.stdin, sys.stdout, sys.stderr) == streams
    assert logging.getLogger().handlers == root_handlers
    assert (cli.dir / ".mailform" / "reg.db.key").exists()     # MASTER_KEY unset for the run


def test_relative_paths_mean_the_cli_directory_on_every_call(tmp_path):
    """A cache keyed by a relative file name (manifests/accounts.yaml) must not carry one
    Cli's directory into the next Cli's run: the second user has no inbox.secret."""
    inbox = {"protocol": "imap", "host": "imap.example.com", "port": 993, "security": "ssl",
             "password": {"file": "inbox.secret"}}
    first, second = Cli(tmp_path / "one", env=SECRETS), Cli(tmp_path / "two", env=SECRETS)
    for c in (first, second):
        c.write_accounts([smtp_account("support", inbox=inbox)])
    first.write("manifests/inbox.secret", "one-secret\n")
    assert first.plan().code == 0
    missing = second.plan()
    assert missing.code == 1 and "inbox.secret" in missing.err, missing
