"""`mailform plan` and `mailform apply`."""
from __future__ import annotations

import gc
import json
import os
import sys

import click

from ..apply import actor, apply_plan, check_fresh, secrets_from_payload
from ..errors import GuardBlocked, MailformError
from ..plan import Plan, from_file_dict
from ..render import render
from ..render.json_out import render_plan_file
from .options import format_option, load_desired, manifest_options, registry_option
from .output import print_problems, use_color
from .planning import make_plan, registry_at, resolve_all, resolve_ref

EXIT_CHANGES = 2


def _no_color_option(func):
    return click.option("--no-color", is_flag=True, help="Never color the output.")(func)


def _target_option(func):
    return click.option("--target", "targets", multiple=True, metavar="NAME",
                        help="Only plan these accounts (repeatable).")(func)


def _lock_timeout_option(func):
    return click.option("--lock-timeout", type=float, default=0.0, show_default=True,
                        help="Seconds to wait for a registry lock held by someone else.")(func)


def _print_plan(plan: Plan, fmt: str, no_color: bool) -> None:
    click.echo(render(plan, fmt, color=use_color(no_color)), nl=False)
    for guard in plan.blocked_guards:
        click.echo(f"Error: blocked by safety guard {guard.name}: {guard.detail} "
                   "(--force to proceed anyway)", err=True)


def _load(paths, var_files, var_pairs, environment):
    desired = load_desired(paths, var_files, var_pairs, environment)
    # The manifests live as long as this command: keep the cyclic collector from
    # walking them again and again while the registry rows and the plan are built.
    gc.freeze()
    print_problems([], desired.warnings)
    return desired, resolve_all(desired.accounts.values())


@click.command()
@manifest_options
@registry_option
@format_option("human", "json", "markdown")
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False),
              help="Save the plan to FILE for `mailform apply FILE`.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@click.option("--verify", "run_verify", is_flag=True,
              help="Check connectivity of created and changed accounts.")
@_target_option
@click.option("--force", is_flag=True, help="Report safety guards without failing on them.")
@_no_color_option
def plan(paths, var_files, var_pairs, environment, registry_url, fmt, out_file,
         detailed_exitcode, run_verify, targets, force, no_color):
    """Show what apply would change in the registry."""
    desired, secrets = _load(paths, var_files, var_pairs, environment)
    registry = registry_at(registry_url)
    try:
        the_plan = make_plan(registry, desired, secrets, targets)
    finally:
        registry.close()
    if run_verify:
        from .verification import annotate_plan
        annotate_plan(the_plan, secrets.values)
    _print_plan(the_plan, fmt, no_color)
    if out_file:
        with open(out_file, "w", encoding="utf-8") as handle:
            handle.write(render_plan_file(the_plan))
        if fmt == "human":
            click.echo(f"\nSaved the plan to {out_file}. To apply it: mailform apply {out_file}")
    if the_plan.blocked_guards and not force:
        return GuardBlocked.exit_code
    if run_verify and _failed_verification(the_plan):
        return 1
    return EXIT_CHANGES if detailed_exitcode and the_plan.has_changes else 0


def _failed_verification(the_plan: Plan) -> bool:
    return any(result.get("code") != "ok" for rc in the_plan.resource_changes
               for result in (rc.verification or {}).values())


def _is_plan_file(paths) -> bool:
    if len(paths) != 1 or not os.path.isfile(paths[0]):
        return False
    with open(paths[0], "rb") as handle:
        return handle.read(64).lstrip().startswith(b"{")


def _read_plan_file(path: str) -> Plan:
    try:
        with open(path, encoding="utf-8") as handle:
            body = json.load(handle)
    except (OSError, ValueError) as exc:
        raise MailformError(f"{path}: cannot read the plan file: {exc}") from None
    return from_file_dict(body)


def _approve(auto_approve: bool) -> bool:
    if auto_approve:
        return True
    if not sys.stdin.isatty():
        click.echo("Error: refusing to apply without --auto-approve: standard input is not a "
                   "terminal, so nobody can answer the prompt.", err=True)
        return False
    click.echo("\nDo you want to perform these actions?\n"
               "  mailform will perform the actions described above.\n"
               "  Only 'yes' will be accepted to approve.\n")
    answer = click.prompt("  Enter a value", default="", show_default=False)
    if answer.strip() != "yes":
        click.echo("\nApply cancelled.", err=True)
        return False
    return True


@click.command()
@manifest_options
@registry_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking for 'yes'.")
@click.option("--skip-verify", is_flag=True, help="Apply without checking connectivity first.")
@click.option("--force", is_flag=True, help="Pass the safety guards.")
@_target_option
@_lock_timeout_option
@_no_color_option
def apply(paths, var_files, var_pairs, environment, registry_url, auto_approve, skip_verify,
          force, targets, lock_timeout, no_color):
    """Make the registry match the manifests (or a saved plan file)."""
    from_file = _is_plan_file(paths)
    if from_file and targets:
        raise click.UsageError("--target cannot be combined with a saved plan: "
                               "make the plan with --target instead")
    if from_file:
        the_plan, secrets, desired = _read_plan_file(paths[0]), None, None
    else:
        desired, resolved = _load(paths, var_files, var_pairs, environment)
        secrets = resolved
    registry = registry_at(registry_url)
    try:
        with registry.lock(holder=actor(), timeout=lock_timeout) as held:
            if from_file:
                check_fresh(registry, the_plan)
                values = secrets_from_payload(the_plan, registry, resolve_ref)
            else:
                the_plan = make_plan(registry, desired, secrets, targets)
                values = secrets.values
            _print_plan(the_plan, "human", no_color)
            if the_plan.blocked_guards and not force:
                return GuardBlocked.exit_code
            if not the_plan.has_changes:
                return 0
            if not auto_approve and not sys.stdin.isatty():
                _approve(False)                  # says why, before any check runs
                return 1
            statuses = _verify_before_apply(the_plan, values, skip_verify)
            if statuses is None:
                return 1
            if not _approve(auto_approve):
                return 1
            result = apply_plan(registry, the_plan, values, statuses=statuses, lock_id=held.id)
    finally:
        registry.close()
    click.echo("")
    click.echo(click.style(result.summary_line(), fg="green", bold=True)
               if use_color(no_color) else result.summary_line())
    return 0


def _verify_before_apply(the_plan, values, skip_verify):
    """Statuses to store, or None when a check failed (and nothing may be applied)."""
    if skip_verify:
        click.echo("Skipping connectivity checks (--skip-verify).", err=True)
        return {}
    from .verification import verify_changed
    return verify_changed(the_plan, values)
