"""Options shared by several commands, defined once, and the helpers behind them."""
from __future__ import annotations

import functools
from typing import Callable

import click

from ..errors import ManifestError
from ..manifest import Desired, load, load_var_file

DEFAULT_PATHS = ("manifests",)
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


def load_desired(paths, var_files, var_pairs, environment) -> Desired:
    """Gather template variables and load the manifests; all problems raised together."""
    variables: dict = {}
    problems = []
    for path in var_files:
        values, found = load_var_file(path)
        variables.update(values)
        problems += found
    variables.update(dict(var_pairs))
    if problems:
        raise ManifestError(problems)
    return load(paths or DEFAULT_PATHS, variables, environment)


def pass_desired(func: Callable) -> Callable:
    """Turn the manifest options into a loaded ``desired`` keyword argument."""
    @manifest_options
    @functools.wraps(func)
    def wrapper(*args, paths, var_files, var_pairs, environment, **kwargs):
        desired = load_desired(paths, var_files, var_pairs, environment)
        return func(*args, desired=desired, **kwargs)
    return wrapper
