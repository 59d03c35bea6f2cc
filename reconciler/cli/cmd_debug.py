"""`mailform debug NAME`: try port/security combinations, propose and optionally --fix."""
from __future__ import annotations

import contextlib
import json
import os

import click

from ..errors import MailformError
from ..manifest import account_secrets
from ..manifest.edit import fix_port_security
from ..servers import servers_for
from ..verify.debug import debug_servers
from ..workflow.inputs import load_desired
from .options import inputs_of, manifest_options
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
@click.option("--discover", is_flag=True,
              help="Also try the servers that DNS SRV records (RFC 6186/8314), the domain's "
                   "autoconfig file and its MX hosts point at; --fix may then change the host.")
@click.option("--dns-server", metavar="HOST[:PORT]", default=None,
              help="Use this DNS server for discovery (env MAILFORM_DNS_SERVER).")
def debug(name, paths, var_files, var_pairs, environment, fix, timeout, fmt, discover,
          dns_server):
    """Probe every port/security combination for NAME's SMTP and inbox servers.

    Prints a table of every candidate with its result and hint, and proposes
    the best one that accepted the account's credentials.  Exit 1 when a
    server has no working combination.
    """
    inputs = inputs_of(paths, var_files, var_pairs, environment)
    desired = load_desired(inputs)
    account = desired.accounts.get(name)
    if account is None:
        raise MailformError(f"no account named {name} in the manifests")
    endpoints = servers_for(account, account_secrets(account, policy=desired.secret_policy()))
    if not endpoints:
        raise MailformError(f"account {name} declares no SMTP or inbox server "
                            "(marketing accounts are sent through the platform)")
    lookup = _lookup(dns_server, timeout) if discover else None
    found = _discover(account.spec.email, endpoints, lookup, timeout) if lookup else None
    with _resolving(lookup):
        reports = debug_servers(endpoints, timeout, port_map=port_map(), account_name=name,
                                extra=found[1] if found else None)
    if fmt == "json":
        data = {role: rep.to_dict() for role, rep in reports.items()}
        if found:
            data["discovery"] = found[0].to_dict()
        click.echo(json.dumps(data, indent=2))
    else:
        if found:
            _print_discovery(found[0])
        for role, rep in reports.items():
            _print_report(role, rep)
    if fix:
        # the var files the manifests were rendered with: the environment's, then --var-file
        _apply_fix(account, reports, inputs.var_files, inputs.var_pairs)
    return 0 if all(rep.ok for rep in reports.values()) else 1


def _lookup(dns_server, timeout: float):
    from ..deliverability.resolver import Lookup
    return Lookup(dns_server, lifetime=timeout)


def _resolving(lookup):
    """With a DNS server given (flag or MAILFORM_DNS_SERVER), the probes resolve host
    names through it too."""
    if lookup is None or lookup.server is None:
        return contextlib.nullcontext()
    from ..deliverability.resolver import host_lookups_through
    return host_lookups_through(lookup)


def _discover(email: str, endpoints, lookup, timeout: float):
    """(discovery, role -> [(host, port, security, source)]) for debug --discover."""
    from ..deliverability.discover import discover
    mapping = port_map()
    found = discover(email, lookup, port_map=mapping, timeout=timeout)
    extra = {role: [(c.host, mapping.get(c.port, c.port), c.security, c.source)
                    for c in found.of_kind(settings.kind)]
             for role, settings in endpoints.items()}
    return found, extra


def _print_discovery(found) -> None:
    click.echo(f"Discovery for {found.domain}: {len(found.candidates)} candidate(s)")
    for cand in found.candidates:
        click.echo(f"  {cand.kind} {cand.host}:{cand.port} {cand.security}  (from {cand.source})")
    for problem in found.problems:
        click.echo(f"  note: {problem}")
    click.echo("")


def port_map() -> dict[int, int]:
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
            f"host {row.host} from {row.source}" if row.source else "",
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
        host = f"host {rep.proposal.host}, " if rep.proposal.host != rep.host else ""
        click.echo(f"  Proposal: {host}port {rep.proposal.port}, security "
                   f"{rep.proposal.security} (declared: {'host ' + rep.host + ', ' if host else ''}"
                   f"port {rep.declared.port}, security {rep.declared.security})")
    else:
        click.echo(f"  The declared settings work (port {rep.proposal.port}, "
                   f"security {rep.proposal.security}).")
    click.echo("")


def _apply_fix(account, reports, var_files, var_pairs) -> None:
    changes = {role: rep.proposal for role, rep in reports.items() if rep.changed}
    if not changes:
        click.echo("--fix: nothing to change.")
        return
    if account.source is None:
        raise MailformError(f"--fix: account {account.name} has no source file")
    written = fix_port_security(account.source[0], account.name,
                                {role: reports[role].edit() for role in changes},
                                var_files, var_pairs)
    for item in written:
        click.echo(f"--fix: {item.file}:{item.line}: {item.field} = {item.value}")
    if any(item.field.startswith("var.") for item in written):
        click.echo("--fix: a var file changed: every manifest that uses those variables "
                   "gets the new value (run `mailform plan` to see them all).")
