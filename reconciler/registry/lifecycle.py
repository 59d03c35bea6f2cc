"""A contact's lifecycle (issue 14), mixed into the contact ledger: listing with filters,
reactivation, purging old soft-bounce records, erasure, and bounces reported by an
email provider (idempotent by the provider's event id).

Every change is an event in the same transaction (``events``): ``reactivated`` carries
the operator's reason and the last bounce it overrides; ``erased`` carries only a
SHA-256 of the address, so the platform can match its own records without the log
keeping the person it forgot. A reactivated contact starts with no soft bounces; its
next hard bounce marks it faulty again. Nothing here bumps the registry's serial.
"""
from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any, Iterable, Optional

from ..policy import Bounce
from .common import as_moment, dumps, iso, loads, utcnow
from .events import add_event, claim_provider_event

ERASED_TABLES = ("contacts", "unverified_bounces")


def email_digest(email: str) -> str:
    return "sha256:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()


class Lifecycle:
    """Methods of ``ContactLedger`` (which provides ``_store``, ``get``, ``all``, ``_count``)."""

    _store: Any

    def listing(self, status: Optional[str] = None, reason: Optional[str] = None,
                since: Any = None) -> list[dict]:
        """Contacts by status; by the last bounce's reason; faulty (or last bounced) at or
        after ``since``."""
        rows = self.all(status)       # type: ignore[attr-defined]
        if reason is not None:
            rows = [r for r in rows if (r["last_bounce"] or {}).get("reason") == reason]
        if since is not None:
            start = iso(as_moment(since))
            rows = [r for r in rows if (_since_key(r) or "") >= start]
        return rows

    def reactivate(self, emails: Iterable[str], reason: str, actor: str) -> dict[str, str]:
        """Faulty contacts back to active, each with a ``reactivated`` event; per email:
        ``reactivated``, ``already active`` or ``unknown``."""
        done: dict[str, str] = {}
        with self._store.write() as cur:
            for email in emails:
                key = email.strip().lower()
                done[key] = self._reactivate_one(cur, key, reason, actor)
        return done

    def _reactivate_one(self, cur: Any, key: str, reason: str, actor: str) -> str:
        q = self._store.q
        cur.execute(q("SELECT status, last_bounce FROM contacts WHERE email = ?"
                      + self._store.backend.row_lock), (key,))
        row = cur.fetchone()
        if row is None:
            return "unknown"
        if row[0] != "faulty":
            return "already active"
        cur.execute(q("UPDATE contacts SET status = 'active', soft_bounces = '[]', "
                      "faulty_since = NULL, updated = ? WHERE email = ?"), (iso(utcnow()), key))
        add_event(self._store, cur, "reactivated", key, None, "cli",
                  {"reason": reason, "actor": actor, "last_bounce": loads(row[1])})
        return "reactivated"

    def purge_soft(self, older_than_days: float, now: Any = None) -> int:
        """Drop soft-bounce records older than the given days from every contact; how many."""
        cut = iso(as_moment(now) - timedelta(days=older_than_days))
        dropped = 0
        with self._store.write() as cur:
            cur.execute("SELECT email, soft_bounces FROM contacts WHERE soft_bounces <> '[]'")
            for email, stored in cur.fetchall():
                history = loads(stored) or []
                kept = [b for b in history if iso(as_moment(b["time"])) >= cut]
                if len(kept) != len(history):
                    dropped += len(history) - len(kept)
                    cur.execute(self._store.q("UPDATE contacts SET soft_bounces = ? "
                                              "WHERE email = ?"), (dumps(kept), email))
        return dropped

    def erase(self, emails: Iterable[str], erase_events: Any) -> dict[str, dict]:
        """Erasure requests: per email, how many rows went from each table.
        ``erase_events(cur, email)`` removes the contact's events (the event log's)."""
        out: dict[str, dict] = {}
        with self._store.write() as cur:
            for email in emails:
                key = email.strip().lower()
                out[key] = self._erase_one(cur, key, erase_events)
        return out

    def _erase_one(self, cur: Any, key: str, erase_events: Any) -> dict:
        counts = {}
        for table in ERASED_TABLES:
            cur.execute(self._store.q(f"DELETE FROM {table} WHERE email = ?"), (key,))
            counts[table] = max(cur.rowcount, 0)
        counts["events"] = erase_events(cur, key)
        for table, id_column in (("delivery_log", "id"), ("sent_messages", "tag")):
            counts[table] = _erase_recipient(self._store, cur, table, id_column, key)
        if any(counts.values()):
            add_event(self._store, cur, "erased", None, None, "cli",
                      {"email_sha256": email_digest(key), "removed": counts})
        return counts

    def record_provider_bounce(self, provider: str, event_id: str, email: str,
                               bounce: Bounce, limit: int, window_days: int,
                               more: dict) -> Optional[tuple]:
        """A provider's bounce or complaint, counted like a scanned one; None when that
        event id was recorded before. ``more``: reason, diagnostic, message_id."""
        with self._store.write() as cur:
            if not claim_provider_event(self._store, cur, provider, event_id):
                return None
            extra = {"diagnostic": more.get("diagnostic"), "source": provider,
                     "message_id": more.get("message_id")}
            return self._count(cur, email, bounce, limit,   # type: ignore[attr-defined]
                               window_days, more.get("reason"), extra)


def _since_key(row: dict) -> Optional[str]:
    if row.get("faulty_since"):
        return row["faulty_since"]
    last = row.get("last_bounce") or {}
    return iso(as_moment(last["time"])) if last.get("time") else None


def _erase_recipient(store: Any, cur: Any, table: str, id_column: str, key: str) -> int:
    """Rows of the proxy's delivery log (or of the tagged messages sent) naming ``key`` as
    a recipient: the recipient is taken out of each; a row left with none goes. How many
    rows changed."""
    cur.execute(store.q(f"SELECT {id_column}, recipients FROM {table} WHERE "
                        "LOWER(recipients) LIKE ?"), ("%" + key.replace("%", "") + "%",))
    changed = 0
    for row_id, stored in cur.fetchall():
        recipients = loads(stored) or []
        kept = [r for r in recipients if not _names(r, key)]
        if len(kept) == len(recipients):
            continue
        changed += 1
        if kept:
            cur.execute(store.q(f"UPDATE {table} SET recipients = ? WHERE {id_column} = ?"),
                        (dumps(kept), row_id))
        else:
            cur.execute(store.q(f"DELETE FROM {table} WHERE {id_column} = ?"), (row_id,))
    return changed


def _names(recipient: Any, key: str) -> bool:
    if isinstance(recipient, str):
        return recipient.strip().lower() == key
    if isinstance(recipient, dict):
        return any(isinstance(v, str) and v.strip().lower() == key
                   for k, v in recipient.items() if k in ("address", "recipient", "email", "to"))
    return False
