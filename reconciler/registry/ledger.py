"""The contact ledger: contacts, their bounces, and the scanner's processed messages.

Emails are keys, stripped and lower-cased. ``upsert`` merges the new details
into the old ones. A bounce is counted by the pure rule in ``policy`` (SPEC §6);
this part only loads a contact's soft-bounce history, stores the outcome and
remembers the last bounce (with the classifier's ``reason`` when it gives one, in
the same JSON). A bounce for an address that is not a contact invents nothing. A
report the scanner does not believe (SECURITY.md, "Bounces that can be trusted") is
kept apart in ``unverified_bounces`` for contacts, never changing their status, for
``UNVERIFIED_RETENTION_DAYS``. A scanned message's bounces and the fact that it was
processed are written in one transaction, so a scan that fails midway loses or repeats
nothing.

Every bounce or complaint of a contact is also an event (``events``), and so is its
turning faulty, in the same transaction; the last bounce keeps the diagnostic, the
message-id and the source (``inbox:ACCOUNT/MAILBOX/UID`` or a provider) for review. The
contact lifecycle (reactivate, purge, erase, listing with filters) is ``lifecycle``.
Nothing here bumps the registry's serial.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable, Optional

from ..policy import (DEFAULT_SOFT_BOUNCE_LIMIT, DEFAULT_SOFT_BOUNCE_WINDOW_DAYS, Bounce,
                      SoftBounce, count_bounce)
from .common import as_moment, dumps, iso, loads, utcnow
from .events import add_event
from .lifecycle import Lifecycle
from .store import SQLStore

_CONTACT_COLUMNS = "email, details, status, soft_bounces, last_bounce, updated, faulty_since"
_DOUBT_COLUMNS = "email, account, mailbox, uid, received_at, kind, status, reason, why"
UNVERIFIED_RETENTION_DAYS = 90
_CHUNK = 500

Outcome = tuple[Optional[str], Optional[str]]     # a contact's status (before, after)


def normalise_email(email: str) -> str:
    return email.strip().lower()


class ContactLedger(Lifecycle):
    """Contacts (filled by ``contacts import`` and the inbox scanner) and processed messages."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    # -- contacts ----------------------------------------------------------------
    def count(self) -> int:
        return int(self._store.read("SELECT COUNT(*) FROM contacts")[0][0])

    def all(self, status: Optional[str] = None) -> list[dict]:
        sql, params = f"SELECT {_CONTACT_COLUMNS} FROM contacts", ()
        if status is not None:
            sql, params = sql + " WHERE status = ?", (status,)
        return [_contact(r) for r in self._store.read(sql + " ORDER BY email", params)]

    def get(self, email: str) -> Optional[dict]:
        rows = self._store.read(f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE email = ?",
                                (normalise_email(email),))
        return _contact(rows[0]) if rows else None

    def upsert(self, rows: Iterable[tuple[str, dict]]) -> tuple[int, int]:
        """Insert new emails, merge details into known ones; (inserted, updated)."""
        wanted: dict[str, dict] = {}
        for email, details in rows:
            key = normalise_email(email)
            wanted[key] = {**wanted.get(key, {}), **(details or {})}
        inserted = updated = 0
        with self._store.write() as cur:
            items = list(wanted.items())
            for start in range(0, len(items), _CHUNK):
                ins, upd = self._upsert_chunk(cur, items[start:start + _CHUNK])
                inserted, updated = inserted + ins, updated + upd
        return inserted, updated

    def _upsert_chunk(self, cur: Any, items: list[tuple[str, dict]]) -> tuple[int, int]:
        q, marks = self._store.q, ", ".join("?" for _ in items)
        cur.execute(q(f"SELECT email, details FROM contacts WHERE email IN ({marks})"),
                    tuple(email for email, _ in items))
        existing = {email: loads(details) for email, details in cur.fetchall()}
        now = iso(utcnow())
        new = [(e, dumps(d), now) for e, d in items if e not in existing]
        old = [(dumps({**existing[e], **d}), now, e) for e, d in items if e in existing]
        if new:
            cur.executemany(q("INSERT INTO contacts (email, details, status, soft_bounces, "
                              "updated) VALUES (?, ?, 'active', '[]', ?)"), new)
        if old:
            cur.executemany(q("UPDATE contacts SET details = ?, updated = ? WHERE email = ?"),
                            old)
        return len(new), len(old)

    # -- bounces -----------------------------------------------------------------
    def record_bounce(self, email: str, kind: str, status: Optional[str], account: str,
                      when: Any = None, soft_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
                      window_days: int = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS) -> Optional[str]:
        """Count one bounce against a contact; its status afterwards, None if unknown."""
        bounce = Bounce(kind, as_moment(when), status, account)
        with self._store.write() as cur:
            return self._count(cur, email, bounce, soft_limit, window_days)[1]

    def _count(self, cur: Any, email: str, bounce: Bounce, limit: int,
               window_days: int, reason: Optional[str] = None,
               more: Optional[dict] = None) -> Outcome:
        """``more``: the diagnostic, message_id and source kept with the last bounce."""
        key = normalise_email(email)
        cur.execute(self._store.q("SELECT status, soft_bounces FROM contacts WHERE email = ?"
                                  + self._store.backend.row_lock), (key,))
        row = cur.fetchone()
        if row is None:
            return None, None
        before, stored = row[0], loads(row[1])
        more = {k: v for k, v in (more or {}).items() if v}
        _bounce_event(self._store, cur, key, bounce, reason, more)
        outcome = count_bounce(_soft_bounces(stored), bounce, limit, window_days)
        if not outcome.counts:
            return before, before
        after = "faulty" if outcome.faulty else before
        last = _with_reason({"time": iso(bounce.time), "kind": bounce.kind,
                             "status": bounce.status, "account": bounce.account, **more}, reason)
        reasons = {**_reasons(stored), _soft_key(last): reason}
        cur.execute(self._store.q("UPDATE contacts SET status = ?, soft_bounces = ?, "
                                  "last_bounce = ?, updated = ? WHERE email = ?"),
                    (after, _dump_soft(outcome.soft_bounces, reasons), dumps(last),
                     iso(utcnow()), key))
        if after == "faulty" and before != "faulty":
            self._turned_faulty(cur, key, bounce, reason, more.get("source"))
        return before, after

    def _turned_faulty(self, cur: Any, key: str, bounce: Bounce, reason: Optional[str],
                       source: Optional[str]) -> None:
        cur.execute(self._store.q("UPDATE contacts SET faulty_since = ? WHERE email = ?"),
                    (iso(bounce.time), key))
        add_event(self._store, cur, "faulty", key, bounce.account, source,
                  {"cause": bounce.kind, "status": bounce.status, "reason": reason},
                  bounce.time)

    def record_message(self, account: str, mailbox: str, uid: Any,
                       recipients: Iterable[tuple], soft_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
                       window_days: int = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS, when: Any = None,
                       unverified: Iterable[tuple] = (),
                       message_id: Optional[str] = None) -> list[Outcome]:
        """One scanned message, atomically: its bounces counted (each an event), its
        unverified ones kept apart, and the message remembered.

        ``recipients``: (address, kind, status[, reason[, diagnostic]]) that count;
        ``message_id``: the bounced message's Message-ID when known; returns, per
        recipient, the contact's (status before, status after), (None, None) for an
        address that is not a contact. ``unverified``: (address, kind, status, reason,
        why) of a report not to be believed (SECURITY.md): recorded for contacts only,
        never changing their status.
        """
        moment = as_moment(when)
        source = f"inbox:{account}/{mailbox}/{uid}"
        with self._store.write() as cur:
            out = [self._count(cur, email, Bounce(kind, moment, status, account),
                               soft_limit, window_days, (rest or [None])[0],
                               {"diagnostic": rest[1] if len(rest) > 1 else None,
                                "message_id": message_id, "source": source})
                   for email, kind, status, *rest in recipients]
            self._doubt(cur, (account, mailbox, str(uid), iso(moment)), list(unverified))
            self.mark_processed(account, mailbox, [uid])
        return out

    # -- unverified bounces --------------------------------------------------------
    def _doubt(self, cur: Any, where: tuple, rows: list[tuple]) -> None:
        q = self._store.q
        for email, kind, status, reason, why in rows:
            key = normalise_email(email)
            cur.execute(q("SELECT 1 FROM contacts WHERE email = ?"), (key,))
            if cur.fetchone() is not None:
                cur.execute(q(f"INSERT INTO unverified_bounces ({_DOUBT_COLUMNS}) VALUES "
                              "(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, mailbox, uid, "
                              "email) DO NOTHING"), (key, *where, kind, status, reason, why))
        if rows:
            cur.execute(q("DELETE FROM unverified_bounces WHERE received_at < ?"),
                        (iso(utcnow() - timedelta(days=UNVERIFIED_RETENTION_DAYS)),))

    def unverified(self, email: str) -> list[dict]:
        """A contact's unverified bounces of the last ``UNVERIFIED_RETENTION_DAYS``,
        newest first."""
        rows = self._store.read(f"SELECT {_DOUBT_COLUMNS} FROM unverified_bounces WHERE "
                                "email = ? ORDER BY received_at DESC, uid DESC",
                                (normalise_email(email),))
        names = [n.strip() for n in _DOUBT_COLUMNS.split(",")]
        return [{k: v for k, v in zip(names, row) if k != "email" and v is not None}
                for row in rows]

    # -- processed messages --------------------------------------------------------
    def is_processed(self, account: str, mailbox: str, uid: Any) -> bool:
        rows = self._store.read("SELECT 1 FROM processed_messages WHERE account = ? "
                                "AND mailbox = ? AND uid = ?", (account, mailbox, str(uid)))
        return bool(rows)

    def processed_uids(self, account: str, mailbox: str) -> set[str]:
        rows = self._store.read("SELECT uid FROM processed_messages WHERE account = ? "
                                "AND mailbox = ?", (account, mailbox))
        return {uid for (uid,) in rows}

    def mark_processed(self, account: str, mailbox: str, uids: Iterable[Any]) -> None:
        now = iso(utcnow())
        params = [(account, mailbox, str(uid), now) for uid in uids]
        if not params:
            return
        with self._store.write() as cur:
            cur.executemany(self._store.q(
                "INSERT INTO processed_messages (account, mailbox, uid, processed_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (account, mailbox, uid) DO NOTHING"), params)

    def forget_account(self, cur: Any, account: str) -> None:
        """A deleted account's processed messages go with it (inside the caller's transaction)."""
        for table in ("processed_messages", "unverified_bounces"):
            cur.execute(self._store.q(f"DELETE FROM {table} WHERE account = ?"), (account,))

    def rename_account(self, cur: Any, old: str, new: str) -> None:
        """A moved account keeps its processed messages (inside the caller's transaction)."""
        for table in ("processed_messages", "unverified_bounces"):
            cur.execute(self._store.q(f"UPDATE {table} SET account = ? WHERE account = ?"),
                        (new, old))


