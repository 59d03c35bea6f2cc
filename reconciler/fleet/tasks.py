"""The fleet's tasks on a procrastinate app, and their retry strategy."""
from __future__ import annotations

import random
from typing import Optional

import procrastinate

from . import jobs, schedule
from .config import FleetConfig


class Backoff(procrastinate.BaseRetryStrategy):
    """Exponential backoff with full jitter, for ``jobs.Transient`` failures only."""

    def __init__(self, base: float = 5.0, cap: float = 600.0, attempts: int = 8) -> None:
        self.base, self.cap, self.attempts = base, cap, attempts

    def wait(self, attempts: int) -> float:
        ceiling = min(self.cap, self.base * (2 ** attempts))
        return random.uniform(ceiling / 2, ceiling)

    def get_retry_decision(self, *, exception: BaseException, job) -> Optional[
            procrastinate.RetryDecision]:
        if not isinstance(exception, jobs.Transient) or job.attempts + 1 >= self.attempts:
            return None
        return procrastinate.RetryDecision(retry_in={"seconds": self.wait(job.attempts)})


def cron(seconds: int) -> str:
    """Every ``seconds`` (a divisor of 60), with procrastinate's seconds column."""
    return f"* * * * * */{seconds}"


def register(app: procrastinate.App, config: FleetConfig) -> procrastinate.App:
    retry = Backoff()

    @app.task(name="scan", retry=retry)
    def scan(account: str, force: bool = False) -> str:
        return jobs.timed("scan", (account, jobs.SCANNED), jobs.scan, config, account, force)

    @app.task(name="verify", retry=retry)
    def verify(account: str, force: bool = False) -> str:
        return jobs.timed("verify", (account, jobs.VERIFIED), jobs.verify, config, account,
                          force)

    @app.task(name="reconcile", retry=retry)
    def reconcile() -> str:
        return jobs.timed("reconcile", None, jobs.reconcile, config)

    async def tick(timestamp: int) -> int:
        return await schedule.tick(app, config)

    tick_task = app.task(name="tick", queueing_lock="tick")(tick)
    if config.schedule:
        app.periodic(cron=cron(config.tick_seconds), periodic_id="tick")(tick_task)

    if config.webhooks:
        @app.periodic(cron=cron(config.tick_seconds), periodic_id="deliver")
        @app.task(name="deliver", queueing_lock="deliver", lock="deliver")
        def deliver(timestamp: int) -> str:
            return jobs.timed("deliver", None, jobs.deliver, config)

    if config.retention_days:
        @app.periodic(cron="17 * * * *", periodic_id="prune")          # hourly
        @app.task(name="prune", queueing_lock="prune", lock="prune")
        def prune(timestamp: int) -> str:
            return jobs.timed("prune", None, jobs.prune, config)

    @app.periodic(cron=cron(config.tick_seconds), periodic_id="recover")
    @app.task(name="recover", queueing_lock="recover")
    async def recover(timestamp: int) -> int:
        return await schedule.recover(app, config)

    return app
