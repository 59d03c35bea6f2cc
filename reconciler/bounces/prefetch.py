"""Fetching the next batch of messages while this one is judged and recorded.

The server (reading and sending a batch) and the scanner (parsing, classifying,
writing the registry) then work at the same time. One fetch at most is in flight, on
one thread, so the mailbox's connection is never used by two threads at once: the
caller starts the next fetch only when it does not itself use the connection
(deleting bounces, say) until ``take``.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Optional


class Prefetch:
    """``start(uids)`` a fetch in the background, ``take()`` its result (or its error)."""

    def __init__(self, fetch: Callable[[list[str]], dict]) -> None:
        self._fetch = fetch
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-fetch")
        self._next: Optional[Future] = None

    def __enter__(self) -> "Prefetch":
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True)    # a fetch in flight ends by the scan's deadline

    def start(self, uids: Optional[list[str]]) -> None:
        self._next = self._pool.submit(self._fetch, uids) if uids else None

    def take(self) -> dict:
        future, self._next = self._next, None
        return future.result() if future is not None else {}
