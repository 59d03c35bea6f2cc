"""`mailform worker`: run the fleet's jobs from the PostgreSQL registry's task queue."""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Optional

import click

from ..fleet import config as fleet_config
from ..fleet.config import FleetConfig
from .logfmt import log_format_option, metrics_listen_option, setup
from .options import current_settings, registry_option

KINDS = ("scan", "verify", "reconcile")


def _interval(flag: Optional[str], project_value, default: float, what: str) -> float:
    value = flag if flag is not None else project_value
    return default if value is None else fleet_config.parse_duration(value, what)


def _project_fleet():
    project = current_settings().project.project
    return project.spec.fleet if project is not None else None


def _config(registry_url, options: dict) -> FleetConfig:
    fleet = _project_fleet()
    get = (lambda name: getattr(fleet, name)) if fleet is not None else (lambda name: None)
    reconcile = None
    if options["reconcile_paths"]:
        reconcile = current_settings().inputs(options["reconcile_paths"])
    return FleetConfig(
        registry_url=registry_url or os.environ.get("MAILFORM_REGISTRY") or "",
        queue_schema=fleet_config.queue_schema(options["queue_schema"]),
        scan_interval=_interval(options["scan_interval"], get("scan_interval"),
                                fleet_config.DEFAULT_SCAN, "--scan-interval"),
        verify_interval=_interval(options["verify_interval"], get("verify_interval"),
                                  fleet_config.DEFAULT_VERIFY, "--verify-interval"),
        reconcile_interval=_interval(options["reconcile_interval"], get("reconcile_interval"),
                                     fleet_config.DEFAULT_RECONCILE, "--reconcile-interval"),
        reconcile=reconcile, auto_apply=options["auto_apply"], timeout=options["timeout"],
        concurrency=options["concurrency"], stalled_seconds=options["stalled_timeout"],
        heartbeat_seconds=max(1.0, min(10.0, options["stalled_timeout"] / 3)),
        name=options["name"] or f"{socket.gethostname()}-{os.getpid()}",
        schedule=options["schedule"], webhooks=tuple(_webhooks()),
        retention_days=_retention_days())


def _retention_days():
    from ..events.config import retention_days
    return retention_days(current_settings().project.project)


def _webhooks() -> list:
    """The project file's outbound webhooks (spec.events.webhooks), resolved at start so
    that a missing secret stops the worker at once."""
    from ..events.config import webhooks_of
    project = current_settings().project
    return webhooks_of(project.project, project.folder)


def _ready(config: FleetConfig):
    """/readyz: the registry's database answers (checked at most every 5 s)."""
    from ..fleet import queue
    state = {"at": 0.0, "ok": False}

    def ready() -> bool:
        if time.monotonic() - state["at"] > 5:
            try:
                with queue.connect(config) as conn:
                    conn.execute("SELECT 1")
                state["ok"] = True
            except Exception:
                state["ok"] = False
            state["at"] = time.monotonic()
        return state["ok"]
    return ready


def _start_metrics(listen: Optional[str], config: FleetConfig):
    if not listen:
        return lambda: None
    from .. import metrics
    from ..fleet.schedule import condition_counts
    metrics.conditions_source(lambda: condition_counts(config))
    metrics.runs("scan", "verify", *(["reconcile"] if config.reconcile is not None else []))
    try:
        return metrics.start(listen, _ready(config))
    except (ValueError, OSError) as exc:
        raise click.UsageError(f"--metrics-listen {listen}: {exc}") from None


@click.command()
@registry_option
@click.option("--concurrency", type=click.IntRange(1, 256), default=4, show_default=True,
              help="Jobs this worker runs at once.")
@click.option("--scan-interval", default=None, metavar="DURATION",
              help="Scan every inbox this often (default: the project's fleet.scan_interval, "
                   "else 5m).")
@click.option("--verify-interval", default=None, metavar="DURATION",
              help="Re-verify every applied account this often (default: fleet."
                   "verify_interval, else 1h).")
@click.option("--reconcile", "reconcile_paths", multiple=True, type=click.Path(),
              metavar="PATH", help="Manifests to reconcile the registry with (repeatable; "
                                   "a checkout its deployment keeps current).")
@click.option("--reconcile-interval", default=None, metavar="DURATION",
              help="A reconcile pass this often (default: fleet.reconcile_interval, else 5m).")
@click.option("--auto-apply", is_flag=True, help="Apply what a reconcile pass finds "
                                                 "(guards and verification always on).")
@click.option("--timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds for each network step of a scan or a check (a scan's deadline "
                   "is 10 x this, as for `inbox scan`).")
@click.option("--queue-schema", default=fleet_config.QUEUE_SCHEMA, show_default=True,
              help="The PostgreSQL schema of the task queue's tables.")
@click.option("--stalled-timeout", type=click.FloatRange(min=3), default=30.0,
              show_default=True, help="Seconds without a heartbeat after which a worker "
                                      "counts as gone and its jobs are run by others.")
@click.option("--name", default=None, help="This worker's name (default: host-pid).")
@click.option("--schedule/--no-schedule", default=True, show_default=True,
              help="Queue the periodic scans, checks and passes (--no-schedule: only run "
                   "what is queued, e.g. rounds from --enqueue).")
@click.option("--migrate", is_flag=True, help="Create the queue's schema, then exit.")
@click.option("--enqueue", type=click.Choice(KINDS), default=None,
              help="Queue one job of this kind per account now (a round), then exit.")
@click.option("--wait", "wait_seconds", type=float, default=None, metavar="SECONDS",
              help="With --enqueue: wait until the queue is empty (up to SECONDS).")
@metrics_listen_option
@log_format_option
def worker(registry_url, log_format, metrics_listen, migrate, enqueue, wait_seconds,
           **options):
    """Run inbox scans, re-verification and reconcile passes from the task queue in the
    PostgreSQL registry's database (start one per machine; SIGTERM finishes the running
    jobs and exits 0)."""
    setup(log_format)
    config = _config(registry_url, options)
    fleet_config.require_postgres(config.registry_url)
    from ..fleet import worker as fleet_worker
    if migrate or enqueue:
        return _one_off(config, migrate, enqueue, wait_seconds)
    app = fleet_worker.prepare(config)
    stop_metrics = _start_metrics(metrics_listen, config)
    try:
        fleet_worker.run(config, app)
    finally:
        stop_metrics()
    return 0


def _one_off(config: FleetConfig, migrate: bool, enqueue: Optional[str],
             wait_seconds: Optional[float]) -> int:
    from ..fleet import queue, worker as fleet_worker
    log = logging.getLogger("mailform.fleet")
    created = queue.migrate(config)
    if migrate:
        click.echo(f"queue schema {config.queue_schema}: "
                   f"{'created' if created else 'already there'}")
    if enqueue:
        queued = fleet_worker.enqueue(config, enqueue)
        log.info("enqueued", extra={"event": "enqueued", "kind": enqueue, "jobs": queued})
        click.echo(f"queued {queued} {enqueue} job(s)")
        if wait_seconds is not None and not fleet_worker.wait_idle(config, wait_seconds):
            click.echo(f"the queue was not empty after {wait_seconds:g}s", err=True)
            return 1
    return 0
