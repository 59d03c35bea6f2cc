"""The bounce classifier (SPEC §6): the corpus table, the rules behind it, robustness, the CLI."""
from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.bounces.classify import Recipient, Verdict, _classify, classify
from reconciler.bounces.dsn import field_blocks
from reconciler.bounces.mime import MAX_BYTES, read_message
from reconciler.bounces.patterns import parse_code
from reconciler.bounces.reasons import KIND_OF, NOT_FAILURES, REASONS, judge, kind_of
from reconciler.bounces.verdict import clean_address
from reconciler.cli.cmd_bounces import bounces

CORPUS = Path(__file__).parent / "bounces"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))
BY_FILE = {entry["file"]: entry for entry in EXPECTED}


def _raw(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


# ---- the corpus -------------------------------------------------------------------------

def test_corpus_is_large_and_every_file_has_exactly_one_expectation():
    files = sorted(p.name for p in CORPUS.glob("*.eml"))
    assert len(files) >= 146 + 200
    assert sorted(BY_FILE) == files
    assert len(BY_FILE) == len(EXPECTED), "a file is listed twice in expected.yaml"


def test_corpus_covers_every_kind_and_both_verdicts():
    kinds = {r["kind"] for e in EXPECTED for r in e.get("recipients") or []}
    assert kinds == {"hard", "soft", "blocked", "complaint"}
    bounces_ = sum(1 for e in EXPECTED if e["bounce"])
    assert 30 <= bounces_ <= len(EXPECTED) - 25


@pytest.mark.parametrize("name", sorted(BY_FILE))
def test_corpus_message(name):
    entry = BY_FILE[name]
    verdict = _classify(_raw(name))
    want = [(r["address"], r["kind"], r["reason"], r["status"]) for r in entry.get("recipients") or []]
    got = [(r.address, r.kind, r.reason, r.status) for r in verdict.recipients]
    assert verdict.bounce is entry["bounce"], f"{name}: detected as {verdict.kind_of_message}"
    assert [w[0] for w in got] == [w[0] for w in want], f"{name}: addresses"
    assert got == want, f"{name}: kinds/reasons/statuses"
    assert verdict.reason == entry.get("reason"), f"{name}: reason of a message that is not a failure"


def test_generated_corpus_is_what_the_generator_writes():
    import sys
    sys.path.insert(0, str(CORPUS))
    try:
        import generate
    finally:
        sys.path.remove(str(CORPUS))
    made = generate.messages()
    assert sorted(p.name for p in CORPUS.glob("gen_*.eml")) == sorted(name for name, _, _ in made)
    for name, raw, entry in made:
        assert _raw(name) == raw, f"{name}: run tests/bounces/generate.py"
        assert BY_FILE[name]["source"] == entry["source"]
        assert [tuple(r.values()) for r in BY_FILE[name]["recipients"]] == entry["recipients"], name


def test_every_entry_names_its_source_or_the_corpus_header_does():
    generated = [e for e in EXPECTED if e["file"].startswith("gen_")]
    assert len(generated) >= 200 and all(e.get("source") for e in generated)


def test_corpus_names_every_reason_and_every_non_failure():
    reasons = {r["reason"] for e in EXPECTED for r in e.get("recipients") or []}
    assert reasons == set(REASONS)
    assert {e.get("reason") for e in EXPECTED if not e["bounce"]} == set(NOT_FAILURES)


def test_corpus_recipients_have_the_kind_their_reason_means():
    for entry in EXPECTED:
        for r in entry.get("recipients") or []:
            assert r["kind"] == kind_of(r["reason"], r["status"]) or r["reason"] == "undefined", entry["file"]


# ---- structure before text ------------------------------------------------------------

def test_auto_submitted_does_not_hide_a_dsn():
    raw = _raw("dsn_postfix_user_unknown.eml")
    assert b"Auto-Submitted: auto-replied" in raw
    verdict = classify(raw)
    assert verdict.bounce and verdict.kind_of_message == "dsn"


def test_auto_submitted_alone_is_an_autoreply():
    verdict = classify(_raw("auto_vacation_english.eml"))
    assert not verdict.bounce and verdict.kind_of_message == "autoreply"
    assert verdict.recipients == ()


@pytest.mark.parametrize("name, kind_of_message", [
    ("dsn_postfix_delayed_warning.eml", "delayed"),
    ("dsn_postfix_delivered_success.eml", "delivered"),
    ("dsn_postfix_relayed.eml", "delivered"),
    ("mdn_read_receipt.eml", "mdn"),
    ("challenge_response_confirm.eml", "challenge"),
    ("text_exim_delay_warning.eml", "delayed"),
    ("ordinary_personal_reply.eml", "ordinary"),
    ("arf_yahoo_complaint.eml", "arf"),
    ("text_qmail_no_mailbox.eml", "heuristic"),
])
def test_kind_of_message(name, kind_of_message):
    assert classify(_raw(name)).kind_of_message == kind_of_message


def test_original_recipient_is_preferred_and_type_prefix_stripped():
    report = ("Reporting-MTA: dns; mx.example.org\n\n"
              "Final-Recipient: rfc822; real@example.org\nOriginal-Recipient: rfc822;Alias@Example.org\n"
              "Action: failed\nStatus: 5.1.1\n")
    raw = _dsn(report)
    assert [r.address for r in classify(raw).recipients] == ["alias@example.org"]


def test_unusable_original_recipient_falls_back_to_final():
    report = ("Final-Recipient: rfc822; real@example.org\nOriginal-Recipient: rfc822;real\n"
              "Action: failed\nStatus: 5.1.1\n")
    assert [r.address for r in classify(_dsn(report)).recipients] == ["real@example.org"]


def test_duplicate_recipients_are_reported_once():
    block = "Final-Recipient: rfc822; twice@example.org\nAction: failed\nStatus: 5.1.1\n"
    verdict = classify(_dsn(block + "\n" + block))
    assert [r.address for r in verdict.recipients] == ["twice@example.org"]


def test_failed_report_without_address_uses_x_failed_recipients():
    raw = _dsn("Final-Recipient: x400; c=US;a= ;p=Example;o=Exchange;\nAction: failed\nStatus: 5.1.1\n",
               headers="X-Failed-Recipients: Who@Example.org\n")
    assert [r.address for r in classify(raw).recipients] == ["who@example.org"]


def test_recipient_fields_without_blank_lines_still_split():
    blocks = field_blocks("Final-Recipient: rfc822; a@example.org\nAction: failed\n"
                          "Final-Recipient: rfc822; b@example.org\nAction: delayed\n")
    assert [b["final-recipient"] for b in blocks] == ["rfc822; a@example.org", "rfc822; b@example.org"]
    assert [b["action"] for b in blocks] == ["failed", "delayed"]


def test_folded_diagnostic_code_is_unfolded():
    blocks = field_blocks("Diagnostic-Code: smtp; 550-5.1.1 The email account\n   that you tried to reach does not exist\n")
    assert blocks[0]["diagnostic-code"] == "smtp; 550-5.1.1 The email account that you tried to reach does not exist"


def test_arf_complaint_takes_original_rcpt_to():
    verdict = classify(_raw("arf_aol_complaint_original_rcpt_to.eml"))
    assert verdict.recipients == (Recipient("nora@example.net", "complaint", None, "feedback-type: abuse",
                                            "complaint"),)


def test_verdict_is_frozen_and_serialises_as_spec_says():
    verdict = classify(_raw("dsn_postfix_three_mixed.eml"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.bounce = False  # type: ignore[misc]
    data = verdict.to_json_dict("x.eml")
    assert list(data) == ["file", "bounce", "recipients"]
    assert data["file"] == "x.eml" and data["bounce"] is True
    assert data["recipients"][0] == {
        "address": "frank@example.org", "kind": "hard", "reason": "user-unknown", "status": "5.1.1",
        "diagnostic": "550 5.1.1 <frank@example.org>: Recipient address rejected: User unknown"}
    assert list(data["recipients"][0]) == ["address", "kind", "reason", "status", "diagnostic"]
    assert isinstance(verdict.recipients, tuple) and verdict.reason is None


@pytest.mark.parametrize("name, reason", [
    ("auto_vacation_english.eml", "auto-reply"), ("dsn_postfix_delivered_success.eml", "delivered"),
    ("dsn_postfix_relayed.eml", "delivered"), ("dsn_postfix_delayed_warning.eml", "delayed"),
    ("challenge_response_confirm.eml", "challenge"), ("ordinary_newsletter.eml", "not-a-report"),
    ("mdn_read_receipt.eml", "not-a-report"), ("arf_dmarc_auth_failure.eml", "not-a-report"),
])
def test_a_message_that_is_not_a_failure_says_what_it_is(name, reason):
    data = classify(_raw(name)).to_json_dict("x.eml")
    assert data == {"file": "x.eml", "bounce": False, "recipients": [], "reason": reason}


def test_a_success_report_is_never_a_bounce_whatever_its_text_says():
    raw = _dsn("Final-Recipient: rfc822; ok@example.org\nAction: delivered\nStatus: 2.0.0\n"
               "Diagnostic-Code: smtp; 250 2.0.0 OK\n\nFinal-Recipient: rfc822; fwd@example.org\n"
               "Action: relayed\nStatus: 2.0.0\n", headers="X-Failed-Recipients: ok@example.org\n")
    raw = raw.replace(b"\nfailed\n", b"\nDelivery has failed to these recipients: user unknown\n")
    verdict = classify(raw)
    assert (verdict.bounce, verdict.reason, verdict.recipients) == (False, "delivered", ())


def test_an_unreadable_message_is_not_a_report_and_says_why_in_its_note():
    verdict = classify("not bytes")  # type: ignore[arg-type]
    assert verdict.reason == "not-a-report" and verdict.note.startswith("unreadable")


# ---- rules: codes and words → reasons → kinds -----------------------------------------------

@pytest.mark.parametrize("status, text, reason, kind", [
    ("5.1.1", "550 5.1.1 user unknown", "user-unknown", "hard"),
    ("5.1.10", "RESOLVER.ADR.RecipientNotFound", "user-unknown", "hard"),
    ("5.1.10", "556 5.1.10 Recipient address has null MX", "not-accept", "hard"),
    ("5.1.6", "550 5.1.6 mailbox has moved", "has-moved", "hard"),
    (None, "551 User not local; please try <new@example.org>", "has-moved", "hard"),
    ("5.2.1", "mailbox disabled", "suspended", "soft"),
    ("5.2.2", "mailbox full", "mailbox-full", "soft"),
    ("5.2.3", "RESOLVER.RST.RecipSizeLimit; message too large for this recipient", "exceed-limit", "soft"),
    ("5.3.4", "message too big", "message-too-big", "soft"),
    ("5.4.4", "unable to route", "host-unknown", "hard"),
    ("5.4.7", "delivery time expired", "expired", "soft"),
    ("5.4.7", "connect to mx.example.net: Connection refused", "expired", "soft"),
    ("4.4.1", "connect to mx.example.net: Connection timed out", "expired", "soft"),
    ("4.4.3", "Name service error for name=example.net type=MX: Host not found, try again",
     "expired", "soft"),
    ("5.4.6", "mail for example.net loops back to myself", "network-error", "soft"),
    (None, "Name service error for name=example.net type=MX: Host not found, try again",
     "network-error", "soft"),
    ("4.2.2", "over quota", "mailbox-full", "soft"),
    ("4.7.1", "greylisted, try later", "greylisted", "soft"),
    ("4.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional "
              "messages from being delivered", "rate-limited", "blocked"),
    ("4.7.28", "Our system has detected an unusual rate of unsolicited mail originating from your IP "
               "address", "rate-limited", "blocked"),
    (None, "421 Too many concurrent connections", "too-many-connections", "blocked"),
    ("5.7.1", "Service unavailable; client host blocked using zen.spamhaus.org", "ip-blocked", "blocked"),
    ("5.7.25", "The IP address sending this message does not have a PTR record setup", "ip-blocked",
     "blocked"),
    ("5.7.26", "DMARC policy", "auth-failure", "blocked"),
    ("5.7.1", "Unauthenticated email from example.com is not accepted due to domain's DMARC policy",
     "auth-failure", "blocked"),
    ("5.7.1", "<x@example.org>: Relay access denied", "system-error", "soft"),
    ("5.7.1", "No such user here", "user-unknown", "hard"),
    ("5.7.1", "Message contains a virus", "security-error", "blocked"),
    ("4.7.0", "TLS required for RCPT domain, closing connection", "security-error", "blocked"),
    ("5.7.133", "RESOLVER.RST.SenderNotAuthenticatedForGroup; authentication required",
     "policy-violation", "blocked"),
    ("5.1.0", "Sender address rejected: Domain not found", "policy-violation", "blocked"),
    ("5.0.0", "552 mailbox full", "mailbox-full", "soft"),
    ("5.0.0", "550 High probability of spam", "spam-detected", "blocked"),
    ("5.0.0", "550 unknown user", "user-unknown", "hard"),
    ("5.0.0", "retry timeout exceeded", "expired", "soft"),
    ("5.7.0", "554 5.7.0 Header error (state 18)", "content-error", "blocked"),
    ("5.1.0", "550 5.1.0 Address rejected", "user-unknown", "hard"),
    ("5.1.1", "user over quota. (#5.1.1)", "mailbox-full", "soft"),
    ("5.2.0", "550 5.2.0 requested action aborted", "undefined", "soft"),
    ("5.0.0", "550 5.0.0 something odd", "undefined", "hard"),
    ("4.0.0", "450 4.0.0 something odd", "expired", "soft"),
    ("5.7.0", "554 5.7.0 Reject", "policy-violation", "blocked"),
    ("5.7.13", "525 5.7.13 User account disabled", "suspended", "soft"),
    ("5.7.8", "535 5.7.8 Authentication credentials invalid", "security-error", "blocked"),
    ("5.3.0", "Internal server error", "system-error", "soft"),
    (None, "Command died with status 1: /usr/bin/procmail", "mailer-error", "soft"),
    (None, "550 5.1.1 <a@example.org>... User unknown", "user-unknown", "hard"),
    (None, "552 Requested mail action aborted: exceeded storage allocation", "mailbox-full", "soft"),
    (None, "554 Transaction failed: rejected for policy reasons", "policy-violation", "blocked"),
    (None, "550 Requested action not taken", "user-unknown", "hard"),
    (None, "451 Temporary local problem", "system-error", "soft"),
    (None, "User x not listed in Domino Directory", "user-unknown", "hard"),
    (None, "Your IP is listed on a block list", "ip-blocked", "blocked"),
    (None, "This user doesn't have a example.net account", "user-unknown", "hard"),
    (None, "554 delivery error: dd Sorry your message to x cannot be delivered. This mailbox is "
           "disabled (554.30)", "suspended", "soft"),
])
def test_judge(status, text, reason, kind):
    assert judge(status, text) == (reason, kind)


def test_every_reason_has_one_kind_in_the_table():
    assert set(REASONS) == set(KIND_OF) and len(REASONS) == 23
    assert all(KIND_OF[r] in (None, "hard", "soft", "blocked", "complaint") for r in REASONS)
    assert [r for r in REASONS if KIND_OF[r] is None] == ["undefined"]


@pytest.mark.parametrize("status, transient, kind", [
    (None, False, "hard"), (None, True, "soft"), ("4.1.1", False, "soft"), ("5.0.0", True, "hard"),
    ("5.1.9", False, "hard"), ("5.2.0", False, "soft"), ("5.6.9", False, "soft"), ("5.7.99", False, "blocked"),
])
def test_undefined_takes_its_kind_from_the_code(status, transient, kind):
    assert kind_of("undefined", status, transient) == kind


def test_judge_without_evidence_is_undefined():
    assert judge(None, "something odd happened") == ("undefined", "hard")
    assert judge(None, "something odd happened", transient=True) == ("undefined", "soft")


def test_readme_documents_the_table():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for reason, kind in KIND_OF.items():
        assert f"| `{reason}` | {kind or 'by the code'} |" in readme, reason


def test_package_exports_the_classifier():
    import reconciler.bounces as package
    assert package.classify is classify and package.Verdict is Verdict and package.Recipient is Recipient


@pytest.mark.parametrize("text, code", [
    ("smtp; 550 5.1.1 <a@example.org>", "5.1.1"),
    ("host [192.5.1.1] said nothing", None),
    ("#5.1.10 smtp;550", "5.1.10"),
    ("version 5.1.1.2", None),
    ("4.2.2.", "4.2.2"),
])
def test_parse_code_ignores_addresses_and_versions(text, code):
    assert parse_code(text) == code


@pytest.mark.parametrize("value, address", [
    ("rfc822; Bob@Example.ORG", "bob@example.org"),
    ("RFC822;<bob@example.org>", "bob@example.org"),
    ("utf-8; jörg@example.org", "jörg@example.org"),
    ('"Bob" <bob@example.org>', "bob@example.org"),
    ("rfc822; bob+2Bnews@example.org", "bob+news@example.org"),
    ("mailto:bob@example.org", "bob@example.org"),
    ("rfc822; bob", None),
    ("", None),
    (None, None),
    ("x400; c=US;a= ;p=Example", None),
])
def test_clean_address(value, address):
    assert clean_address(value) == address


# ---- robustness ---------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_give_a_verdict(raw):
    verdict = _classify(raw)
    assert isinstance(verdict, Verdict)
    assert all(r.kind in ("hard", "soft", "blocked", "complaint") for r in verdict.recipients)
    assert all(r.reason in REASONS for r in verdict.recipients)
    assert verdict.reason in (NOT_FAILURES if not verdict.bounce else (None,))


_SEEDS = sorted(BY_FILE)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_SEEDS), st.integers(0, 10**9), st.binary(max_size=64))
def test_damaged_corpus_messages_give_a_verdict(name, seed, junk):
    raw = bytearray(_raw(name)[:20000])
    rng = random.Random(seed)
    for _ in range(rng.randrange(1, 6)):
        action = rng.randrange(3)
        at = rng.randrange(len(raw) + 1)
        if action == 0:
            raw[at:at] = junk
        elif action == 1:
            del raw[at: at + rng.randrange(200)]
        else:
            raw = raw[:at]
    assert isinstance(_classify(bytes(raw)), Verdict)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("\n\r\t :;=-<>@\"'.abcXYZ0159")), max_size=600),
       st.sampled_from(["multipart/report; report-type=delivery-status; boundary=b",
                        "multipart/report; report-type=feedback-report", "message/delivery-status",
                        "multipart/mixed; boundary=\"", "text/plain; charset=bogus"]))
