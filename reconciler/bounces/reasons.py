"""Why a delivery failed, and what that means for the address: ONE table (issue 11).

Every failed recipient gets a ``reason`` from ``REASONS`` (the names are the contract)
and a ``kind`` that follows from it by ``KIND_OF``:

``hard``      the address is dead: user-unknown, host-unknown, has-moved, not-accept
``soft``      try again: the mailbox or the receiving system has a passing problem
``blocked``   the sender's problem, never the contact's fault (counted on the account)
``complaint`` an RFC 5965 feedback report

``undefined`` (no words or code we know) takes its kind from the status code instead:
4.x.x soft; 5.1.x hard; 5.7.x blocked; 5.2.x to 5.6.x soft; 5.0.0, a bare 5xx reply or
nothing at all hard (a permanent failure we cannot explain is treated as final).

The reason comes from, in order: the diagnostic's specific words (wordings.STRONG),
a specific enhanced status code (``CODE_REASONS``, RFC 3463 and the RFC 5248 registry),
the diagnostic's generic words (wordings.WEAK), the code's subject (``SUBJECT_REASONS``),
a bare SMTP 552 (exceeded storage allocation, RFC 5321), else ``undefined``. Where words
and a specific code name neighbouring reasons the code refines them (a connection failure
under x.4.7 is ``expired``, a "too big" message under x.2.3 ``exceed-limit``), and a failure
reported with a 4.x.x code whose words name no cause but the connection was retried until
the sender gave up: ``expired``. Pure: no I/O.
"""
from __future__ import annotations

from .patterns import basic_code, parse_code
from .wordings import WEAK, first_reason, strong_reason

KIND_OF: dict[str, str | None] = {
    "user-unknown": "hard", "host-unknown": "hard", "has-moved": "hard", "not-accept": "hard",
    "mailbox-full": "soft", "message-too-big": "soft", "exceed-limit": "soft", "expired": "soft",
    "suspended": "soft", "greylisted": "soft", "network-error": "soft", "system-error": "soft",
    "mailer-error": "soft",
    "rate-limited": "blocked", "too-many-connections": "blocked", "ip-blocked": "blocked",
    "policy-violation": "blocked", "spam-detected": "blocked", "auth-failure": "blocked",
    "security-error": "blocked", "content-error": "blocked",
    "complaint": "complaint",
    "undefined": None,
}
REASONS = tuple(KIND_OF)

# Verdict-level reasons of messages that are not failures.
NOT_FAILURES = ("auto-reply", "delivered", "delayed", "challenge", "not-a-report")

# Specific enhanced status codes (subject.detail) → reason.
CODE_REASONS: dict[str, str] = {
    "1.1": "user-unknown", "1.2": "host-unknown", "1.3": "user-unknown", "1.4": "user-unknown",
    "1.6": "has-moved", "1.7": "policy-violation", "1.8": "policy-violation", "1.10": "not-accept",
    "2.1": "suspended", "2.2": "mailbox-full", "2.3": "exceed-limit", "2.4": "system-error",
    "3.1": "system-error", "3.2": "system-error", "3.3": "system-error", "3.4": "message-too-big",
    "3.5": "system-error",
    "4.1": "network-error", "4.2": "network-error", "4.3": "network-error", "4.4": "host-unknown",
    "4.5": "system-error", "4.6": "network-error", "4.7": "expired",
    "5.3": "too-many-connections",
    "7.1": "policy-violation", "7.2": "policy-violation", "7.3": "security-error",
    "7.4": "security-error", "7.5": "security-error", "7.6": "security-error", "7.7": "security-error",
    "7.8": "security-error", "7.9": "security-error", "7.10": "security-error", "7.11": "security-error",
    "7.12": "security-error", "7.13": "suspended", "7.14": "security-error", "7.15": "policy-violation",
    "7.16": "message-too-big", "7.17": "has-moved", "7.18": "has-moved", "7.20": "auth-failure",
    "7.21": "auth-failure", "7.22": "auth-failure", "7.23": "auth-failure", "7.24": "auth-failure",
    "7.25": "ip-blocked", "7.26": "auth-failure", "7.27": "policy-violation", "7.28": "rate-limited",
    "7.29": "auth-failure", "7.30": "security-error",
}

# Any other code of a subject (x.y.0 or a detail the registry does not list); x.2.y and
# x.0.y have none ("undefined", kind by the code).
SUBJECT_REASONS: dict[str, str] = {
    "1": "user-unknown", "3": "system-error", "4": "network-error", "5": "system-error",
    "6": "content-error", "7": "policy-violation",
}

# A connection or system failure reported with "delivery time expired" (x.4.7) expired.
_GAVE_UP = ("network-error", "system-error")

_NO_CAUSE = ("network-error", "undefined")

# Kind of "undefined" by the code's subject when its class is 5.
_UNDEFINED_KIND = {"0": "hard", "1": "hard", "7": "blocked"}


def kind_of(reason: str, status: str | None = None, transient: bool = False) -> str:
    """The kind a reason means; for ``undefined``, the kind the status code means
    (``transient``: the report says the failure was temporary, when no code does)."""
    kind = KIND_OF.get(reason)
    if kind is not None:
        return kind
    if status is None:
        return "soft" if transient else "hard"
    if status[0] == "4":
        return "soft"
    return _UNDEFINED_KIND.get(status.split(".")[1] if "." in status else "0", "soft")


def reason_for(status: str | None, text: str | None) -> str | None:
    """The reason a status code and a diagnostic text give; None when neither says anything
    (``text`` in any case)."""
    low = " ".join(text.lower().split()) if text else ""   # wrapped lines read as one
    code = status or parse_code(low, failures_only=True)
    found = strong_reason(low) if low else None
    if found:
        return _refined(found, code)
    specific = _code_reason(code)
    if specific:
        return specific
    found = first_reason(low, WEAK) if low else None
    if found:
        return found
    if code and code.split(".")[1] in SUBJECT_REASONS:
        return SUBJECT_REASONS[code.split(".")[1]]
    basic = basic_code(low)
    if basic == "552":
        return "mailbox-full"
    return "undefined" if code or basic else None


def _refined(found: str, code: str | None) -> str:
    """Where the words and a specific code name neighbouring reasons, the code's: a
    connection failure under x.4.7 expired; a "too big" message under x.2.3 exceeded the
    mailbox's limit."""
    detail = code[1:] if code else ""
    if found in _GAVE_UP and detail == ".4.7":
        return "expired"
    return "exceed-limit" if found == "message-too-big" and detail == ".2.3" else found


def _code_reason(code: str | None) -> str | None:
    if not code or code[0] not in "45":
        return None
    return CODE_REASONS.get(code.split(".", 1)[1])


def judge(status: str | None, text: str | None, transient: bool = False) -> tuple[str, str]:
    """(reason, kind) of one recipient's failure from its status code and diagnostic."""
    reason = given_up(reason_for(status, text) or "undefined", status)
    return reason, kind_of(reason, status or pseudo_status(text), transient)


def given_up(reason: str, status: str | None) -> str:
    """A failure reported with a temporary (4.x.x) code was retried until the sender gave up:
    unless its words say more than "no connection" or nothing, its time ran out."""
    return "expired" if status and status[0] == "4" and reason in _NO_CAUSE else reason


def pseudo_status(text: str | None) -> str | None:
    """The failure's class as a pseudo status, from an enhanced or a bare reply code."""
    if not text:
        return None
    code = parse_code(text, failures_only=True)
    if code:
        return code
    basic = basic_code(text)
    return f"{basic[0]}.0.0" if basic else None
