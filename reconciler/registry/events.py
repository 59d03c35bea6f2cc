"""The event log: every change of a contact's life (issue 14), in order.

One row per event: ``seq`` (the log's order, 1, 2, …, from a counter whose row lock makes commit order
``seq`` order, so a reader following the log never skips one),
``id`` (a UUID: what webhook receivers deduplicate on), time, kind, the contact's
email, the account, the source (``inbox:ACCOUNT/MAILBOX/UID``, ``ses``, ``cli``, …)
and a JSON object of details. Kinds: ``bounce``, ``complaint``, ``replied``,
``faulty``, ``reactivated``, ``erased``.

``add_event`` writes inside a caller's transaction (the ledger's bounce and its event
are one write). Provider event ids (``provider_events``) make provider webhooks
idempotent. None of this bumps the registry's serial: plans do not depend on it.
Webhook deliveries are the ``deliveries`` sub-part (``registry/deliveries.py``).
"""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Optional

from .common import as_moment, dumps, iso, loads, utcnow
from .deliveries import WebhookLog
from .store import SQLStore

KINDS = ("bounce", "complaint", "replied", "faulty", "reactivated", "erased")
_COLUMNS = "seq, id, time, kind, email, account, source, data"


def add_event(store: SQLStore, cur: Any, kind: str, email: Optional[str],
              account: Optional[str] = None, source: Optional[str] = None,
              data: Optional[dict] = None, when: Any = None) -> dict:
    """Append one event inside the caller's transaction; the event as stored (inside
    ``numbered_at_end``, written and given its ``seq`` when that block ends)."""
    event = {"seq": None, "id": str(uuid.uuid4()), "time": iso(as_moment(when)),
             "kind": kind, "email": email, "account": account, "source": source,
             "data": data or {}}
    deferred = getattr(store, "deferred_events", None)
    if deferred is not None:
        deferred.append(event)
        return event
    _insert(store, cur, [event])
    return event


def _insert(store: SQLStore, cur: Any, events: list[dict]) -> None:
    """Number ``events`` from the counter (one step for all) and write them. Where the
    backend reads rows from a JSON text (PostgreSQL), both in one statement, its rows
    made beforehand: the counter's row lock, which concurrent scanners' batches queue
    on, is then held for that one statement and the commit only."""
    rows = [(*[e[k] for k in ("id", "time", "kind", "email", "account", "source")],
             dumps(e["data"])) for e in events]
    last = _numbered_insert(store, cur, rows) if store.backend.json_rows else None
    if last is None:
        last = _next_seq(store, cur, len(events))
        first = last - len(events) + 1
        cur.executemany(store.q(f"INSERT INTO events ({_COLUMNS}) VALUES "
                                "(?, ?, ?, ?, ?, ?, ?, ?)"),
                        [(first + offset, *row) for offset, row in enumerate(rows)])
    for offset, event in enumerate(events):
        event["seq"] = last - len(events) + 1 + offset


_NUMBERED_INSERT = (
    "WITH c AS (UPDATE meta SET value = CAST(CAST(value AS INTEGER) + %s AS TEXT) "
    "WHERE key = 'event_seq' RETURNING CAST(value AS INTEGER) AS last), "
    "ins AS (INSERT INTO events (seq, id, time, kind, email, account, source, data) "
    "SELECT c.last - %s + e.n, e.r->>0, e.r->>1, e.r->>2, e.r->>3, e.r->>4, e.r->>5, "
    "e.r->>6 FROM c, json_array_elements(%s::json) WITH ORDINALITY AS e(r, n)) "
    "SELECT last FROM c")


def _numbered_insert(store: SQLStore, cur: Any, rows: list[tuple]) -> Optional[int]:
    """The counter moved and the rows (passed as one JSON text) written in one statement;
    the last ``seq`` (None when the counter does not exist yet: nothing was written)."""
    cur.execute(_NUMBERED_INSERT, (len(rows), len(rows), json.dumps(rows)))
    found = cur.fetchall()
    return int(found[0][0]) if found else None


@contextmanager
def numbered_at_end(store: SQLStore, cur: Any) -> Iterator[None]:
    """Inside one long transaction (an inbox scan's batch): the events it makes are
    numbered and written at its end, so the counter's row lock — which makes commit order
    ``seq`` order — is held from there to the commit, not for the whole batch (other
    scanners' batches would wait on it). Nested: the outer block numbers them."""
    if getattr(store, "deferred_events", None) is not None:
        yield
        return
    store.deferred_events = []
    try:
        yield
        pending = store.deferred_events
    finally:
        store.deferred_events = None
    if pending:
        _insert(store, cur, pending)


_COUNT = ("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + ? AS TEXT) "
          "WHERE key = 'event_seq' RETURNING value")
