"""`mailform sender preview`: what a contact would see, and why."""
from __future__ import annotations

import json

import click

from ..errors import NotFoundError
from ..sender import sender_for
from ..registry import open_registry
from .options import format_option, registry_option


def _parse_details(ctx, param, values) -> dict:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{item}' is not of the form KEY=VALUE", ctx, param)
        out[key.strip()] = value
    return out


@click.group()
def sender():
    """The sender identity contacts see."""


@sender.command("preview")
@click.argument("name")
@click.option("--contact", "contact_email", metavar="EMAIL",
              help="The stored contact whose details fill the account's from_override.")
@click.option("--details", "details", multiple=True, callback=_parse_details,
              metavar="KEY=VALUE",
              help="A contact detail to try (repeatable); wins over the stored contact's.")
@registry_option
@format_option("human", "json")
def sender_preview(name, contact_email, details, registry_url, fmt):
    """The From and Reply-To a contact would see for account NAME, with the reasons."""
    with open_registry(registry_url, create=False) as registry:
        account = registry.account(name)
        contact = registry.contact(contact_email) if contact_email else None
    if account is None:
        raise NotFoundError(f"no account '{name}' in the registry")
    if contact_email and contact is None:
        click.echo(f"Note: {contact_email} is not a contact"
                   + ("; using the --details given." if details else
                      "; showing the account's own sender."), err=True)
    result = sender_for(account.spec, {**((contact or {}).get("details") or {}), **details})
    _print(result, fmt)
    return 0


def _print(result, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps({"from": result.from_header(), "reply_to": result.reply_to_header(),
                               "from_email": result.from_email, "from_name": result.from_name,
                               "reply_to_email": result.reply_to_email,
                               "reply_to_name": result.reply_to_name,
                               "overridden": result.overridden,
                               "reasons": list(result.reasons)}, indent=2))
        return
    click.echo(f"From:     {result.from_header()}")
    click.echo(f"Reply-To: {result.reply_to_header()}")
    click.echo("")
    for reason in result.reasons:
        click.echo(f"  {reason}")
