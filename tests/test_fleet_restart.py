"""A worker whose queue worker (procrastinate's) stops by itself — one of its background
tasks failed, e.g. a query in flight when the database connection was cut — starts it
again, and so one whose run raised a database error; one stopped by SIGTERM ends. (On
the real fleet: tests/test_fleet.py cuts every connection of four workers.)"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from types import SimpleNamespace

from procrastinate.exceptions import ConnectorException

from reconciler.fleet import worker as worker_mod


class FakeWorker:
    made: list["FakeWorker"] = []

    def __init__(self, app, **options) -> None:
        self.options, self.stopped = options, asyncio.Event()
        FakeWorker.made.append(self)

    def stop(self) -> None:
        self.stopped.set()

    async def run(self) -> None:
        if len(FakeWorker.made) == 1:
            return                                  # stopped by itself
        if len(FakeWorker.made) == 2:                # its fetch's connection cut
            raise ConnectorException("terminating connection due to administrator command")
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        await self.stopped.wait()


class FakeApp:
    def perform_import_paths(self) -> None:
        pass

    @contextlib.asynccontextmanager
    async def open_async(self):
        yield self


def test_a_queue_worker_that_stops_by_itself_is_started_again(monkeypatch, caplog):
    monkeypatch.setattr(worker_mod, "Worker", FakeWorker)
    monkeypatch.setattr(worker_mod, "RESTART_DELAY", 0.01)
    monkeypatch.setattr(worker_mod, "_warm_threads", lambda *args: None)   # no registry
    FakeWorker.made = []
    config = SimpleNamespace(concurrency=2, name="w1", heartbeat_seconds=2.0,
                             stalled_seconds=6.0)
    before = signal.getsignal(signal.SIGTERM)
    with caplog.at_level(logging.INFO, logger="mailform.fleet"):
        asyncio.run(worker_mod._run(config, FakeApp()))
    assert len(FakeWorker.made) == 3       # stopped, failed, then ended by SIGTERM
    assert FakeWorker.made[0].options["install_signal_handlers"] is False
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("worker_restarted") == 2 and events[-1] == "stopped"
    errors = [r.error for r in caplog.records if getattr(r, "event", "") == "worker_restarted"]
    assert "background task" in errors[0] and "ConnectorException" in errors[1]
    assert signal.getsignal(signal.SIGTERM) == before     # handlers given back


def test_a_worker_warms_every_job_thread_at_once_as_it_starts(monkeypatch):
    """Each of the --concurrency + 2 job threads is warmed once, in a thread of its own,
    and the warming does not hold up the start (it once waited for a thread it took)."""
    import threading
    import time
    from reconciler.fleet import jobs
    warmed: list[str] = []
    monkeypatch.setattr(jobs, "warm", lambda config: warmed.append(
        threading.current_thread().name))
    monkeypatch.setattr(worker_mod, "Worker", FakeWorker)
    FakeWorker.made = [object(), object()]        # the next run waits for SIGTERM
    config = SimpleNamespace(concurrency=3, name="w1", heartbeat_seconds=2.0,
                             stalled_seconds=6.0)
    started = time.monotonic()
    asyncio.run(worker_mod._run(config, FakeApp()))
    assert time.monotonic() - started < 10
    assert len(warmed) == 5 and len(set(warmed)) == 5
    assert all(name.startswith("job") for name in warmed)
