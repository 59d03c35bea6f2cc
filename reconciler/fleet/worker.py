"""Running a worker: the queue's schema, the tasks, the periodic schedule, until SIGTERM.

On SIGTERM or SIGINT procrastinate's worker takes no new job, lets the running ones
finish, and returns (the command then exits 0). It also stops on its own when one of
its background tasks (heartbeat, periodic deferrer, listener) fails, e.g. a query in
flight when the database connection was cut: then it is started again, so a worker
outlives a database restart or a terminated connection. Synchronous jobs run in a
thread pool as large as ``--concurrency``.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import procrastinate
import psycopg
from procrastinate import signals
from procrastinate.exceptions import ConnectorException
from procrastinate.worker import Worker

from . import queue, schedule, tasks
from .config import FleetConfig, require_postgres

log = logging.getLogger("mailform.fleet")


def prepare(config: FleetConfig) -> procrastinate.App:
    """The app with the fleet's tasks, the queue's schema created when missing."""
    require_postgres(config.registry_url)
    if queue.migrate(config):
        log.info("queue schema created", extra={"event": "migrated",
                                                "schema": config.queue_schema})
    return tasks.register(queue.make_app(config), config)


def run(config: FleetConfig, app: procrastinate.App) -> None:
    asyncio.run(_run(config, app))


async def _run(config: FleetConfig, app: procrastinate.App) -> None:
    loop = asyncio.get_running_loop()
    threads = config.concurrency + 2
    executor = ThreadPoolExecutor(threads, thread_name_prefix="job")
    loop.set_default_executor(executor)
    with ThreadPoolExecutor(1, thread_name_prefix="warm") as starter:   # not one of them
        await loop.run_in_executor(starter, _warm_threads, config, executor, threads)
    log.info("worker started", extra={"event": "started", "worker": config.name,
                                      "concurrency": config.concurrency})
    async with app.open_async():
        app.perform_import_paths()
        delay = RESTART_DELAY
        while True:
            started = time.monotonic()
            try:
                if await _one_run(config, app):
                    break
                why = "a background task failed, e.g. a lost database connection"
            except (ConnectorException, psycopg.Error) as exc:
                why = f"{type(exc).__name__}: {exc}"
            if time.monotonic() - started > STEADY:
                delay = RESTART_DELAY
            log.warning(f"the queue's worker stopped by itself ({why}): starting it again "
                        f"in {delay:g}s", extra={"event": "worker_restarted",
                                                  "worker": config.name, "error": why})
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)
    log.info("worker stopped", extra={"event": "stopped", "worker": config.name})


def _warm_threads(config: FleetConfig, executor: ThreadPoolExecutor, threads: int) -> None:
    """Every job thread started and warmed (``jobs.warm``: its registry connection, ...)
    before the worker takes its first job, not by the first jobs it runs: each warming
    waits for the others, so that each runs in a thread of its own."""
    from . import jobs
    barrier = threading.Barrier(threads)

    def one() -> None:
        try:
            jobs.warm(config)
        except Exception as exc:  # noqa: BLE001 - the first job meets it again, and says so
            log.warning(f"a job thread was not warmed: {type(exc).__name__}",
                        extra={"event": "warm_failed", "worker": config.name})
        try:
            barrier.wait(30)
        except threading.BrokenBarrierError:
            pass
    for future in [executor.submit(one) for _ in range(threads)]:
        future.result()


RESTART_DELAY = 1.0       # seconds before the queue's worker is started again, doubling
MAX_RESTART_DELAY = 30.0  # … up to this while it keeps stopping (the database is down)
STEADY = 60.0             # a run this long starts the delay over


async def _one_run(config: FleetConfig, app: procrastinate.App) -> bool:
    """procrastinate's worker, until it stops; True when a signal stopped it."""
    signalled: list[bool] = []
    worker = Worker(app=app, concurrency=config.concurrency, name=config.name,
                    delete_jobs="successful",
                    update_heartbeat_interval=config.heartbeat_seconds,
                    stalled_worker_timeout=config.stalled_seconds,
                    install_signal_handlers=False)

    def stop() -> None:
        signalled.append(True)
        worker.stop()
    with signals.on_stop(stop):
        await worker.run()
    return bool(signalled)


def enqueue(config: FleetConfig, kind: str) -> int:
    """Queue one job of ``kind`` per account now (forced: run even if checked lately),
    in one statement (``schedule.defer_many``); the number queued."""
    app = tasks.register(queue.make_app(config), config)
    accounts = [None] if kind == "reconcile" else _accounts(config, kind)

    async def go() -> int:
        async with app.open_async():
            return await schedule.defer_many(app, [(kind, name) for name in accounts],
                                             force=True)
    return asyncio.run(go())


def _accounts(config: FleetConfig, kind: str) -> list[str]:
    from .jobs import registry_of
    accounts = registry_of(config).accounts()
    return sorted(n for n, a in accounts.items() if not a.released
                  and (a.spec.get("inbox") or (kind == "verify" and a.spec.get("smtp"))))


def wait_idle(config: FleetConfig, timeout: float, poll: float = 0.5) -> bool:
    """Until no job of the fleet is queued or running; False when ``timeout`` passed."""
    deadline, conn = time.monotonic() + timeout, None
    try:
        while True:
            if conn is None:                    # one connection, not one per look
                conn = queue.connect(config)
            try:
                if not queue.pending(config, conn):
                    return True
            except psycopg.OperationalError:    # its backend ended: the next look connects
                conn.close()
                conn = None
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)
    finally:
        if conn is not None:
            conn.close()
