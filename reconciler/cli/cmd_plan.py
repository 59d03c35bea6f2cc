"""`mailform plan` and `mailform apply`: options in, the workflow, output out."""
from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys

import click

from ..workflow import checks, run
from ..workflow.cache import local_cache
from ..model.lazy import raw_values
from ..workflow.inputs import Inputs, Loaded, load_desired, resolve_all
from ..errors import GuardBlocked, MailformError
from ..plan import Plan
from ..registry import open_registry
from ..render import render_to
from ..render.json_out import render_plan_file
from ..workflow.run import ApplyRequest, Event, Status
from .options import (environments_declared, format_option, guard_options, inputs_of,
                      lock_timeout_option, manifest_options, no_color_option,
                      registry_chosen_by_runner, registry_option, target_option,
                      cache_wanted, no_cache_option)
from .output import print_problems, use_color
from .cmd_verify import dns_options, dns_settings
from .reading import open_for_reading

EXIT_CHANGES = 2


def _print_plan(plan: Plan, fmt: str, no_color: bool, force: bool = False) -> None:
    shown = plan.forced() if force else plan
    render_to(shown, fmt, lambda text: click.echo(text, nl=False), color=use_color(no_color))
    for guard in shown.guards:
        if guard.blocked:
            click.echo(f"Error: blocked by safety guard {guard.name}: {guard.detail} "
                       "(--force to proceed anyway)", err=True)
        elif guard.forced:
            click.echo(f"Warning: safety guard {guard.name} ({guard.detail}) passed with "
                       "--force", err=True)


def _load(inputs: Inputs, registry_url: str) -> Loaded:
    cache = local_cache(registry_url) if cache_wanted() else None
    desired = load_desired(inputs, cache.docs if cache else None)
    # The manifests live as long as this command: keep the cyclic collector from
    # walking them again and again while secrets, registry rows and the plan are built.
    gc.freeze()
    print_problems([], desired.warnings)
    return Loaded(desired, resolve_all(raw_values(desired.accounts),
                                       desired.secret_policy(registry_url)), inputs, cache)


