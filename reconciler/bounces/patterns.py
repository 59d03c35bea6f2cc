"""Status codes in texts: enhanced (RFC 3463) and basic (RFC 5321) reply codes, and the
words that say a failure was temporary. What they mean is reasons.py's table.
"""
from __future__ import annotations

import re

from .wordings import each, alternatives

# Look-behinds come after the first character so that the engine can skip to candidates.
ENHANCED = re.compile(r"([245])(?<![\d.][245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
FAILURE_CODE = re.compile(r"([45])(?<![\d.][45])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
BASIC = re.compile(r"([45][0-5]\d)(?<![^\s:;'\"(\[#<=][45][0-5]\d)(?=[\s\-]|$)", re.M)


TEMPORARY = alternatives(
    r"temporar(?:y|ily)", r"try (?:again )?later", r"please retry", r"deferr?ed", r"gr[ea]ylist",
    r"timed? ?out", r"time(?:out)? expired", r"retry (?:timeout|time) (?:exceeded|not reached)", r"expired",
    r"too many (?:connections|recipients|concurrent|sessions)", r"rate limit", r"throttl",
    r"connection (?:refused|reset|lost|closed|dropped|was dropped)", r"temp_failure", r"could not connect", r"no route to host",
    r"network is unreachable", *each("resource resources server system", r" (?:temporarily )?(?:unavailable|busy)"),
    r"local error", r"out of memory", r"not accepting (?:network )?messages", r"host (?:is )?unreachable",
    r"lost connection", r"gave up", r"giving up", r"too long in queue", r"delivery time",
    r"have been failing for a long time", r"has been frozen", r"was frozen", r"temporarily inactive",
    r"temporary locked", r"in the queue too long")


def parse_code(text: str | None, failures_only: bool = False) -> str | None:
    """The first enhanced status code (class.subject.detail) in a text."""
    if not text:
        return None
    match = (FAILURE_CODE if failures_only else ENHANCED).search(text)
    return match.group(0) if match else None


def basic_code(text: str | None) -> str | None:
    """The first three-digit SMTP failure reply code in a text."""
    match = BASIC.search(text) if text else None
    return match.group(1) if match else None
