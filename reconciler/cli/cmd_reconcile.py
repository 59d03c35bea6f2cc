"""`mailform reconcile`: the loop — plan, report drift, apply when asked, re-verify, back off.

Every iteration re-reads the manifests and the registry. Transient failures (a
lock held by someone else, a registry or network error) back off exponentially;
terminal ones (invalid manifests, an unresolvable secret, a blocked guard, a
failed connectivity check) are reported once and retried only after the
manifests change. One line per iteration (or a JSON object with --format json).
"""
from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Optional

import click

from ..apply import actor, apply_plan
from ..errors import LockedError, ManifestError, MailformError, RegistryError
from .options import format_option, load_desired, manifest_options, registry_option
from .planning import SecretsUnresolved, make_plan, registry_at, resolve_all

MAX_BACKOFF = 600.0


@dataclass
class Outcome:
    result: str                     # in_sync | drift | changes | applied | error | blocked
    message: str = ""
    transient: bool = False
    digest: str = ""
    counts: dict = field(default_factory=dict)
    drift: int = 0
    exit_code: int = 0


class _Stop:
    def __init__(self):
        self.requested = False

    def __call__(self, signum, frame):
        self.requested = True


def _verify(the_plan, values, skip_verify):
    if skip_verify:
        return {}
    from .verification import check_plan, failures
    by_account = check_plan(the_plan, values)
    failed = failures(by_account)
    if failed:
        raise _Terminal("connectivity checks failed: " + ", ".join(failed), 1)
    return {name: {"verification": roles} for name, roles in by_account.items()}


class _Terminal(MailformError):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.exit_code = code


def iteration(args: dict) -> Outcome:
    """One pass; never raises for expected failures."""
    try:
        desired = load_desired(args["paths"], args["var_files"], args["var_pairs"],
                               args["environment"])
        secrets = resolve_all(desired.accounts.values())
    except ManifestError as exc:
        return Outcome("error", f"{len(exc.problems)} manifest error(s); first: {exc.problems[0]}",
                       exit_code=1)
    except (SecretsUnresolved, MailformError) as exc:
        return Outcome("error", str(exc).splitlines()[0], exit_code=exc.exit_code)
    try:
        return _with_registry(args, desired, secrets)
    except LockedError as exc:
        return Outcome("error", str(exc), transient=True, digest=desired.digest, exit_code=5)
    except _Terminal as exc:
        return Outcome("blocked" if exc.exit_code == 3 else "error", str(exc),
                       digest=desired.digest, exit_code=exc.exit_code)
    except (RegistryError, OSError) as exc:
        return Outcome("error", str(exc), transient=True, digest=desired.digest, exit_code=1)


def _with_registry(args: dict, desired, secrets) -> Outcome:
    registry = registry_at(args["registry_url"])
    try:
        the_plan = make_plan(registry, desired, secrets)
        base = Outcome("in_sync", digest=desired.digest, counts=the_plan.summary,
                       drift=len(the_plan.drift))
        if not the_plan.has_changes:
            return base
        if not args["auto_apply"]:
            base.result = "drift" if the_plan.drift else "changes"
            base.message = "changes pending; run with --auto-apply or `mailform apply`"
            base.exit_code = 2 if args["detailed"] else 0
            return base
        with registry.lock(holder=f"{actor()} (reconcile)", timeout=0) as held:
            the_plan = make_plan(registry, desired, secrets)
            if the_plan.blocked_guards and not args["force"]:
                detail = "; ".join(f"{g.name}: {g.detail}" for g in the_plan.blocked_guards)
                raise _Terminal(f"blocked by safety guards: {detail}", 3)
            statuses = _verify(the_plan, secrets.values, args["skip_verify"])
            result = apply_plan(registry, the_plan, secrets.values, statuses=statuses,
                                lock_id=held.id)
        base.result, base.counts = "applied", the_plan.summary
        base.message = f"registry serial {result.serial}"
        return base
    finally:
        registry.close()


def _report(outcome: Outcome, fmt: str) -> None:
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
@click.option("--detailed-exitcode", "detailed", is_flag=True,
              help="With --once: exit 2 when changes are pending.")
@format_option("human", "json")
def reconcile(paths, var_files, var_pairs, environment, registry_url, interval, auto_apply,
              once, skip_verify, force, detailed, fmt):
    """Keep the registry in line with the manifests, pass after pass."""
    args = dict(paths=paths, var_files=var_files, var_pairs=var_pairs, environment=environment,
                registry_url=registry_url, auto_apply=auto_apply, skip_verify=skip_verify,
                force=force, detailed=detailed)
    if once:
        outcome = iteration(args)
        _report(outcome, fmt)
        return outcome.exit_code
    return _loop(args, interval, fmt)


def _loop(args: dict, interval: float, fmt: str) -> int:
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failures = 0
    parked_on: Optional[tuple] = None
    while not stop.requested:
        outcome = iteration(args)
        key = (outcome.result, outcome.message, outcome.digest)
        if outcome.transient:
            failures += 1
            _report(outcome, fmt)
        elif outcome.exit_code in (1, 3) and outcome.result in ("error", "blocked"):
            if key != parked_on:      # a terminal failure: say it once, wait for a change
                _report(outcome, fmt)
            parked_on, failures = key, 0
        else:
            parked_on, failures = None, 0
            _report(outcome, fmt)
        delay = min(interval * (2 ** failures), max(MAX_BACKOFF, interval)) if failures else interval
        deadline = time.monotonic() + delay
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    click.echo("reconcile: stopped", err=True)
    return 0
