"""Forged bounces into a real Dovecot inbox, from an independent review of issue 9
(SECURITY.md, "Bounces that can be trusted"): none of these may make a contact faulty.

* a report carrying a genuine tag copied from a message sent to someone else (the
  attacker was its recipient), naming another contact;
* a report with a guessed (well-formed, unsigned) tag, to an account that trusts tagged
  reports only;
* a spoofed MAILER-DAEMON (From header, envelope sender an outsider) without a
  Reporting-MTA;
* an outsider's report quoting the account's headers, with a forged ``Return-Path: <>``
  header of its own (the delivery's Return-Path, written first, is the outsider's).
"""
from __future__ import annotations

import os
import smtplib
import uuid

import pytest

from reconciler.bounces import tags
from reconciler.registry import open_registry
from test_bounce_trust import (_contacts, _scan_cli, _show, account, original,  # noqa: F401
                               report)


def _deliver(stack, envelope_sender: str, acc, data: bytes, contact: str) -> None:
    with smtplib.SMTP("127.0.0.1", stack.ports["smtp"], timeout=20) as smtp:
        smtp.sendmail(envelope_sender, [acc.email], data)
    stack.wait_for_mail(acc.local, lambda m: contact in m.as_string(), 30)


def _genuine_tag(acc, recipient: str) -> str:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(acc.env)
    try:
        registry = open_registry(acc.env["MAILFORM_REGISTRY"])
        try:
            return str(tags.new_tag(registry, acc.local, [recipient]))
        finally:
            registry.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _forgeries(acc, contact: str, attacker: str) -> dict[str, tuple[str, bytes]]:
    quoted = original(sender=acc.email, to=contact)
    copied = _genuine_tag(acc, attacker)
    guessed = "mf1." + "a" * 26 + "." + "0" * 32
    return {
        "copied tag": ("<>", report([contact], original(
            sender=acc.email, to=contact, message_id=f"<{copied}@example.com>"))),
        "guessed tag": ("<>", report([contact], original(
            sender=acc.email, to=contact, message_id=f"<{guessed}@example.com>"),
            extra=f"X-Mailform-Tag: {guessed}\r\n")),
        "spoofed daemon without Reporting-MTA": (
            "attacker@outside.example",
            report([contact], quoted, return_path=None).replace(
                b"Reporting-MTA: dns; mx.example.org\r\n", b"Arrival-Date: now\r\n")),
        "outsider with a Return-Path of its own": (
            "attacker@outside.example", report([contact], quoted, return_path="<>")),
    }


@pytest.mark.parametrize("kind", ["copied tag", "guessed tag",
                                  "spoofed daemon without Reporting-MTA",
                                  "outsider with a Return-Path of its own"])
def test_a_forged_bounce_does_not_make_a_contact_faulty(mailstack, account, kind):
    # a guessed tag falls back to the untagged rule, which a null sender quoting the
    # account's headers passes (SECURITY.md says so): the tag alone is tested here
    acc = account(trust=kind != "guessed tag")
    contact = f"loyal-{uuid.uuid4().hex[:6]}@example.com"
    attacker = f"attacker-{uuid.uuid4().hex[:6]}@example.com"
    _contacts(acc, contact)
    envelope, data = _forgeries(acc, contact, attacker)[kind]
    _deliver(mailstack, envelope, acc, data.replace(b"news@example.com", acc.email.encode()),
             contact)
    got = _scan_cli(acc)
    assert got["bounces"]["hard"] == 0 and got["newly_faulty"] == [], got
    shown = _show(acc, contact)
    assert shown["status"] == "active", shown
    assert shown["unverified_count"] == 1, shown
