"""Postmark's bounce and spam-complaint webhooks (one JSON object per request).

``RecordType`` Bounce (``Type`` HardBounce, SoftBounce, Transient, …; ``Details``,
``Description``) or SpamComplaint; ``ID`` is the event id, ``Email`` the address,
``BouncedAt`` the time, ``MessageID`` Postmark's message id. Postmark signs nothing: its
webhook URL carries HTTP basic auth credentials, which the server checks.
"""
from __future__ import annotations

import base64
import hmac
from dataclasses import replace
from typing import Any

from .provider import (PayloadError, ProviderEvent, SignatureError, complaint, enhanced,
                       failure, moment, need)

NAME = "postmark"
_TRANSIENT = {"SoftBounce", "Transient", "DnsError", "AutoResponder", "Blocked",
              "SMTPApiError", "ChallengeVerification", "ContentRelated", "TemporaryFailure"}
_NOT_FAILURES = {"AutoResponder", "ChallengeVerification", "Subscribe", "Unsubscribe",
                 "OpenRelayTest", "SpamNotification", "VirusNotification",
                 "AddressChange", "DMARCPolicy", "InboundError"}


def parse(payload: Any, where: str = "payload") -> list[ProviderEvent]:
    if not isinstance(payload, dict):
        raise PayloadError(f"{where}: a Postmark webhook is a JSON object")
    record = need(payload, "RecordType", where)
    if record not in ("Bounce", "SpamComplaint"):
        return []
    event_id = str(need(payload, "ID", where, (int, str)))
    email = need(payload, "Email", where)
    when = moment(need(payload, "BouncedAt", where), where + ".BouncedAt")
    more = {"message_id": payload.get("MessageID")}
    kind = payload.get("Type")
    if record == "SpamComplaint" or kind == "SpamComplaint":
        return [complaint(NAME, event_id, email, when, **more)]
    if kind in _NOT_FAILURES:
        return []
    text = str(payload.get("Details") or payload.get("Description") or "") or None
    found = failure(NAME, event_id, email, when, enhanced(text), text, kind in _TRANSIENT,
                    **more)
    return [replace(found, kind="blocked") if kind == "Blocked" else found]


def verify(expected: tuple[str, str], authorization: str) -> None:
    """HTTP basic auth against the configured user and password."""
    scheme, _, value = (authorization or "").partition(" ")
    try:
        given = base64.b64decode(value, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        given = ""
    wanted = f"{expected[0]}:{expected[1]}"
    if scheme.lower() != "basic" or not hmac.compare_digest(given.encode(), wanted.encode()):
        raise SignatureError("the Postmark request's basic auth credentials do not match")
