"""What a scan costs in threads: one watchdog for every scan of the process (a step does
not wake it unless it ends sooner than what it waits for), and an inbox read in one
batch is fetched on the scan's own thread; a second batch is fetched in the background
while the first is processed. The watchdog still cuts off each stalled step, and only
that scan's sockets."""
from __future__ import annotations

import socket
import threading

from reconciler.bounces import deadline as deadline_module
from reconciler.bounces.deadline import ScanDeadline
from reconciler.bounces.prefetch import Prefetch
from test_scan_deadline import blocked_read_is_cut


def _watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "scan-deadline"]


def test_many_scans_share_one_watchdog_and_a_stalled_step_ends_only_its_own():
    pairs = [socket.socketpair() for _ in range(3)]
    clocks = [ScanDeadline(total=30, per_step=5) for _ in pairs]
    for clock, (left, _) in zip(clocks, pairs):
        clock.watch(left)
    for clock in clocks:
        for step in range(20):                   # quick steps: nothing fires
            with clock.step(f"step {step}"):
                pass
    assert len(_watchdogs()) == 1
    stalled = ScanDeadline(total=30, per_step=0.3)
    left, right = blocked_read_is_cut(stalled)
    assert "read" in stalled.describe()
    assert not any(clock.expired for clock in clocks)
    for clock, (other, peer) in zip(clocks, pairs):
        peer.sendall(b"x")
        assert other.recv(1) == b"x"            # still open
        clock.close()
        other.close()
        peer.close()
    stalled.close()
    right.close()
    assert len(_watchdogs()) == 1
    assert not {*clocks, stalled} & deadline_module._WATCHDOG.active


def test_a_whole_scans_deadline_still_fires_between_steps():
    clock, (left, right) = ScanDeadline(total=0.4, per_step=10), socket.socketpair()
    clock.watch(left)
    left.settimeout(5)
    assert left.recv(10) == b""                  # no step running: the total still counts
    assert clock.expired and "deadline of 0.4s" in clock.describe()
    clock.close()
    right.close()


def test_one_batch_is_fetched_on_the_callers_thread_and_later_ones_in_the_background():
    seen: list[tuple[list, str]] = []

    def fetch(uids):
        seen.append((uids, threading.current_thread().name))
        return {u: b"m" for u in uids}

    with Prefetch(fetch) as ahead:
        ahead.start(["1", "2"], background=False)
        assert seen == []                       # nothing fetched before it is taken
        assert ahead.take() == {"1": b"m", "2": b"m"}
        assert ahead._pool is None              # no thread for an inbox of one batch
        ahead.start(["3"])
        assert ahead.take() == {"3": b"m"}
        ahead.start(None)
        assert ahead.take() == {}
    assert seen[0][1] == threading.current_thread().name
    assert seen[1][1].startswith("inbox-fetch")


def test_a_fetch_error_comes_out_of_take():
    def fetch(uids):
        raise OSError("gone")
    for background in (False, True):
        with Prefetch(fetch) as ahead:
            ahead.start(["1"], background=background)
            try:
                ahead.take()
            except OSError as exc:
                assert str(exc) == "gone"
            else:
                raise AssertionError("no error")
