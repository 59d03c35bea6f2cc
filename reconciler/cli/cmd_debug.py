"""`mailform debug NAME`: try port/security combinations, propose and optionally --fix."""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import click

from ..errors import MailformError
from ..manifest import account_secrets
from ..verify.accounts import endpoints_for
from ..verify.debug import debug as run_debug
from .options import load_desired, manifest_options
from .output import use_color

DEFAULT_TIMEOUT = 5.0
# Developer hook: "465=10465,587=10587" points standard ports at a local test
# stack's high ports (devtools/mailstack.py, `make demo-live`).
PORT_MAP_ENV = "MAILFORM_DEBUG_PORT_MAP"


@click.command()
@click.argument("name")
@manifest_options
@click.option("--fix", is_flag=True,
              help="Write the working port and security into the manifest file.")
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=DEFAULT_TIMEOUT,
              show_default=True, help="Seconds per probe.")
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="Output format.")
def debug(name, paths, var_files, var_pairs, environment, fix, timeout, fmt):
    """Probe every port/security combination for NAME's SMTP and inbox servers.

    Prints a table of every candidate with its result and hint, and proposes
    the best one that accepted the account's credentials.  Exit 1 when a
    server has no working combination.
    """
    desired = load_desired(paths, var_files, var_pairs, environment)
    account = desired.accounts.get(name)
    if account is None:
        raise MailformError(f"no account named {name} in the manifests")
    endpoints = endpoints_for(account, account_secrets(account))
    if not endpoints:
        raise MailformError(f"account {name} declares no SMTP or inbox server "
                            "(marketing accounts are sent through the platform)")
    port_map = _port_map()
    with ThreadPoolExecutor(max_workers=len(endpoints)) as pool:
        futures = {role: pool.submit(run_debug, ep, timeout, port_map=port_map,
                                     account_name=name) for role, ep in endpoints.items()}
        reports = {role: future.result() for role, future in futures.items()}
    if fmt == "json":
        click.echo(json.dumps({role: rep.to_dict() for role, rep in reports.items()}, indent=2))
    else:
        for role, rep in reports.items():
            _print_report(role, rep)
    if fix:
        _apply_fix(account, reports)
    return 0 if all(rep.ok for rep in reports.values()) else 1


def _port_map() -> dict[int, int]:
    raw = os.environ.get(PORT_MAP_ENV, "").strip()
    out = {}
    for pair in filter(None, (p.strip() for p in raw.split(","))):
        std, _, actual = pair.partition("=")
        try:
            out[int(std)] = int(actual)
        except ValueError:
            raise MailformError(f"{PORT_MAP_ENV}: '{pair}' is not STANDARD=ACTUAL") from None
    return out


def _print_report(role: str, rep) -> None:
    color = use_color()
    click.echo(f"{role} ({rep.kind}) {rep.host}, declared port {rep.declared.port} "
               f"security {rep.declared.security}:")
    rows = [("", "PORT", "SECURITY", "RESULT", "STEP", "TIME", "DETAIL")]
    for row in rep.rows:
        detail = "; ".join(x for x in (
            f"certificate: {row.cert_reason}" if row.cert_reason else "",
            row.reply or "", f"hint: {row.hint}" if row.hint else "") if x)
        rows.append(("*" if row.declared else "", str(row.port), row.security, row.code,
                     row.step, f"{row.elapsed:.2f}s", detail))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for index, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) for i in range(6)]
        if index and color:
            cells[3] = click.style(cells[3], fg="green" if row[3] == "ok" else "red")
        click.echo("  " + "  ".join(cells + [row[6]]).rstrip())
    if rep.proposal is None:
        why = f" (login: {rep.login.code})" if rep.login is not None else ""
        click.echo(f"  No working combination found{why}.")
    elif rep.changed:
        click.echo(f"  Proposal: port {rep.proposal.port}, security {rep.proposal.security} "
                   f"(declared: port {rep.declared.port}, security {rep.declared.security})")
    else:
        click.echo(f"  The declared settings work (port {rep.proposal.port}, "
                   f"security {rep.proposal.security}).")
    click.echo("")


def _apply_fix(account, reports) -> None:
    changes = {role: rep.proposal for role, rep in reports.items() if rep.changed}
    if not changes:
        click.echo("--fix: nothing to change.")
        return
    if account.source is None:
        raise MailformError(f"--fix: account {account.name} has no source file")
    path = account.source[0]
    fix_port_security(path, account.name, {role: (p.port, p.security)
                                           for role, p in changes.items()})
    for role, p in changes.items():
        click.echo(f"--fix: {path}: spec.{role}: port {p.port}, security {p.security}")


def fix_port_security(path: str, name: str, changes: dict[str, tuple[int, str]]) -> None:
    """Rewrite spec.<role>.port / .security of account `name` in `path`.

    The file is read with ruamel.yaml's round-trip loader only to find where
    the two values are; then exactly those characters are replaced, so that
    comments, quoting, key order, indentation and line endings stay as they
    were.  A value produced by a template expression is refused.
    """
    with open(path, encoding="utf-8", newline="") as handle:
        text = handle.read()
    section_of = _locate(text, path, name)
    edits = []
    for role, (port, security) in changes.items():
        section = section_of(role)
        for key, new in (("port", str(port)), ("security", security)):
            line, col = section.lc.value(key)
            edits.append((line, col, section[key], new, f"spec.{role}.{key}"))
    lines = text.splitlines(keepends=True)
    for line, col, old, new, where in sorted(edits, reverse=True):
        lines[line] = _replace_scalar(lines[line], col, old, new, path, where)
    _write_atomically(path, "".join(lines))


def _locate(text: str, path: str, name: str):
    from ruamel.yaml import YAML

    try:
        docs = list(YAML(typ="rt").load_all(text))
    except Exception as exc:  # noqa: BLE001 - any parse failure means "edit by hand"
        raise MailformError(f"--fix: {path} is not plain YAML before templating "
                            f"({type(exc).__name__}); change port and security by hand") from None
    for doc in docs:
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if doc and doc.get("kind") == "EmailAccount" and isinstance(meta, dict) \
                and meta.get("name") == name:
            spec = doc["spec"]
            return lambda role: spec[role]
    raise MailformError(f"--fix: account {name} not found literally in {path} "
                        "(is its name templated?); change port and security by hand")


def _replace_scalar(line: str, col: int, old, new: str, path: str, where: str) -> str:
    old = str(old)
    quote = line[col] if col < len(line) and line[col] in "'\"" else ""
    start = col + len(quote)
    if "{" in old or not line.startswith(old, start) or \
            (quote and not line.startswith(quote, start + len(old))):
        raise MailformError(f"--fix: {path}: {where} is not a literal value "
                            "(templated?); change it by hand")
    return line[:start] + new + line[start + len(old):]


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.mailform-fix.tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    try:
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    except OSError:
        pass
    os.replace(tmp, path)
