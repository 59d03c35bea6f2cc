"""The From and Reply-To a contact sees (SPEC §7). Pure: records in, addresses out."""
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

    def from_header(self) -> str:
        return formataddr((self.from_name, self.from_email))

    def reply_to_header(self) -> str:
        return formataddr((self.reply_to_name, self.reply_to_email))


def _detail(details: Mapping, key: Optional[str]) -> Optional[str]:
    value = details.get(key) if key else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def sender_for(spec: Mapping, details: Optional[Mapping] = None) -> Sender:
    """From: the contact's `email_detail` when the account overrides it and the value is a
    valid address, else the account email; the name likewise. Reply-To: `reply_to`, else From."""
    details = details or {}
    override = spec.get("from_override") or {}
    email, name = spec["email"], spec["display_name"]
    candidate = _detail(details, override.get("email_detail"))
    overridden = False
    if candidate and email_problem(candidate) is None:
        email, overridden = candidate, True
    candidate_name = _detail(details, override.get("name_detail"))
    if candidate_name:
        name, overridden = candidate_name, True
    reply = spec.get("reply_to") or {}
    reply_email = reply.get("email") or email
    reply_name = reply.get("name") or (name if not reply.get("email") else spec["display_name"])
    return Sender(email, name, reply_email, reply_name, overridden)


__all__ = ["Sender", "sender_for"]
