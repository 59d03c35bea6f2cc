"""Opening a registry to read it: a missing one is read as empty, and said so, never created."""
from __future__ import annotations

import click

from ..registry import Registry, open_or_empty


def open_for_reading(registry_url: str, doing: str = "reading it as empty") -> Registry:
    """The registry at ``registry_url``, or an empty stand-in with one line on stderr
    (plan, state, history and import never create a registry)."""
    registry = open_or_empty(registry_url)
    if getattr(registry, "missing", False):
        click.echo(f"Note: there is no registry at {registry.url} yet; {doing} "
                   "(`mailform apply` or `mailform registry init` creates it).", err=True)
    return registry
