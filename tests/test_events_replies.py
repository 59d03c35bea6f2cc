"""Replies (issue 14): a real reply delivered into the Dovecot mailbox becomes one `replied`
event; auto-replies, bounces and strangers do not; the message stays unread."""
from __future__ import annotations

import imaplib
import smtplib
import ssl
import uuid
from email.message import EmailMessage

from reconciler.bounces.replies import human_reply, is_automatic, note_reply
from reconciler.registry import open_registry


def _send(stack, local, to, subject, headers=None):
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = stack.address(local), to, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{stack.domain}>"
    msg["In-Reply-To"] = "<campaign-1@example.com>"
    for key, value in (headers or {}).items():
        msg[key] = value
    msg.set_content("Sounds interesting, tell me more.\n")
    with smtplib.SMTP("127.0.0.1", stack.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=stack.ca_file))
        smtp.login(stack.address(local), stack.user_password(local))
        smtp.send_message(msg)


def _peek_all(stack, local, password):
    """Every message of the INBOX, fetched as the scanner does (BODY.PEEK), and the flags."""
    with imaplib.IMAP4("127.0.0.1", stack.ports["imap"], timeout=10) as imap:
        imap.login(stack.address(local), password)
        imap.select("INBOX")
        _, data = imap.uid("SEARCH", None, "ALL")
        raws = []
        for uid in data[0].split():
            _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            raws.append(next(p[1] for p in parts if isinstance(p, tuple)))
        _, flags = imap.uid("FETCH", b",".join(data[0].split()), "(FLAGS)")
        return raws, [f.decode() for f in flags if f]


def test_a_real_reply_becomes_one_replied_event(mailstack, tmp_path):
    local, password = "news" + uuid.uuid4().hex[:6], "pw-" + uuid.uuid4().hex
    inbox = mailstack.add_user(local, password)
    _send(mailstack, "alice", inbox, "Re: Our December offer")
    _send(mailstack, "bob", inbox, "Re: Our December offer",
          {"Auto-Submitted": "auto-replied"})                            # a vacation notice
    mailstack.wait_for_mail(local, lambda m: "alice" in m["From"])
    mailstack.wait_for_mail(local, lambda m: "bob" in m["From"])
    registry = open_registry(f"sqlite:///{tmp_path}/reg.db")
    registry.upsert_contacts([(mailstack.address("alice"), {}),
                              (mailstack.address("bob"), {})])
    raws, _ = _peek_all(mailstack, local, password)
    assert [note_reply(registry, local, raw) for raw in raws].count(True) == 1
    (event,) = registry.events.since()
    assert event["kind"] == "replied" and event["email"] == mailstack.address("alice")
    assert event["data"]["subject"] == "Re: Our December offer" and event["account"] == local
    assert event["data"]["in_reply_to"] == "<campaign-1@example.com>" and event["time"]
    assert not any(note_reply(registry, local, raw) for raw in raws)     # once only
    _, flags = _peek_all(mailstack, local, password)
    assert flags and not any("\\Seen" in f for f in flags)
    registry.close()


def test_a_reply_from_a_stranger_is_not_recorded(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path}/reg.db")
    raw = b"From: who@example.org\r\nSubject: Re: hi\r\nMessage-ID: <s@x>\r\n\r\nhello\r\n"
    assert human_reply(raw) is not None
    assert note_reply(registry, "news", raw) is False and registry.events.since() == []
    registry.close()


AUTO = [
    {"Auto-Submitted": "auto-generated"},
    {"Precedence": "bulk"},
    {"X-Autoreply": "yes"},
    {"X-Auto-Response-Suppress": "All"},
    {"List-Id": "<news.example.com>"},
    {"Return-Path": "<>"},
    {"Subject": "Out of Office: back Monday"},
    {"Subject": "Automatic reply: Re: hi"},
]


def _message(headers):
    base = {"From": "ann@example.com", "Subject": "Re: hi", "Message-ID": "<a@x>"}
    base.update(headers)
    return "".join(f"{k}: {v}\r\n" for k, v in base.items()).encode() + b"\r\nThanks\r\n"


def test_auto_replies_are_not_human_replies():
    import email
    for headers in AUTO:
        raw = _message(headers)
        assert human_reply(raw) is None, headers
        assert is_automatic(email.message_from_bytes(raw)), headers
    assert human_reply(_message({"Auto-Submitted": "no"})) is not None


def test_a_bounce_is_not_a_reply():
    dsn = (b"From: MAILER-DAEMON@example.com\r\nTo: news@example.com\r\n"
           b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
           b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\n"
           b"Final-Recipient: rfc822; ann@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
           b"\r\n--b--\r\n")
    assert human_reply(dsn) is None


def test_message_id_of_reads_the_header_only():
    from reconciler.bounces.replies import message_id_of
    raw = b"From: a@example.com\r\nMessage-ID: <own@x>\r\n\r\nMessage-ID: <quoted@x>\r\n"
    assert message_id_of(raw) == "<own@x>"
    assert message_id_of(b"From: a@example.com\r\n\r\nbody\r\n") is None
