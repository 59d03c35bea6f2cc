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
nothing; the scanner records a whole batch of messages so (``record_messages``: the
contacts it names read and row-locked in one statement, in one order, and each written
once; a handful of statements per batch instead of several per message). A batch first
claims its messages (their processed rows, inserted unless there): a message that a
scan of the same inbox running at the same time recorded, or is recording, is left to
that scan, so two scans at once never count a bounce twice.

Every bounce or complaint of a contact is also an event (``events``), and so is its
turning faulty, in the same transaction; the last bounce keeps the diagnostic, the
message-id and the source (``inbox:ACCOUNT/MAILBOX/UID`` or a provider) for review. The
contact lifecycle (reactivate, purge, erase, listing with filters) is ``lifecycle``.
Nothing here bumps the registry's serial.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Iterable, NamedTuple, Optional, Sequence

from ..policy import (DEFAULT_SOFT_BOUNCE_LIMIT, DEFAULT_SOFT_BOUNCE_WINDOW_DAYS, Bounce,
                      SoftBounce, count_bounce)
from .common import as_moment, dumps, iso, loads, utcnow
from .events import add_event, numbered_at_end
from .lifecycle import Lifecycle
from .store import SQLStore

_CONTACT_COLUMNS = "email, details, status, soft_bounces, last_bounce, updated, faulty_since"
_DOUBT_COLUMNS = "email, account, mailbox, uid, received_at, kind, status, reason, why"
UNVERIFIED_RETENTION_DAYS = 90
_CHUNK = 500

Outcome = tuple[Optional[str], Optional[str]]     # a contact's status (before, after)
# a batch's rows as one JSON text, one statement (PostgreSQL: ``Backend.json_rows``)
_UPDATE_FROM_JSON = (
    "UPDATE contacts AS c SET status = v.r->>0, soft_bounces = v.r->>1, last_bounce = "
    "v.r->>2, updated = v.r->>3, faulty_since = COALESCE(v.r->>4, c.faulty_since) "
    "FROM json_array_elements(%s::json) AS v(r) WHERE c.email = v.r->>5")
_INSERT_PROCESSED = ("INSERT INTO processed_messages (account, mailbox, uid, processed_at) "
                     "VALUES (?, ?, ?, ?) ON CONFLICT (account, mailbox, uid) DO NOTHING")
_PROCESSED_FROM_JSON = (
    "INSERT INTO processed_messages (account, mailbox, uid, processed_at) "
    "SELECT r->>0, r->>1, r->>2, r->>3 FROM json_array_elements(%s::json) AS v(r) "
    "ON CONFLICT (account, mailbox, uid) DO NOTHING")
_CLAIM_FROM_JSON = _PROCESSED_FROM_JSON + " RETURNING uid"


