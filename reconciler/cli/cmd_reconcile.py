"""`mailform reconcile`: options in, the workflow's loop, one line per pass out."""
from __future__ import annotations

import json
import signal
from datetime import datetime, timezone

import click

from ..apply import actor
from ..workflow.checks import check_plan
from ..workflow.reconcile import Loop, PassOptions, PassResult, run_pass
from .options import format_option, guard_options, inputs_of, manifest_options, registry_option


class _Stop:
    def __init__(self):
        self.requested = False

    def __call__(self, signum=None, frame=None):
        self.requested = True


def _report(outcome: PassResult, fmt: str) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt == "json":
        click.echo(json.dumps({"time": now, "result": outcome.result, "message": outcome.message,
                               "summary": outcome.counts, "drift": outcome.drift}))
        return
    counts = outcome.counts
    plan = (f" +{counts['add']} ~{counts['change']} -{counts['destroy']}" if counts else "")
    drift = f", drift in {outcome.drift} account(s)" if outcome.drift else ""
    message = f": {outcome.message}" if outcome.message else ""
    click.echo(f"{now} reconcile {outcome.result}{plan}{drift}{message}",
               err=outcome.result in ("error", "blocked"))


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
def reconcile(paths, var_files, var_pairs, environment, registry_url, interval, auto_apply,
              once, skip_verify, force, detailed, fmt):
    """Keep the registry in line with the manifests, pass after pass."""
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
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    Loop(one_pass, lambda outcome: _report(outcome, fmt), interval,
         lambda: stop.requested).forever()
    click.echo("reconcile: stopped", err=True)
    return 0
