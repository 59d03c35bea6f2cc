"""The inbox scanner's memory per account and mailbox: UIDVALIDITY and the last UID seen.

An IMAP mailbox's UIDs only grow while its UIDVALIDITY stays, so the scanner lists
only the UIDs above the last one it saw (``mark``), and moves the mark in the same
transaction as the batch of messages it recorded (``batch`` + ``advance``): a crash
rolls both back, and the ledger's processed messages (``processed_messages``, kept
per message as before) still guard the few above the mark. When UIDVALIDITY changes,
the old id space's processed messages are forgotten (``reset``); processed ids the
server no longer has are forgotten too (``forget``), so the memory stays as large as
the mailbox, not as its history. ``place`` names a mailbox apart from its id space
("imap:INBOX"); ``key`` is the ledger's id space ("imap:INBOX:<uidvalidity>", "pop3").

The processed-message rows belong to the ledger's table; the reads and deletes on it
here are the scanner's pruning, which the ledger's API does not offer yet.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional

from .common import iso, utcnow
from .events import numbered_at_end
from .store import SQLStore

_CHUNK = 500


class ScanState:
    """Per (account, mailbox): UIDVALIDITY and last UID seen; pruning of processed ids."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def mark(self, account: str, place: str) -> tuple[str, int]:
        """(UIDVALIDITY, last UID seen); ("", 0) before the first scan."""
        rows = self._store.read("SELECT uidvalidity, last_uid FROM scan_state WHERE "
                                "account = ? AND mailbox = ?", (account, place))
        return (str(rows[0][0]), int(rows[0][1])) if rows else ("", 0)

    @contextmanager
    def batch(self) -> Iterator[Any]:
        """One transaction for a batch of messages: ``record_message`` calls join it; the
        events they make are numbered at its end (``events.numbered_at_end``)."""
        with self._store.write() as cur:
            with numbered_at_end(self._store, cur):
                yield cur

    def advance(self, account: str, place: str, validity: str, last_uid: int) -> None:
        """Set the mark (inside ``batch``, or on its own)."""
        with self._store.write() as cur:
            cur.execute(self._store.q(
                "INSERT INTO scan_state (account, mailbox, uidvalidity, last_uid, updated) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account, mailbox) DO UPDATE SET "
                "uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid, "
                "updated = excluded.updated"), (account, place, validity, last_uid, iso(utcnow())))

    def reset(self, account: str, place: str, validity: str, key: str,
              keep_current: bool = False) -> int:
        """A new UIDVALIDITY (or server): forget the processed ids of the mailbox's id
        spaces (but ``key``'s when ``keep_current``), start the mark at 0; how many ids
        were forgotten."""
        stale = [m for (m,) in self._store.read(
            "SELECT DISTINCT mailbox FROM processed_messages WHERE account = ?", (account,))
            if m.startswith(place + ":") and not (keep_current and m == key)]
        with self._store.write() as cur:
            forgotten = 0
            for mailbox in stale:
                cur.execute(self._store.q("DELETE FROM processed_messages WHERE account = ? "
                                          "AND mailbox = ?"), (account, mailbox))
                forgotten += max(cur.rowcount, 0)
            self.advance(account, place, validity, 0)
        return forgotten

    def remembered(self, account: str, key: str, above: Optional[int] = None) -> set[str]:
        """The processed ids of an id space (only the numeric ones above ``above``)."""
        sql = "SELECT uid FROM processed_messages WHERE account = ? AND mailbox = ?"
        params: tuple = (account, key)
        if above is not None:
            sql, params = sql + " AND CAST(uid AS BIGINT) > ?", (*params, above)
        return {uid for (uid,) in self._store.read(sql, params)}

    def remembered_count(self, account: str, key: str, up_to: Optional[int] = None) -> int:
        sql = "SELECT COUNT(*) FROM processed_messages WHERE account = ? AND mailbox = ?"
        params: tuple = (account, key)
        if up_to is not None:
            sql, params = sql + " AND CAST(uid AS BIGINT) <= ?", (*params, up_to)
        return int(self._store.read(sql, params)[0][0])

    def forget(self, account: str, key: str, uids: Iterable[str]) -> int:
        """Forget processed ids the server no longer has; how many."""
        wanted, forgotten = sorted(set(uids)), 0
        if not wanted:
            return 0
        with self._store.write() as cur:
            for start in range(0, len(wanted), _CHUNK):
                part = wanted[start:start + _CHUNK]
                marks = ", ".join("?" for _ in part)
                cur.execute(self._store.q(f"DELETE FROM processed_messages WHERE account = ? "
                                          f"AND mailbox = ? AND uid IN ({marks})"),
                            (account, key, *part))
                forgotten += max(cur.rowcount, 0)
        return forgotten

    def forget_account(self, cur: Any, account: str) -> None:
        """A deleted account's marks go with it (inside the caller's transaction)."""
        cur.execute(self._store.q("DELETE FROM scan_state WHERE account = ?"), (account,))

    def rename_account(self, cur: Any, old: str, new: str) -> None:
        """A moved account keeps its marks (inside the caller's transaction)."""
        cur.execute(self._store.q("UPDATE scan_state SET account = ? WHERE account = ?"),
                    (new, old))
