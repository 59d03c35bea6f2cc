"""`mailform verify`: check settings of the desired accounts (SPEC §3, §6)."""
from __future__ import annotations

import json
import os
import sys

import click

from ..verify.runner import DEFAULT_CONCURRENCY, run_checks
from ..workflow import verifying
from .options import load_desired, manifest_options, registry_option
from .output import plural, print_problems, use_color

DEFAULT_TIMEOUT = 10.0


def dns_options(func):
    """--dns-server, --spf-include, --strict-dns: shared by verify, plan and apply."""
    for decorator in reversed([
        click.option("--dns-server", metavar="HOST[:PORT]", default=None,
                     help="Use this DNS server for every lookup (env MAILFORM_DNS_SERVER)."),
        click.option("--spf-include", metavar="DOMAIN", default=None,
                     help="The platform's SPF include that marketing accounts' SPF records "
                          "must name (default: spec.platform.spf_include of the project file)."),
        click.option("--strict-dns", is_flag=True,
                     help="Deliverability errors and warnings fail the check (otherwise only "
                          "errors fail `verify --dns`, and plan/apply just warn)."),
    ]):
        func = decorator(func)
    return func


def dns_settings(dns_server, spf_include, probe_reply_to=False, timeout=DEFAULT_TIMEOUT):
    """The deliverability options, with the project file's spf_include as the default."""
    from ..deliverability.checks import Options
    from .cmd_debug import port_map
    from .options import current_settings
    if spf_include is None:
        project = current_settings().project.project
        spf_include = project.spec.platform.spf_include if project is not None else None
    return Options(dns_server=dns_server, spf_include=spf_include,
                   probe_reply_to=probe_reply_to, timeout=timeout, port_map=port_map())


@click.command()
@manifest_options
@click.option("--account", "accounts", multiple=True, metavar="NAME",
              help="Only this account (repeatable).")
@click.option("--send-test", "send_test", is_flag=False, flag_value="", default=None,
              metavar="[ADDRESS]",
              help="Also send a test message, to ADDRESS or the account's own address.")
@click.option("--concurrency", type=click.IntRange(1, 1000), default=DEFAULT_CONCURRENCY,
              show_default=True, help="Checks in flight at once.")
@click.option("--timeout", type=click.FloatRange(0.1, 600), default=DEFAULT_TIMEOUT,
              show_default=True, help="Seconds per check, whatever the server does.")
@click.option("--format", "fmt", type=click.Choice(["human", "json"]), default="human",
              show_default=True, help="Output format.")
@registry_option
@click.option("--debug", "show_transcript", is_flag=True,
              help="Show each protocol transcript (stderr; in JSON: a 'transcript' list). "
                   "Everything sent while authenticating is redacted.")
@click.option("--dns", "dns_only", is_flag=True,
              help="Check deliverability DNS (MX, SPF, DKIM, DMARC, reverse DNS, MTA-STS, "
                   "TLS-RPT, the reply-to) instead of logging in.")
@dns_options
@click.option("--probe-reply-to", is_flag=True,
              help="With --dns: ask the reply-to domain's mail server (RCPT TO, no DATA) "
                   "whether the reply-to mailbox exists.")
def verify(paths, var_files, var_pairs, environment, accounts, send_test, concurrency, timeout,
           fmt, registry_url, show_transcript, dns_only, dns_server, spf_include, strict_dns,
           probe_reply_to):
    """Check that each account can log in to its SMTP and inbox servers.

    Exit 1 when any check fails.  Trust an extra CA with MAILFORM_CA_FILE=PEM.
    With --dns, check the DNS that deliverability depends on instead.
    """
    paths, send_test = _split_send_test(paths, send_test)
    desired = load_desired(paths, var_files, var_pairs, environment)
    if dns_only:
        options = dns_settings(dns_server, spf_include, probe_reply_to, timeout)
        return _verify_dns(desired, accounts, options, strict_dns, fmt)
    run = verifying.gather(desired, accounts, send_test, registry_url)
    items = verifying.tag_test_messages(
        registry_url, run.items, lambda text: click.echo(f"Warning: {text}", err=True))
    results = run_checks(items, concurrency, timeout, progress=_progress(len(items), fmt),
                         transcript=show_transcript)
    if show_transcript and fmt == "human":
        _print_transcripts(items, results)
    verifying.record(registry_url, desired.accounts, items, results)
    if fmt == "json":
        _print_json(items, results, run.secret_errors, run.skipped, desired.warnings)
    else:
        _print_human(items, results, run.secret_errors, run.skipped, desired.warnings)
    failed = run.secret_errors or any(not res.ok for res in results)
    return 1 if failed else 0


