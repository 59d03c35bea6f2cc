"""Options shared by several commands, defined once, and the helpers behind them.

The project file, the environment and the registry are options of every command that
reads manifests or a registry: ``--config`` and ``--environment`` are noted first
(eager), and the rest is decided by the core (``workflow.settings``, precedence in
``reconciler.project``) once, when a value is needed: ``--registry`` becomes the URL,
PATHS default to the project's manifests, ``inputs_of`` adds the environment's var
files, guards and ownership.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import click

from ..manifest import Desired
from ..manifest.secrets import DEFAULT_REGISTRY
from ..workflow.inputs import DEFAULT_PATHS, Inputs, load_desired as workflow_load_desired
from ..workflow.settings import ProjectFile, Settings, open_project, registry_for, settings_for

__all__ = ["DEFAULT_PATHS", "DEFAULT_REGISTRY"]

_CONFIG, _ENVIRONMENT, _PROJECT = "mailform.config", "mailform.environment", "mailform.project"
_DESTROY, _CHANGE = "mailform.max_destroy_percent", "mailform.max_change_percent"
_REGISTRY = "mailform.registry"


def _noted(key: str) -> Callable:
    def callback(ctx, param, value):
        ctx.meta[key] = value
        return value
    return callback


def _project(ctx: click.Context) -> ProjectFile:
    if _PROJECT not in ctx.meta:
        ctx.meta[_PROJECT] = open_project(ctx.meta.get(_CONFIG))
    return ctx.meta[_PROJECT]


def current_settings() -> Settings:
    """The environment chosen and what it brings (an error names what is wrong)."""
    ctx = click.get_current_context()
    return settings_for(_project(ctx), ctx.meta.get(_ENVIRONMENT), os.environ,
                        ctx.meta.get(_DESTROY), ctx.meta.get(_CHANGE))


def environments_declared() -> bool:
    """Whether a project file declares environments (then --environment picks a registry)."""
    project = _project(click.get_current_context()).project
    return bool(project and project.spec.environments)


def current_ownership() -> Optional[str]:
    """The project's ownership.name (None: it manages every account)."""
    return _project(click.get_current_context()).ownership


def _add_once(func: Callable, option: click.Parameter, replace: bool = False) -> Callable:
    """Add ``option`` unless the command has one of that name (``replace``: swap it)."""
    params = func.__dict__.setdefault("__click_params__", [])
    same = [p for p in params if p.name == option.name]
    if same and not replace:
        return func
    for old in same:
        params.remove(old)
    params.append(option)
    return func


def _config_option() -> click.Option:
    return click.Option(["--config"], type=click.Path(dir_okay=False), is_eager=True,
                        expose_value=False, callback=_noted(_CONFIG), metavar="FILE",
                        help="The project file (default: mailform.yaml here or in a folder "
                             "above).")


def _environment_option(exposed: bool) -> click.Option:
    return click.Option(["--environment"], default=None, is_eager=True, expose_value=exposed,
                        callback=_noted(_ENVIRONMENT), metavar="NAME",
                        help="The environment: its registry, var files and guards from the "
                             "project file; templates see it as `environment` (default: "
                             "MAILFORM_ENVIRONMENT, else the project's default_environment, "
                             "else `default`).")


def _default_paths(ctx, param, value):
    return tuple(value) or _project(ctx).manifests


def _parse_var(ctx, param, values):
    out = []
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{item}' is not of the form key=value", ctx, param)
        out.append((key.strip(), value))
    return out


