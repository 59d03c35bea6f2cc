"""Registry lock: contention, timeout, lease expiry, dead holders, force-unlock, release."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
from contextlib import ExitStack
from datetime import timedelta

import pytest

from reconciler.errors import LockedError, NotFoundError
from reconciler.registry import locking, open_registry
from test_registry_support import (account, apply, backend, reg_url, registry,  # noqa: F401
                                   spawn, wait_for_line)

HOLD_LOCK = """
    import sys
    from reconciler.registry import open_registry
    reg = open_registry(sys.argv[1])
    with reg.lock("child-apply", lease_seconds=float(sys.argv[2])) as info:
        print("LOCKED", info.id, flush=True)
        sys.stdin.readline()                   # hold it until killed
"""


def _plant_lock(reg, **fields) -> None:
    """Write a lock row directly, as another machine or a dead process left it."""
    row = {"id": "planted", "holder": "someone", "host": "elsewhere.example", "pid": 1,
           "started": "2026-01-01T00:00:00.000Z", "expires": "2999-01-01T00:00:00.000Z"}
    row.update(fields)
    with reg.store.write() as cur:
        cur.execute(reg.store.q("INSERT INTO lock (slot, id, holder, host, pid, started, expires) "
                           "VALUES (1, ?, ?, ?, ?, ?, ?)"), tuple(row.values()))


def test_lock_names_holder_and_is_released(registry):
    with registry.lock("alice", lease_seconds=60) as info:
        assert registry.current_lock() == info
        assert info.holder == "alice" and info.pid == os.getpid()
        assert info.host == socket.gethostname()
        assert info.expires > info.started
    assert registry.current_lock() is None


def test_second_registry_object_gets_locked_error(reg_url):
    with open_registry(reg_url) as first, open_registry(reg_url) as second:
        with first.lock("alice") as info:
            with pytest.raises(LockedError) as err:
                with second.lock("bob"):
                    pass
            assert err.value.lock == info.as_dict()
            assert err.value.exit_code == 5
            message = str(err.value)
            assert "alice" in message and info.id in message and str(os.getpid()) in message
        with second.lock("bob") as info:
            assert info.holder == "bob"


def test_lock_timeout_waits_then_fails(reg_url):
    with open_registry(reg_url) as first, open_registry(reg_url) as second:
        with first.lock("alice"):
            start = time.monotonic()
            with pytest.raises(LockedError):
                with second.lock("bob", timeout=0.3):
                    pass
            assert 0.3 <= time.monotonic() - start < 5


def _refusals(monkeypatch) -> threading.Event:
    """Set the first time any lock attempt in this process is refused."""
    refused = threading.Event()
    try_acquire = locking.WriteLock._try_acquire

    def spy(self, *args, **kwargs):
        ours, held = try_acquire(self, *args, **kwargs)
        if ours is None:
            refused.set()
        return ours, held

    monkeypatch.setattr(locking.WriteLock, "_try_acquire", spy)
    return refused


def test_lock_timeout_gets_the_lock_once_released(reg_url, monkeypatch):
    with open_registry(reg_url) as first, open_registry(reg_url) as second:
        stack = ExitStack()
        stack.enter_context(first.lock("alice"))
        refused = _refusals(monkeypatch)

        def release_once_bob_waits():
            refused.wait(timeout=30)
            stack.close()

        releaser = threading.Thread(target=release_once_bob_waits, daemon=True)
        releaser.start()
        with second.lock("bob", timeout=30) as info:
            assert info.holder == "bob"
            assert refused.is_set()                # refused first: it waited, then got it
        releaser.join(timeout=30)


def test_expired_lease_is_taken_over(reg_url, monkeypatch):
    with open_registry(reg_url) as first, open_registry(reg_url) as second:
        stack = ExitStack()
        old = stack.enter_context(first.lock("alice", lease_seconds=60))
        with pytest.raises(LockedError):
            with second.lock("bob"):
                pass
        # the lock's clock, a minute and a second later: alice's lease has run out
        real_utcnow = locking.utcnow
        monkeypatch.setattr(locking, "utcnow", lambda: real_utcnow() + timedelta(seconds=61))
        with second.lock("bob") as new:
            assert new.id != old.id
            stack.close()              # alice's release must not remove bob's lock
            assert second.current_lock() == new
        assert second.current_lock() is None


def test_foreign_host_lock_waits_for_its_lease(registry):
    _plant_lock(registry)
    with pytest.raises(LockedError, match="someone on elsewhere.example"):
        with registry.lock("bob"):
            pass
    registry.force_unlock("planted")
    _plant_lock(registry, expires="2020-01-01T00:00:00.000Z")
    with registry.lock("bob") as info:
        assert info.holder == "bob"


def test_dead_holder_on_this_host_is_taken_over_at_once(reg_url):
    child = spawn(HOLD_LOCK, reg_url, "3600")
    held_id = wait_for_line(child, "LOCKED").split()[1]
    with open_registry(reg_url) as reg:
        with pytest.raises(LockedError) as err:      # alive: it really holds the lock
            with reg.lock("parent"):
                pass
        assert err.value.lock["pid"] == child.pid
        assert err.value.lock["holder"] == "child-apply"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert reg.current_lock().id == held_id        # left behind by the dead child
        with reg.lock("parent") as info:              # 1-hour lease, yet taken at once
            assert info.holder == "parent"


def test_force_unlock(registry):
    _plant_lock(registry)
    with pytest.raises(NotFoundError, match="current lock is planted"):
        registry.force_unlock("other")
    registry.force_unlock("planted")
    assert registry.current_lock() is None
    with pytest.raises(NotFoundError, match="not locked"):
        registry.force_unlock("planted")


def test_lock_released_on_exception(registry):
    with pytest.raises(KeyError):
        with registry.lock("alice"), registry.transaction() as txn:
            txn.put_account(account("a"))
            raise KeyError("boom")
    assert registry.current_lock() is None
    assert registry.accounts() == {}


APPLY_UNTIL_TOLD = """
    import sys
    from reconciler.errors import LockedError
    from reconciler.registry import open_registry, AccountWrite
    reg = open_registry(sys.argv[1])
    print("READY", flush=True)
    sys.stdin.readline()                       # both start together
    try:
        with reg.lock(sys.argv[2]):
            print("HOLDING", flush=True)
            sys.stdin.readline()               # hold the lock until the test says so
            with reg.transaction() as txn:
                txn.put_account(AccountWrite(sys.argv[2], "marketing", {}, {}, {}))
                txn.add_history({"actor": sys.argv[2], "counts": {}, "changes": []})
        print("APPLIED", flush=True)
    except LockedError as exc:
        print("LOCKED", exc.lock["holder"], flush=True)
