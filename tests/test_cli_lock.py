"""The registry lock through the real CLI: exit 5, --lock-timeout, two appliers at
once, SIGKILL in the middle of an apply, force-unlock."""
from __future__ import annotations

import os
import signal
import socket
import time

import pytest

import pausing_apply
from clihelpers import Cli, kill, marketing_account, smtp_account, wait_for_line
from pausing_apply import PAUSE_LINE

SECRETS = {"SUPPORT_SMTP_PASSWORD": "pw-support-1"}


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path, env=SECRETS)
    c.write_accounts([smtp_account("support"), marketing_account("news")])
    assert c.apply().code == 0
    c.write_accounts([smtp_account("support", display_name="Desk"), marketing_account("news"),
                      marketing_account("promo")])
    return c


def _snapshot(cli):
    with cli.registry() as reg:
        return reg.meta(), {n: (a.spec, a.fingerprints) for n, a in reg.accounts().items()}


def test_second_apply_exits_5_naming_the_holder_and_lock_timeout_waits(cli):
    holder = pausing_apply.popen(cli, 4, env={"MAILFORM_ACTOR": "first-one"})
    try:
        wait_for_line(holder, PAUSE_LINE)
        locked = cli.apply(env={"MAILFORM_ACTOR": "second"})
        assert locked.code == 5, locked
        assert "first-one" in locked.err and socket.gethostname() in locked.err
        assert f"pid {holder.pid}" in locked.err
        assert "Apply complete" not in locked.out
        # plan is a reader: it neither waits nor fails while an apply runs
        reader = cli.plan("--format", "json")
        assert reader.code == 0, reader
        started = time.monotonic()
        waited = cli.apply("--lock-timeout", "30")
        assert waited.code == 0, waited
        assert time.monotonic() - started > 1
        assert holder.wait(timeout=30) == 0
    finally:
        kill(holder)
    # the waiter planned after the holder committed: nothing left to do
    assert "No changes" in waited.out or "Apply complete" in waited.out
    assert cli.plan("--detailed-exitcode").code == 0


def test_two_processes_applying_at_once_exactly_one_exits_5(cli):
    procs = [pausing_apply.popen(cli, 3) for _ in range(2)]
    try:
        codes = sorted(p.wait(timeout=60) for p in procs)
    finally:
        for p in procs:
            kill(p)
    assert codes == [0, 5]
    meta, accounts = _snapshot(cli)
    assert meta.serial == 2 and set(accounts) == {"support", "news", "promo"}


def test_sigkill_in_the_middle_of_an_apply_leaves_the_registry_unchanged(cli):
    before = _snapshot(cli)
    proc = pausing_apply.popen(cli, 30)
    try:
        wait_for_line(proc, PAUSE_LINE)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        kill(proc)
    assert _snapshot(cli) == before
    with cli.registry() as reg:
        left = reg.current_lock()
    assert left is not None and left.pid == proc.pid      # the dead holder's lock is still there
    assert cli.run("history").out.count("serial ") == 1
    # ... and is taken over: its holder is dead on this host
    result = cli.apply()
    assert result.code == 0, result
    assert "1 added, 1 changed, 0 destroyed" in result.out
    assert cli.plan("--detailed-exitcode").code == 0
    with cli.registry() as reg:
        assert reg.current_lock() is None and reg.meta().serial == before[0].serial + 1


def test_force_unlock(cli):
    with cli.registry() as reg, reg.lock(holder="someone-else", lease_seconds=600) as info:
        # held by this (living) test process: nobody may take it over
        locked = cli.apply()
        assert locked.code == 5 and info.id in locked.err and "someone-else" in locked.err
        wrong = cli.run("force-unlock", "no-such-lock")
        assert wrong.code == 1 and info.id in wrong.err, wrong
        removed = cli.run("force-unlock", info.id)
        assert removed.code == 0 and info.id in removed.out, removed
        assert reg.current_lock() is None
        assert cli.apply().code == 0
