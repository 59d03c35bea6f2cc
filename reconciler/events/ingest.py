"""Provider events into the contact ledger, like scanned bounces (SPEC §6 rules).

Each event is counted at most once, by (provider, event id), in the same transaction
as its bounce, its event and its contact's change; a duplicate (a provider's retry, a
file ingested twice) changes nothing. The account is the one whose address sent the
message (the provider's ``sender``), else the provider's name. Addresses that are not
contacts are reported, never invented. The soft-bounce limit and window are the
registry's bounce policy (as applied), else the defaults.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..policy import DEFAULT_SOFT_BOUNCE_LIMIT, DEFAULT_SOFT_BOUNCE_WINDOW_DAYS, Bounce
from . import mailgun, postmark, sendgrid, ses
from .provider import PROVIDERS, PayloadError, ProviderEvent

PARSERS = {"ses": ses.parse, "sendgrid": sendgrid.parse, "mailgun": mailgun.parse,
           "postmark": postmark.parse}


@dataclass
class IngestReport:
    counted: int = 0
    duplicates: int = 0
    unknown: list[str] = field(default_factory=list)
    newly_faulty: list[str] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"counted": self.counted, "duplicates": self.duplicates,
                "unknown": self.unknown, "newly_faulty": self.newly_faulty,
                "by_kind": self.by_kind}


def payloads_of(provider: str, text: str, where: str) -> list[tuple[str, Any]]:
    """A saved file's payloads: one JSON document (a list of payloads, except for
    SendGrid whose payload is a list), or JSON Lines; (where, payload) each."""
    try:
        doc = json.loads(text)
    except ValueError:
        return [(f"{where}:{n}", _line(raw, where, n))
                for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    if isinstance(doc, list) and provider != "sendgrid":
        return [(f"{where}[{i}]", item) for i, item in enumerate(doc)]
    return [(where, doc)]


def _line(raw: str, where: str, number: int) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise PayloadError(f"{where}:{number}: not JSON ({exc.msg})") from None


def parse(provider: str, payload: Any, where: str = "payload") -> list[ProviderEvent]:
    if provider not in PARSERS:
        raise PayloadError(f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})")
    return PARSERS[provider](payload, where)


def ingest(registry: Any, events: Iterable[ProviderEvent]) -> IngestReport:
    report = IngestReport()
    limit, window = _policy(registry)
    senders = _senders(registry)
    for event in events:
        account = senders.get((event.sender or "").strip().lower(), event.provider)
        bounce = Bounce(event.kind, event.time, event.status, account)
        more = {"reason": event.reason, "diagnostic": event.diagnostic,
                "message_id": event.message_id}
        outcome = registry.ledger.record_provider_bounce(
            event.provider, event.event_id, event.email, bounce, limit, window, more)
        _note(report, event, outcome)
    return report


def _note(report: IngestReport, event: ProviderEvent, outcome: Any) -> None:
    if outcome is None:
        report.duplicates += 1
        return
    report.counted += 1
    report.by_kind[event.kind] = report.by_kind.get(event.kind, 0) + 1
    before, after = outcome
    if before is None:
        report.unknown.append(event.email)
    elif before != "faulty" and after == "faulty":
        report.newly_faulty.append(event.email)


def _policy(registry: Any) -> tuple[int, int]:
    stored = registry.get_setting("bounce_policy") or {}
    return (int(stored.get("soft_bounce_limit", DEFAULT_SOFT_BOUNCE_LIMIT)),
            int(stored.get("soft_bounce_window_days", DEFAULT_SOFT_BOUNCE_WINDOW_DAYS)))


def _senders(registry: Any) -> dict[str, str]:
    """Each applied account's sending address -> its name."""
    out: dict[str, str] = {}
    for name, stored in registry.accounts().items():
        email = str((stored.spec or {}).get("email") or "").strip().lower()
        if email:
            out.setdefault(email, name)
    return out
