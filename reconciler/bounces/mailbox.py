"""Reading an account's inbox for the scanner: IMAP or POP3, without marking mail read.

IMAP (``imap_fetch``) fetches with ``BODY.PEEK`` (no \\Seen flag), a batch of UIDs per
``UID FETCH``, and lists only the UIDs above the last one seen; POP3 (``pop3_fetch``)
diffs UIDL against the UIDLs already processed and reads with ``TOP`` (RETR would mark
the message seen on servers such as Dovecot), pipelined where the server offers
PIPELINING. Both read a bounded prefix of each message. Message identity is the IMAP
UID within UIDVALIDITY, or the POP3 UIDL. Every network step runs under the scan's
``ScanDeadline``. Settings and the login (SASL, UTF-8 credentials) are the shared
ones of ``reconciler.servers``.
"""
from __future__ import annotations

import imaplib
import poplib
import re
import ssl
from typing import Iterable, Optional, Protocol

from ..servers import ServerSettings, redact
from .deadline import ACTIVE, ScanDeadline

MAX_BYTES = 256 * 1024
POP3_TOP_LINES = 4000
FETCH_BATCH = 250        # messages per IMAP UID FETCH / per pipelined POP3 window
BATCH_BYTES = 4 * 1024 * 1024   # and (IMAP, sizes known) about this many bytes per FETCH


class MailboxError(Exception):
    """The inbox server failed; the message never holds a password."""


class Mailbox(Protocol):
    key: str        # names the message-id space: "imap:INBOX:<uidvalidity>" or "pop3"
    place: str      # names the mailbox apart from its id space: "imap:INBOX" or "pop3"
    validity: str   # IMAP UIDVALIDITY ("" for POP3)
    server: str     # host:port/user: the same UIDVALIDITY elsewhere is another id space
    ordered: bool   # ids ascend with arrival (IMAP UIDs): a last-seen mark applies

    def uids(self, above: int = 0) -> list[str]: ...
    def count(self) -> int: ...
    def fetch_many(self, uids: list[str]) -> dict[str, bytes]: ...
    def delete(self, uids: list[str]) -> None: ...
    def close(self) -> None: ...


def open_mailbox_modules() -> None:
    """Import the IMAP and POP3 clients now (``open_mailbox`` imports them when first
    called: they import this module)."""
    from . import imap_fetch, pop3_fetch  # noqa: F401


def open_mailbox(settings: ServerSettings, deadline: Optional[ScanDeadline] = None) -> Mailbox:
    """Connect and log in; MailboxError (never a password) on failure."""
    from .imap_fetch import ImapMailbox
    from .pop3_fetch import Pop3Mailbox
    deadline = deadline or ACTIVE.get() or ScanDeadline(settings.timeout * 10, settings.timeout)
    try:
        if settings.kind == "imap":
            return ImapMailbox(settings, deadline)
        return Pop3Mailbox(settings, deadline)
    except MailboxError:
        raise
    except (OSError, imaplib.IMAP4.error, poplib.error_proto, ssl.SSLError) as exc:
        if deadline.expired or isinstance(exc, TimeoutError):
            raise MailboxError(f"{settings.kind} {settings.host}:{settings.port}: timeout: "
                               f"{deadline.describe()}") from None
        raise MailboxError(f"{settings.kind} {settings.host}:{settings.port}: "
                           f"{redact(str(exc), settings.secret)}") from None


class _Plain:
    """A mailbox with only ``uids()`` and ``fetch(uid)`` (a stand-in in tests, say) as a
    ``Mailbox``: every id listed, none ordered, one fetch per message."""

    ordered, validity, server = False, "", ""

    def __init__(self, box) -> None:
        self.box, self.key = box, box.key
        self.place = box.key.rsplit(":", 1)[0] if box.key.startswith("imap:") else box.key
        self._count = 0

    def uids(self, above: int = 0) -> list[str]:
        listed = numeric_sort(self.box.uids())
        self._count = len(listed)
        return listed

    def count(self) -> int:
        return self._count

    def fetch_many(self, uids: list[str]) -> dict[str, bytes]:
        return {uid: self.box.fetch(uid) for uid in uids}

    def delete(self, uids: list[str]) -> None:
        self.box.delete(uids)

    def close(self) -> None:
        self.box.close()


def as_mailbox(box) -> Mailbox:
    """``box`` itself when it is a ``Mailbox``, else wrapped (see ``_Plain``)."""
    return box if hasattr(box, "fetch_many") else _Plain(box)


def numeric_sort(uids: Iterable[str]) -> list[str]:
    return sorted(uids, key=lambda u: (0, int(u)) if re.fullmatch(r"\d+", u) else (1, u))
