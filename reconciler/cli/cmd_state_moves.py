"""`mailform state mv OLD NEW` and `mailform state rm NAME`: rename or let go, at the terminal.

Each is a one-change apply (``workflow.moves``): under the lock, one transaction, the
serial bumped and a history entry. What they do to the registry is what a ``Moved`` or
``Removed`` document does; the manifests must follow (rename the account, or drop it).
"""
from __future__ import annotations

import click

from ..apply import actor
from ..registry import open_registry
from ..workflow.moves import state_move, state_remove
from .cmd_state import state
from .options import current_ownership, lock_timeout_option, registry_option


@state.command("mv")
@click.argument("old")
@click.argument("new")
@registry_option
@lock_timeout_option
def state_mv(old, new, registry_url, lock_timeout):
    """Rename account OLD to NEW in the registry, keeping its status and history."""
    with open_registry(registry_url, create=False) as registry:
        done = state_move(registry, old, new, current_ownership(), actor(), lock_timeout)
    click.echo(f"Moved account.{old} to account.{new} (registry serial {done.serial}). "
               f"Rename it in the manifests too (metadata.name: {new}).")
    return 0


@state.command("rm")
@click.argument("name")
@registry_option
@lock_timeout_option
def state_rm(name, registry_url, lock_timeout):
    """Stop managing account NAME; it stays in the registry, as it is."""
    with open_registry(registry_url, create=False) as registry:
        done = state_remove(registry, name, current_ownership(), actor(), lock_timeout)
    click.echo(f"account.{name} is no longer managed by this project; it stays in the registry "
               f"(registry serial {done.serial}). Remove it from the manifests too.")
    return 0
