"""`mailform sender preview`: what a contact would see."""
from __future__ import annotations

import json

import click

from ..errors import NotFoundError
from ..sender import sender_for
from ..registry import open_registry
from .options import format_option, registry_option


@click.group()
def sender():
    """The sender identity contacts see."""


@sender.command("preview")
@click.argument("name")
@click.option("--contact", "contact_email", required=True, metavar="EMAIL",
              help="The contact whose details fill the account's from_override.")
@registry_option
@format_option("human", "json")
def sender_preview(name, contact_email, registry_url, fmt):
    """The From and Reply-To the contact would see for account NAME."""
    with open_registry(registry_url) as registry:
        account = registry.account(name)
        contact = registry.contact(contact_email)
    if account is None:
        raise NotFoundError(f"no account '{name}' in the registry")
    if contact is None:
        click.echo(f"Note: {contact_email} is not a contact; showing the account's own sender.",
                   err=True)
    result = sender_for(account.spec, (contact or {}).get("details"))
    if fmt == "json":
        click.echo(json.dumps({"from": result.from_header(), "reply_to": result.reply_to_header(),
                               "from_email": result.from_email, "from_name": result.from_name,
                               "reply_to_email": result.reply_to_email,
                               "reply_to_name": result.reply_to_name,
                               "overridden": result.overridden}, indent=2))
    else:
        click.echo(f"From:     {result.from_header()}")
        click.echo(f"Reply-To: {result.reply_to_header()}")
    return 0