def _contact(row: tuple) -> dict:
    email, details, status, soft, last, updated, faulty_since = row
    return {"email": email, "details": loads(details), "status": status,
            "soft_bounces": loads(soft), "last_bounce": loads(last), "updated": updated,
            "faulty_since": faulty_since}


def _bounce_event(store: SQLStore, cur: Any, key: str, bounce: Bounce,
                  reason: Optional[str], more: dict) -> None:
    kind = "complaint" if bounce.kind == "complaint" else "bounce"
    data = {"kind": bounce.kind, "status": bounce.status, "reason": reason,
            "diagnostic": more.get("diagnostic"), "message_id": more.get("message_id")}
    add_event(store, cur, kind, key, bounce.account, more.get("source"), data, bounce.time)


def _soft_bounces(stored: Any) -> list[SoftBounce]:
    return [SoftBounce(as_moment(b["time"]), b.get("status"), b.get("account", ""))
            for b in stored or []]


def _soft_key(bounce: dict) -> tuple:
    return iso(as_moment(bounce["time"])), bounce.get("status"), bounce.get("account", "")


def _reasons(stored: Any) -> dict:
    """The classifier's reasons kept with the soft bounces (by time, status, account)."""
    return {_soft_key(b): b["reason"] for b in stored or [] if b.get("reason")}


def _with_reason(bounce: dict, reason: Optional[str]) -> dict:
    return {**bounce, "reason": reason} if reason else bounce


def _dump_soft(bounces: Iterable[SoftBounce], reasons: dict) -> str:
    rows = [{"time": iso(b.time), "status": b.status, "account": b.account} for b in bounces]
    return dumps([_with_reason(row, reasons.get(_soft_key(row))) for row in rows])
