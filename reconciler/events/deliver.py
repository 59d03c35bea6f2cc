"""Delivering events to outbound webhooks: at least once, in order per contact.

``deliver_pending(registry, webhooks)`` is one pass, for `events deliver` and for the
worker alike: for each webhook, queue the new events it wants, then POST every due
delivery (a contact's next one only once its earlier ones are done). A 2xx answer is
delivered; anything else (an error status, a refused connection, a timeout) is retried
after ``backoff_seconds`` × 2^(attempt-1), at most ``MAX_BACKOFF``, until
``max_attempts``: then the delivery is dead-lettered (`events --failed`, `events
redeliver`). A dead delivery no longer holds back the contact's later events.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Optional

from .config import WebhookTarget
from .http import open_url
from .signing import ATTEMPT_HEADER, EVENT_ID_HEADER, EVENT_KIND_HEADER, SIGNATURE_HEADER, sign

MAX_BACKOFF = 6 * 3600.0
BATCH = 100
USER_AGENT = "mailform-webhooks/1"


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"delivered": self.delivered, "retrying": self.retrying, "dead": self.dead,
                "errors": self.errors}


def body_of(event: dict) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def post(hook: WebhookTarget, event: dict, attempt: int) -> Optional[str]:
    """One attempt; None when the receiver answered 2xx, else why not."""
    body = body_of(event)
    request = urllib.request.Request(hook.url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(hook.secret, body), EVENT_ID_HEADER: event["id"],
        EVENT_KIND_HEADER: event["kind"], ATTEMPT_HEADER: str(attempt)})
    try:
        with open_url(request, hook.timeout) as answer:
            answer.read(65536)
            return None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} {exc.reason}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


def backoff(hook: WebhookTarget, attempts: int) -> float:
    return min(hook.backoff_seconds * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def deliver_pending(registry: Any, webhooks: Iterable[WebhookTarget],
                    now: Optional[datetime] = None,
                    send: Callable[[WebhookTarget, dict, int], Optional[str]] = post
                    ) -> "DeliveryReport":
    """One delivery pass over every webhook (see the module docstring)."""
    report = DeliveryReport()
    for hook in webhooks:
        registry.events.deliveries.enqueue(hook.name, hook.kinds, now)
        _deliver_hook(registry, hook, now, send, report)
    return report


def _deliver_hook(registry: Any, hook: WebhookTarget, now: Optional[datetime],
                  send: Callable, report: DeliveryReport) -> None:
    log = registry.events.deliveries
    while True:
        due = log.due(hook.name, now or _utcnow(), BATCH)
        events = registry.events.by_seq(seq for seq, _ in due)
        progressed = False
        for seq, attempts in due:
            progressed |= _attempt(log, hook, seq, attempts, events.get(seq), send, report)
        if not progressed:
            return


def _attempt(log: Any, hook: WebhookTarget, seq: int, attempts: int, event: Optional[dict],
             send: Callable, report: DeliveryReport) -> bool:
    """One delivery attempt; whether it left the pending state for good."""
    error = "the event is no longer in the log" if event is None else send(
        hook, event, attempts + 1)
    if error is None:
        log.delivered(hook.name, seq)
        report.delivered += 1
        return True
    tries = attempts + 1
    report.errors.append(f"webhook {hook.name}: event {seq}: {error}")
    if event is None or tries >= hook.max_attempts:
        log.failed(hook.name, seq, tries, error, None)
        report.dead += 1
        return True
    log.failed(hook.name, seq, tries, error,
               _utcnow() + timedelta(seconds=backoff(hook, tries)))
    report.retrying += 1
    return False


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def follow(registry: Any, webhooks: list[WebhookTarget], interval: float,
           on_report: Callable[[DeliveryReport], None],
           stop: Callable[[], bool] = lambda: False) -> None:
    """Deliver, wait ``interval`` seconds, again, until ``stop()``."""
    while not stop():
        on_report(deliver_pending(registry, webhooks))
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline and not stop():
            time.sleep(min(0.2, interval))
