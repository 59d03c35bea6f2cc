"""Contacts, bounces and the inbox scanner's memory of processed messages.

Emails are keys, stripped and lower-cased. ``upsert_contacts`` merges the new
details into the old ones. ``record_bounce`` applies SPEC §6: a hard bounce or a
complaint marks the contact faulty at once; soft bounces are kept (time, status,
account), those older than the window are dropped, and reaching the limit marks
the contact faulty; a blocked bounce is not the contact's fault and changes
nothing here. A bounce for an address that is not a contact invents nothing.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable, Optional

from .common import as_moment, dumps, iso, loads, utcnow

_CONTACT_COLUMNS = "email, details, status, soft_bounces, last_bounce, updated"
_CHUNK = 500
_FAULTY_AT_ONCE = ("hard", "complaint")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _contact(row: tuple) -> dict:
    email, details, status, soft, last, updated = row
    return {"email": email, "details": loads(details), "status": status,
            "soft_bounces": loads(soft), "last_bounce": loads(last), "updated": updated}


class ContactsMixin:
    """Needs ``_read``, ``_write`` and ``_q`` from the backend."""

    def contact_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM contacts")[0][0])  # type: ignore

    def contacts(self, status: Optional[str] = None) -> list[dict]:
        sql, params = f"SELECT {_CONTACT_COLUMNS} FROM contacts", ()
        if status is not None:
            sql, params = sql + " WHERE status = ?", (status,)
        return [_contact(r) for r in self._read(sql + " ORDER BY email", params)]  # type: ignore

    def contact(self, email: str) -> Optional[dict]:
        rows = self._read(f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE email = ?",  # type: ignore
                          (normalise_email(email),))
        return _contact(rows[0]) if rows else None

    def upsert_contacts(self, rows: Iterable[tuple[str, dict]]) -> tuple[int, int]:
        """Insert new emails, merge details into known ones; (inserted, updated)."""
        wanted: dict[str, dict] = {}
        for email, details in rows:
            key = normalise_email(email)
            wanted[key] = {**wanted.get(key, {}), **(details or {})}
        inserted = updated = 0
        with self._write() as cur:  # type: ignore[attr-defined]
            items = list(wanted.items())
            for start in range(0, len(items), _CHUNK):
                ins, upd = self._upsert_chunk(cur, items[start:start + _CHUNK])
                inserted, updated = inserted + ins, updated + upd
        return inserted, updated

    def _upsert_chunk(self, cur: Any, items: list[tuple[str, dict]]) -> tuple[int, int]:
        marks = ", ".join("?" for _ in items)
        cur.execute(self._q(f"SELECT email, details FROM contacts WHERE email IN ({marks})"),  # type: ignore
                    tuple(email for email, _ in items))
        existing = {email: loads(details) for email, details in cur.fetchall()}
        now = iso(utcnow())
        new = [(e, dumps(d), now) for e, d in items if e not in existing]
        old = [(dumps({**existing[e], **d}), now, e) for e, d in items if e in existing]
        if new:
            cur.executemany(self._q("INSERT INTO contacts (email, details, status, soft_bounces, "  # type: ignore
                                    "updated) VALUES (?, ?, 'active', '[]', ?)"), new)
        if old:
            cur.executemany(self._q("UPDATE contacts SET details = ?, updated = ? "  # type: ignore
                                    "WHERE email = ?"), old)
        return len(new), len(old)

    def record_bounce(self, email: str, kind: str, status: Optional[str], account: str,
                      when: Any = None, soft_limit: int = 3, window_days: int = 30
                      ) -> Optional[str]:
        """Count one bounce against a contact; its status afterwards, None if unknown."""
        key, moment = normalise_email(email), as_moment(when)
        with self._write() as cur:  # type: ignore[attr-defined]
            cur.execute(self._q("SELECT status, soft_bounces FROM contacts WHERE email = ?"),  # type: ignore
                        (key,))
            row = cur.fetchone()
            if row is None:
                return None
            new_status, soft = row[0], loads(row[1])
            if kind == "blocked":
                return new_status
            if kind in _FAULTY_AT_ONCE:
                new_status = "faulty"
            elif kind == "soft":
                soft = _recent(soft + [{"time": iso(moment), "status": status,
                                        "account": account}], moment, window_days)
                if len(soft) >= soft_limit:
                    new_status = "faulty"
            last = {"time": iso(moment), "kind": kind, "status": status, "account": account}
            cur.execute(self._q("UPDATE contacts SET status = ?, soft_bounces = ?, "  # type: ignore
                                "last_bounce = ?, updated = ? WHERE email = ?"),
                        (new_status, dumps(soft), dumps(last), iso(utcnow()), key))
            return new_status

    def record_message(self, account: str, mailbox: str, uid: Any,
                       recipients: Iterable[tuple[str, str, Optional[str]]],
                       soft_limit: int = 3, window_days: int = 30, when: Any = None
                       ) -> list[tuple[Optional[str], Optional[str]]]:
        """One scanned message, atomically: its bounces counted and the message remembered.

        Returns, per recipient, the contact's (status before, status after); (None, None)
        for an address that is not a contact.
        """
        out = []
        with self._write():  # type: ignore[attr-defined]
            for email, kind, status in recipients:
                rows = self._read("SELECT status FROM contacts WHERE email = ?",  # type: ignore
                                  (normalise_email(email),))
                before = rows[0][0] if rows else None
                after = self.record_bounce(email, kind, status, account, when, soft_limit,
                                           window_days)
                out.append((before, after))
            self.mark_processed(account, mailbox, [uid])
        return out

    def is_processed(self, account: str, mailbox: str, uid: Any) -> bool:
        rows = self._read("SELECT 1 FROM processed_messages WHERE account = ? AND mailbox = ? "  # type: ignore
                          "AND uid = ?", (account, mailbox, str(uid)))
        return bool(rows)

    def processed_uids(self, account: str, mailbox: str) -> set[str]:
        rows = self._read("SELECT uid FROM processed_messages WHERE account = ? "  # type: ignore
                          "AND mailbox = ?", (account, mailbox))
        return {uid for (uid,) in rows}

    def mark_processed(self, account: str, mailbox: str, uids: Iterable[Any]) -> None:
        now = iso(utcnow())
        params = [(account, mailbox, str(uid), now) for uid in uids]
        if not params:
            return
        with self._write() as cur:  # type: ignore[attr-defined]
            cur.executemany(self._q("INSERT INTO processed_messages (account, mailbox, uid, "  # type: ignore
                                    "processed_at) VALUES (?, ?, ?, ?) ON CONFLICT "
                                    "(account, mailbox, uid) DO NOTHING"), params)


def _recent(soft: list[dict], moment: Any, window_days: int) -> list[dict]:
    """Soft bounces inside the window that ends at ``moment``."""
    start = moment - timedelta(days=window_days)
    return [b for b in soft if as_moment(b["time"]) > start]
