"""Tagging the mail mailform sends, so that its bounces can be trusted (README, "Bounces").

Each message gets one tag (``authenticity``): a new random id signed with a key derived
from the registry's key, recorded in the registry with the account and the message's
recipients (kept 30 days). A message without a Message-ID gets the tag as its
Message-ID (``<mf1.<id>.<mac>@<From's domain>>``); one that has a Message-ID keeps it
— the sender threads replies and matches its own bounces by it, and a DKIM signature may
cover it — and gets an ``X-Mailform-Tag`` header instead, which DSNs return with the
original headers.

* ``tag_message(registry, account, message, recipients)``: the platform's own sender,
  for an ``email.message.Message`` about to be sent;
* ``tag_raw(registry, account, sender, recipients, data)``: the proxy, on the bytes it
  relays (the header is prepended; nothing else of the message changes);
* ``new_message_id(registry, account, sender, recipients)``: `verify --send-test`.
"""
from __future__ import annotations

import base64
import re
import secrets
from email.message import Message
from email.utils import parseaddr
from typing import Any, Iterable

from .authenticity import TAG_HEADER, Tag, make_tag, message_id

_MESSAGE_ID_FIELD = re.compile(rb"^message-id[ \t]*:", re.I | re.M)
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def new_tag(registry: Any, account: str, recipients: Iterable[str]) -> Tag:
    """A fresh tag for one message, recorded in the registry before the message leaves."""
    tag_id = base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=").lower()
    tag = make_tag(tag_id, registry.sign)
    registry.record_sent(tag.id, account, list(recipients))
    return tag


def _domain(address: str) -> str:
    return parseaddr(address or "")[1].rpartition("@")[2]


def new_message_id(registry: Any, account: str, sender: str, recipients: Iterable[str]) -> str:
    """A tagged Message-ID for a message mailform writes itself."""
    return message_id(new_tag(registry, account, recipients), _domain(sender))


def tag_message(registry: Any, account: str, message: Message,
                recipients: Iterable[str]) -> str:
    """Tag ``message`` before sending it to ``recipients`` (the envelope's, Bcc included);
    returns the tag. Sets the Message-ID when there is none, else ``X-Mailform-Tag``."""
    tag = new_tag(registry, account, recipients)
    del message[TAG_HEADER]
    if message["Message-ID"] is None:
        message["Message-ID"] = message_id(tag, _domain(str(message["From"] or "")))
    else:
        message[TAG_HEADER] = str(tag)
    return str(tag)


def tag_raw(registry: Any, account: str, sender: str, recipients: Iterable[str],
            data: bytes) -> bytes:
    """``data`` with one tag header prepended (Message-ID when it has none)."""
    tag = new_tag(registry, account, recipients)
    end = _HEAD_END.search(data)
    head = data[:end.start() if end else len(data)]
    if _MESSAGE_ID_FIELD.search(head):
        line = f"{TAG_HEADER}: {tag}"
    else:
        line = f"Message-ID: {message_id(tag, _domain(sender))}"
    return line.encode("ascii") + b"\r\n" + data
