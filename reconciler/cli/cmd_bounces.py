"""`mailform bounces classify FILE... [--json]` (SPEC §6) and `bounces ingest --format
PROVIDER FILE...` (issue 14)."""
from __future__ import annotations

import json
import sys

import click

from ..bounces.classify import classify
from ..bounces.mime import MAX_BYTES
from ..bounces.verdict import Verdict
from ..errors import MailformError
from ..registry import open_registry
from .options import registry_option

_DIAGNOSTIC_WIDTH = 60


@click.group("bounces")
def bounces():
    """Classify bounce messages: DSNs, MTA texts, complaints, auto-replies."""


@bounces.command("classify")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, one per line.")
@click.pass_context
def classify_cmd(ctx: click.Context, files: tuple[str, ...], as_json: bool) -> None:
    """Classify each raw message FILE (RFC 5322; '-' reads standard input).

    Prints per file, in order, whether it is a bounce and each failed
    recipient's address, kind (hard, soft, blocked, complaint), reason
    (user-unknown, mailbox-full, ip-blocked, ...), status code and diagnostic;
    for a message that is not a failure, what it is instead (auto-reply,
    delivered, delayed, challenge, not-a-report). An unreadable file is
    reported on stderr and the others are still classified; the exit code is
    then 1.
    """
    failed = False
    rows: list[tuple[str, Verdict]] = []
    for path in files:
        try:
            raw = _read(path)
        except OSError as exc:
            click.echo(f"Error: cannot read {path}: {exc.strerror or exc}", err=True)
            failed = True
            continue
        verdict = classify(raw)
        if as_json:
            click.echo(json.dumps(verdict.to_json_dict(path), ensure_ascii=False))
        else:
            rows.append((path, verdict))
    if rows:
        _print_table(rows)
    if failed:
        ctx.exit(1)


def _read(path: str) -> bytes:
    """The bounded prefix the classifier reads; nothing more is loaded."""
    if path == "-":
        return sys.stdin.buffer.read(MAX_BYTES)
    with open(path, "rb") as handle:
        return handle.read(MAX_BYTES)


def _print_table(rows: list[tuple[str, Verdict]]) -> None:
    lines = [("FILE", "BOUNCE", "ADDRESS", "KIND", "REASON", "STATUS", "DIAGNOSTIC")]
    for path, verdict in rows:
        if not verdict.recipients:
            label = "yes" if verdict.bounce else "no"
            lines.append((path, label, "-", "-", verdict.reason or f"({verdict.kind_of_message})", "-",
                          verdict.note or ""))
        for recipient in verdict.recipients:
            lines.append((path, "yes", recipient.address, recipient.kind, recipient.reason,
                          recipient.status or "-", _short(recipient.diagnostic)))
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths)] + [line[6]]
        click.echo("  ".join(cells).rstrip())


def _short(text: str | None) -> str:
    if not text:
        return ""
    return text if len(text) <= _DIAGNOSTIC_WIDTH else text[: _DIAGNOSTIC_WIDTH - 1] + "…"


@bounces.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False,
                                                                  allow_dash=True))
@click.option("--format", "provider", required=True,
              type=click.Choice(["ses", "sendgrid", "postmark", "mailgun"]),
              help="The provider whose webhook format the files hold.")
@click.option("--json", "as_json", is_flag=True, help="The counts as one JSON object.")
@registry_option
def ingest_cmd(files, provider, as_json, registry_url):
    """Record bounces and complaints from provider webhook payloads saved to FILEs (JSON,
    a JSON list of payloads, or JSON Lines): counted like scanned bounces, each provider
    event at most once (a file ingested twice changes nothing). Signatures are not
    checked here: `webhooks serve` checks them. Every file is checked before any is
    recorded."""
    from ..events.ingest import ingest, parse, payloads_of
    found = []
    for path in files:
        for where, payload in payloads_of(provider, _read_text(path), path):
            found += parse(provider, payload, where)
    with open_registry(registry_url) as registry:
        report = ingest(registry, found)
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
        return 0
    click.echo(f"{report.counted} recorded, {report.duplicates} already recorded, "
               f"{len(report.newly_faulty)} contact(s) newly faulty, {len(report.unknown)} "
               "not contacts.")
    for email in report.unknown:
        click.echo(f"  not a contact: {email}")
    return 0


def _read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise MailformError(f"{path}: cannot read: {exc}") from None
