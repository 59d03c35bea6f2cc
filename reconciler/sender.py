"""The From and Reply-To a contact sees (SPEC §7). Pure: records in, addresses out.

Each decision comes with its reason (``Sender.reasons``): which contact detail was
used, or why it was not (missing, empty, not a valid address) and what took its
place — what `mailform sender preview` shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from email.utils import formataddr
from typing import Mapping, Optional

from .contacts import email_problem


@dataclass(frozen=True)
class Sender:
    from_email: str
    from_name: str
    reply_to_email: str
    reply_to_name: str
    overridden: bool
    reasons: tuple[str, ...] = ()

    def from_header(self) -> str:
        return formataddr((self.from_name, self.from_email))

    def reply_to_header(self) -> str:
        return formataddr((self.reply_to_name, self.reply_to_email))


def _detail(details: Mapping, key: Optional[str]) -> Optional[str]:
    value = details.get(key) if key else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _why_not(details: Mapping, key: str) -> str:
    """Why the contact detail ``key`` gives no value."""
    if key not in details:
        return f"the contact has no detail '{key}'"
    return f"the contact's detail '{key}' is empty"


def _choose(details: Mapping, key: Optional[str], fallback: str, what: str, own: str,
            check=None) -> tuple[str, bool, str]:
    """(value, overridden, reason) for the From address or name."""
    if not key:
        return (fallback, False,
                f"From {what}: {own} (the account has no from_override.{what}_detail)")
    value = _detail(details, key)
    problem = check(value) if check is not None and value is not None else None
    if value is not None and problem is None:
        return value, True, f"From {what}: the contact's detail '{key}'"
    why = problem or _why_not(details, key)
    return fallback, False, f"From {what}: {own}, because {why}"


def sender_for(spec: Mapping, details: Optional[Mapping] = None) -> Sender:
    """From: the contact's `email_detail` when the account overrides it and the value is a
    valid address, else the account email; the name likewise. Reply-To: `reply_to`, else From."""
    details = details or {}
    override = spec.get("from_override") or {}
    email, by_email, email_reason = _choose(details, override.get("email_detail"),
                                            spec["email"], "email", "the account's email",
                                            email_problem)
    name, by_name, name_reason = _choose(details, override.get("name_detail"),
                                         spec["display_name"], "name",
                                         "the account's display_name")
    reply = spec.get("reply_to") or {}
    reply_email = reply.get("email") or email
    reply_name = reply.get("name") or (name if not reply.get("email") else spec["display_name"])
    reply_reason = ("Reply-To: the account's reply_to" if reply.get("email")
                    else "Reply-To: the From (the account has no reply_to)")
    return Sender(email, name, reply_email, reply_name, by_email or by_name,
                  (email_reason, name_reason, reply_reason))


__all__ = ["Sender", "sender_for"]
