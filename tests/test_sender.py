"""The From and Reply-To a contact sees (SPEC §7)."""
from reconciler.sender import sender_for

SPEC = {"email": "news@example.com", "display_name": "Example News",
        "from_override": {"email_detail": "manager_email", "name_detail": "manager_name"},
        "reply_to": {"email": "replies@example.com", "name": "Replies"}}


def test_override_from_contact_details():
    s = sender_for(SPEC, {"manager_email": "boss@example.com", "manager_name": "The Boss"})
    assert s.from_header() == "The Boss <boss@example.com>" and s.overridden
    assert s.reply_to_header() == "Replies <replies@example.com>"


def test_invalid_detail_falls_back_to_account():
    s = sender_for(SPEC, {"manager_email": "not-an-address", "manager_name": "  "})
    assert (s.from_email, s.from_name) == ("news@example.com", "Example News")
    assert not s.overridden


def test_no_override_no_reply_to_uses_from():
    spec = {"email": "a@example.com", "display_name": "A"}
    s = sender_for(spec, {"manager_email": "boss@example.com"})
    assert s.from_header() == "A <a@example.com>" and s.reply_to_header() == "A <a@example.com>"


def test_reply_to_defaults_to_overridden_from():
    spec = dict(SPEC, reply_to=None)
    s = sender_for(spec, {"manager_email": "boss@example.com"})
    assert (s.reply_to_email, s.reply_to_name) == ("boss@example.com", "Example News")


def test_contact_without_details():
    s = sender_for(SPEC, None)
    assert s.from_email == "news@example.com"
