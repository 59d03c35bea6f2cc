"""SendGrid's Event Webhook: a JSON list of events, signed with ECDSA (P-256, SHA-256).

Events read: ``bounce`` (``type`` bounce or blocked; ``status``, ``reason``), ``dropped``
for a bounced or invalid address, and ``spamreport``; each has ``email``, ``timestamp``
(Unix seconds) and ``sg_event_id`` (the event id). Others (delivered, open, …) are
skipped. The signature (header ``X-Twilio-Email-Event-Webhook-Signature``, base64 DER)
covers the timestamp header's value followed by the raw body; the public key is the
base64 DER (SubjectPublicKeyInfo) SendGrid shows, or a PEM.
"""
from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any, Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .provider import (PayloadError, ProviderEvent, SignatureError, complaint, enhanced,
                       failure, moment, need)

NAME = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
_DROPPED_FAILURES = ("Bounced Address", "Invalid", "Unsubscribed Address")


def parse(payload: Any, where: str = "payload") -> list[ProviderEvent]:
    events = payload if isinstance(payload, list) else [payload]
    out = []
    for i, event in enumerate(events):
        found = _event(event, f"{where}[{i}]" if isinstance(payload, list) else where)
        if found is not None:
            out.append(found)
    return out


def _event(event: Any, where: str) -> Optional[ProviderEvent]:
    kind = need(event, "event", where)
    if kind not in ("bounce", "dropped", "spamreport"):
        return None
    email, event_id = need(event, "email", where), need(event, "sg_event_id", where)
    when = moment(need(event, "timestamp", where, (int, float)), where + ".timestamp")
    more = {"message_id": event.get("smtp-id") or event.get("sg_message_id")}
    if kind == "spamreport":
        return complaint(NAME, event_id, email, when, **more)
    if kind == "dropped" and event.get("reason") not in _DROPPED_FAILURES:
        return None
    text = str(event.get("reason") or "")
    status = enhanced(event.get("status")) or enhanced(text)
    found = failure(NAME, event_id, email, when, status, text or None,
                    bool(status and status.startswith("4")), **more)
    blocked = event.get("type") == "blocked"     # the receiver refused the sender
    return replace(found, kind="blocked") if blocked else found


def load_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 DER as the dashboard shows it, or a PEM."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split())))
    except (ValueError, TypeError):
        raise PayloadError("the SendGrid verification key is not a base64 DER or PEM "
                           "public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PayloadError("the SendGrid verification key is not an ECDSA key")
    return key


def verify(key: ec.EllipticCurvePublicKey, body: bytes, headers: Any) -> None:
    signature, stamp = headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER)
    if not signature or not stamp:
        raise SignatureError(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    try:
        key.verify(base64.b64decode(signature), stamp.encode() + body,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise SignatureError("the SendGrid signature does not verify") from None