"""


def _say(proc, line: str) -> None:
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def test_two_processes_applying_at_once_one_is_locked(reg_url):
    with open_registry(reg_url):
        pass                                   # create it (and its key) first
    procs = {name: spawn(APPLY_UNTIL_TOLD, reg_url, name) for name in ("one", "two")}
    for proc in procs.values():
        wait_for_line(proc, "READY")
    for proc in procs.values():
        _say(proc, "GO")
    first = {name: wait_for_line(proc, "").strip() for name, proc in procs.items()}
    holders = [name for name, line in first.items() if line == "HOLDING"]
    assert len(holders) == 1, first            # the loser failed while the winner held it
    holder = holders[0]
    loser = "two" if holder == "one" else "one"
    assert first[loser] == f"LOCKED {holder}"
    _say(procs[holder], "RELEASE")
    assert procs[holder].communicate(timeout=60)[0].strip() == "APPLIED"
    procs[loser].communicate(timeout=60)
    with open_registry(reg_url) as reg:
        assert len(reg.accounts()) == 1 and reg.meta().serial == 1


def test_a_lock_taken_between_our_read_and_our_write_is_locked_not_busy(reg_url, monkeypatch):
    """The race two applies run: ours reads "free", the other takes the lock and starts
    writing its apply (SQLite: the database stays busy); ours must say who holds the
    lock (exit 5), not fail on the busy database."""
    from reconciler.errors import RegistryError

    with open_registry(reg_url) as first, open_registry(reg_url) as second:
        with first.lock("alice") as info:
            book = second.write_lock
            reads = iter([None])
            real_current = book.current
            monkeypatch.setattr(book, "current", lambda: next(reads, None) or real_current())

            def busy(*args):
                raise RegistryError(f"registry {reg_url}: database is locked")
            monkeypatch.setattr(book, "_take", busy)
            with pytest.raises(LockedError) as err:
                with second.lock("bob"):
                    pass
            assert err.value.lock == info.as_dict()
