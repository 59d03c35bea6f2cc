"""What the scanner remembers of an inbox, and which messages are new.

``registry.scan_state`` (a registry part) keeps, per account and mailbox, the
UIDVALIDITY and the last UID seen; the ledger keeps every processed message id.

* IMAP (``mailbox.ordered``): a changed UIDVALIDITY (or server) forgets the old id
  space and starts again from UID 0; then only UIDs above the mark are listed. Remembered ids
  above the mark the server no longer lists are forgotten; below it, a sweep (one
  listing of the whole mailbox) runs only when more ids are remembered than the server
  has messages there — after deletions — so a large mailbox is not listed every run.
* POP3: UIDL lists every message; remembered UIDLs not listed are forgotten.

``Mark.advance`` moves the mark after a batch, inside the batch's transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .mailbox import Mailbox


@dataclass
class Mark:
    """Where an IMAP scan stands: the mailbox's UIDVALIDITY and the last UID seen."""

    registry: Any
    account: str
    mailbox: Mailbox
    last: int = 0
    top: int = 0          # the highest UID listed this run

    def advance(self, following: Optional[str]) -> None:
        """After a batch (in its transaction): every UID below ``following`` (the next one
        still to process; None: none is left) is done."""
        if not self.mailbox.ordered:
            return
        self.last = max(self.last, int(following) - 1 if following else self.top)
        self.registry.scan_state.advance(self.account, self.mailbox.place,
                                         _identity(self.mailbox), self.last)


def new_messages(registry, account: str, mailbox: Mailbox) -> tuple[list[str], Mark]:
    """The ids to process, oldest first, and the mark to advance."""
    if not mailbox.ordered:
        return _unordered(registry.scan_state, account, mailbox), Mark(registry, account, mailbox)
    state = registry.scan_state
    stored, last = state.mark(account, mailbox.place)
    if stored != _identity(mailbox):
        # before the first mark (a registry from before marks), the current id space's
        # processed ids are this very mailbox's: keep them; else start afresh
        state.reset(account, mailbox.place, _identity(mailbox), mailbox.key,
                    keep_current=not stored)
        last = 0
    listed = mailbox.uids(last)
    seen = state.remembered(account, mailbox.key, above=last)
    state.forget(account, mailbox.key, seen - set(listed))
    _sweep(state, account, mailbox, last, len(listed))
    top = int(listed[-1]) if listed else last
    return [u for u in listed if u not in seen], Mark(registry, account, mailbox, last, top)


def _identity(mailbox: Mailbox) -> str:
    """UIDVALIDITY and the server it belongs to: another server with the same
    UIDVALIDITY is another id space all the same."""
    server = getattr(mailbox, "server", "")
    return f"{mailbox.validity}@{server}" if server else mailbox.validity


def _unordered(state, account: str, mailbox: Mailbox) -> list[str]:
    listed = mailbox.uids()
    seen = state.remembered(account, mailbox.key)
    state.forget(account, mailbox.key, seen - set(listed))
    return [u for u in listed if u not in seen]


def _sweep(state, account: str, mailbox: Mailbox, last: int, above: int) -> None:
    """Forget remembered UIDs up to the mark that the server no longer has — only when
    there are more of them than the server has messages up to the mark."""
    if not last or state.remembered_count(account, mailbox.key, up_to=last) \
            <= mailbox.count() - above:
        return
    present = set(mailbox.uids(0))
    state.forget(account, mailbox.key,
                 {u for u in state.remembered(account, mailbox.key) if u not in present})
