"""One redaction helper for anything a server might echo back, and for transcripts."""
from __future__ import annotations

from typing import Optional

REDACTED = "(sensitive value)"
MIN_REDACTED_LENGTH = 3  # shorter secrets would garble every message; see redact()


def redact(text, *secrets: Optional[str]):
    """``text`` with every secret replaced by REDACTED. None, empty and very short
    secrets (under MIN_REDACTED_LENGTH characters) redact nothing; a None text stays None."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= MIN_REDACTED_LENGTH:
            text = text.replace(secret, REDACTED)
    return text


_AUTH_VERBS = ("AUTH", "AUTHENTICATE", "LOGIN", "PASS", "APOP")
_HARMLESS_VERBS = ("USER", "EHLO", "QUIT", "CAPABILITY", "CAPA", "STARTTLS", "STLS")


def redact_auth_line(line: str) -> str:
    """A line the client sent while logging in, as a transcript may show it: the
    command verb (and an IMAP tag, a SASL mechanism) kept, the rest dropped."""
    words = line.split()
    keep: list[str] = []
    for index, word in enumerate(words[:3]):
        upper = word.upper()
        if upper in _AUTH_VERBS:
            keep = words[:index + 1]
            if upper in ("AUTH", "AUTHENTICATE") and len(words) > index + 1:
                keep.append(words[index + 1])  # the mechanism name
            break
        if upper in _HARMLESS_VERBS:
            return line
    if len(keep) == len(words):
        return line
    return " ".join(keep + ["(redacted)"])