class ScannedMessage(NamedTuple):
    """One scanned message for ``record_messages`` (a plain 4-tuple does as well): its
    id, the bounces that count ((address, kind, status[, reason[, diagnostic]])), the
    unverified ones ((address, kind, status, reason, why)) and the bounced message's
    Message-ID (None when unknown)."""

    uid: Any
    recipients: Sequence[tuple]
    unverified: Sequence[tuple] = ()
    message_id: Optional[str] = None


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
        found = self._lock_contacts(cur, [key])
        outcome = self._apply(cur, found, key, bounce, limit, window_days, reason, more)
        self._write_contacts(cur, found)
        return outcome

    def _lock_contacts(self, cur: Any, keys: Iterable[str]) -> dict[str, dict]:
        """The contacts among ``keys`` (normalised), row-locked for this transaction in
        one order (by email, so two writers never wait on each other in a cycle): email ->
        {status, soft (as stored), last, faulty_since: None, dirty: False}."""
        wanted, found = sorted(set(keys)), {}
        for start in range(0, len(wanted), _CHUNK):
            part = wanted[start:start + _CHUNK]
            marks = ", ".join("?" for _ in part)
            cur.execute(self._store.q(
                f"SELECT email, status, soft_bounces FROM contacts WHERE email IN ({marks}) "
                "ORDER BY email" + self._store.backend.row_lock), tuple(part))
            for email, status, soft in cur.fetchall():
                found[email] = {"status": status, "soft": loads(soft), "last": None,
                                "faulty_since": None, "dirty": False}
        return found

    def _apply(self, cur: Any, found: dict[str, dict], key: str, bounce: Bounce, limit: int,
               window_days: int, reason: Optional[str] = None,
               more: Optional[dict] = None) -> Outcome:
        """One bounce against one contact's state in ``found`` (written later by
        ``_write_contacts``); its event (and a `faulty` one) added now, in order."""
        state = found.get(key)
        if state is None:
            return None, None
        before, stored = state["status"], state["soft"]
        more = {k: v for k, v in (more or {}).items() if v}
        _bounce_event(self._store, cur, key, bounce, reason, more)
        outcome = count_bounce(_soft_bounces(stored), bounce, limit, window_days)
        if not outcome.counts:
            return before, before
        after = "faulty" if outcome.faulty else before
        last = _with_reason({"time": iso(bounce.time), "kind": bounce.kind,
                             "status": bounce.status, "account": bounce.account, **more}, reason)
        reasons = {**_reasons(stored), _soft_key(last): reason}
        state.update(status=after, soft=_soft_rows(outcome.soft_bounces, reasons), last=last,
                     dirty=True)
        if after == "faulty" and before != "faulty":
            state["faulty_since"] = iso(bounce.time)
            add_event(self._store, cur, "faulty", key, bounce.account, more.get("source"),
                      {"cause": bounce.kind, "status": bounce.status, "reason": reason},
                      bounce.time)
        return before, after

    def _write_contacts(self, cur: Any, found: dict[str, dict]) -> None:
        """The contacts ``_apply`` changed: one statement (PostgreSQL: the rows as one JSON
        text), else one per group, its rows pipelined."""
        now, q = iso(utcnow()), self._store.q
        rows = [(s["status"], dumps(s["soft"]), dumps(s["last"]), now, s["faulty_since"],
                 email) for email, s in sorted(found.items()) if s["dirty"]]
        if rows and self._store.backend.json_rows:
            cur.execute(_UPDATE_FROM_JSON, (json.dumps(rows),))
            rows = []
        plain = [(*row[:4], row[5]) for row in rows if row[4] is None]
        turned = [row for row in rows if row[4] is not None]
        if plain:
            cur.executemany(q("UPDATE contacts SET status = ?, soft_bounces = ?, "
                              "last_bounce = ?, updated = ? WHERE email = ?"), plain)
        if turned:
            cur.executemany(q("UPDATE contacts SET status = ?, soft_bounces = ?, "
                              "last_bounce = ?, updated = ?, faulty_since = ? WHERE email = ?"),
                            turned)
        for state in found.values():
            state["dirty"], state["faulty_since"] = False, None

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
        never changing their status. A message already processed counts nothing ([]).
        """
        return self.record_messages(account, mailbox, [
            ScannedMessage(uid, list(recipients), list(unverified), message_id)],
            soft_limit, window_days, when)[0] or []

    def record_messages(self, account: str, mailbox: str, messages: Sequence["ScannedMessage"],
                        soft_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT,
                        window_days: int = DEFAULT_SOFT_BOUNCE_WINDOW_DAYS,
                        when: Any = None) -> list[Optional[list[Outcome]]]:
        """A batch of scanned messages in one transaction, as ``record_message`` one after
        another would record them (same outcomes, same events in the same order), in a
        few statements: the messages claimed at once, the contacts named read and
        row-locked at once, counted in order, and written once each. Per message, the
        outcomes ``record_message`` returns, or None for a message already processed
        (by another scan of the inbox at the same time): it is not counted again."""
        moment = as_moment(when)
        messages = [ScannedMessage(*m) for m in messages]
        out: list[Optional[list[Outcome]]] = []
        with self._store.write() as cur, numbered_at_end(self._store, cur):
            claimed = self._claim(cur, account, mailbox, [m.uid for m in messages])
            found = self._lock_contacts(cur, (normalise_email(r[0]) for m in messages
                                              if str(m.uid) in claimed
                                              for r in m.recipients))
            doubted: list[tuple] = []
            for m in messages:
                if str(m.uid) not in claimed:
                    out.append(None)
                    continue
                source = f"inbox:{account}/{mailbox}/{m.uid}"
                out.append([self._apply(cur, found, normalise_email(email),
                                        Bounce(kind, moment, status, account), soft_limit,
                                        window_days, (rest or [None])[0],
                                        {"diagnostic": rest[1] if len(rest) > 1 else None,
                                         "message_id": m.message_id, "source": source})
                            for email, kind, status, *rest in m.recipients])
                doubted += [((account, mailbox, str(m.uid), iso(moment)), tuple(row))
                            for row in m.unverified]
            self._write_contacts(cur, found)
            self._doubt(cur, doubted)
        return out

    def _claim(self, cur: Any, account: str, mailbox: str, uids: list[Any]) -> set[str]:
        """The uids whose processed rows this transaction inserted (in one order: two
        batches claiming the same messages wait on each other, never deadlock); a row
        another transaction inserted and has not committed yet is waited for."""
        now = iso(utcnow())
        params = [(account, mailbox, uid, now) for uid in sorted({str(u) for u in uids})]
        if self._store.backend.json_rows:                      # one statement (PostgreSQL)
            cur.execute(_CLAIM_FROM_JSON, (json.dumps(params),))
            return {uid for (uid,) in cur.fetchall()}
        claimed = set()
        sql = self._store.q(_INSERT_PROCESSED)
        for row in params:
            cur.execute(sql, row)
            if cur.rowcount == 1:
                claimed.add(row[2])
        return claimed

    # -- unverified bounces --------------------------------------------------------
    def _doubt(self, cur: Any, rows: list[tuple]) -> None:
        """(where, (email, kind, status, reason, why)) rows: kept for contacts only."""
        q = self._store.q
        keys = sorted({normalise_email(row[0]) for _, row in rows})
        known: set[str] = set()
        for start in range(0, len(keys), _CHUNK):
            part = keys[start:start + _CHUNK]
            cur.execute(q(f"SELECT email FROM contacts WHERE email IN "
                          f"({', '.join('?' for _ in part)})"), tuple(part))
            known.update(email for (email,) in cur.fetchall())
        params = [(key, *where, kind, status, reason, why)
                  for where, (email, kind, status, reason, why) in rows
                  for key in [normalise_email(email)] if key in known]
        if params:
            cur.executemany(q(f"INSERT INTO unverified_bounces ({_DOUBT_COLUMNS}) VALUES "
                              "(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, mailbox, uid, "
                              "email) DO NOTHING"), params)
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
            if self._store.backend.json_rows:                  # one statement (PostgreSQL)
                cur.execute(_PROCESSED_FROM_JSON, (json.dumps(params),))
                return
            cur.executemany(self._store.q(_INSERT_PROCESSED), params)

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


def _soft_rows(bounces: Iterable[SoftBounce], reasons: dict) -> list[dict]:
    rows = [{"time": iso(b.time), "status": b.status, "account": b.account} for b in bounces]
    return [_with_reason(row, reasons.get(_soft_key(row))) for row in rows]