def _verify_dns(desired, accounts, options, strict: bool, fmt: str) -> int:
    from ..deliverability.findings import summary
    from ..deliverability.gate import check_specs, failing
    from ..render.deliverability import render_human, render_json
    chosen = [(account.name, account.spec.model_dump())
              for account in verifying.select(desired.accounts, accounts)]
    reports = check_specs(chosen, options)
    dicts, totals = [r.to_dict() for r in reports], summary(reports)
    if fmt == "json":
        click.echo(render_json(dicts, totals), nl=False)
    else:
        print_problems([], desired.warnings)
        click.echo(render_human(dicts, totals, _severity_style() if use_color() else None),
                   nl=False)
    return 1 if failing(reports, strict) else 0


def _severity_style():
    colors = {"error": "red", "warning": "yellow", "info": "blue"}
    return lambda cell, severity: click.style(cell, fg=colors.get(severity))


def _print_transcripts(items, results) -> None:
    for item, res in zip(items, results):
        click.echo(f"--- account.{item.account} {item.role}: {res.kind} "
                   f"{res.host}:{res.port} {res.security}", err=True)
        for line in res.transcript:
            click.echo(f"    {line}", err=True)


def _split_send_test(paths: tuple, send_test: str | None) -> tuple[tuple, str | None]:
    """`verify --send-test manifests/`: click takes the path as the ADDRESS; give it back."""
    if send_test and "@" not in send_test:
        if os.path.exists(send_test):
            return paths + (send_test,), ""
        raise click.BadParameter(f"'{send_test}' is not an email address",
                                 param_hint="--send-test")
    return paths, send_test


def _progress(total: int, fmt: str):
    """A progress bar on a terminal only (stderr), never in JSON mode."""
    if total == 0 or fmt != "human" or not sys.stderr.isatty():
        return None
    bar = click.progressbar(length=total, label="verifying", file=sys.stderr,
                            show_eta=False, show_pos=True)
    bar.__enter__()

    def update(done: int, _total: int, _result) -> None:
        bar.update(1)
        if done == _total:
            bar.__exit__(None, None, None)

    return update


def _row(item, res) -> dict:
    data = {"account": item.account, "role": item.role}
    data.update(res.to_dict())
    return data


def _print_json(items, results, secret_errors, skipped, warnings) -> None:
    rows = [_row(item, res) for item, res in zip(items, results)]
    failed = sum(1 for res in results if not res.ok)
    click.echo(json.dumps({
        "results": rows,
        "errors": secret_errors,
        "skipped": skipped,
        "warnings": [w.to_dict() for w in warnings],
        "summary": {"checks": len(results), "ok": len(results) - failed, "failed": failed,
                    "errors": len(secret_errors)},
    }, indent=2))


def _print_human(items, results, secret_errors, skipped, warnings) -> None:
    print_problems([], warnings)
    color = use_color()
    header = ("ACCOUNT", "SERVER", "ENDPOINT", "RESULT", "TIME", "DETAIL")
    rows = [header]
    for item, res in zip(items, results):
        rows.append((item.account or "", f"{item.role} ({res.kind})",
                     f"{res.host}:{res.port} {res.security}", res.code,
                     f"{res.elapsed:.2f}s", _detail(res)))
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for index, row in enumerate(rows):
            cells = [row[i].ljust(widths[i]) for i in range(5)]
            if index and color:
                cells[3] = click.style(cells[3], fg="green" if row[3] == "ok" else "red")
            click.echo("  ".join(cells + [row[5]]).rstrip())
    for name in skipped:
        click.echo(f"account.{name}: skipped (marketing: sent through the platform's servers)")
    for error in secret_errors:
        click.echo(f"Error: {error}", err=True)
    failed = sum(1 for res in results if not res.ok)
    click.echo(f"{plural(len(results), 'check')}: {len(results) - failed} ok, {failed} failed"
               + (f", {plural(len(secret_errors), 'secret error')}" if secret_errors else ""))


def _detail(res) -> str:
    parts = []
    if res.cert_reason:
        parts.append(f"certificate: {res.cert_reason}")
    reply = " ".join(str(x) for x in (res.reply_code, res.reply_text) if x)
    if reply and (not res.ok or res.message_id):
        parts.append(reply)
    if res.message_id:
        parts.append(f"sent {res.message_id}")
    if res.hint:
        parts.append(f"hint: {res.hint}")
    if res.ok and res.tls_version:
        parts.insert(0, res.tls_version)
    return "; ".join(parts)
