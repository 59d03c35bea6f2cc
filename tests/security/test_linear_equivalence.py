"""The linear rewrites find what the quadratic originals found.

Each original expression (kept here as the oracle, run only on short texts where its
backtracking costs nothing) and its linear replacement see the same hypothesis-generated
texts, built from the characters the expressions care about.
"""
from __future__ import annotations

import re

from hypothesis import given, settings, strategies as st

from reconciler.bounces import dsn, mime, text, verdict

_IM = re.I | re.M
OLD_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w](?:[\w-]*\w)?(?:\.\w(?:[\w-]*\w)?)+")
OLD_LIST_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]]+@[^\s<>,;:\"()\[\]]+")
OLD_FOLD = re.compile(rb"[ \t]*\n[ \t]*")
OLD_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)
OLD_VERDICT_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\".]+$")
OLD_SIGNATURE_RULES = re.compile(r"-{2,} ?failed recipients ?-{2,}|-{2,} ?non-delivery report ?-{2,}")
OLD_CUT = re.compile(
    r"^[ \t>]*(?:-{2,}|={2,}|_{2,})?[ \t]*(?:this is a copy of|below this line is a copy"
    r"|original message|forwarded message|returned message|unsent message|message headers? follows?"
    r"|the original message (?:headers? )?(?:is (?:attached|below|included)|follows)|headers of the original|original message headers"
    r"|undelivered message|copy of the message|returned mail follows|text of the message"
    r"|possibly truncated original message|-+ ?message header|----- ?original"
    r"|below is a copy of the original|included is a copy of the message|the header of the original message)"
    r"|^Received: from |^Return-Path: <", _IM)
OLD_LISTED_LINE = re.compile(r"[ \t]*[-*•>\[(<\"']*[ \t]*(?:(?:smtp|rfc822)[:=;]\s*)?<?"
                             r"([\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+)", re.I)
OLD_ECHOED = re.compile(r"[ \t>]*(?:to|cc|bcc|an|para|à|a|aan|kopie)[ \t]*:", re.I)

SETTINGS = settings(max_examples=400, deadline=None, database=None)


def texts(*pieces: str, size: int = 24) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(pieces), max_size=size).map("".join)


ADDRESSY = texts("a", "b", ".", "-", "=", "@", " ", "\n", "x.y", "@b.cc", "!", "_", ",", ";", "<",
                 ">", "(", ")", '"', ":", "[", "]")


@SETTINGS
@given(ADDRESSY)
def test_addresses_are_found_as_before(sample):
    old = [(m.start(), m.group(0)) for m in OLD_ADDRESS.finditer(sample)]
    assert [(m.start(), m.group(0)) for m in text.addresses(sample)] == old


@SETTINGS
@given(ADDRESSY)
def test_list_addresses_are_found_as_before(sample):
    assert dsn.split_list(sample) == OLD_LIST_ADDRESS.findall(sample)


@SETTINGS
@given(ADDRESSY)
def test_a_clean_address_is_recognised_as_before(sample):
    stripped = sample.strip()
    assert verdict._is_address(stripped) == bool(OLD_VERDICT_ADDRESS.match(stripped))


@SETTINGS
@given(texts("a", " ", "\t", "\n", "b", size=16))
def test_headers_unfold_as_before(sample):
    raw = sample.encode()
    assert mime._unfold(raw) == OLD_FOLD.sub(b" ", raw)


@SETTINGS
@given(texts("<", ">", "a", "<script>", "</script>", "<style", "</STYLE >", "<b>", "script", " "))
def test_tags_are_stripped_as_before(sample):
    assert mime.strip_tags(sample) == OLD_TAG.sub(" ", sample)


RULES = texts("-", "--", "-----", "=", "==", "_", "__", " ", "\t", ">", "\n", "x", "original",
              " original", "original message", "message header", "message headers follow",
              "failed recipients", "non-delivery report", "received: from ", "Return-Path: <")


@SETTINGS
@given(RULES)
def test_the_original_is_cut_where_it_was(sample):
    old, new = OLD_CUT.search(sample), text.CUT.search(sample)
    assert (old and old.start()) == (new and new.start())


@SETTINGS
@given(RULES)
def test_rule_signatures_are_seen_as_before(sample):
    low = sample.lower()
    assert bool(OLD_SIGNATURE_RULES.search(low)) == bool(
        re.search(r"(?<!-)-{2,}+ ?(?:failed recipients|non-delivery report) ?--", low))


@SETTINGS
@given(texts("\n", " ", "\t", "\r", "auto:", "Auto: ", "x", "vacation", size=16))
def test_an_auto_reply_subject_is_seen_as_before(sample):
    assert bool(re.search(r"^\s*auto:", sample, _IM)) == bool(
        re.search(r"^[ \t\r\f\v]*+auto:", sample, _IM))
    assert text.AUTOREPLY_SUBJECT.search(sample) or not re.search(r"^\s*auto:", sample, _IM)


LINES = texts(" ", "\t", "-", "*", ">", "<", "(", "'", '"', "smtp:", "rfc822;", "joe", "@x.org",
              ".", "to", "cc", ":", "a")


@SETTINGS
@given(LINES)
def test_listed_and_echoed_lines_read_as_before(sample):
    old = OLD_LISTED_LINE.match(sample)
    new = text._LISTED_LINE.match(sample)
    if old is None or not old.group(1).startswith(("-", "*", "'")):
        assert (old and old.group(1)) == (new and new.group(1))
    assert bool(OLD_ECHOED.match(sample)) == bool(text._ECHOED_HEADER.match(sample))
