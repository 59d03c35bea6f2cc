"""`mailform inbox scan`: read applied accounts' inboxes, turn bounces into contact status."""
from __future__ import annotations

import json

import click

from ..errors import NotFoundError
from .options import format_option, registry_option
from .output import plural
from .planning import registry_at


@click.group()
def inbox():
    """The bounce inboxes of applied accounts."""


def _settings(stored, secrets: dict, timeout: float):
    from ..bounces.mailbox import InboxSettings
    spec = stored.spec["inbox"]
    password = secrets.get("inbox.password") or secrets.get("smtp.password") or ""
    return InboxSettings(protocol=spec["protocol"], host=spec["host"], port=spec["port"],
                         security=spec["security"], username=spec.get("username") or
                         stored.spec.get("email"), password=password,
                         folder=spec.get("folder") or "INBOX",
                         verify_certificate=spec.get("verify_certificate", True), timeout=timeout)


def _targets(registry, names, scan_all):
    accounts = registry.accounts()
    if scan_all:
        return [a for a in accounts.values() if a.spec.get("inbox")]
    missing = [n for n in names if n not in accounts]
    if missing:
        raise NotFoundError("no account in the registry named " + ", ".join(missing))
    without = [n for n in names if not accounts[n].spec.get("inbox")]
    if without:
        raise NotFoundError("no inbox declared for " + ", ".join(without))
    return [accounts[n] for n in names]


def _human(report) -> str:
    b = report.bounces
    if not report.ok:
        return f"{report.account}: error: {report.error} (scanned {report.scanned} before it)"
    line = (f"{report.account}: scanned {report.scanned}, bounces hard {b['hard']} soft {b['soft']} "
            f"blocked {b['blocked']} complaint {b['complaint']}, "
            f"{plural(len(report.newly_faulty), 'contact')} newly faulty, "
            f"{len(report.unknown)} unknown address(es), deleted {report.deleted}")
    if report.remaining:
        line += f"; {report.remaining} more waiting for the next scan"
    return line


@inbox.command("scan")
@click.argument("names", nargs=-1)
@click.option("--all", "scan_all", is_flag=True, help="Every applied account with an inbox.")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds for each network operation.")
@registry_option
@format_option("human", "json")
def inbox_scan(names, scan_all, timeout, registry_url, fmt):
    """Process bounces in the inboxes of applied accounts."""
    from ..bounces.scan import scan_account
    if not names and not scan_all:
        raise click.UsageError("name the accounts to scan, or pass --all")
    registry = registry_at(registry_url)
    try:
        policy = registry.get_setting("bounce_policy") or {}
        reports = []
        for stored in _targets(registry, names, scan_all):
            spec = stored.spec["inbox"]
            settings = _settings(stored, registry.secrets(stored.name), timeout)
            reports.append(scan_account(registry, stored.name, settings, spec["batch_size"],
                                        spec["delete_bounces"], policy))
    finally:
        registry.close()
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        for report in reports:
            click.echo(_human(report), err=not report.ok)
        if not reports:
            click.echo("No applied account has an inbox.")
    return 1 if any(not r.ok for r in reports) else 0
