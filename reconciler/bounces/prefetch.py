"""Fetching the next batch of messages while this one is judged and recorded.

The server (reading and sending a batch) and the scanner (parsing, classifying,
writing the registry) then work at the same time. One fetch at most is in flight, on
one thread, so the mailbox's connection is never used by two threads at once: the
caller starts the next fetch only when it does not itself use the connection
(deleting bounces, say) until ``take``. A fetch that would overlap nothing (the
first batch: the scanner has nothing to do but wait for it) runs in ``take``, on the
caller's thread; the thread is started only for a second batch, so an inbox read in
one batch costs no thread.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional


class Prefetch:
    """``start(uids)`` a fetch in the background, ``take()`` its result (or its error)."""

    def __init__(self, fetch: Callable[[list[str]], dict]) -> None:
        self._fetch = fetch
        self._pool: Optional[ThreadPoolExecutor] = None
        self._next: Optional[Future] = None
        self._later: Optional[list[str]] = None

    def __enter__(self) -> "Prefetch":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)   # a fetch in flight ends by the scan's deadline

    def start(self, uids: Optional[list[str]], background: bool = True) -> None:
        """The next batch to fetch: now on the fetch thread, or (``background`` false)
        in ``take``."""
        self._next, self._later = None, None
        if not uids:
            return
        if not background:
            self._later = uids
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-fetch")
        self._next = self._pool.submit(self._fetch, uids)

    def take(self) -> dict:
        future, later = self._next, self._later
        self._next = self._later = None
        if later is not None:
            return self._fetch(later)
        return future.result() if future is not None else {}
