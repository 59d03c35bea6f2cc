"""The inbox scanner: an account's inbox → bounce verdicts → contact status.

Per account and run: at most ``batch_size`` messages not seen before are read
(oldest first, without marking them read), ``FETCH_BATCH`` per round trip
(``scan_memory`` says which are new). A batch's verdicts, the fact that each
message was processed and the mailbox's last-seen mark are written in one
transaction, so a scan that stops anywhere (server failure, deadline, crash)
leaves the registry consistent with what was processed: nothing counted twice,
nothing lost; the next scan picks up the rest. A batch the database rolled back for
it to be tried again (a deadlock with another scan's batch, a serialization failure)
is, at once: the scan goes on from what the registry holds (``AT_ONCE`` times at
most). Every network step and the whole scan are under a ``ScanDeadline``. Bounces are deleted from the server (after
their batch is recorded) when ``delete_bounces``; other mail is left untouched.

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

from ..errors import MailformError, NotFoundError, RegistryError
from ..policy import effective_bounce_policy
from ..servers import ServerSettings, servers_of
from .authenticity import Trust, decide, find_tags, genuine, origin_of, signed_before
from .classify import classify
from .deadline import ACTIVE, ScanDeadline
from .mailbox import (BATCH_BYTES, FETCH_BATCH, MAX_BYTES, MailboxError, as_mailbox,
                      open_mailbox)
from .prefetch import Prefetch
from .replies import message_id_of, note_reply
from .scan_memory import Mark, new_messages

DEADLINE_FACTOR = 10     # a whole account's scan: this many times the per-step timeout
# The database rolled the batch's transaction back for the scan to try it again: a
# deadlock between concurrent scans' batches (40P01), a serialization failure (40001).
RETRY_AT_ONCE = frozenset({"40P01", "40001"})
AT_ONCE = 3              # such a batch is tried again at once this many times, at most



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
        return cls.for_stored(registry, registry.account(name))

    @classmethod
    def for_stored(cls, registry, stored) -> "BounceJudge":
        """The same, from the stored account already read (None: no such account)."""
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
    """The verdict's recipients: (address, kind, status, reason, diagnostic) that count,
    and (address, kind, status, reason, why) that are unverified."""
    counted, doubted = [], []
    for r in verdict.recipients:
        row = (r.address, r.kind, r.status, getattr(r, "reason", None))
        if trust.counts(r.address):
            counted.append((*row, getattr(r, "diagnostic", None)))
        else:
            doubted.append((*row, trust.doubt()))
    return counted, doubted


def _judged(uid: str, raw: bytes, classifier: Callable, judge: Callable) -> tuple:
    """(uid, verdict, counted, doubted, message_id) for one message (pure: no registry
    write). The Message-ID is read here, while the classifier's parse of this very
    message is still the one ``mime.read_message`` hands out again."""
    verdict = classifier(raw)
    counted, doubted = _sorted_out(verdict, judge(raw)) if verdict.bounce else ([], [])
    return uid, verdict, counted, doubted, message_id_of(raw) if counted else None


def _tally(report: ScanReport, verdict, counted: list, doubted: list, outcomes: list) -> None:
    """Count one recorded message in the report."""
    report.scanned += 1
    if not verdict.bounce:
        report.other += 1
        return
    report.unverified += len(doubted)
    for (address, kind, *_), (before, after) in zip(counted, outcomes):
        report.bounces[kind] = report.bounces.get(kind, 0) + 1
        if kind == "blocked":
            continue
        if before is None:
            report.unknown.append(address)
        elif before != "faulty" and after == "faulty":
            report.newly_faulty.append(address)


@dataclass
class _Run:
    """One account's scan: its registry, report, mailbox and rules."""

    registry: Any
    report: ScanReport
    mailbox: Any
    policy: dict
    classifier: Callable
    judge: Callable

    def batch(self, uids: list[str], fetched: dict, mark: Mark,
              following: Optional[str]) -> list[str]:
        """Judge and record one fetched batch in one transaction (the mark moves with
        it); the bounces among them."""
        judged = [_judged(uid, fetched[uid], self.classifier, self.judge)
                  for uid in uids if uid in fetched]
        with self.registry.scan_state.batch():
            recorded = self._record(judged, fetched)
            mark.advance(following)
        for outcomes, (uid, verdict, counted, doubted, _) in recorded:
            if outcomes is not None:      # None: recorded by another scan at the same time
                _tally(self.report, verdict, counted, doubted, outcomes)
        return [uid for uid, verdict, *_ in judged if verdict.bounce]

    def _record(self, judged: list[tuple], fetched: dict) -> list[tuple[list, tuple]]:
        """The batch's messages in the ledger, a few statements for a run of messages
        (``record_messages``); a human reply from a contact becomes a `replied` event, in
        its place among the batch's events (the message stays unread: it was fetched with
        BODY.PEEK). (outcomes, judged) per message, in order."""
        done: list[tuple[list, tuple]] = []
        pending: list[tuple] = []

        def flush() -> None:
            if pending:
                outcomes = self.registry.record_messages(
                    self.report.account, self.mailbox.key,
                    [(uid, counted, doubted, message_id)
                     for uid, _, counted, doubted, message_id in pending],
                    soft_limit=self.policy["soft_bounce_limit"],
                    window_days=self.policy["soft_bounce_window_days"])
                done.extend(zip(outcomes, pending))
                pending.clear()

        for item in judged:
            if not item[1].bounce:
                flush()
                note_reply(self.registry, self.report.account, fetched[item[0]])
            pending.append(item)
        flush()
        return done

    def scan(self, batch_size: int, delete_bounces: bool) -> None:
        """Batches of FETCH_BATCH, the next one fetched while this one is recorded
        (unless bounces are deleted: that uses the connection in between); the first
        one is fetched here: there is nothing to do meanwhile."""
        pending, mark = new_messages(self.registry, self.report.account, self.mailbox)
        self.report.remaining = max(0, len(pending) - batch_size)
        batches = _batches(pending, batch_size, getattr(self.mailbox, "sizes", {}))
        if not batches and mark.top > mark.last:
            mark.advance(None)        # all listed were processed before (a crash between)
        with Prefetch(self.mailbox.fetch_many) as ahead:
            ahead.start(batches[0][0] if batches else None, background=False)
            for number, (uids, following) in enumerate(batches):
                fetched = ahead.take()
                after = batches[number + 1][0] if number + 1 < len(batches) else None
                if not delete_bounces:
                    ahead.start(after)
                bounced = self.batch(uids, fetched, mark, following)
                if delete_bounces:
                    self._delete(bounced)
                    ahead.start(after)

    def _delete(self, bounced: list[str]) -> None:
        if bounced:
            self.mailbox.delete(bounced)
            self.report.deleted += len(bounced)


