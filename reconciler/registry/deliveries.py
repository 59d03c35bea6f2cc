"""Outbound webhook deliveries: one row per (webhook, event), its state and its retries.

A webhook's cursor (``webhook_cursors``) is the last event ``seq`` looked at; ``enqueue``
turns the events after it that the webhook wants into ``pending`` rows. A pending row is
due once its ``next_at`` has passed and no earlier pending row of the same contact is
left (in order per contact). A row ends ``delivered``, or ``dead`` after its last
attempt: the dead-letter list, which ``redeliver`` puts back to ``pending``. A new
webhook starts at the beginning of the log (what retention kept).
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from .common import as_moment, iso, utcnow
from .store import SQLStore

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
_DUE = ("SELECT d.seq, d.attempts FROM webhook_deliveries d WHERE d.webhook = ? AND "
        "d.state = 'pending' AND d.next_at <= ? AND NOT EXISTS (SELECT 1 FROM "
        "webhook_deliveries e WHERE e.webhook = d.webhook AND e.state = 'pending' AND "
        "e.email = d.email AND e.seq < d.seq) ORDER BY d.seq LIMIT ?")


class WebhookLog:
    """The ``webhook_deliveries`` and ``webhook_cursors`` tables."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def enqueue(self, webhook: str, kinds: Iterable[str], now: Any = None) -> int:
        """Pending rows for the events this webhook wants since its cursor; how many."""
        q, kinds = self._store.q, set(kinds)
        with self._store.write() as cur:
            self._store.backend.lock_table(cur, "webhook_cursors")
            cur.execute(q("SELECT seq FROM webhook_cursors WHERE webhook = ?"), (webhook,))
            row = cur.fetchone()
            start = int(row[0]) if row else 0
            cur.execute(q("SELECT seq, kind, email FROM events WHERE seq > ? ORDER BY seq"),
                        (start,))
            found = cur.fetchall()
            if not found:
                return 0
            stamp = iso(as_moment(now))
            rows = [(webhook, int(s), e, PENDING, stamp, stamp) for s, k, e in found
                    if not kinds or k in kinds]
            cur.executemany(q("INSERT INTO webhook_deliveries (webhook, seq, email, state, "
                              "next_at, updated) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                              "(webhook, seq) DO NOTHING"), rows)
            cur.execute(q("INSERT INTO webhook_cursors (webhook, seq) VALUES (?, ?) ON "
                          "CONFLICT (webhook) DO UPDATE SET seq = excluded.seq"),
                        (webhook, int(found[-1][0])))
        return len(rows)

    def due(self, webhook: str, now: Any = None, limit: int = 100) -> list[tuple[int, int]]:
        """(seq, attempts so far) of the rows to try now, oldest first."""
        rows = self._store.read(_DUE, (webhook, iso(as_moment(now)), int(limit)))
        return [(int(s), int(a)) for s, a in rows]

    def delivered(self, webhook: str, seq: int) -> None:
        self._set(webhook, seq, state=DELIVERED, last_error=None)

    def failed(self, webhook: str, seq: int, attempts: int, error: str,
               next_at: Optional[Any]) -> None:
        """An attempt failed: retry at ``next_at``, or (None) dead-lettered."""
        state = PENDING if next_at is not None else DEAD
        self._set(webhook, seq, state=state, attempts=attempts, last_error=error[:500],
                  next_at=iso(as_moment(next_at)) if next_at is not None else None)

    def _set(self, webhook: str, seq: int, **fields: Any) -> None:
        fields = {k: v for k, v in fields.items() if v is not None or k == "last_error"}
        fields["updated"] = iso(utcnow())
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._store.write() as cur:
            cur.execute(self._store.q(f"UPDATE webhook_deliveries SET {assignments} "
                                      "WHERE webhook = ? AND seq = ?"),
                        (*fields.values(), webhook, int(seq)))

    def dead(self, webhook: Optional[str] = None) -> list[dict]:
        """The dead-letter list, oldest event first."""
        sql = ("SELECT webhook, seq, email, attempts, last_error, updated FROM "
               "webhook_deliveries WHERE state = 'dead'")
        params: tuple = ()
        if webhook:
            sql, params = sql + " AND webhook = ?", (webhook,)
        names = ("webhook", "seq", "email", "attempts", "last_error", "updated")
        return [dict(zip(names, r)) for r in self._store.read(sql + " ORDER BY seq, webhook",
                                                              params)]

    def redeliver(self, webhook: Optional[str] = None, seqs: Iterable[int] = (),
                  now: Any = None) -> int:
        """Dead rows back to pending, due at once; how many."""
        sql = "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_at = ?, " \
              "updated = ? " \
              "WHERE state = 'dead'"
        stamp = iso(as_moment(now))
        params: list = [stamp, stamp]
        if webhook:
            sql, params = sql + " AND webhook = ?", [*params, webhook]
        seqs = [int(s) for s in seqs]
        if seqs:
            sql, params = sql + f" AND seq IN ({', '.join('?' for _ in seqs)})", params + seqs
        with self._store.write() as cur:
            cur.execute(self._store.q(sql), tuple(params))
            return max(cur.rowcount, 0)

    def counts(self, webhook: str) -> dict[str, int]:
        rows = self._store.read("SELECT state, COUNT(*) FROM webhook_deliveries WHERE "
                                "webhook = ? GROUP BY state", (webhook,))
        return {state: int(n) for state, n in rows}