def test_hostile_structure_gives_a_verdict(body, ctype):
    raw = f"From: MAILER-DAEMON@example.org\nContent-Type: {ctype}\n\n--b\n{body}\n--b--\n".encode()
    assert isinstance(_classify(raw), Verdict)


def test_deeply_nested_messages_are_bounded():
    inner = b"Content-Type: text/plain\n\nhello\n"
    for level in range(200):
        inner = (f"Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n".encode()
                 + inner + f"\n--b{level}--\n".encode())
    assert classify(inner).bounce is False


def test_very_large_message_reads_only_a_bounded_prefix():
    head = _raw("dsn_postfix_user_unknown.eml")
    raw = head + b"X" * (20 * 1024 * 1024)
    verdict = classify(raw)
    assert verdict.bounce and verdict.recipients[0].address == "alice@example.org"
    assert len(read_message(raw).body) < MAX_BYTES


def test_nul_bytes_and_bare_carriage_returns():
    raw = _raw("text_qmail_no_mailbox.eml").replace(b"\n", b"\r").replace(b"Sorry", b"So\x00rry")
    verdict = classify(raw)
    assert verdict.bounce and verdict.recipients[0].address == "hank@example.net"


def test_classify_never_raises_even_on_wrong_types():
    assert classify("not bytes").bounce is False  # type: ignore[arg-type]
    assert classify(memoryview(_raw("text_qmail_no_mailbox.eml"))).bounce is True


