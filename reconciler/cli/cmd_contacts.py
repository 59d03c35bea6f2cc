"""`mailform contacts import|list|show`."""
from __future__ import annotations

import csv
import json
import sys

import click

from ..contacts import parse_contacts
from ..errors import MailformError, NotFoundError
from ..registry import open_registry
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
@registry_option
@format_option("human", "json", "csv")
def contacts_list(status, registry_url, fmt):
    """Contacts, optionally only the active or the faulty ones."""
    with open_registry(registry_url) as registry:
        rows = registry.contacts(status)
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
            tail = f"  last bounce: {last.get('kind')} {last.get('status') or ''} " \
                   f"{last.get('time')}".rstrip() if last else ""
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
