"""`mailform reconcile`: options in, the workflow's loop, one line per pass out."""
from __future__ import annotations

import json
import signal
from datetime import datetime, timezone

import click

from ..apply import actor
from ..registry import open_registry
from ..workflow.checks import check_plan
from ..workflow.reconcile import Loop, PassOptions, PassResult, run_pass
from .logfmt import log_format_option, metrics_listen_option
from .options import format_option, guard_options, inputs_of, manifest_options, registry_option


class _Stop:
    def __init__(self):
        self.requested = False

    def __call__(self, signum=None, frame=None):
        self.requested = True


def _not_true(outcome: PassResult) -> dict[str, list[str]]:
    """condition type -> accounts whose condition is not as it should be."""
    out: dict[str, list[str]] = {}
    for subject, conds in sorted(outcome.conditions.items()):
        for cond in conds:
            bad = cond["status"] == ("True" if cond["type"] == "Drifted" else "False")
            if bad and not subject.startswith("@"):
                out.setdefault(cond["type"], []).append(subject)
    return out


def _names(names: list[str], shown: int = 10) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _report(outcome: PassResult, fmt: str) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt == "json":
        click.echo(json.dumps({"time": now, "event": "reconcile_pass", "result": outcome.result,
                               "message": outcome.message, "summary": outcome.counts,
                               "drift": outcome.drift, "conditions": outcome.conditions}))
        return
    counts = outcome.counts
    plan = (f" +{counts['add']} ~{counts['change']} -{counts['destroy']}" if counts else "")
    drift = f", drift in {outcome.drift} account(s)" if outcome.drift else ""
    message = f": {outcome.message}" if outcome.message else ""
    flagged = "".join(f"; {kind}: {_names(names)}" for kind, names in _not_true(outcome).items())
    click.echo(f"{now} reconcile {outcome.result}{plan}{drift}{message}{flagged}",
               err=outcome.result in ("error", "blocked", "stale"))


def _ready(registry_url):
    def ready() -> bool:
        with open_registry(registry_url, create=False):
            return True
    return ready


def _metrics(listen, registry_url):
    if not listen:
        return lambda: None
    from .. import metrics
    from ..fleet.config import FleetConfig
    from ..fleet.schedule import condition_counts
    metrics.conditions_source(lambda: condition_counts(FleetConfig(registry_url)))
    metrics.runs("reconcile")
    try:
        return metrics.start(listen, _ready(registry_url))
    except (ValueError, OSError) as exc:
        raise click.UsageError(f"--metrics-listen {listen}: {exc}") from None


@click.command()
@manifest_options
@registry_option
@click.option("--interval", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
              help="Seconds between passes.")
@click.option("--auto-apply", is_flag=True, help="Apply the changes each pass finds.")
@click.option("--once", is_flag=True, help="One pass, then exit with its code.")
@click.option("--skip-verify", is_flag=True, help="Apply without connectivity checks.")
@click.option("--force", is_flag=True, help="Pass the safety guards when applying.")
@guard_options
@click.option("--detailed-exitcode", "detailed", is_flag=True,
              help="With --once: exit 2 when changes are pending.")
@format_option("human", "json")
@metrics_listen_option
@log_format_option
def reconcile(paths, var_files, var_pairs, environment, registry_url, interval, auto_apply,
              once, skip_verify, force, detailed, fmt, metrics_listen, log_format):
    """Keep the registry in line with the manifests, pass after pass."""
    fmt = "json" if log_format == "json" else fmt
    inputs = inputs_of(paths, var_files, var_pairs, environment)
    options = PassOptions(registry_url, auto_apply=auto_apply, force=force, detailed=detailed,
                          holder=f"{actor()} (reconcile)")
    verify = None if skip_verify else check_plan

    def one_pass() -> PassResult:
        return run_pass(inputs, options, verify)

    if once:
        outcome = one_pass()
        _report(outcome, fmt)
        return outcome.exit_code
    stop, stop_metrics = _Stop(), _metrics(metrics_listen, registry_url)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        Loop(one_pass, lambda outcome: _report(outcome, fmt), interval,
             lambda: stop.requested).forever()
    finally:
        stop_metrics()
    click.echo("reconcile: stopped", err=True)
    return 0