# The counter of a registry made before it was created with the registry (registry.opening):
# from the events written so far. (WHERE true: SQLite's upsert after a SELECT needs one.)
SEED_COUNTER = ("INSERT INTO meta (key, value) SELECT 'event_seq', "
                "CAST(COALESCE(MAX(seq), 0) AS TEXT) FROM events WHERE true "
                "ON CONFLICT (key) DO NOTHING")


def _next_seq(store: SQLStore, cur: Any, count: int = 1) -> int:
    """The last of ``count`` new ``seq`` values, from a counter in ``meta`` that never
    goes back (an erasure may empty the table); its row lock orders concurrent writers,
    so commits come in order. Missing (an older registry), it is made first: concurrent
    writers that all find it missing each insert it, the first one's row wins and the
    others wait for it at the unique key, then count on it — no table lock, which two
    such writers, both already holding the table's row-exclusive lock, took in a
    deadlock."""
    cur.execute(store.q(_COUNT), (count,))
    rows = cur.fetchall()
    if not rows:
        cur.execute(SEED_COUNTER)
        cur.execute(store.q(_COUNT), (count,))
        rows = cur.fetchall()
    return int(rows[0][0])


def claim_provider_event(store: SQLStore, cur: Any, provider: str, event_id: str) -> bool:
    """Remember a provider's event id; False when it was seen before (a duplicate). A
    concurrent request with the same id waits for this one's commit, then does nothing."""
    cur.execute(store.q("INSERT INTO provider_events (provider, event_id, received_at) "
                        "VALUES (?, ?, ?) ON CONFLICT (provider, event_id) DO NOTHING"),
                (provider, event_id, iso(utcnow())))
    return cur.rowcount == 1


def _event(row: tuple) -> dict:
    seq, id_, time, kind, email, account, source, data = row
    return {"seq": int(seq), "id": id_, "time": time, "kind": kind, "email": email,
            "account": account, "source": source, "data": loads(data) or {}}


class EventLog:
    """The ``events`` and ``provider_events`` tables, and the webhook deliveries."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self.deliveries = WebhookLog(store)

    def record(self, kind: str, email: Optional[str], account: Optional[str] = None,
               source: Optional[str] = None, data: Optional[dict] = None,
               when: Any = None) -> dict:
        """One event in its own transaction."""
        with self._store.write() as cur:
            return add_event(self._store, cur, kind, email, account, source, data, when)

    def record_once(self, key: tuple[str, str], kind: str, email: Optional[str],
                    **fields: Any) -> Optional[dict]:
        """One event unless ``key`` (provider, event id) was recorded before (then None)."""
        with self._store.write() as cur:
            if not claim_provider_event(self._store, cur, *key):
                return None
            return add_event(self._store, cur, kind, email, **fields)

    def since(self, after_seq: int = 0, since_time: Any = None,
              kinds: Iterable[str] = (), email: Optional[str] = None,
              limit: Optional[int] = None) -> list[dict]:
        """Events after ``after_seq`` (and at or after ``since_time``), in order."""
        sql, params = f"SELECT {_COLUMNS} FROM events WHERE seq > ?", [after_seq]
        if since_time is not None:
            sql, params = sql + " AND time >= ?", [*params, iso(as_moment(since_time))]
        kinds = list(kinds)
        if kinds:
            sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            params += kinds
        if email is not None:
            sql, params = sql + " AND email = ?", [*params, email.strip().lower()]
        sql += " ORDER BY seq" + (f" LIMIT {int(limit)}" if limit else "")
        return [_event(r) for r in self._store.read(sql, tuple(params))]

    def by_seq(self, seqs: Iterable[int]) -> dict[int, dict]:
        wanted = sorted(set(int(s) for s in seqs))
        if not wanted:
            return {}
        marks = ", ".join("?" for _ in wanted)
        rows = self._store.read(f"SELECT {_COLUMNS} FROM events WHERE seq IN ({marks})",
                                tuple(wanted))
        return {int(r[0]): _event(r) for r in rows}

    def last_seq(self) -> int:
        return int(self._store.read("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])

    def prune(self, before: Any) -> int:
        """Forget events older than ``before`` (the retention setting); how many.
        Provider event ids go with them: a provider retries for days, not for a year."""
        cut = iso(as_moment(before))
        with self._store.write() as cur:
            cur.execute(self._store.q("DELETE FROM webhook_deliveries WHERE seq IN "
                                      "(SELECT seq FROM events WHERE time < ?)"), (cut,))
            cur.execute(self._store.q("DELETE FROM events WHERE time < ?"), (cut,))
            count = cur.rowcount
            cur.execute(self._store.q("DELETE FROM provider_events WHERE received_at < ?"),
                        (cut,))
        return max(count, 0)

    def erase(self, cur: Any, email: str) -> int:
        """Every event of one contact, and its webhook deliveries (inside the caller's
        transaction: an erasure request); how many events."""
        q = self._store.q
        cur.execute(q("DELETE FROM webhook_deliveries WHERE email = ?"), (email,))
        cur.execute(q("DELETE FROM events WHERE email = ?"), (email,))
        return max(cur.rowcount, 0)
