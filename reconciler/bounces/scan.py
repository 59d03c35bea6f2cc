"""The inbox scanner: an account's inbox → bounce verdicts → contact status.

Per account and run: at most ``batch_size`` messages not seen before are read
(oldest first, without marking them read); each message's verdict and the fact
that it was processed are written to the registry in one transaction, so a
server that fails midway leaves the registry consistent with what was
processed and the next scan picks up the rest. Bounces are deleted from the
server when ``delete_bounces``; other mail is left untouched.

A bounce counts only as far as it can be trusted (``authenticity``): for the recipients
of the tagged message it returns, or, untagged, when it comes from a mail system and
quotes this account's message (unless ``inbox.trust_untagged`` is false). The rest is
recorded as unverified: counted in the report apart, never changing a contact.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from ..policy import effective_bounce_policy
from ..errors import NotFoundError
from ..servers import ServerSettings, servers_of
from .authenticity import Trust, decide, find_tags, genuine, origin_of, signed_before
from .classify import classify
from .mailbox import MailboxError, numeric_sort, open_mailbox



@dataclass
class ScanReport:
    account: str
    scanned: int = 0
    bounces: dict = field(default_factory=lambda: {"hard": 0, "soft": 0, "blocked": 0,
                                                   "complaint": 0})
    newly_faulty: list = field(default_factory=list)
    unknown: list = field(default_factory=list)
    deleted: int = 0
    other: int = 0
    remaining: int = 0
    unverified: int = 0
    error: Optional[str] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return {"account": self.account, "result": "ok" if self.ok else "error",
                "scanned": self.scanned, "bounces": dict(self.bounces),
                "newly_faulty": list(self.newly_faulty), "unknown": list(self.unknown),
                "deleted": self.deleted, "other": self.other, "remaining": self.remaining,
                "unverified": self.unverified, "error": self.error, "seconds": round(self.seconds, 3)}

    def to_status(self) -> dict:
        body = self.to_dict()
        body["time"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return body


@dataclass(frozen=True)
class BounceJudge:
    """Decides, per message, which bounces of one account's inbox count."""

    registry: Any
    email: str
    trust_untagged: bool = True

    @classmethod
    def for_account(cls, registry, name: str) -> "BounceJudge":
        """The account's address and ``inbox.trust_untagged`` as the registry holds them."""
        stored = registry.account(name)
        spec = stored.spec if stored is not None else {}
        inbox = spec.get("inbox") or {}
        return cls(registry, spec.get("email") or "", inbox.get("trust_untagged", True))

    def __call__(self, raw: bytes) -> Trust:
        found = find_tags(raw)
        current = genuine(found, self.registry.sign)
        records = [self.registry.sent_message(t.id) for t in current]
        records += [record for t in found if t not in current
                    for record in [self.registry.sent_message(t.id)]
                    if signed_before(t, record)]          # mail sent before a re-key
        sent = [r["recipients"] for r in records if r]
        origin = None if sent or not self.trust_untagged else origin_of(raw)
        return decide(sent, origin, self.email, self.trust_untagged, len(found))


def _sorted_out(verdict, trust: Trust) -> tuple[list, list]:
    """The verdict's recipients: (address, kind, status, reason) that count, and
    (address, kind, status, reason, why) that are unverified."""
    counted, doubted = [], []
    for r in verdict.recipients:
        row = (r.address, r.kind, r.status, getattr(r, "reason", None))
        if trust.counts(r.address):
            counted.append(row)
        else:
            doubted.append((*row, trust.doubt()))
    return counted, doubted


