"""Reading an account's inbox for the scanner: IMAP or POP3, without marking mail read.

IMAP fetches with ``BODY.PEEK`` (no \\Seen flag); POP3 reads with ``TOP`` (RETR
would mark the message seen on servers such as Dovecot). Both read a bounded
prefix of each message. Message identity is the IMAP UID within UIDVALIDITY,
or the POP3 UIDL. Settings and the login (SASL, UTF-8 credentials) are the
shared ones of ``reconciler.servers``.
"""
from __future__ import annotations

import imaplib
import poplib
import re
import ssl
from typing import Protocol

from ..servers import (SaslError, ServerSettings, imap_authenticate, pop3_authenticate,
                       redact)

MAX_BYTES = 256 * 1024
POP3_TOP_LINES = 4000


class MailboxError(Exception):
    """The inbox server failed; the message never holds a password."""


class Mailbox(Protocol):
    key: str   # names the message-id space: "imap:INBOX:<uidvalidity>" or "pop3"

    def uids(self) -> list[str]: ...
    def fetch(self, uid: str) -> bytes: ...
    def delete(self, uids: list[str]) -> None: ...
    def close(self) -> None: ...


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapMailbox:
    def __init__(self, settings: ServerSettings):
        self.settings = settings
        context = settings.tls_context()
        if settings.security == "ssl":
            self.client = imaplib.IMAP4_SSL(settings.host, settings.port, ssl_context=context,
                                            timeout=settings.timeout)
        else:
            self.client = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
            if settings.security == "starttls":
                self.client.starttls(ssl_context=context)
        self._login()
        typ, _ = self.client.select(_quote(settings.folder), readonly=False)
        if typ != "OK":
            raise MailboxError(f"cannot select folder {settings.folder!r}")
        validity = self.client.untagged_responses.get("UIDVALIDITY", [b"0"])[-1]
        self.key = f"imap:{settings.folder}:{validity.decode() if isinstance(validity, bytes) else validity}"

    def _login(self) -> None:
        try:
            imap_authenticate(self.client, self.settings)
        except (imaplib.IMAP4.error, SaslError):
            raise MailboxError(f"IMAP login failed for {self.settings.username}") from None

    def uids(self) -> list[str]:
        typ, data = self.client.uid("SEARCH", None, "ALL")
        if typ != "OK":
            raise MailboxError("UID SEARCH failed")
        return [u.decode() for u in (data[0] or b"").split()]

    def fetch(self, uid: str) -> bytes:
        typ, data = self.client.uid("FETCH", uid, f"(BODY.PEEK[]<0.{MAX_BYTES}>)")
        if typ != "OK":
            raise MailboxError(f"UID FETCH {uid} failed")
        for item in data:
            if isinstance(item, tuple) and len(item) >= 2:
                return item[1]
        return b""

    def delete(self, uids: list[str]) -> None:
        if not uids:
            return
        self.client.uid("STORE", ",".join(uids), "+FLAGS.SILENT", r"(\Deleted)")
        if "UIDPLUS" in self.client.capabilities:
            self.client.uid("EXPUNGE", ",".join(uids))
        else:
            self.client.expunge()

    def close(self) -> None:
        for step in (self.client.close, self.client.logout):
            try:
                step()
            except Exception:  # already gone: nothing to keep
                pass


class Pop3Mailbox:
    key = "pop3"

    def __init__(self, settings: ServerSettings):
        context = settings.tls_context()
        if settings.security == "ssl":
            self.client = poplib.POP3_SSL(settings.host, settings.port, context=context,
                                          timeout=settings.timeout)
        else:
            self.client = poplib.POP3(settings.host, settings.port, timeout=settings.timeout)
            if settings.security == "starttls":
                self.client.stls(context=context)
        try:
            pop3_authenticate(self.client, settings, self._capabilities())
        except (poplib.error_proto, SaslError):
            raise MailboxError(f"POP3 login failed for {settings.username}") from None
        self._numbers: dict[str, int] = {}

    def _capabilities(self) -> dict:
        try:
            return self.client.capa()
        except poplib.error_proto:   # CAPA is optional (RFC 2449): USER / PASS then
            return {}

    def uids(self) -> list[str]:
        _, lines, _ = self.client.uidl()
        self._numbers = {}
        for line in lines:
            number, _, uid = line.decode("ascii", "replace").partition(" ")
            self._numbers[uid] = int(number)
        return list(self._numbers)

    def fetch(self, uid: str) -> bytes:
        number = self._numbers[uid]
        try:
            _, lines, _ = self.client.top(number, POP3_TOP_LINES)
        except poplib.error_proto:       # a server without TOP: RETR (may mark it seen)
            _, lines, _ = self.client.retr(number)
        return b"\r\n".join(lines)[:MAX_BYTES]

    def delete(self, uids: list[str]) -> None:
        for uid in uids:
            self.client.dele(self._numbers[uid])

    def close(self) -> None:
        try:
            self.client.quit()   # QUIT commits the deletions
        except Exception:
            try:
                self.client.close()
            except Exception:
                pass


def open_mailbox(settings: ServerSettings) -> Mailbox:
    """Connect and log in; MailboxError (never a password) on failure."""
    try:
        if settings.kind == "imap":
            return ImapMailbox(settings)
        return Pop3Mailbox(settings)
    except MailboxError:
        raise
    except (OSError, imaplib.IMAP4.error, poplib.error_proto, ssl.SSLError) as exc:
        raise MailboxError(f"{settings.kind} {settings.host}:{settings.port}: "
                           f"{redact(str(exc), settings.secret)}") from None


def numeric_sort(uids: list[str]) -> list[str]:
    return sorted(uids, key=lambda u: (0, int(u)) if re.fullmatch(r"\d+", u) else (1, u))
