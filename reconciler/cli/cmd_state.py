"""Reading and editing the registry: state, registry set, accounts, history, locks, import."""
from __future__ import annotations

import json

import click
import yaml

from ..apply import actor
from ..errors import NotFoundError
from ..model import SECRET_FIELDS
from ..workflow.edits import set_field
from .options import format_option, lock_timeout_option, registry_option
from .reading import open_for_reading
from ..registry import open_registry, registry_exists


def _check_summary(status: dict) -> str:
    checks = status.get("verification") or {}
    if not checks:
        return "-"
    return ",".join(f"{server}:{result.get('code', '?')}" for server, result in sorted(checks.items()))


def _status(account) -> dict:
    """An account's status as state list and state show both show it: activation is
    `active` unless the registry holds another value."""
    return {"activation": "active", **account.status}


def _conditions_of(registry) -> dict:
    """account -> type -> condition (none from a registry without them)."""
    part = getattr(registry, "conditions", None)
    return part.all() if part is not None else {}


def _flags(conditions: list[dict]) -> str:
    """The conditions that are not as they should be: `Verified=False Drifted=True`."""
    bad = [c for c in conditions
           if c["status"] != ("False" if c["type"] == "Drifted" else "True")]
    return " ".join(f"{c['type']}={c['status']}" for c in bad) or ("ok" if conditions else "")


def _scan_summary(status: dict) -> str:
    scan = status.get("last_scan") or {}
    return f"{scan.get('result', '?')} {scan.get('time', '')}".strip() if scan else "-"


@click.group()
def state():
    """What the registry holds."""


@state.command("list")
@registry_option
@format_option("human", "json")
def state_list(registry_url, fmt):
    """Every account with its status."""
    with open_for_reading(registry_url) as registry:
        accounts = registry.accounts()
        conds = _conditions_of(registry)
    rows = [{"name": a.name, "type": a.type, "email": a.spec.get("email"),
             "activation": _status(a)["activation"],
             "verification": a.status.get("verification"), "last_scan": a.status.get("last_scan"),
             "conditions": [c.as_dict() for c in conds.get(a.name, {}).values()]}
            for a in accounts.values()]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return 0
    header = ("NAME", "TYPE", "EMAIL", "STATUS", "LAST CHECK", "LAST SCAN", "CONDITIONS")
    table = [header] + [(r["name"], r["type"], r["email"] or "", r["activation"],
                         _check_summary(accounts[r["name"]].status),
                         _scan_summary(accounts[r["name"]].status),
                         _flags(r["conditions"])) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    click.echo(f"\n{len(rows)} account(s)")
    return 0


@state.command("show")
@click.argument("name")
@registry_option
@format_option("human", "json")
def state_show(name, registry_url, fmt):
    """One account: its live settings (secrets hidden) and status."""
    with open_for_reading(registry_url) as registry:
        account = registry.account(name)
        conds = _conditions_of(registry).get(name, {})
    if account is None:
        raise NotFoundError(f"no account '{name}' in the registry")
    secrets = {path: "(sensitive value)" for path in account.fingerprints}
    body = {"name": account.name, "type": account.type, "spec": account.spec,
            "secrets": secrets, "status": _status(account),
            "conditions": [c.as_dict() for c in conds.values()]}
    if fmt == "json":
        click.echo(json.dumps(body, indent=2, default=str))
    else:
        click.echo(f"# account.{name}")
        click.echo(yaml.safe_dump(body, sort_keys=False, default_flow_style=False).rstrip())
    return 0


@click.group("registry")
def registry_group():
    """Create a registry, rotate its key; out-of-band edits, as an operator would make them."""


@registry_group.command("init")
@registry_option
def registry_init(registry_url):
    """Create an empty registry and its key (an existing one is left as it is)."""
    existed = registry_exists(registry_url)
    with open_registry(registry_url) as registry:
        meta, source, shown = registry.meta(), registry.key_source(), registry.url
    verb = "already exists" if existed else "created"
    click.echo(f"Registry {shown} {verb} (lineage {meta.lineage}, serial {meta.serial}); "
               f"its key: {source}. Back up the registry together with its key.")
    return 0


@registry_group.command("rekey")
@registry_option
@click.option("--new-key-env", metavar="NAME",
              help="Variable holding the new key (urlsafe base64 of 32 bytes). Required when "
                   "the key comes from MAILFORM_MASTER_KEY (always for PostgreSQL); with a "
                   "key file, a new key is generated unless this is given.")
@lock_timeout_option
def registry_rekey(registry_url, new_key_env, lock_timeout):
    """Re-encrypt every secret and re-key every fingerprint under a new master key."""
    if not registry_exists(registry_url):
        raise NotFoundError("the registry does not exist yet: there is nothing to re-key")
    with open_registry(registry_url) as registry:
        done = registry.rekey(new_key_env, holder=actor(), timeout=lock_timeout)
        shown = registry.url            # a password in a PostgreSQL URL is never printed
    click.echo(f"Registry {shown} re-keyed: {done.accounts} account(s) re-encrypted "
               f"(serial {done.serial}). Saved plans made before it are stale: run plan again.")
    if done.env_name:
        click.echo(f"Now set MAILFORM_MASTER_KEY to the value of {done.env_name} wherever this "
                   "registry is used: the old key no longer opens it.")
    elif not done.key_installed:
        click.echo(f"The new key is in {done.key_source}.new; the next open moves it into place.")
    else:
        click.echo(f"The new key is in the {done.key_source}: back it up with the registry now.")
    click.echo("Restart long-running mailform processes (proxy, reconcile) so they use it.")
    return 0


@registry_group.command("set")
@click.argument("name")
@click.argument("assignment", metavar="PATH=VALUE")
@registry_option
def registry_set(name, assignment, registry_url):
    """Change one field of an account in the registry; the next plan reports drift."""
    path, sep, raw = assignment.partition("=")
    if not sep or not path:
        raise click.BadParameter(f"'{assignment}' is not of the form PATH=VALUE")
    value = raw if path in SECRET_FIELDS else yaml.safe_load(raw) if raw else ""
    with open_registry(registry_url, create=False) as registry:
        done = set_field(registry, name, path, value)
    if done.new_field:
        click.echo(f"Warning: {path} is not a field of account {name} yet; adding it.",
                   err=True)
    shown = "(sensitive value)" if path in SECRET_FIELDS else json.dumps(done.value)
    click.echo(f"account.{name}: {path} = {shown} (registry serial {done.serial})")
    return 0


@click.group()
def accounts():
    """Operator actions on accounts."""


@accounts.command("activate")
@click.argument("name")
@registry_option
def accounts_activate(name, registry_url):
    """Activate a marketing account that waits for activation."""
    with open_registry(registry_url, create=False) as registry:
        serial = registry.activate(name)
    click.echo(f"account.{name} is active (registry serial {serial})")
    return 0


@click.group(invoke_without_command=True)
@registry_option
@format_option("human", "json")
@click.pass_context
def history(ctx, registry_url, fmt):
    """Every write: applies (counts), operator edits, activations, re-keys
    (`history show SERIAL`: one entry with every change it made)."""
    if ctx.invoked_subcommand is not None:
        return 0
    with open_for_reading(registry_url) as registry:
        entries = registry.history()
    if fmt == "json":
        click.echo(json.dumps(entries, indent=2, default=str))
        return 0
    if not entries:
        click.echo("No applies yet.")
        return 0
    table = [("SERIAL", "TIME", "ACTOR", "WHAT")] + [
        (str(e.get("serial")), str(e.get("time")), str(e.get("actor")), _what(e))
        for e in entries]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)) + "  " + row[3])
    return 0


