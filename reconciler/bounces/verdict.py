"""The classifier's values: a Recipient that failed and the Verdict on a message."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

KINDS = ("hard", "soft", "blocked", "complaint")

# local@domain, each a run without blanks, brackets or separators; the domain's last dot
# neither first nor last (checked in Python: a regex for it backtracks over every dot).
_ADDRESS = re.compile(r"[^@\s<>()\[\],;:\"]++@[^@\s<>()\[\],;:\"]++")
_TYPE_PREFIX = re.compile(r"^\s*(?:rfc822|utf-8|x-[\w-]+|unknown)\s*;\s*", re.I)
# Exchange / X.400 gateways write "SMTP=user@host" or "SMTP:user@host"
_SCHEME_PREFIX = re.compile(r"^(?:smtp|rfc-?822)[=:]", re.I)
_XTEXT = re.compile(r"\+([0-9A-Fa-f]{2})")
_UNITEXT = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")


_CLEANED: dict[str, str | None] = {}
_CLEANED_LIMIT, _CLEANED_LENGTH = 4096, 320    # values remembered, and their length
_UNKNOWN = object()


def clean_address(value: str | None) -> str | None:
    """A recipient as written in a report → a plain lower-case address, or None.

    Strips the address type (``rfc822;``, ``utf-8;``), angle brackets, quotes,
    ``mailto:`` and trailing punctuation; decodes xtext (RFC 3461) and unitext
    (RFC 6533) escapes. (Remembered for the values seen lately: an inbox's reports
    name the account's own address and its mail system's again and again.)
    """
    if not value:
        return None
    if len(value) > _CLEANED_LENGTH:          # (only short values are remembered)
        return _clean(value)
    cleaned = _CLEANED.get(value, _UNKNOWN)
    if cleaned is not _UNKNOWN:
        return cleaned
    cleaned = _clean(value)
    if len(_CLEANED) >= _CLEANED_LIMIT:
        _CLEANED.clear()
    _CLEANED[value] = cleaned
    return cleaned


def _clean(value: str) -> str | None:
    text = _TYPE_PREFIX.sub("", value).strip()
    if "<" in text and ">" in text:
        text = text[text.rfind("<", 0, text.rfind(">")) + 1: text.rfind(">")]
    text = text.strip().strip("<>\"' \t.,;:").removeprefix("mailto:").removeprefix("MAILTO:")
    if "=" in text or ":" in text:
        text = _SCHEME_PREFIX.sub("", text)
    if "+" in text and _XTEXT.search(text):
        text = _XTEXT.sub(lambda m: chr(int(m.group(1), 16)), text)
    if "\\x{" in text:
        text = _UNITEXT.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = text.strip().lower()
    return text if _is_address(text) else None


def _is_address(text: str) -> bool:
    if not _ADDRESS.fullmatch(text):
        return False
    domain = text[text.index("@") + 1:]
    return 0 < domain.rfind(".") < len(domain) - 1


@dataclass(frozen=True)
class Recipient:
    """One failed recipient: ``reason`` is one of reasons.REASONS, ``kind`` follows from it."""

    address: str
    kind: str
    status: str | None = None
    diagnostic: str | None = None
    reason: str = "undefined"

    def to_json_dict(self) -> dict:
        return {"address": self.address, "kind": self.kind, "reason": self.reason,
                "status": self.status, "diagnostic": self.diagnostic}


# Why a message that is not a failure is not one (its kind_of_message → the reported reason).
_NOT_FAILURE = {"autoreply": "auto-reply", "delivered": "delivered", "delayed": "delayed",
                "challenge": "challenge"}


@dataclass(frozen=True)
class Verdict:
    """What a message is. ``bounce`` is true for failed deliveries and complaints.

    ``kind_of_message`` says how it was recognised: ``dsn`` (RFC 3464 report),
    ``arf`` (RFC 5965 feedback report), ``heuristic`` (a non-standard bounce
    text), or why it is not a bounce: ``delayed``, ``delivered``, ``mdn``,
    ``autoreply``, ``challenge``, ``ordinary``. ``note`` is a free-text remark.
    """

    bounce: bool
    recipients: tuple[Recipient, ...] = ()
    kind_of_message: str = "ordinary"
    note: str | None = field(default=None, compare=False)

    @property
    def reason(self) -> str | None:
        """For a message that is not a failure: auto-reply, delivered, delayed, challenge or
        not-a-report (reasons.NOT_FAILURES); None for a bounce (its recipients have reasons)."""
        if self.bounce:
            return None
        return _NOT_FAILURE.get(self.kind_of_message, "not-a-report")

    def to_json_dict(self, file: str) -> dict:
        data = {"file": file, "bounce": self.bounce,
                "recipients": [r.to_json_dict() for r in self.recipients]}
        if not self.bounce:
            data["reason"] = self.reason
        return data


def dedupe(recipients) -> tuple[Recipient, ...]:
    """One entry per address, the first one seen (the most authoritative)."""
    seen: dict[str, Recipient] = {}
    for recipient in recipients:
        seen.setdefault(recipient.address, recipient)
    return tuple(seen.values())


def one_line(text: str | None, limit: int = 500) -> str | None:
    """Whitespace collapsed, bounded; None for empty text."""
    if not text:
        return None
    line = " ".join(text.split())
    return line[:limit] or None