# ---- the command ----------------------------------------------------------------------------

def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def test_cli_json_one_line_per_file_in_order():
    names = ["dsn_postfix_three_mixed.eml", "auto_vacation_german.eml", "arf_yahoo_complaint.eml"]
    paths = [str(CORPUS / n) for n in names]
    result = _runner().invoke(bounces, ["classify", "--json", *paths])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == paths
    assert [line["bounce"] for line in lines] == [True, False, True]
    assert lines[0]["recipients"][1] == {"address": "grace@example.org", "kind": "soft",
                                         "reason": "mailbox-full", "status": "5.2.2",
                                         "diagnostic": "552 5.2.2 <grace@example.org>: Mailbox full"}
    assert lines[1] == {"file": paths[1], "bounce": False, "recipients": [], "reason": "auto-reply"}
    assert lines[2]["recipients"][0]["kind"] == lines[2]["recipients"][0]["reason"] == "complaint"
    assert lines[2]["recipients"][0]["status"] is None


def test_cli_unreadable_file_is_named_and_the_others_still_print(tmp_path):
    missing = tmp_path / "missing.eml"
    good = str(CORPUS / "text_qmail_no_mailbox.eml")
    result = _runner().invoke(bounces, ["classify", "--json", str(missing), good, str(tmp_path)])
    assert result.exit_code == 1
    assert str(missing) in result.stderr and str(tmp_path) in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    [line] = result.stdout.splitlines()
    assert json.loads(line)["file"] == good