def manifest_options(func: Callable) -> Callable:
    """PATHS (default: the project's manifests), --var-file, --var, --environment, --config."""
    decorators = [
        click.argument("paths", nargs=-1, type=click.Path(), callback=_default_paths),
        click.option("--var-file", "var_files", multiple=True, type=click.Path(),
                     help="YAML mapping of template variables (repeatable, later wins; "
                          "after the environment's var_files)."),
        click.option("--var", "var_pairs", multiple=True, callback=_parse_var, metavar="KEY=VALUE",
                     help="A template variable (repeatable, wins over --var-file)."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    _add_once(func, _environment_option(exposed=True), replace=True)
    return _add_once(func, _config_option())


def _registry_url(ctx, param, value):
    choice = registry_for(_project(ctx), value, ctx.meta.get(_ENVIRONMENT), os.environ)
    ctx.meta[_REGISTRY] = choice
    return choice.url


def registry_chosen_by_runner() -> bool:
    """False when the registry is a URL written in the project file (see RegistryChoice)."""
    choice = click.get_current_context().meta.get(_REGISTRY)
    return choice is None or choice.runner_chose


def registry_option(func: Callable) -> Callable:
    """--registry (decided with --environment and --config, which it adds when missing)."""
    func = click.option("--registry", "registry_url", default=None, callback=_registry_url,
                        metavar="URL",
                        help="Registry URL: sqlite:///PATH or postgresql://… (default: "
                             "MAILFORM_REGISTRY, else the environment's registry in the "
                             "project file, else sqlite:///.mailform/registry.db).")(func)
    _add_once(func, _environment_option(exposed=False))
    return _add_once(func, _config_option())


def guard_options(func: Callable) -> Callable:
    """--max-destroy-percent and --max-change-percent (over the environment's guards)."""
    for flag, key, what in (("--max-destroy-percent", _DESTROY, "deleted or replaced"),
                            ("--max-change-percent", _CHANGE, "updated")):
        func = click.option(flag, type=click.FloatRange(0, 100), default=None,
                            expose_value=False, callback=_noted(key), metavar="PERCENT",
                            help=f"Block when more than PERCENT of the accounts this project "
                                 f"manages would be {what} (default: the environment's "
                                 "guards, else 30).")(func)
    return func


def format_option(*choices: str) -> Callable:
    return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0],
                        show_default=True, help="Output format.")


def inputs_of(paths, var_files, var_pairs, environment) -> Inputs:
    """The manifest options with what the project file and the environment add."""
    if click.get_current_context(silent=True) is None:
        return Inputs(tuple(paths), tuple(var_files), tuple(var_pairs), environment or "default")
    return current_settings().inputs(paths, var_files, var_pairs)


def load_desired(paths, var_files, var_pairs, environment, lean: bool = False) -> Desired:
    """The manifests named by the manifest options (all problems raised together);
    ``lean``: validate only (the accounts' models are not kept)."""
    return workflow_load_desired(inputs_of(paths, var_files, var_pairs, environment),
                                 lean=lean)


_NO_CACHE = "mailform.no_cache"


def no_cache_option(func: Callable) -> Callable:
    """``--no-cache``: read and validate every manifest (``workflow.cache``); noted, not
    passed to the command (``cache_wanted``)."""
    return click.option("--no-cache", is_flag=True, expose_value=False,
                        callback=_noted(_NO_CACHE),
                        help="Do not use or write the local cache in .mailform/cache "
                             "(env MAILFORM_NO_CACHE=1).")(func)


def cache_wanted() -> bool:
    """Whether this command may use the local cache: not with --no-cache or
    MAILFORM_NO_CACHE=1."""
    ctx = click.get_current_context(silent=True)
    noted = bool(ctx and ctx.meta.get(_NO_CACHE))
    return not noted and os.environ.get("MAILFORM_NO_CACHE", "") in ("", "0")


def no_color_option(func: Callable) -> Callable:
    return click.option("--no-color", is_flag=True, help="Never color the output.")(func)


def target_option(func: Callable) -> Callable:
    return click.option("--target", "targets", multiple=True, metavar="NAME",
                        help="Only plan these accounts (repeatable).")(func)


def lock_timeout_option(func: Callable) -> Callable:
    return click.option("--lock-timeout", type=float, default=0.0, show_default=True,
                        help="Seconds to wait for a registry lock held by someone else.")(func)
