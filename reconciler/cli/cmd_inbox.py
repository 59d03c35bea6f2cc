"""`mailform inbox scan`: read applied accounts' inboxes, turn bounces into contact status."""
from __future__ import annotations

import json

import click

from ..registry import open_registry
from .options import format_option, registry_option
from .output import plural


@click.group()
def inbox():
    """The bounce inboxes of applied accounts."""


def _human(report) -> str:
    b = report.bounces
    if not report.ok:
        return f"{report.account}: error: {report.error} (scanned {report.scanned} before it)"
    line = (f"{report.account}: scanned {report.scanned}, bounces hard {b['hard']} soft {b['soft']} "
            f"blocked {b['blocked']} complaint {b['complaint']}, "
            f"{plural(len(report.newly_faulty), 'contact')} newly faulty, "
            f"{len(report.unknown)} unknown address(es), deleted {report.deleted}")
    if report.unverified:
        line += f", {report.unverified} unverified (not counted: `contacts show` lists them)"
    if report.remaining:
        line += f"; {report.remaining} more waiting for the next scan"
    return line


@inbox.command("scan")
@click.argument("names", nargs=-1)
@click.option("--all", "scan_all", is_flag=True, help="Every applied account with an inbox.")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds for each network step (connect, login, one batch FETCH...).")
@click.option("--deadline", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds one account's scan may take in all  [default: 10 x --timeout].")
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Accounts scanned at once (threads, each with its own registry "
                   "connection).")
@registry_option
@format_option("human", "json")
def inbox_scan(names, scan_all, timeout, deadline, concurrency, registry_url, fmt):
    """Process bounces in the inboxes of applied accounts."""
    from ..bounces.parallel import scan_many
    from ..bounces.scan import inbox_accounts
    if not names and not scan_all:
        raise click.UsageError("name the accounts to scan, or pass --all")
    with open_registry(registry_url) as registry:
        reports = scan_many(registry, inbox_accounts(registry, names, scan_all), timeout,
                            concurrency, lambda: open_registry(registry_url), deadline)
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        for report in reports:
            click.echo(_human(report), err=not report.ok)
        if not reports:
            click.echo("No applied account has an inbox.")
    return 1 if any(not r.ok for r in reports) else 0