def _batches(pending: list[str], batch_size: int,
             sizes: dict) -> list[tuple[list[str], Optional[str]]]:
    """The run's batches, each of at most FETCH_BATCH messages and (where the sizes are
    known) about BATCH_BYTES, so one batch fits in one step's time: (uids, the next
    pending uid after them or None)."""
    out, uids, load = [], [], 0
    wanted = pending[:batch_size]
    for number, uid in enumerate(wanted):
        uids.append(uid)
        load += min(sizes.get(uid, 0), MAX_BYTES)
        if len(uids) == FETCH_BATCH or load >= BATCH_BYTES or number + 1 == len(wanted):
            out.append((uids, pending[number + 1] if number + 1 < len(pending) else None))
            uids, load = [], 0
    return out


def scan_account(registry, name: str, settings: ServerSettings, batch_size: int,
                 delete_bounces: bool, policy: Optional[dict] = None,
                 classifier: Callable = classify, judge: Optional[Callable] = None,
                 deadline: Optional[float] = None) -> ScanReport:
    """Scan one account's inbox; the report is also stored as the account's status.
    ``judge`` (raw message → ``Trust``): by default the account's ``BounceJudge``.
    ``deadline``: seconds the whole scan may take (default ``DEADLINE_FACTOR`` × the
    settings' timeout, which bounds each network step)."""
    policy = effective_bounce_policy(policy)
    judge = judge or BounceJudge.for_account(registry, name)
    report, started = ScanReport(name), time.monotonic()
    clock = ScanDeadline(deadline or settings.timeout * DEADLINE_FACTOR, settings.timeout)
    mailbox = None
    try:
        mailbox = as_mailbox(_open(settings, clock))
        run = _Run(registry, report, mailbox, policy, classifier, judge)
        for attempt in range(AT_ONCE + 1):
            left = batch_size - report.scanned      # what this run may still read
            try:
                if left > 0 or not attempt:
                    run.scan(left, delete_bounces)
                break
            except RegistryError as exc:
                if attempt == AT_ONCE or not rolled_back_to_retry(exc):
                    raise
    except Exception as exc:  # imaplib/poplib errors too: report, keep what was recorded
        report.error = _failure(exc, settings, clock)
    finally:
        if mailbox is not None:
            mailbox.close()
        clock.close()
    report.seconds = time.monotonic() - started
    _store_status(registry, name, report)
    return report


def rolled_back_to_retry(exc: BaseException) -> bool:
    """The registry's database rolled the transaction back for it to be tried again (a
    deadlock with another scan, a serialization failure): nothing of it was recorded, so
    the scan goes on from the registry's state, the same messages fetched again."""
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) in RETRY_AT_ONCE


def _open(settings: ServerSettings, clock: ScanDeadline):
    token = ACTIVE.set(clock)
    try:
        return open_mailbox(settings)
    finally:
        ACTIVE.reset(token)


def _failure(exc: Exception, settings: ServerSettings, clock: ScanDeadline) -> str:
    """The report's error for what stopped the scan (never a password)."""
    where = f"{settings.kind} {settings.host}:{settings.port}"
    if isinstance(exc, MailboxError):
        return str(exc)
    if clock.expired or isinstance(exc, TimeoutError):
        return (f"{where}: timeout: {clock.describe()}; what was processed before is kept, "
                "the rest waits for the next scan")
    if isinstance(exc, (OSError, EOFError)):
        return f"{where}: connection failed midway ({type(exc).__name__})"
    if isinstance(exc, MailformError):          # the registry's, say: it names itself
        return str(exc)
    return f"{settings.kind} error: {type(exc).__name__}: {settings.redact(str(exc))}"


def _store_status(registry, name: str, report: ScanReport) -> None:
    """The scan's report and its counts added to the account's bounce totals (in one
    transaction: a scan of the account elsewhere at the same time loses nothing)."""
    registry.set_status(name, {"last_scan": report.to_status()},
                        add={"bounce_totals": {**report.bounces,
                                               "unverified": report.unverified}})


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


def scan_stored(registry, stored, timeout: float, deadline: Optional[float] = None
                ) -> ScanReport:
    """Scan one applied account as the registry holds it: its inbox server, batch size and
    deletion rule, and the registry's bounce policy. ``timeout`` bounds each network step,
    ``deadline`` (default ``DEADLINE_FACTOR`` × ``timeout``) the whole account."""
    settings = servers_of(stored.spec, registry.secrets(stored.name), timeout=timeout)
    inbox = stored.spec["inbox"]
    return scan_account(registry, stored.name, settings["inbox"], inbox["batch_size"],
                        inbox["delete_bounces"], registry.get_setting("bounce_policy"),
                        judge=BounceJudge.for_stored(registry, stored), deadline=deadline)
