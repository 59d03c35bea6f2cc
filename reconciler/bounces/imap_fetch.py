"""An IMAP inbox for the scanner: UIDs above a mark, batches of ``UID FETCH``.

* ``uids(above)``: ``UID FETCH above+1:* (UID RFC822.SIZE)`` — one short line per message, so no
  client line limit is hit however large the mailbox (``UID SEARCH ALL`` answers in
  one line, which overflows imaplib's limit at about 140,000 messages), and only the
  messages newer than the mark are listed. When SELECT's UIDNEXT shows nothing newer,
  nothing is listed at all.
* ``fetch_many(uids)``: one ``UID FETCH <set> (BODY.PEEK[]<0.N>)`` per batch; the
  answer's literals are matched to UIDs whether the server puts ``UID`` before or
  after the literal.
* Every step runs under the scan's deadline; the sockets (TLS handshakes included)
  are watched from their creation.
"""
from __future__ import annotations

import imaplib
import re
from typing import Any, Iterable

from ..servers import SaslError, ServerSettings, imap_authenticate
from .deadline import ScanDeadline, WatchedClient, WatchedContext
from .mailbox import MAX_BYTES, MailboxError

_UID = re.compile(rb"UID (\d+)")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class _Imap(WatchedClient, imaplib.IMAP4):
    def __init__(self, host: str, port: int, deadline: ScanDeadline) -> None:
        self.deadline = deadline
        super().__init__(host, port, timeout=deadline.step_timeout())


class _ImapSSL(WatchedClient, imaplib.IMAP4_SSL):
    def __init__(self, host: str, port: int, deadline: ScanDeadline, context) -> None:
        self.deadline = deadline
        super().__init__(host, port, ssl_context=context, timeout=deadline.step_timeout())


class ImapMailbox:
    ordered = True

    def __init__(self, settings: ServerSettings, deadline: ScanDeadline) -> None:
        self.settings, self.deadline = settings, deadline
        self.place = f"imap:{settings.folder}"
        self.server = f"{settings.host}:{settings.port}/{settings.username or ''}"
        self.client = self._connect()
        with deadline.step("login"):
            self._login()
        with deadline.step("SELECT"):
            typ, data = self.client.select(_quote(settings.folder), readonly=False)
        if typ != "OK":
            raise MailboxError(f"cannot select folder {settings.folder!r}")
        self.exists = int(data[0] or 0) if data and data[0] else 0
        self.validity = _last(self.client, "UIDVALIDITY") or "0"
        self.uidnext = int(_last(self.client, "UIDNEXT") or 0)
        self.key = f"{self.place}:{self.validity}"
        self.sizes: dict[str, int] = {}

    def _connect(self) -> imaplib.IMAP4:
        settings, deadline = self.settings, self.deadline
        context = WatchedContext(settings.tls_context(), deadline)
        with deadline.step("connect"):
            if settings.security == "ssl":
                return _ImapSSL(settings.host, settings.port, deadline, context)
            client = _Imap(settings.host, settings.port, deadline)
        if settings.security == "starttls":
            with deadline.step("STARTTLS"):
                client.starttls(ssl_context=context)
        return client

    def _login(self) -> None:
        try:
            imap_authenticate(self.client, self.settings)
        except (imaplib.IMAP4.error, SaslError):
            raise MailboxError(f"IMAP login failed for {self.settings.username}") from None

    def count(self) -> int:
        return self.exists

    def uids(self, above: int = 0) -> list[str]:
        """The mailbox's UIDs greater than ``above``, ascending (``sizes`` learns each
        one's size on the way, for batches bounded in bytes)."""
        if not self.exists or (self.uidnext and self.uidnext <= above + 1):
            return []
        with self.deadline.step("UID FETCH (UID RFC822.SIZE)"):
            typ, data = self.client.uid("FETCH", f"{above + 1}:*", "(UID RFC822.SIZE)")
        if typ != "OK":
            raise MailboxError("UID FETCH (UID RFC822.SIZE) failed")
        for item in data:
            match = _UID.search(item) if isinstance(item, bytes) else None
            if match and int(match.group(1)) > above:
                size = _SIZE.search(item)
                self.sizes[match.group(1).decode()] = int(size.group(1)) if size else 0
        return [str(u) for u in sorted(int(u) for u in self.sizes if int(u) > above)]

    def fetch_many(self, uids: list[str]) -> dict[str, bytes]:
        """The first MAX_BYTES of each message, by UID (one UID FETCH); a UID the server
        no longer has is simply absent."""
        if not uids:
            return {}
        with self.deadline.step(f"UID FETCH of {len(uids)} message(s)"):
            typ, data = self.client.uid("FETCH", uid_set(uids), f"(BODY.PEEK[]<0.{MAX_BYTES}>)")
        if typ != "OK":
            raise MailboxError(f"UID FETCH {uid_set(uids)} failed")
        return parse_fetch(data)

    def delete(self, uids: list[str]) -> None:
        if not uids:
            return
        with self.deadline.step("UID STORE \\Deleted"):
            self.client.uid("STORE", uid_set(uids), "+FLAGS.SILENT", r"(\Deleted)")
            if "UIDPLUS" in self.client.capabilities:
                self.client.uid("EXPUNGE", uid_set(uids))
            else:
                self.client.expunge()

    def close(self) -> None:
        """CLOSE (expunges what ``delete`` flagged) and LOGOUT; after the deadline, just
        drop the connection."""
        try:
            if self.deadline.expired:
                self.client.shutdown()
                return
            with self.deadline.step("LOGOUT"):
                self.client.close()
                self.client.logout()
        except Exception:  # already gone: nothing to keep
            pass


def parse_fetch(data: Iterable[Any]) -> dict[str, bytes]:
    """imaplib's FETCH answer (tuples of (head, literal) and bytes) → {uid: literal}."""
    found: dict[str, bytes] = {}
    waiting = None
    for item in data:
        if isinstance(item, tuple) and len(item) >= 2:
            match = _UID.search(item[0])
            waiting = None if match else item[1]
            if match:
                found[match.group(1).decode()] = item[1]
        elif waiting is not None and isinstance(item, bytes):
            match = _UID.search(item)      # "UID n" after the literal
            if match:
                found[match.group(1).decode()] = waiting
            waiting = None
    return found


def uid_set(uids: Iterable[str]) -> str:
    """Ascending numeric UIDs as an IMAP sequence set: 1:3,7,9:10."""
    numbers = sorted(int(u) for u in uids)
    parts: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:] + [None]:   # type: ignore[list-item]
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


def _last(client: imaplib.IMAP4, name: str) -> str:
    values = client.untagged_responses.get(name) or [b""]
    value = values[-1]
    return (value.decode() if isinstance(value, bytes) else str(value or "")).strip()


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
