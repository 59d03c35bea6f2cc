"""`mailform contacts import|list|show|reactivate|purge|erase`."""
from __future__ import annotations

import csv
import json
import sys

import click

from ..contacts import parse_contacts
from ..errors import MailformError, NotFoundError
from ..registry import open_registry
from ..registry.common import default_actor
from .cmd_events import parse_date
from .options import format_option, registry_option

UNVERIFIED_SHOWN = 20   # the newest; the count covers them all


@click.group()
def contacts():
    """The platform's contacts: import them, list them, see their bounces."""


@contacts.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@registry_option
def contacts_import(file, registry_url):
    """Upsert contacts by email (case-insensitive) from CSV or JSON Lines."""
    try:
        if file == "-":
            text = sys.stdin.read()
        else:
            with open(file, encoding="utf-8-sig") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise MailformError(f"{file}: cannot read: {exc}") from None
    rows, problems = parse_contacts(text, file)
    for problem in problems:
        click.echo(f"Warning: {file}:{problem} (row skipped)", err=True)
    with open_registry(registry_url) as registry:
        inserted, updated = registry.upsert_contacts(rows)
    click.echo(f"{inserted} contacts added, {updated} updated, {len(problems)} rows skipped.")
    return 1 if problems and not rows else 0


@contacts.command("list")
@click.option("--status", type=click.Choice(["active", "faulty"]), default=None)
@click.option("--reason", default=None, metavar="REASON",
              help="Only contacts whose last bounce had this reason (user-unknown, "
                   "mailbox-full, …; see `bounces classify`).")
@click.option("--since", default=None, metavar="DATE",
              help="Only contacts that became faulty (or last bounced) on or after DATE "
                   "(ISO 8601, e.g. 2026-01-31).")
@registry_option
@format_option("human", "json", "csv")
def contacts_list(status, reason, since, registry_url, fmt):
    """Contacts, optionally only the active or the faulty ones, by reason and date."""
    since = parse_date(since, "--since")
    with open_registry(registry_url) as registry:
        rows = registry.ledger.listing(status, reason, since)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["email", "status", "soft_bounces", "last_bounce_kind"])
        for row in rows:
            writer.writerow([row["email"], row["status"], len(row["soft_bounces"] or []),
                             (row["last_bounce"] or {}).get("kind", "")])
    else:
        for row in rows:
            last = row["last_bounce"] or {}
            tail = f"  last bounce: {last.get('kind')} {last.get('reason') or ''} " \
                   f"{last.get('status') or ''} {last.get('time')}" if last else ""
            tail = " ".join(tail.split()) and "  " + " ".join(tail.split())
            click.echo(f"{row['email']:<40} {row['status']:<7}{tail}")
        click.echo(f"\n{len(rows)} contact(s)")
    return 0


@contacts.command("show")
@click.argument("email")
@registry_option
def contacts_show(email, registry_url):
    """One contact: details, status and bounce history (with the classifier's reason), and
    the bounces naming it that were not believed (unverified: they never change it)."""
    with open_registry(registry_url) as registry:
        row = registry.contact(email)
        unverified = registry.unverified_bounces(email) if row is not None else []
    if row is None:
        raise NotFoundError(f"no contact {email}")
    row = {**row, "unverified_count": len(unverified),
           "unverified_bounces": unverified[:UNVERIFIED_SHOWN]}
    click.echo(json.dumps(row, indent=2, default=str))
    return 0


@contacts.command("reactivate")
@click.argument("emails", nargs=-1, required=True)
@click.option("--reason", required=True, metavar="TEXT",
              help="Why (recorded in the `reactivated` event, with who did it).")
@registry_option
def contacts_reactivate(emails, reason, registry_url):
    """Set faulty contacts back to active (their soft bounces forgotten); each is recorded
    as a `reactivated` event. Exit 1 when one of them is not a contact."""
    if not reason.strip():
        raise click.BadParameter("must not be empty", param_hint="--reason")
    with open_registry(registry_url) as registry:
        done = registry.ledger.reactivate(emails, reason.strip(), default_actor())
    for email, result in done.items():
        click.echo(f"{email}: {result}")
    return 1 if "unknown" in done.values() else 0


@contacts.command("purge")
@click.option("--older-than", "days", type=click.FloatRange(min=0), required=True,
              metavar="DAYS", help="Soft-bounce records older than this many days go.")
@registry_option
def contacts_purge(days, registry_url):
    """Forget soft-bounce records older than DAYS (they no longer count anyway once out of
    the bounce policy's window)."""
    with open_registry(registry_url) as registry:
        dropped = registry.ledger.purge_soft(days)
    click.echo(f"{dropped} soft-bounce record(s) purged.")
    return 0


@contacts.command("erase")
@click.argument("emails", nargs=-1, required=True)
@registry_option
def contacts_erase(emails, registry_url):
    """Erasure requests: remove each person's contact, events, unverified bounces, and
    their address from the proxy's delivery log and the tagged-message log. One `erased`
    event per person keeps only a SHA-256 of the address."""
    with open_registry(registry_url) as registry:
        done = registry.ledger.erase(emails, registry.events.erase)
    for email, counts in done.items():
        removed = ", ".join(f"{table} {n}" for table, n in counts.items() if n)
        click.echo(f"{email}: " + (f"erased ({removed})" if removed else "nothing held"))
    return 0