@history.command("show")
@click.argument("serial", type=click.IntRange(min=1))
@registry_option
@format_option("human", "json")
def history_show(serial, registry_url, fmt):
    """One history entry with every change it made (also a huge apply's)."""
    with open_for_reading(registry_url) as registry:
        log = getattr(registry, "history_log", None)
        entry = log.entry(serial) if log is not None else None
    if entry is None:
        raise NotFoundError(f"no history entry with serial {serial} (`mailform history` "
                            "lists them)")
    if fmt == "json":
        click.echo(json.dumps(entry, indent=2, default=str))
        return 0
    click.echo(f"serial {entry.get('serial')}  {entry.get('time')}  {entry.get('actor')}  "
               f"{_what(entry)}")
    for change in entry.get("changes") or []:
        click.echo(_change_lines(change))
    return 0


def _change_lines(change: dict) -> str:
    """``account.NAME: action`` and one ``  path: before -> after`` line per field."""
    lines = [f"{change.get('address')}: {change.get('action')}"]
    for field in change.get("changes") or []:
        before, after = ("(sensitive value)",) * 2 if field.get("sensitive") else (
            json.dumps(field.get("before"), default=str),
            json.dumps(field.get("after"), default=str))
        lines.append(f"  {field.get('path')}: {before} -> {after}")
    return "\n".join(lines)


_ACTIONS = {
    "rekey": lambda e: f"key rotated ({e.get('accounts', 0)} account(s) re-encrypted)",
    "set": lambda e: f"registry set account.{e.get('account')} {e.get('field')}",
    "activate": lambda e: f"accounts activate account.{e.get('account')}",
}


def _what(entry: dict) -> str:
    action = entry.get("action")
    if action:
        described = _ACTIONS.get(action)
        return described(entry) if described else f"{action} {entry.get('account') or ''}".strip()
    counts = entry.get("counts") or {}
    extra = "".join(f", {counts[key]} {word}" for key, word in (
        ("move", "moved"), ("forget", "forgotten")) if counts.get(key))
    return (f"apply +{counts.get('add', 0)} ~{counts.get('change', 0)} "
            f"-{counts.get('destroy', 0)}{extra}")


@click.command("force-unlock")
@click.argument("lock_id")
@registry_option
def force_unlock(lock_id, registry_url):
    """Remove a lock left behind by a process that is gone."""
    with open_registry(registry_url, create=False) as registry:
        registry.force_unlock(lock_id)
    click.echo(f"Lock {lock_id} removed by {actor()}.")
    return 0


from . import cmd_state_moves  # noqa: E402,F401  (state mv, state rm: added to the group)
