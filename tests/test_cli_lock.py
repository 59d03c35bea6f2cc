"""The registry lock through the real CLI: exit 5, --lock-timeout, two appliers at
once, SIGKILL in the middle of an apply, force-unlock."""
from __future__ import annotations

import os
import queue
import signal
import socket
import threading

import pytest

import pausing_apply
from clihelpers import Cli, in_process, kill, marketing_account, smtp_account, wait_for_line
from pausing_apply import PAUSE_LINE
from reconciler.registry.locking import WriteLock

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


def _release_once_refused(monkeypatch, holder) -> threading.Event:
    """Release ``holder`` as soon as an apply in this process has been refused the lock
    (it is waiting for it then); the returned event says it was. A waiter run as a
    process (MAILFORM_TEST_SUBPROCESS=1) is not seen: the holder goes after a moment."""
    refused = threading.Event()
    try_acquire = WriteLock._try_acquire

    def spy(self, *args, **kwargs):
        ours, held = try_acquire(self, *args, **kwargs)
        if ours is None:
            refused.set()
        return ours, held

    monkeypatch.setattr(WriteLock, "_try_acquire", spy)

    def release() -> None:
        refused.wait(timeout=30 if in_process() else 1.0)
        pausing_apply.release(holder)

    threading.Thread(target=release, daemon=True, name="release-holder").start()
    return refused


def test_second_apply_exits_5_naming_the_holder_and_lock_timeout_waits(cli, monkeypatch):
    holder = pausing_apply.popen(cli, env={"MAILFORM_ACTOR": "first-one"})
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
        assert holder.poll() is None                    # still paused, still holding it
        refused = _release_once_refused(monkeypatch, holder)
        waited = cli.apply("--lock-timeout", "30")
        assert waited.code == 0, waited
        assert refused.is_set() or not in_process()     # it was refused, then waited
        if refused.is_set():                            # ... and said that it waits, for whom
            assert "Waiting for the registry lock held by first-one" in waited.err, waited
        assert holder.wait(timeout=30) == 0
    finally:
        kill(holder)
    # the waiter planned after the holder committed: nothing left to do
    assert "No changes" in waited.out or "Apply complete" in waited.out
    assert cli.plan("--detailed-exitcode").code == 0


def _first_to_exit(procs, timeout: float = 60):
    """(process, exit code) of whichever of ``procs`` exits first."""
    exited: queue.Queue = queue.Queue()
    for proc in procs:
        threading.Thread(target=lambda p=proc: exited.put((p, p.wait())), daemon=True).start()
    return exited.get(timeout=timeout)


def test_two_processes_applying_at_once_exactly_one_exits_5(cli):
    procs = [pausing_apply.popen(cli) for _ in range(2)]
    try:
        # the one that takes the lock pauses holding it until released: the other exits 5
        loser, code = _first_to_exit(procs)
        assert code == 5, loser.communicate()
        (winner,) = [p for p in procs if p is not loser]
        assert winner.poll() is None
        pausing_apply.release(winner)
        assert winner.wait(timeout=60) == 0, winner.communicate()
    finally:
        for p in procs:
            kill(p)
    meta, accounts = _snapshot(cli)
    assert meta.serial == 2 and set(accounts) == {"support", "news", "promo"}


def test_sigkill_in_the_middle_of_an_apply_leaves_the_registry_unchanged(cli):
    before = _snapshot(cli)
    proc = pausing_apply.popen(cli)
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
    assert cli.run("history").out.count(" apply +") == 1
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
