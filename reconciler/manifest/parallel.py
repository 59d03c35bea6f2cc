"""Parsing many manifest files at once, in worker processes.

Rendering stays in the calling process, in file order (the digest, the template
errors); the workers parse and validate each rendered file on its own and hand back
the documents of a clean file as a cache keeps them (``cached.Entry``), or None for
a file with a problem. The caller then plays the clean files back and parses the
others itself, in file order, so that every message, position and cross-file check
(duplicate names, a second BouncePolicy) is exactly that of a serial run.

``MAILFORM_JOBS``: the most worker processes (default: the idle CPUs, at most 4; 1 or
0: none). For `validate` the workers send back valid accounts' names, positions and
warnings only. Workers are forked, so only from a process without
other threads, and only for enough work to pay for them.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
from typing import Callable, Iterator, Optional, Sequence

MIN_FILES = 8                 # fewer files to parse: not worth a process
MIN_BYTES = 256 * 1024        # less text to parse: not worth a process
MAX_JOBS = 4

Parse = Callable[[tuple], Optional[list]]


def jobs(environ: Optional[dict] = None, lean: bool = False) -> int:
    """How many worker processes to use at most: MAILFORM_JOBS, else the idle CPUs (a busy
    machine gains nothing from more processes). For plan and apply, whose workers send
    whole models back, "idle" is judged by the 1-minute load average (cautious: it still
    counts work that ended a moment ago); for ``lean`` (validate), whose workers send back
    only names and positions, by what is running right now."""
    text = (environ if environ is not None else os.environ).get("MAILFORM_JOBS", "")
    if text.strip().isdigit():
        return int(text)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = _running_now() if lean else None
    if busy is None:
        busy = int(os.getloadavg()[0]) if hasattr(os, "getloadavg") else (cpus or 1) - 1
    return max(1, min(MAX_JOBS, (cpus or 1) - busy))


def _running_now() -> Optional[int]:
    """Other tasks running or runnable now (Linux: /proc/loadavg), or None."""
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            return max(0, int(handle.read().split()[3].split("/")[0]) - 1)
    except (OSError, ValueError, IndexError):
        return None


def worth_it(files: int, size: int, workers: int) -> bool:
    """Whether ``files`` files of ``size`` bytes in all are worth parsing in workers."""
    return workers > 1 and files >= MIN_FILES and size >= MIN_BYTES


def can_fork() -> bool:
    """Forking is safe only without other threads (one might hold a lock)."""
    return threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods()


def size_of(files: Sequence[str]) -> int:
    total = 0
    for name in files:
        try:
            total += os.stat(name).st_size
        except OSError:
            pass        # reported when it is read
    return total


def parse_all(items: Sequence[tuple], parse: Parse, pool) -> Iterator[Optional[list]]:
    """``parse`` of every item, in order, in ``pool``'s workers."""
    chunk = max(1, len(items) // (8 * pool._processes))
    return pool.imap(parse, items, chunksize=chunk)


def start_pool(workers: int):
    """A pool of forked workers (the caller closes it)."""
    return multiprocessing.get_context("fork").Pool(workers)
