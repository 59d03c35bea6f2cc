"""Mailgun webhooks: ``{"signature": {timestamp, token, signature}, "event-data": {…}}``.

Events read: ``failed`` (``severity`` permanent or temporary; ``delivery-status`` with
``code``, ``enhanced-code``, ``message``, ``description``; ``reason``) and ``complained``;
``event-data.id`` is the event id, ``recipient`` the address, ``timestamp`` Unix seconds,
``message.headers.message-id`` the message. The signature is HMAC-SHA256 under the
webhook signing key over the timestamp followed by the token; one older than
``MAX_AGE`` seconds (or as far in the future) is refused as stale.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any, Optional

from .provider import (ProviderEvent, SignatureError, complaint, enhanced,
                       failure, moment, need)

NAME = "mailgun"
MAX_AGE = 300


def parse(payload: Any, where: str = "payload") -> list[ProviderEvent]:
    data = need(payload, "event-data", where, dict)
    found = _event(data, where + ".event-data")
    return [found] if found is not None else []


def _event(data: dict, where: str) -> Optional[ProviderEvent]:
    kind = need(data, "event", where)
    if kind not in ("failed", "complained"):
        return None
    email, event_id = need(data, "recipient", where), need(data, "id", where)
    when = moment(need(data, "timestamp", where, (int, float)), where + ".timestamp")
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    more = {"message_id": headers.get("message-id")}
    if kind == "complained":
        return complaint(NAME, event_id, email, when, **more)
    status_block = data.get("delivery-status")
    status_block = status_block if isinstance(status_block, dict) else {}
    text = " ".join(str(status_block.get(k) or "") for k in ("message", "description")).strip()
    status = enhanced(status_block.get("enhanced-code")) or enhanced(text)
    if status is None and str(status_block.get("code", "")).isdigit():
        status = f"{str(status_block['code'])[0]}.0.0"
    transient = data.get("severity") == "temporary"
    return failure(NAME, event_id, email, when, status, text or data.get("reason"),
                   transient, **more)


def verify(signing_key: str, payload: Any, now: Optional[float] = None) -> None:
    """The request's signature block against the signing key; stale ones refused."""
    block = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(block, dict):
        raise SignatureError("the Mailgun payload has no signature block")
    try:
        stamp, token, given = (str(block[k]) for k in ("timestamp", "token", "signature"))
        age = (time.time() if now is None else now) - int(stamp)
    except (KeyError, ValueError):
        raise SignatureError("the Mailgun signature block is incomplete") from None
    expected = hmac.new(signing_key.encode(), (stamp + token).encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        raise SignatureError("the Mailgun signature does not verify")
    if abs(age) > MAX_AGE:
        raise SignatureError(f"the Mailgun signature is stale ({int(age)} s old; at most "
                             f"{MAX_AGE} s is accepted)")

