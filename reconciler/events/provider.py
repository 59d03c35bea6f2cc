"""What every provider's payload becomes: ``ProviderEvent``, one per recipient.

``kind`` is the ledger's: ``hard``, ``soft``, ``blocked`` or ``complaint``; the reason
and kind come from the bounce classifier's table (``bounces.reasons.judge``) so that a
provider's 5.1.1 means what a scanned one does. Events a provider sends that are not
failures (delivered, opened, …) are skipped, not errors. A payload that is not the
provider's format is a ``PayloadError`` naming where (``FILE: field``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional

from ..bounces.reasons import judge
from ..errors import MailformError

PROVIDERS = ("ses", "sendgrid", "mailgun", "postmark")


class PayloadError(MailformError):
    """A payload that is not in the provider's documented format."""


class SignatureError(MailformError):
    """A webhook request whose signature (or credentials) does not verify."""


@dataclass(frozen=True)
class ProviderEvent:
    provider: str
    event_id: str
    email: str
    kind: str                       # hard | soft | blocked | complaint
    time: datetime
    status: Optional[str] = None
    reason: Optional[str] = None
    diagnostic: Optional[str] = None
    message_id: Optional[str] = None
    sender: Optional[str] = None
    extra: dict = field(default_factory=dict)


def failure(provider: str, event_id: str, email: str, when: datetime,
            status: Optional[str], diagnostic: Optional[str], transient: bool,
            **more: Any) -> ProviderEvent:
    """A failed delivery, judged like a scanned bounce."""
    reason, kind = judge(status, diagnostic, transient)
    if transient and kind == "hard":
        kind = "soft"
    return ProviderEvent(provider, event_id, email.strip().lower(), kind, when, status,
                         reason, diagnostic, **more)


def complaint(provider: str, event_id: str, email: str, when: datetime,
              **more: Any) -> ProviderEvent:
    return ProviderEvent(provider, event_id, email.strip().lower(), "complaint", when,
                         reason="complaint", **more)


def need(obj: Any, key: str, where: str, kind: type = str) -> Any:
    """``obj[key]`` of the right type, or a PayloadError naming the field."""
    if not isinstance(obj, dict) or key not in obj:
        raise PayloadError(f"{where}: the field '{key}' is missing")
    value = obj[key]
    if not isinstance(value, kind) or (kind is str and not value.strip()):
        raise PayloadError(f"{where}.{key}: must be a {_name(kind)}")
    return value


def _name(kind: type) -> str:
    return {str: "non-empty string", dict: "JSON object", list: "JSON list",
            int: "number"}.get(kind, kind.__name__)


def moment(value: Any, where: str) -> datetime:
    """An ISO 8601 time or a Unix timestamp (seconds) as an aware datetime."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), timezone.utc)
        text = str(value).strip().replace("Z", "+00:00")
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise PayloadError(f"{where}: '{value}' is not a time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def enhanced(value: Any) -> Optional[str]:
    """An enhanced status code (5.1.1) out of a provider's field, when it holds one."""
    found = re.search(r"\b([245]\.\d{1,3}\.\d{1,3})\b", str(value or ""))
    return found.group(1) if found else None