def test_cli_table_lists_recipients():
    paths = [str(CORPUS / "dsn_postfix_three_mixed.eml"), str(CORPUS / "ordinary_newsletter.eml")]
    result = _runner().invoke(bounces, ["classify", *paths])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["FILE", "BOUNCE", "ADDRESS", "KIND", "REASON", "STATUS", "DIAGNOSTIC"]
    assert any("heidi@example.net" in line and "blocked" in line and "policy-violation" in line
               and "5.7.1" in line for line in lines)
    assert any(line.startswith(paths[1]) and " no " in line and "not-a-report" in line for line in lines)


def test_cli_reads_standard_input():
    result = _runner().invoke(bounces, ["classify", "--json", "-"], input=_raw("text_exim_user_unknown.eml"))
    assert result.exit_code == 0
    assert json.loads(result.stdout)["recipients"][0]["address"] == "bill@example.net"


# ---- helpers ------------------------------------------------------------------------------

def _dsn(report: str, headers: str = "") -> bytes:
    return ("From: MAILER-DAEMON@mx.example.org\nTo: news@example.com\nSubject: failure\n" + headers +
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n"
            "--r\nContent-Type: text/plain\n\nfailed\n\n--r\nContent-Type: message/delivery-status\n\n"
            "Reporting-MTA: dns; mx.example.org\n\n" + report + "\n--r--\n").encode()


