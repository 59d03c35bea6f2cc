"""`mailform events [--since DATE] [--follow] [--format json] [--failed]`, and
`events deliver [--follow]`, `events redeliver`, `events prune` (issue 14)."""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import click

from ..errors import MailformError
from ..events.config import retention_days, webhooks_of
from ..events.deliver import deliver_pending, follow as follow_deliveries
from ..registry import open_registry
from ..registry.events import KINDS
from .options import current_settings, format_option, registry_option

POLL_SECONDS = 1.0


def parse_date(value, flag: str):
    """An ISO 8601 date or time (naive: UTC) as an aware datetime; None stays None."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date (ISO 8601, e.g. 2026-01-31 or "
                                 "2026-01-31T12:00:00Z)", param_hint=flag) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _webhooks():
    project = current_settings().project
    return webhooks_of(project.project, project.folder)


@click.group(invoke_without_command=True)
@click.option("--since", default=None, metavar="DATE", help="Events at or after DATE.")
@click.option("--after", "after_seq", type=click.IntRange(min=0), default=0, metavar="SEQ",
              help="Events after this sequence number (a cursor).")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS),
              help="Only this kind; repeatable.")
@click.option("--follow", is_flag=True, help="Keep printing new events as they come.")
@click.option("--failed", is_flag=True,
              help="The dead-letter list: deliveries to webhooks that gave up.")
@click.option("--stop-after", type=float, default=None, hidden=True)
@registry_option
@format_option("human", "json")
@click.pass_context
def events(ctx, since, after_seq, kinds, follow, failed, stop_after, registry_url, fmt):
    """The contact event log: bounces, complaints, replies, faulty, reactivated, erased.

    `--format json` prints one JSON object per line (what webhooks receive)."""
    if ctx.invoked_subcommand is not None:
        return
    since = parse_date(since, "--since")
    with open_registry(registry_url, create=False) as registry:
        if failed:
            _print_failed(registry.events.deliveries.dead(), registry, fmt)
            return
        _print_events(registry, after_seq, since, kinds, follow, stop_after, fmt)


def _print_events(registry, after_seq, since, kinds, follow, stop_after, fmt) -> None:
    deadline = None if stop_after is None else time.monotonic() + stop_after
    while True:
        found = registry.events.since(after_seq, since, kinds)
        for event in found:
            click.echo(_line(event, fmt))
            after_seq = event["seq"]
        if not follow or (deadline is not None and time.monotonic() > deadline):
            return
        time.sleep(POLL_SECONDS)


def _line(event: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(event, ensure_ascii=False, sort_keys=True)
    data = event["data"]
    detail = " ".join(str(data[k]) for k in ("kind", "reason", "status", "subject",
                                               "cause") if data.get(k))
    return (f"{event['seq']:>6}  {event['time']}  {event['kind']:<11} "
            f"{event['email'] or '-':<32} {event['account'] or '-':<12} {detail}").rstrip()


def _print_failed(rows: list[dict], registry, fmt: str) -> None:
    events_by_seq = registry.events.by_seq(r["seq"] for r in rows)
    for row in rows:
        event = events_by_seq.get(row["seq"]) or {}
        row = {**row, "kind": event.get("kind"), "event_id": event.get("id")}
        if fmt == "json":
            click.echo(json.dumps(row, ensure_ascii=False, sort_keys=True))
        else:
            click.echo(f"{row['webhook']}  event {row['seq']} ({row['kind']}, "
                       f"{row['email'] or '-'})  {row['attempts']} attempts: "
                       f"{row['last_error']}")
    if fmt != "json":
        click.echo(f"\n{len(rows)} failed deliver{'y' if len(rows) == 1 else 'ies'}")


@events.command("deliver")
@click.option("--follow", is_flag=True, help="Keep delivering as new events come.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=POLL_SECONDS,
              show_default=True, metavar="SECONDS", help="With --follow: how often.")
@click.option("--stop-after", type=float, default=None, hidden=True)
@registry_option
def events_deliver(follow, interval, stop_after, registry_url):
    """POST new events to the project file's webhooks (spec.events.webhooks), retrying
    failures with backoff; what `mailform worker` does on PostgreSQL."""
    hooks = _webhooks()
    if not hooks:
        raise MailformError("the project file declares no webhooks (spec.events.webhooks)")
    with open_registry(registry_url, create=False) as registry:
        if not follow:
            report = deliver_pending(registry, hooks)
            _print_report(report)
            return 1 if report.dead else 0
        deadline = None if stop_after is None else time.monotonic() + stop_after
        follow_deliveries(registry, hooks, interval, _print_report,
                          lambda: deadline is not None and time.monotonic() > deadline)
    return 0


def _print_report(report) -> None:
    for error in report.errors:
        click.echo(f"Warning: {error}", err=True)
    if report.delivered or report.retrying or report.dead:
        click.echo(f"{report.delivered} delivered, {report.retrying} to retry, "
                   f"{report.dead} failed for good.")


@events.command("redeliver")
@click.argument("seqs", nargs=-1, type=int)
@click.option("--webhook", default=None, metavar="NAME", help="Only this webhook's.")
@registry_option
def events_redeliver(seqs, webhook, registry_url):
    """Put failed deliveries (all, or of the events SEQ…) back in the queue; the next
    `events deliver` (or the worker) sends them."""
    with open_registry(registry_url, create=False) as registry:
        count = registry.events.deliveries.redeliver(webhook, seqs)
    click.echo(f"{count} deliver{'y' if count == 1 else 'ies'} queued again.")
    return 0


@events.command("prune")
@click.option("--older-than", "days", type=click.IntRange(min=1), default=None,
              metavar="DAYS", help="Default: spec.events.retention_days of the project file.")
@registry_option
def events_prune(days, registry_url):
    """Forget events (and their webhook deliveries) and the proxy's delivery-log entries
    older than the retention."""
    days = days or retention_days(current_settings().project.project)
    if days is None:
        raise MailformError("no retention: give --older-than DAYS or set "
                            "spec.events.retention_days in the project file")
    with open_registry(registry_url, create=False) as registry:
        count = registry.events.prune(datetime.now(timezone.utc) - timedelta(days=days))
        logged = registry.delivery_log.prune(days) if hasattr(registry, "delivery_log") else 0
    click.echo(f"{count} event(s) and {logged} delivery-log entries older than {days} days "
               "removed.")
    return 0
