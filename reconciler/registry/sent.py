"""Tagged messages sent: what makes a bounce trustworthy (SECURITY.md, "Bounces that can be
trusted").

One row per message that mailform (the proxy, `verify --send-test`) or the platform's
sender (``bounces.tags.tag_message``) tagged: the tag's random id, the account, the
message's recipients (lower-cased) and when. The scanner looks a bounce's tag up here to
count it only for the recipients that message had. Rows older than ``RETENTION_DAYS``
are deleted with a new one, at most once every ``PRUNE_EVERY`` seconds per connection
(not a statement more for each message the proxy tags), so the table stays bounded
(bounces arrive within days: Postfix gives up on a message after 5); a bounce of an
older message falls back to the rules for untagged ones. Only the id is stored, not the
signature; `registry rekey` adds each tag's MAC under the old key to ``prior_macs``, so
mail sent before a re-key still has its bounces counted.
"""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Callable, Iterable, Optional

from ..policy import tag_mac

from .common import as_moment, dumps, iso, loads, utcnow
from .ledger import normalise_email
from .store import SQLStore

RETENTION_DAYS = 30
PRUNE_EVERY = 60.0


class SentLog:
    """The ``sent_messages`` table."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self._pruned: Optional[float] = None      # time.monotonic() of the last prune

    def record(self, tag: str, account: str, recipients: Iterable[str],
               when: Any = None) -> None:
        """Remember one tagged message (and forget those past the retention)."""
        rows = sorted({normalise_email(r) for r in recipients if r})
        q = self._store.q
        with self._store.write() as cur:
            cur.execute(q("INSERT INTO sent_messages (tag, account, recipients, sent_at) "
                          "VALUES (?, ?, ?, ?) ON CONFLICT (tag) DO NOTHING"),
                        (tag, account, dumps(rows), iso(as_moment(when))))
            now = time.monotonic()
            if self._pruned is None or now - self._pruned >= PRUNE_EVERY:
                cur.execute(q("DELETE FROM sent_messages WHERE sent_at < ?"), (_cutoff(),))
                self._pruned = now

    def get(self, tag: str) -> Optional[dict]:
        rows = self._store.read("SELECT account, recipients, sent_at, prior_macs "
                                "FROM sent_messages WHERE tag = ?", (tag,))
        if not rows:
            return None
        account, recipients, sent_at, prior = rows[0]
        return {"tag": tag, "account": account, "recipients": loads(recipients),
                "sent_at": sent_at, "prior_macs": loads(prior) or []}

    def carry_tags(self, cur: Any, old_sign: Callable[[str, bytes], str]) -> int:
        """`registry rekey`, inside its transaction: every recorded tag keeps its MAC under
        the old key, so that bounces of mail already sent still verify."""
        cur.execute("SELECT tag, prior_macs FROM sent_messages")
        rows = [(dumps([*(loads(prior) or []), tag_mac(tag, old_sign)]), tag)
                for tag, prior in cur.fetchall()]
        cur.executemany(self._store.q("UPDATE sent_messages SET prior_macs = ? WHERE tag = ?"),
                        rows)
        return len(rows)

    def forget_account(self, cur: Any, account: str) -> None:
        """A deleted account's sent messages go with it (inside the caller's transaction)."""
        cur.execute(self._store.q("DELETE FROM sent_messages WHERE account = ?"), (account,))

    def rename_account(self, cur: Any, old: str, new: str) -> None:
        """A moved account keeps its sent messages (inside the caller's transaction)."""
        cur.execute(self._store.q("UPDATE sent_messages SET account = ? WHERE account = ?"),
                    (new, old))


def _cutoff() -> str:
    return iso(utcnow() - timedelta(days=RETENTION_DAYS))
