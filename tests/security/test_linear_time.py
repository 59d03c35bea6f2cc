"""Linear time where an attacker writes (SECURITY.md, "Linear time"): anyone can mail the
bounce inbox, so the classifier's cost must grow with the message, not its square. Before,
"The following address failed: " + 250,000 letters took 19 s per message (the address
regex rescanned the word from every letter); a linear run takes well under 0.1 s.

Held by generous caps (2 s per message, each run in a child under RLIMIT_AS and a 30 s
alarm), never by fine timings; the regular expressions the classifier searches with are
pumped with long runs of the characters they hesitate on.
"""
from __future__ import annotations

import re
import time

import pytest

from boundhelpers import in_child
from reconciler.bounces import dsn, mime, patterns, reasons, text, wordings
from reconciler.bounces.classify import _SUCCESS, classify

CAP = 2.0   # seconds per message; a linear run of these sizes takes ~0.1 s

HEAD = ("From: MAILER-DAEMON@example.com\r\nTo: news@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n\r\n")


def _timed(raw: bytes) -> tuple[float, bool]:
    started = time.perf_counter()
    verdict = classify(raw)
    return time.perf_counter() - started, verdict.bounce


def test_the_long_word_of_the_report_is_linear():
    raw = (HEAD + "The following address failed: " + "a" * 250_000 + "\r\n").encode()
    status, (took, bounce) = in_child(_timed, raw)
    assert status == "ok" and bounce
    assert took < CAP, f"{took:.2f} s for one message"


UNITS = ["a", "a.", "a@", "@a", "a@b.cc ", "-", "=", "_", " ", "\t", "\n", "\n ", " \n", "<", "<a",
         ">", "(", '"', "x-", ":", ";a", "5.1.1 ", "550 ", "=?x?q?", "<script", "</", "&amp;",
         "* ", "smtp;", "to: a@b.cc\n", "- a@b.cc\n", "1.", "\\"]
WRAPPERS = {
    "text": HEAD + "The following addresses had permanent fatal errors:\r\n\r\n{}",
    "html": HEAD.replace("\r\n\r\n", "\r\nContent-Type: text/html\r\n\r\n") + "{}",
    "dsn": (HEAD.replace("\r\n\r\n", "\r\nContent-Type: multipart/report; "
                         "report-type=delivery-status; boundary=B\r\n\r\n")
            + "--B\r\n\r\nfailed\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
              "Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; a@b.cc\r\nAction: failed\r\n"
              "Status: 5.0.0\r\nDiagnostic-Code: smtp; {}"),
    "header": "From: MAILER-DAEMON@example.com\r\nSubject: {}",
}


def _worst(unit: str) -> float:
    worst = 0.0
    for wrapper in WRAPPERS.values():
        body = unit * (200_000 // len(unit))
        worst = max(worst, _timed(wrapper.format(body).encode())[0])
    return worst


@pytest.mark.parametrize("unit", UNITS)
def test_a_message_of_one_repeated_piece_is_linear(unit):
    status, took = in_child(_worst, unit)
    assert status == "ok", took
    assert took < CAP, f"{took:.2f} s for one 200 KB message of {unit!r}"


# Patterns the classifier *searches* with (those only ever anchored with .match at a line
# start are linear there and are exercised by the messages above), and the longest text
# each is given: the decoded Subject is cut at 16,384 characters; the rest see the whole text.
SEARCHED = {**{p: 16_384 for p in (text.BOUNCE_SUBJECT, text.AUTOREPLY_SUBJECT)},
            **{p: 60_000 for p in (
                text.SIGNATURES, text.DELAY, text.PERMANENT, text.FINAL, text.GENERIC_FAILURE,
                text.DAEMON_NAME, text.CHALLENGE, text.CUT, text.ADDRESS, patterns.ENHANCED,
                patterns.FAILURE_CODE, patterns.BASIC, patterns.TEMPORARY, dsn._DSN_SHAPE,
                dsn._LIST_ADDRESS, mime._FIELD_LINES, mime._NOT_HEADER, mime._PARAM, mime._BLOCK_OPEN)},
            # the reasons' words (reasons.py searches diagnostics and whole report texts with them)
            **{p: 60_000 for _, p in wordings.STRONG + wordings.WEAK}, wordings._ANY_STRONG: 60_000,
            _SUCCESS: 60_000}
PREFIXES = ["", "x@", "-", " ", "a@b.c"]
PIECES = ["a", "0", " ", "\t", "\n", "-", "=", "_", ".", "@", ":", ";", "<", "(", '"', "a.", "a@",
          "@a", "a-", ". ", "5.1", "=a", "\n ",
          # the words the reasons' phrases start with and run through (wordings.py)
          "account ", "mailbox ", "user ", "address ", "recipient ", "domain ", "host ", "ip ", "mail from ",
          "sender ", "message ", "exceed ", "too many ", "does not ", "rejected ", "a ", "a a "]


def _pump(pattern: re.Pattern, length: int) -> float:
    worst = 0.0
    for prefix in PREFIXES:
        for piece in PIECES:
            subject = prefix + piece * (length // len(piece)) + "\x00"
            data = subject.encode() if isinstance(pattern.pattern, bytes) else subject
            started = time.perf_counter()
            pattern.search(data)
            worst = max(worst, time.perf_counter() - started)
    return worst


@pytest.mark.parametrize("pattern", list(SEARCHED), ids=lambda p: p.pattern[:30])
def test_no_searched_pattern_is_super_linear(pattern):
    status, took = in_child(_pump, pattern, SEARCHED[pattern], seconds=60)
    assert status == "ok", took
    assert took < 1.0, f"{took:.2f} s for one search of {SEARCHED[pattern]:,} characters"


# strong_reason stops at every place a phrase starts: texts made of nothing but phrases of the
# last rules are its worst case (every place is tested against the rules before them).
PHRASES = ["policy ", "header error ", "spam ", "user unknown ", "rejected ", "quota ", "account is disabled ",
           "timed out ", "mail from command "]


def _reason_of(phrase: str) -> float:
    text = phrase * (60_000 // len(phrase))
    started = time.perf_counter()
    reasons.reason_for(None, text)
    return time.perf_counter() - started


@pytest.mark.parametrize("phrase", PHRASES)
def test_a_text_of_one_repeated_phrase_is_judged_in_linear_time(phrase):
    status, took = in_child(_reason_of, phrase)
    assert status == "ok", took
    assert took < CAP, f"{took:.2f} s for 60,000 characters of {phrase!r}"
