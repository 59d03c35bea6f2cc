"""What the platform learns from each relayed message (issue 12): the ``Received:`` trace
line, each recipient's answer classified, the contact ledger and the delivery log.

A recipient the upstream refused is judged with the bounce classifier's rules and reason
table (``bounces.reasons.judge``): 5.1.x user-unknown is ``hard``, 5.7.x a ``blocked``
(the account's problem, never the contact's), 4.x.x ``soft``. Those are counted in the
contact ledger exactly like scanned bounces (``registry.record_message`` under the
synthetic mailbox ``proxy``, the same policy and window). A recipient the proxy could not
ask (an upstream timeout, a lost connection) is not the contact's doing and is not
counted. Pure functions here; ``record`` is the one that writes (in a worker thread).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Optional

from ..bounces.reasons import judge
from ..bounces.scan import effective_bounce_policy   # the scanner's policy, the same rule
from .relay import one_line

MAILBOX = "proxy"
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:[ \t]*(.*?)\r?$", re.I | re.M)
_HEAD_END = re.compile(rb"\r?\n\r?\n")


@dataclass
class Outcome:
    """One recipient's answer from the upstream (or why there was none)."""

    address: str
    code: Optional[int]
    text: str

    @property
    def accepted(self) -> bool:
        return self.code is not None and self.code // 100 == 2

    def status(self) -> Optional[str]:
        found = _ENHANCED.match(self.text or "")
        if found:
            return ".".join(found.groups())
        return f"{self.code // 100}.0.0" if self.code and self.code >= 400 else None

    def judged(self) -> Optional[tuple[str, str]]:
        """(reason, kind) of a refusal the upstream gave; None otherwise."""
        if self.accepted or self.code is None:
            return None
        status = self.status()
        reason, kind = judge(status, self.text)
        wanted = _kind_by_class(status)
        if wanted and kind != wanted:      # the code's class decides; its own reason then
            reason, kind = judge(status, None)[0], wanted
        return reason, kind

    def as_dict(self) -> dict:
        row = {"address": self.address, "code": self.code, "reply": self.text,
               "result": "accepted" if self.accepted else "refused" if self.code else "failed"}
        verdict = self.judged()
        if verdict:
            row.update(status=self.status(), reason=verdict[0], kind=verdict[1])
        return row


def _kind_by_class(status: Optional[str]) -> Optional[str]:
    """An answer at RCPT time is about this recipient, now: 4.x.x is soft, 5.1.x (the
    address) hard, 5.7.x (policy, authentication: the account's problem) blocked."""
    if not status:
        return None
    if status.startswith("4."):
        return "soft"
    return {"5.1.": "hard", "5.7.": "blocked"}.get(status[:4])


@dataclass
class Delivery:
    """One transaction as the delivery log keeps it."""

    id: str
    account: str
    mail_from: str
    client: str
    started: datetime
    outcomes: list[Outcome] = field(default_factory=list)
    message_id: Optional[str] = None
    size: int = 0
    upstream_reply: Optional[str] = None
    finished: Optional[datetime] = None

    def entry(self) -> dict:
        return {"id": self.id, "account": self.account, "message_id": self.message_id,
                "mail_from": self.mail_from, "client": self.client, "size": self.size,
                "recipients": [o.as_dict() for o in self.outcomes],
                "upstream_reply": self.upstream_reply, "started": self.started,
                "finished": self.finished or self.started}

    def bounces(self) -> list[tuple]:
        """(address, kind, status, reason) of each recipient the upstream refused."""
        rows = []
        for outcome in self.outcomes:
            verdict = outcome.judged()
            if verdict:
                rows.append((outcome.address, verdict[1], outcome.status(), verdict[0]))
        return rows


def received_line(helo: str, client: str, hostname: str, ident: str, when: datetime,
                  tls: bool) -> bytes:
    """An RFC 5321 trace line for the message as it enters the proxy."""
    helo = one_line(helo or "unknown", 80).replace("(", "").replace(")", "")
    proto = "ESMTPSA" if tls else "ESMTPA"
    return (f"Received: from {helo} ([{client}])\r\n\tby {hostname} (mailform proxy) "
            f"with {proto} id {ident};\r\n\t{format_datetime(when)}\r\n").encode("utf-8")


def message_id_of(data: bytes) -> Optional[str]:
    end = _HEAD_END.search(data)
    found = _MESSAGE_ID.search(data[:end.start() if end else len(data)])
    return one_line(found.group(1), 250) if found else None


def record(registry, delivery: Delivery) -> None:
    """The refused recipients in the contact ledger, then the delivery log row."""
    bounces = delivery.bounces()
    if bounces:
        policy = effective_bounce_policy(registry.get_setting("bounce_policy"))
        registry.record_message(delivery.account, MAILBOX, delivery.id, bounces,
                                soft_limit=policy["soft_bounce_limit"],
                                window_days=policy["soft_bounce_window_days"])
    registry.delivery_log.record(delivery.entry())