def _process(registry, report: ScanReport, mailbox, uid: str, policy: dict,
             classifier: Callable, judge: Callable) -> bool:
    """Classify one message and record it; True when it is a bounce."""
    raw = mailbox.fetch(uid)
    verdict = classifier(raw)
    counted, doubted = _sorted_out(verdict, judge(raw)) if verdict.bounce else ([], [])
    outcomes = registry.record_message(
        report.account, mailbox.key, uid, counted, soft_limit=policy["soft_bounce_limit"],
        window_days=policy["soft_bounce_window_days"], unverified=doubted)
    report.scanned += 1
    if not verdict.bounce:
        report.other += 1
        return False
    report.unverified += len(doubted)
    for (address, kind, *_), (before, after) in zip(counted, outcomes):
        report.bounces[kind] = report.bounces.get(kind, 0) + 1
        if kind == "blocked":
            continue
        if before is None:
            report.unknown.append(address)
        elif before != "faulty" and after == "faulty":
            report.newly_faulty.append(address)
    return True


def scan_account(registry, name: str, settings: ServerSettings, batch_size: int,
                 delete_bounces: bool, policy: Optional[dict] = None,
                 classifier: Callable = classify, judge: Optional[Callable] = None
                 ) -> ScanReport:
    """Scan one account's inbox; the report is also stored as the account's status.
    ``judge`` (raw message → ``Trust``): by default the account's ``BounceJudge``."""
    policy = effective_bounce_policy(policy)
    judge = judge or BounceJudge.for_account(registry, name)
    report, started = ScanReport(name), time.monotonic()
    mailbox = None
    try:
        mailbox = open_mailbox(settings)
        seen = registry.processed_uids(name, mailbox.key)
        pending = [u for u in numeric_sort(mailbox.uids()) if u not in seen]
        report.remaining = max(0, len(pending) - batch_size)
        bounced = []
        for uid in pending[:batch_size]:
            if _process(registry, report, mailbox, uid, policy, classifier, judge) \
                    and delete_bounces:
                bounced.append(uid)
        if bounced:
            mailbox.delete(bounced)
            report.deleted = len(bounced)
    except MailboxError as exc:
        report.error = str(exc)
    except (OSError, EOFError) as exc:
        report.error = f"{settings.kind} {settings.host}:{settings.port}: connection failed " \
                       f"midway ({type(exc).__name__})"
    except Exception as exc:  # imaplib/poplib protocol errors: report, keep what was recorded
        report.error = f"{settings.kind} error: {type(exc).__name__}: " \
                       f"{settings.redact(str(exc))}"
    finally:
        if mailbox is not None:
            mailbox.close()
    report.seconds = time.monotonic() - started
    _store_status(registry, name, report)
    return report


def _store_status(registry, name: str, report: ScanReport) -> None:
    stored = registry.account(name)
    totals = dict((stored.status.get("bounce_totals") if stored else None) or {})
    for kind, count in [*report.bounces.items(), ("unverified", report.unverified)]:
        totals[kind] = totals.get(kind, 0) + count
    registry.set_status(name, {"last_scan": report.to_status(), "bounce_totals": totals})


def inbox_accounts(registry, names, scan_all: bool) -> list:
    """The applied accounts to scan: every one with an inbox, or those named (each must
    exist and declare an inbox)."""
    accounts = registry.accounts()
    if scan_all:
        return [a for a in accounts.values() if a.spec.get("inbox")]
    missing = [n for n in names if n not in accounts]
    if missing:
        raise NotFoundError("no account in the registry named " + ", ".join(missing))
    without = [n for n in names if not accounts[n].spec.get("inbox")]
    if without:
        raise NotFoundError("no inbox declared for " + ", ".join(without))
    return [accounts[n] for n in names]


def scan_stored(registry, stored, timeout: float) -> ScanReport:
    """Scan one applied account as the registry holds it: its inbox server, batch size and
    deletion rule, and the registry's bounce policy."""
    settings = servers_of(stored.spec, registry.secrets(stored.name), timeout=timeout)
    inbox = stored.spec["inbox"]
    return scan_account(registry, stored.name, settings["inbox"], inbox["batch_size"],
                        inbox["delete_bounces"], registry.get_setting("bounce_policy"))
