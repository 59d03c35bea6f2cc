"""The proxy's delivery log: one row per message relayed (or refused) by `proxy serve`.

Each row holds the account, the message's Message-ID, the envelope (sender and, per
recipient, the upstream's answer: code, enhanced status, text, the classifier's reason
and kind), the upstream's final reply, the size in bytes, the client's address and when
the transaction started and finished. Never a body, a header other than the Message-ID,
or a credential. Rows older than the retention (``prune``) are deleted by the proxy.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Optional

from .common import as_moment, dumps, iso, loads, utcnow
from .store import SQLStore

DEFAULT_RETENTION_DAYS = 30
_COLUMNS = ("id", "account", "message_id", "mail_from", "recipients", "upstream_reply",
            "size", "client", "started", "finished")


class DeliveryLog:
    """The ``delivery_log`` table."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store

    def record(self, entry: dict) -> None:
        """One transaction's row (keys: see ``_COLUMNS``; ``recipients`` a list of dicts)."""
        row = {**entry, "recipients": dumps(entry.get("recipients") or []),
               "started": iso(as_moment(entry.get("started"))),
               "finished": iso(as_moment(entry.get("finished")))}
        marks = ", ".join("?" for _ in _COLUMNS)
        with self._store.write() as cur:
            cur.execute(self._store.q(f"INSERT INTO delivery_log ({', '.join(_COLUMNS)}) "
                                      f"VALUES ({marks}) ON CONFLICT (id) DO NOTHING"),
                        tuple(row.get(c) for c in _COLUMNS))

    def entries(self, account: Optional[str] = None, since: Any = None,
                limit: int = 10_000) -> list[dict]:
        """Rows, oldest first; of one account, finished at or after ``since``."""
        where, params = [], []
        if account is not None:
            where.append("account = ?")
            params.append(account)
        if since is not None:
            where.append("finished >= ?")
            params.append(iso(as_moment(since)))
        sql = f"SELECT {', '.join(_COLUMNS)} FROM delivery_log"
        sql += (" WHERE " + " AND ".join(where)) if where else ""
        rows = self._store.read(sql + f" ORDER BY finished, id LIMIT {int(limit)}", tuple(params))
        return [_entry(row) for row in rows]

    def prune(self, days: float = DEFAULT_RETENTION_DAYS) -> int:
        """Forget rows older than ``days``; how many went."""
        cutoff = iso(utcnow() - timedelta(days=days))
        with self._store.write() as cur:
            cur.execute(self._store.q("DELETE FROM delivery_log WHERE finished < ?"), (cutoff,))
            return max(0, cur.rowcount or 0)


def _entry(row: tuple) -> dict:
    entry = dict(zip(_COLUMNS, row))
    entry["recipients"] = loads(entry["recipients"]) or []
    return {k: v for k, v in entry.items() if v is not None}
