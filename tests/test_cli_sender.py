"""`mailform sender preview`: the From and Reply-To a contact sees, with the reasons, and
`--details` to try details without a stored contact (issue 10, problem 9)."""
from __future__ import annotations

import json

import pytest

from clihelpers import Cli, marketing_account


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path)
    c.write_accounts([
        marketing_account("news", from_override={"email_detail": "mgr_email",
                                                 "name_detail": "mgr_name"}),
        marketing_account("plain", reply_to={"email": "replies@example.com"})])
    assert c.apply().code == 0
    with c.registry() as reg:
        reg.upsert_contacts([("ann@example.org", {"mgr_email": "boss@example.com",
                                                  "mgr_name": "The Boss"}),
                             ("bob@example.org", {"mgr_email": "not an address"})])
    return c


def _reasons(result) -> list[str]:
    return [line.strip() for line in result.out.splitlines() if line.startswith("  ")]


def test_the_details_used_are_named(cli):
    shown = cli.run("sender", "preview", "news", "--contact", "ann@example.org")
    assert shown.code == 0, shown
    assert "From:     The Boss <boss@example.com>" in shown.out
    assert _reasons(shown) == ["From email: the contact's detail 'mgr_email'",
                               "From name: the contact's detail 'mgr_name'",
                               "Reply-To: the From (the account has no reply_to)"]


def test_a_missing_or_invalid_detail_and_the_fallback_are_named(cli):
    shown = cli.run("sender", "preview", "news", "--contact", "bob@example.org")
    assert "From:     News <news@example.com>" in shown.out, shown
    email, name, _ = _reasons(shown)
    assert email.startswith("From email: the account's email, because 'not an address' is "
                            "not a valid email address")
    assert name == "From name: the account's display_name, because the contact has no " \
                   "detail 'mgr_name'"
    plain = cli.run("sender", "preview", "plain", "--contact", "ann@example.org")
    assert _reasons(plain) == [
        "From email: the account's email (the account has no from_override.email_detail)",
        "From name: the account's display_name (the account has no from_override.name_detail)",
        "Reply-To: the account's reply_to"]


def test_details_can_be_tried_without_a_stored_contact(cli):
    tried = cli.run("sender", "preview", "news", "--details", "mgr_email=eve@example.net",
                    "--details", "mgr_name=Eve", "--format", "json")
    assert tried.code == 0, tried
    body = json.loads(tried.out)
    assert body["from"] == "Eve <eve@example.net>" and body["overridden"] is True
    assert body["reasons"][0] == "From email: the contact's detail 'mgr_email'"
    over = cli.run("sender", "preview", "news", "--contact", "ann@example.org",
                   "--details", "mgr_name=Override")
    assert "From:     Override <boss@example.com>" in over.out, over
    stranger = cli.run("sender", "preview", "news", "--contact", "who@example.org",
                       "--details", "mgr_email=who@example.org")
    assert "From:     News <who@example.org>" in stranger.out
    assert "is not a contact; using the --details given" in stranger.err
    bad = cli.run("sender", "preview", "news", "--details", "novalue")
    assert bad.code == 64 and "KEY=VALUE" in bad.err, bad
