"""The signature of an outbound webhook request, and how a receiver checks it.

Header ``X-Mailform-Signature: t=<unix seconds>,v1=<hex>``, where ``v1`` is
HMAC-SHA256 under the webhook's secret of ``<t>.`` followed by the raw body (the
scheme Stripe and Standard Webhooks use: a receiver refuses a stale ``t``, so a
captured request cannot be replayed later). ``X-Mailform-Event-Id`` is the event's id:
what a receiver deduplicates on, since delivery is at least once.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Optional

SIGNATURE_HEADER = "X-Mailform-Signature"
EVENT_ID_HEADER = "X-Mailform-Event-Id"
EVENT_KIND_HEADER = "X-Mailform-Event"
ATTEMPT_HEADER = "X-Mailform-Delivery-Attempt"
TOLERANCE = 300


def _mac(secret: bytes, stamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, now: Optional[float] = None) -> str:
    stamp = int(time.time() if now is None else now)
    return f"t={stamp},v1={_mac(secret, stamp, body)}"


def verify(secret: bytes, header: str, body: bytes, now: Optional[float] = None,
           tolerance: int = TOLERANCE) -> bool:
    """Whether ``header`` signs ``body`` under ``secret`` within ``tolerance`` seconds."""
    parts = dict(p.split("=", 1) for p in (header or "").split(",") if "=" in p)
    try:
        stamp = int(parts.get("t", ""))
    except ValueError:
        return False
    fresh = abs((time.time() if now is None else now) - stamp) <= tolerance
    return fresh and hmac.compare_digest(_mac(secret, stamp, body), parts.get("v1", ""))
