"""Human replies (issue 14): is this inbox message a person answering, and who, when, what?

``human_reply(raw)`` is pure: None for a bounce or a failure report (the classifier's
verdict), an auto-reply (RFC 3834 ``Auto-Submitted`` other than ``no``; ``Precedence``
bulk, junk, list or auto_reply; ``X-Autoreply``, ``X-Autorespond``,
``X-Auto-Response-Suppress``, ``X-POST-MessageClass``; a vacation or out-of-office
subject), mailing-list traffic (``List-Id``, ``List-Unsubscribe``), a message with a null
return path, or one without a usable From; else a ``Reply`` with the sender, subject,
time (the Date header, else now), Message-ID and In-Reply-To.

``note_reply(registry, account, raw)`` is what the inbox scanner calls for each message
that is not a bounce: a reply from a known contact becomes one ``replied`` event
(idempotent by account and Message-ID); the message itself is left alone — unread,
where it was (the scanner fetches with BODY.PEEK).
"""
from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from .classify import classify
from .mime import MAX_BYTES, read_message

_AUTO_HEADERS = ("x-autoreply", "x-autorespond", "x-auto-response-suppress",
                 "x-autoreply-from", "x-mail-autoreply", "x-post-messageclass",
                 "x-failed-recipients", "feedback-type", "list-id", "list-unsubscribe")
_BULK = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|auto:|out of (the )?office|"
    r"away from|on vacation|vacation|abwesenheit|r[ée]ponse automatique|"
    r"delivery status|undeliverable|undelivered|returned mail|mail delivery)",
    re.IGNORECASE)
SUBJECT_LIMIT = 300


@dataclass(frozen=True)
class Reply:
    sender: str
    subject: str
    time: datetime
    message_id: Optional[str]
    in_reply_to: Optional[str]


def _header(msg: Any, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, TypeError, IndexError):
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def is_automatic(msg: Any) -> bool:
    """Whether the headers or the subject say a machine sent it (see the module docstring)."""
    auto = _header(msg, "Auto-Submitted").lower()
    if auto and auto.split(";")[0].strip() != "no":
        return True
    if _header(msg, "Precedence").lower() in _BULK:
        return True
    if any(_header(msg, name) for name in _AUTO_HEADERS):
        return True
    if _header(msg, "Return-Path").strip() == "<>":
        return True
    return bool(_AUTO_SUBJECT.match(_header(msg, "Subject")))


def _when(msg: Any) -> datetime:
    try:
        moment = email.utils.parsedate_to_datetime(_header(msg, "Date"))
    except (TypeError, ValueError, IndexError):
        return datetime.now(timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _decoded(value: str) -> str:
    """An RFC 2047 encoded header as text (left as it is when it cannot be decoded)."""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        return value


def human_reply(raw: bytes) -> Optional[Reply]:
    raw = raw[:MAX_BYTES]
    if classify(raw).bounce:
        return None
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if is_automatic(msg) or msg.get_content_type() == "multipart/report":
        return None
    sender = email.utils.parseaddr(_header(msg, "From"))[1].strip().lower()
    if "@" not in sender:
        return None
    return Reply(sender, _decoded(_header(msg, "Subject"))[:SUBJECT_LIMIT], _when(msg),
                 _header(msg, "Message-ID") or None, _header(msg, "In-Reply-To") or None)


def message_id_of(raw: bytes) -> Optional[str]:
    """A message's own Message-ID (kept with a bounce for review), None when it has none.
    (The classifier's parse of the same message, which the scanner has just made, is
    reused: ``mime.read_message``.)"""
    return " ".join(read_message(raw).header("message-id").split()) or None


def note_reply(registry: Any, account: str, raw: bytes) -> bool:
    """Record a known contact's human reply as a ``replied`` event; whether one was
    recorded (False: not a reply, not a contact, or recorded before)."""
    reply = human_reply(raw)
    if reply is None or registry.contact(reply.sender) is None:
        return False
    key = reply.message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    event = registry.events.record_once(
        (f"reply:{account}", key), "replied", reply.sender, account=account,
        source=f"inbox:{account}", when=reply.time,
        data={"subject": reply.subject, "message_id": reply.message_id,
              "in_reply_to": reply.in_reply_to})
    return event is not None
