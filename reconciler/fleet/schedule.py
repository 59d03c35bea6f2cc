"""Which jobs are due, deferring them, and recovering the jobs of a worker that died.

The periodic tick (every few seconds, one per fleet: procrastinate's periodic
defers are unique per timestamp) reads the registry and the accounts' conditions:
an inbox is due for a scan when its ``InboxScanned`` condition is older than the
scan interval, an account for re-verification likewise with ``Verified``, the
reconcile pass with the fleet's ``ReconcilePass``. A terminal failure is not
retried while the account is as it was when it failed (``observed``). Each job is
deferred with a ``queueing_lock`` (one of each waiting, so periods never pile up)
and a ``lock`` (one inbox is never scanned twice at once; one reconcile pass in
the whole fleet).
"""
from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import datetime
from typing import Optional

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from procrastinate.jobs import Status

from ..registry.common import parse_iso, utcnow
from ..registry.conditions import FLEET, TYPES
from .config import FleetConfig
from .jobs import SCANNED, VERIFIED, Transient, observed, parked, registry_of

PASS = "ReconcilePass"
log = logging.getLogger("mailform.fleet")


def lock_of(kind: str, account: Optional[str]) -> str:
    if kind == "scan":
        return f"inbox:{account}"
    return f"{kind}:{account}" if account else kind


def is_due(cond, interval: float, now: datetime, token: Optional[str], slack: float) -> bool:
    if cond is None or not cond.last_probe:
        return True
    if parked(cond, token):
        return False          # failed for good on what is still there: wait for a change
    age = (now - parse_iso(cond.last_probe)).total_seconds()
    return age >= interval - slack


def _read(config: FleetConfig) -> tuple[dict, dict]:
    """The conditions and the accounts (none while the registry does not exist: the
    first reconcile pass creates it)."""
    try:
        registry = registry_of(config)
    except Transient:
        if config.reconcile is None:
            raise
        return {}, {}
    accounts = {n: a for n, a in registry.accounts().items() if not a.released}
    return registry.conditions.all(), accounts


def due(config: FleetConfig, now: datetime) -> list[tuple[str, Optional[str]]]:
    """(kind, account) of every job due now."""
    conds, accounts = _read(config)
    slack = config.tick_seconds / 2
    out: list[tuple[str, Optional[str]]] = []
    for name, stored in sorted(accounts.items()):
        mine, token = conds.get(name, {}), observed(stored)
        if stored.spec.get("inbox") and is_due(mine.get(SCANNED), config.scan_interval, now,
                                               token, slack):
            out.append(("scan", name))
        if (stored.spec.get("smtp") or stored.spec.get("inbox")) and is_due(
                mine.get(VERIFIED), config.verify_interval, now, token, slack):
            out.append(("verify", name))
    if config.reconcile is not None and is_due(conds.get(FLEET, {}).get(PASS),
                                               config.reconcile_interval, now, None, slack):
        out.append(("reconcile", None))
    return out


def condition_counts(config: FleetConfig) -> dict[tuple[str, str], int]:
    """(type, status) -> accounts, every account counted once per type (Unknown: none)."""
    from ..registry import open_registry
    with open_registry(config.registry_url, create=False) as registry:
        names = [n for n, a in registry.accounts().items() if not a.released]
        conds = registry.conditions.for_accounts(names)
    counts = Counter((t, conds[n][t].status if t in conds.get(n, {}) else "Unknown")
                     for n in names for t in TYPES)
    return {(t, s): counts.get((t, s), 0) for t in TYPES for s in ("True", "False", "Unknown")}


async def defer(app: procrastinate.App, kind: str, account: Optional[str] = None,
                force: bool = False) -> bool:
    """Queue one job unless one like it is already waiting; True when queued."""
    lock = lock_of(kind, account)
    kwargs = {} if account is None else {"account": account, "force": force}
    try:
        await app.tasks[kind].configure(lock=lock, queueing_lock=lock).defer_async(**kwargs)
    except AlreadyEnqueued:
        return False
    return True


BATCH = 500          # jobs queued by one statement


async def defer_many(app: procrastinate.App, wanted: list[tuple[str, Optional[str]]],
                     force: bool = False) -> int:
    """Queue the jobs ``(kind, account)`` unless one like it is already waiting (its
    queueing lock), ``BATCH`` per statement: one transaction and one commit for a whole
    round, not one per account; the number queued. Those already waiting are looked up
    first; if one was queued meanwhile, the statement queues none of its batch, which is
    then queued one job at a time."""
    queued = 0
    for start in range(0, len(wanted), BATCH):
        chunk = wanted[start:start + BATCH]
        waiting = await _waiting(app, [lock_of(kind, account) for kind, account in chunk])
        chunk = [(kind, account) for kind, account in chunk
                 if lock_of(kind, account) not in waiting]
        if not chunk:
            continue
        try:
            await app.job_manager.batch_defer_jobs_async(
                jobs=[_job(app, kind, account, force) for kind, account in chunk])
            queued += len(chunk)
        except AlreadyEnqueued:
            for kind, account in chunk:
                queued += await defer(app, kind, account, force)
    return queued


async def _waiting(app: procrastinate.App, locks: list[str]) -> set[str]:
    """The queueing locks among ``locks`` held by a job waiting to run."""
    rows = await app.connector.execute_query_all_async(
        "SELECT queueing_lock FROM procrastinate_jobs WHERE status = 'todo' "
        "AND queueing_lock = ANY(%(locks)s)", locks=locks)
    return {row["queueing_lock"] for row in rows}


def _job(app: procrastinate.App, kind: str, account: Optional[str], force: bool):
    lock = lock_of(kind, account)
    kwargs = {} if account is None else {"account": account, "force": force}
    return app.tasks[kind].configure(lock=lock, queueing_lock=lock).make_new_job(**kwargs)


async def tick(app: procrastinate.App, config: FleetConfig) -> int:
    found = await asyncio.to_thread(due, config, utcnow())
    queued = await defer_many(app, found)
    if queued:
        log.info("scheduled", extra={"event": "scheduled", "jobs": queued})
    return queued


async def recover(app: procrastinate.App, config: FleetConfig) -> int:
    """Queue again the jobs of workers that stopped sending heartbeats (SIGKILL, a lost
    machine); their accounts' conditions say so until the job runs again."""
    stalled = list(await app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=config.stalled_seconds))
    for job in stalled:
        await _requeue(app, job)
        account = (job.task_kwargs or {}).get("account")
        log.warning("recovered", extra={"event": "job_recovered", "job": job.id,
                                        "kind": job.task_name, "account": account})
        if account and job.task_name in ("scan", "verify"):
            await asyncio.to_thread(_mark_lost, config, account, job.task_name)
    return len(stalled)


async def _requeue(app: procrastinate.App, job) -> None:
    """The job queued again; when a twin is already waiting (its queueing lock), the
    stalled one is ended instead, which frees its lock for the twin."""
    try:
        await app.job_manager.retry_job(job)
    except UniqueViolation:
        await app.job_manager.finish_job(job, status=Status.FAILED, delete_job=False)


def _mark_lost(config: FleetConfig, account: str, kind: str) -> None:
    type_ = SCANNED if kind == "scan" else VERIFIED
    registry_of(config).conditions.set(account, type_, "Unknown", "WorkerLost",
                                       "the worker running this job stopped; queued again")