# -- the fast paths read what the plain ones read -------------------------------------------

_OLD_FIELD_LINES = re.compile(rb"^([!-9;-~]+)[ \t]*:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
_HEADER_PIECES = [b"From", b"To", b"Subject", b"X-A", b": ", b":", b" ", b"\t", b"\n", b"\n ",
                  b"\n\t", b"a", b"\xc3\xa9", b"\xe2\x82", b"\xff", b"\x80", b"\r", b"\x0b",
                  b"\x0c", b"\x1c", b"\xc2\xa0", b"\xe2\x80\xa8", b"=?utf-8?q?x?=", b";"]


def _old_parse_headers(block: bytes) -> dict:
    """The header reader as it was: each value unfolded and stripped as bytes, decoded."""
    from reconciler.bounces.mime import _unfold
    headers: dict = {}
    for name, value in _OLD_FIELD_LINES.findall(block):
        if b"\n" in value:
            value = _unfold(value)
        headers.setdefault(name.decode("ascii").lower(), []).append(
            value.strip().decode("utf-8", "replace"))
    return headers


@settings(max_examples=600, deadline=None, database=None)
@given(st.lists(st.sampled_from(_HEADER_PIECES), max_size=40).map(b"".join))
def test_headers_decoded_once_read_as_decoded_value_by_value(block):
    from reconciler.bounces.mime import parse_headers
    assert parse_headers(block) == _old_parse_headers(block)


_PHRASES = ["user unknown ", "policy ", "over quota ", "spam ", "timed out ", "rejected ",
            "x ", "account is disabled ", "mail from command ", "no such user ", "dns ",
            "5.1.1 ", "blocked ", "spf ", "relay ", "try again later ", "mailbox full "]


@settings(max_examples=600, deadline=None, database=None)
@given(st.lists(st.sampled_from(_PHRASES), max_size=10).map("".join))
def test_the_strong_rules_in_one_pass_find_the_first_rule_that_matches(low):
    from reconciler.bounces.wordings import STRONG, first_reason, strong_reason
    assert strong_reason(low) == first_reason(low, STRONG)


def test_content_type_parameters_are_read_only_and_shared_safely():
    first = read_message(b"Content-Type: text/plain; charset=us-ascii\n\nhello\n")
    second = read_message(b"Content-Type: text/plain; charset=us-ascii\n\nbye\n")
    assert first.params == {"charset": "us-ascii"} == second.params
    with pytest.raises(TypeError):
        first.params["charset"] = "utf-8"           # type: ignore[index]