@contextlib.contextmanager
def _collector_off():
    """While the plan is built and written: it makes millions of objects without cycles
    (changes, records, rows) that live as long as the command, and the cyclic collector
    would walk them again and again as they grow (a tenth of an apply of 10,000 creates).
    Afterwards they join the frozen manifests."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _open_for_saving(registry_url: str):
    from ..registry import registry_exists
    if not registry_exists(registry_url):
        raise MailformError(f"the registry {registry_url} does not exist yet, and a saved plan "
                            "is signed with the registry's key: create it first with "
                            "`mailform registry init` (same --registry / MAILFORM_REGISTRY)")
    return open_registry(registry_url)


def _open_for_planning(registry_url: str):
    return open_for_reading(registry_url, "planning against an empty one")


@click.command()
@manifest_options
@registry_option
@format_option("human", "json", "markdown")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False),
              help="Save the plan to FILE for `mailform apply FILE`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@click.option("--verify", "run_verify", is_flag=True,
              help="Check connectivity of created and changed accounts.")
@click.option("--verify-allow-host", "allow_hosts", multiple=True, metavar="PATTERN",
              help="With --verify: also log in to hosts matching PATTERN (shell pattern, "
                   "repeatable; env MAILFORM_VERIFY_ALLOW_HOSTS). Otherwise credentials go "
                   "only to servers an account has applied.")
@target_option
@click.option("--force", is_flag=True, help="Report safety guards without failing on them.")
@guard_options
@no_color_option
@no_cache_option
@dns_options
def plan(paths, var_files, var_pairs, environment, registry_url, fmt, out_file,
         detailed_exitcode, run_verify, allow_hosts, targets, force, no_color, dns_server,
         spf_include, strict_dns):
    """Show what apply would change in the registry."""
    if out_file:
        _check_writable(out_file)
    loaded = _load(inputs_of(paths, var_files, var_pairs, environment), registry_url)
    opener = _open_for_saving if out_file else _open_for_planning
    failed: list[str] = []
    dns_failed: list[str] = []
    with opener(registry_url) as registry:
        the_plan = run.make_plan(registry, loaded, targets)
        if run_verify:
            failed = run.verify_plan(registry, the_plan, loaded.secrets.values, allow_hosts,
                                     trust_registry=registry_chosen_by_runner())
            dns_failed = _plan_dns(the_plan, dns_settings(dns_server, spf_include, timeout=5.0),
                                   strict_dns)
        saved = render_plan_file(the_plan, run.plan_signer(registry)) if out_file else None
    _print_plan(the_plan, fmt, no_color, force)
    if out_file:
        _save(out_file, saved, fmt)
    if the_plan.blocked_guards and not force:
        return GuardBlocked.exit_code
    if failed:
        click.echo(f"Error: connectivity checks failed for {', '.join(failed)}", err=True)
    if dns_failed:
        click.echo(f"Error: deliverability checks failed (--strict-dns) for "
                   f"{', '.join(dns_failed)}", err=True)
    if failed or dns_failed:
        return 1
    return EXIT_CHANGES if detailed_exitcode and the_plan.has_changes else 0


def _plan_dns(the_plan: Plan, options, strict: bool) -> list[str]:
    """`plan --verify`: DNS findings as notes on the plan; what fails with --strict-dns."""
    reports = checks.dns_reports(the_plan, options)
    checks.annotate_dns(the_plan, reports)
    return checks.dns_failures(reports, strict)


def _check_writable(out_file: str) -> None:
    """Before any work: the folder of ``plan -o FILE`` is there."""
    folder = os.path.dirname(out_file) or "."
    if not os.path.isdir(folder):
        raise MailformError(f"cannot save the plan to {out_file}: the folder {folder} does "
                            "not exist")


def _save(out_file: str, text: str, fmt: str) -> None:
    try:
        with open(out_file, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise MailformError(f"cannot save the plan to {out_file}: "
                            f"{exc.strerror or type(exc).__name__}") from None
    if fmt == "human":
        click.echo(f"\nSaved the plan to {out_file}. To apply it: mailform apply {out_file}")


def _is_plan_file(paths) -> bool:
    if len(paths) != 1 or not os.path.isfile(paths[0]):
        return False
    with open(paths[0], "rb") as handle:
        return handle.read(64).lstrip().startswith(b"{")


class _Prompt:
    """Approval at a terminal: 'yes' only; refused at once without one."""

    def __init__(self, auto_approve: bool):
        self.auto = auto_approve

    def ready(self) -> bool:
        return self.auto or sys.stdin.isatty()

    def confirm(self, plan: Plan) -> bool:
        if self.auto:
            return True
        click.echo("\nDo you want to perform these actions?\n"
                   "  mailform will perform the actions described above.\n"
                   "  Only 'yes' will be accepted to approve.\n")
        return click.prompt("  Enter a value", default="", show_default=False).strip() == "yes"


_WRITTEN = {"create": "created", "update": "updated in-place", "delete": "destroyed",
            "replace": "replaced", "move": "moved", "forget": "forgotten"}


def _progress(no_color: bool, force: bool, event: Event) -> None:
    if event.kind == "planned":
        _print_plan(event.plan, "human", no_color, force)
    elif event.kind == "wrote":
        # (color=True: nothing to strip, an address has no escapes; not asking whether
        # stdout is a terminal for each of 100,000 lines)
        click.echo(f"{event.address}: {_WRITTEN.get(event.action, event.action)}", color=True)
    elif event.kind == "waiting":
        held = event.result or {}
        click.echo(f"Waiting for the registry lock held by {held.get('holder')} on "
                   f"{held.get('host')} (pid {held.get('pid')}) since {held.get('started')} "
                   f"(--lock-timeout)...", err=True)
    elif event.kind == "verify_skipped":
        click.echo("Skipping connectivity checks (--skip-verify).", err=True)
    elif event.kind == "verified":
        mark = "" if event.result["code"] == "ok" else "FAILED "
        click.echo(f"verify account.{event.account} {event.role}: {mark}"
                   f"{event.result['summary']}", err=True)


MESSAGES = {
    Status.NOT_APPROVABLE: "Error: refusing to apply without --auto-approve: standard input is "
                           "not a terminal, so nobody can answer the prompt.",
    Status.CANCELLED: "\nApply cancelled.",
}


def _exit_code(outcome: run.ApplyOutcome, no_color: bool) -> int:
    if outcome.status is Status.BLOCKED:
        return GuardBlocked.exit_code
    if outcome.status is Status.NO_CHANGES:
        return 0
    if outcome.status is Status.VERIFY_FAILED:
        click.echo(f"Error: connectivity checks failed for {', '.join(outcome.failures)}; "
                   "nothing was applied. Fix the settings (try `mailform debug NAME`) or pass "
                   "--skip-verify.", err=True)
        return 1
    if outcome.status in MESSAGES:
        click.echo(MESSAGES[outcome.status], err=True)
        return 1
    line = outcome.result.summary_line()
    click.echo("")
    click.echo(click.style(line, fg="green", bold=True) if use_color(no_color) else line)
    return 0


def _refuse_plan_file_options(targets, var_files, var_pairs, environment) -> None:
    """A saved plan is applied as it was made: options that would change it are refused."""
    given = [name for name, value in (("--target", targets), ("--var-file", var_files),
                                      ("--var", var_pairs)) if value]
    ctx = click.get_current_context()
    if ctx.get_parameter_source("environment") is click.core.ParameterSource.COMMANDLINE \
            and not environments_declared():     # with a project file, it picks the registry
        given.append("--environment")
    if given:
        raise click.UsageError(f"{', '.join(given)} cannot be combined with a saved plan, "
                               "which is applied exactly as it was made: pass them to "
                               "`mailform plan -o FILE` instead")


@click.command()
@manifest_options
@registry_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking for 'yes'.")
@click.option("--skip-verify", is_flag=True, help="Apply without checking connectivity first.")
@click.option("--force", is_flag=True, help="Pass the safety guards.")
@guard_options
@target_option
@lock_timeout_option
@no_color_option
@no_cache_option
@dns_options
def apply(paths, var_files, var_pairs, environment, registry_url, auto_approve, skip_verify,
          force, targets, lock_timeout, no_color, dns_server, spf_include, strict_dns):
    """Make the registry match the manifests (or a saved plan file)."""
    from_file = _is_plan_file(paths)
    if from_file:
        _refuse_plan_file_options(targets, var_files, var_pairs, environment)
    inputs = inputs_of(paths, var_files, var_pairs, environment)
    request = ApplyRequest(
        loaded=None if from_file else _load(inputs, registry_url),
        plan_file=paths[0] if from_file else None, targets=tuple(targets), force=force,
        lock_timeout=lock_timeout)
    opened = run.open_for_saved_plan(registry_url, paths[0]) if from_file else \
        open_registry(registry_url)
    with opened as registry, _collector_off():
        gate = None if skip_verify else checks.with_dns(
            checks.check_plan, dns_settings(dns_server, spf_include, timeout=5.0), strict_dns,
            lambda line: click.echo(f"Warning: {line}", err=True))
        outcome = run.apply(registry, request, _Prompt(auto_approve), gate,
                            functools.partial(_progress, no_color, force))
    return _exit_code(outcome, no_color)
