"""Options shared by several commands, defined once, and the helpers behind them."""
from __future__ import annotations

from typing import Callable

import click

from ..manifest import Desired
from ..workflow.inputs import DEFAULT_PATHS, Inputs, load_desired as workflow_load_desired

__all__ = ["DEFAULT_PATHS"]

DEFAULT_REGISTRY = "sqlite:///.mailform/registry.db"


def _parse_var(ctx, param, values):
    out = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{item}' is not of the form key=value", ctx, param)
        out.append((key.strip(), value))
    return out


def manifest_options(func: Callable) -> Callable:
    """PATHS, --var-file, --var and --environment."""
    decorators = [
        click.argument("paths", nargs=-1, type=click.Path()),
        click.option("--var-file", "var_files", multiple=True, type=click.Path(),
                     help="YAML mapping of template variables (repeatable, later wins)."),
        click.option("--var", "var_pairs", multiple=True, callback=_parse_var, metavar="KEY=VALUE",
                     help="A template variable (repeatable, wins over --var-file)."),
        click.option("--environment", default="default", show_default=True,
                     envvar="MAILFORM_ENVIRONMENT", help="Seen by templates as `environment`."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def registry_option(func: Callable) -> Callable:
    return click.option("--registry", "registry_url", envvar="MAILFORM_REGISTRY",
                        default=DEFAULT_REGISTRY, show_default=True,
                        help="Registry URL: sqlite:///PATH or postgresql://… "
                             "(env MAILFORM_REGISTRY).")(func)


def format_option(*choices: str) -> Callable:
    return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0],
                        show_default=True, help="Output format.")


def inputs_of(paths, var_files, var_pairs, environment) -> Inputs:
    return Inputs(tuple(paths), tuple(var_files), tuple(var_pairs), environment)


def load_desired(paths, var_files, var_pairs, environment) -> Desired:
    """The manifests named by the manifest options (all problems raised together)."""
    return workflow_load_desired(inputs_of(paths, var_files, var_pairs, environment))


def no_color_option(func: Callable) -> Callable:
    return click.option("--no-color", is_flag=True, help="Never color the output.")(func)


def target_option(func: Callable) -> Callable:
    return click.option("--target", "targets", multiple=True, metavar="NAME",
                        help="Only plan these accounts (repeatable).")(func)


def lock_timeout_option(func: Callable) -> Callable:
    return click.option("--lock-timeout", type=float, default=0.0, show_default=True,
                        help="Seconds to wait for a registry lock held by someone else.")(func)
