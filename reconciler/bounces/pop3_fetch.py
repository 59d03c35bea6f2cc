"""A POP3 inbox for the scanner: UIDL diffing, pipelined ``TOP``.

* ``uids()``: the server's UIDLs in message order; the scanner keeps only those it has
  not processed, and forgets remembered ones the server no longer lists.
* ``fetch_many(uids)``: ``TOP n 4000`` for each (RETR would mark the message seen on
  servers such as Dovecot; without TOP in CAPA, RETR). Where CAPA lists PIPELINING
  (RFC 2449), a window of commands goes out in one write and the answers are read in
  order; otherwise one command per round trip.
* Every step runs under the scan's deadline; the sockets are watched from creation.
"""
from __future__ import annotations

import poplib

from ..servers import SaslError, ServerSettings, pop3_authenticate
from .deadline import ScanDeadline, WatchedClient, WatchedContext
from .mailbox import MAX_BYTES, POP3_TOP_LINES, MailboxError


class _Pop3(WatchedClient, poplib.POP3):
    def __init__(self, host: str, port: int, deadline: ScanDeadline) -> None:
        self.deadline = deadline
        super().__init__(host, port, timeout=deadline.step_timeout())


class _Pop3SSL(WatchedClient, poplib.POP3_SSL):
    def __init__(self, host: str, port: int, deadline: ScanDeadline, context) -> None:
        self.deadline = deadline
        super().__init__(host, port, context=context, timeout=deadline.step_timeout())


class Pop3Mailbox:
    key = place = "pop3"
    validity = server = ""
    ordered = False
    broken = False

    def __init__(self, settings: ServerSettings, deadline: ScanDeadline) -> None:
        self.settings, self.deadline = settings, deadline
        self.client = self._connect()
        with deadline.step("CAPA"):
            self.capabilities = self._capabilities()
        try:
            with deadline.step("login"):
                pop3_authenticate(self.client, settings, self.capabilities)
        except (poplib.error_proto, SaslError):
            raise MailboxError(f"POP3 login failed for {settings.username}") from None
        self.pipelining = "PIPELINING" in self.capabilities
        self.verb = "TOP {} %d" % POP3_TOP_LINES
        if self.capabilities and "TOP" not in self.capabilities:
            self.verb = "RETR {}"     # may mark the message seen; nothing else reads it
        self._numbers: dict[str, int] = {}

    def _connect(self) -> poplib.POP3:
        settings, deadline = self.settings, self.deadline
        context = WatchedContext(settings.tls_context(), deadline)
        with deadline.step("connect"):
            if settings.security == "ssl":
                return _Pop3SSL(settings.host, settings.port, deadline, context)
            client = _Pop3(settings.host, settings.port, deadline)
        if settings.security == "starttls":
            with deadline.step("STLS"):
                client.stls(context=context)
        return client

    def _capabilities(self) -> dict:
        try:
            return self.client.capa()
        except poplib.error_proto:   # CAPA is optional (RFC 2449): USER / PASS then
            return {}

    def count(self) -> int:
        return len(self._numbers)

    def uids(self, above: int = 0) -> list[str]:
        """Every UIDL, in message order (``above`` applies to IMAP only)."""
        with self.deadline.step("UIDL"):
            _, lines, _ = self.client.uidl()
        self._numbers = {}
        for line in lines:
            number, _, uid = line.decode("ascii", "replace").partition(" ")
            self._numbers[uid.strip()] = int(number)
        return list(self._numbers)

    def fetch_many(self, uids: list[str]) -> dict[str, bytes]:
        if not uids:
            return {}
        with self.deadline.step(f"{self.verb.split()[0]} of {len(uids)} message(s)"):
            if self.pipelining:
                bodies = self._pipelined(uids)
            else:
                bodies = [self._one(uid) for uid in uids]
        return {uid: b"\r\n".join(lines)[:MAX_BYTES] for uid, lines in zip(uids, bodies)}

    def _one(self, uid: str) -> list[bytes]:
        try:
            return self.client._longcmd(self.verb.format(self._numbers[uid]))[1]  # noqa: SLF001
        except poplib.error_proto:
            if not self.verb.startswith("TOP"):
                raise
            self.verb = "RETR {}"      # a server without TOP (and without CAPA)
            return self.client._longcmd(self.verb.format(self._numbers[uid]))[1]  # noqa: SLF001

    def _pipelined(self, uids: list[str]) -> list[list[bytes]]:
        """All commands in one write, then each multi-line answer in order (RFC 2449)."""
        commands = "".join(self.verb.format(self._numbers[u]) + "\r\n" for u in uids)
        self.client.sock.sendall(commands.encode("ascii"))
        answers = []
        for _ in uids:
            try:
                answers.append(self.client._getlongresp()[1])  # noqa: SLF001
            except poplib.error_proto as exc:   # the stream is out of step: drop it
                self.broken = True
                raise MailboxError(f"POP3 {self.verb.split()[0]} failed: {exc}") from None
        return answers

    def delete(self, uids: list[str]) -> None:
        with self.deadline.step("DELE"):
            for uid in uids:
                self.client.dele(self._numbers[uid])

    def close(self) -> None:
        """QUIT (which commits the deletions); after the deadline, drop the connection."""
        try:
            if not (self.deadline.expired or self.broken):
                with self.deadline.step("QUIT"):
                    self.client.quit()
                return
        except Exception:
            pass
        try:
            self.client.close()
        except Exception:
            pass
