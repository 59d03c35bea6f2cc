"""Running code under resource limits: the bounds of SECURITY.md are held by RLIMIT_AS and
generous wall-clock caps, never by fine timings.

* ``in_child(func, *args)``: ``func(*args)`` in a forked child whose address space may grow
  by at most ``headroom`` bytes and which is killed (SIGALRM) after ``seconds``; returns
  ``("ok", result)`` or ``("error", "Type: message")`` — a kill or a crash fails the test.
* ``mailform_limited(args, cwd, env)``: ``python -m reconciler ARGS`` as a process with
  RLIMIT_AS and a timeout.
"""
from __future__ import annotations

import math
import os
import pickle
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

REPO = Path(__file__).resolve().parent.parent.parent
HEADROOM = 768 * 2**20         # a child may grow by this much beyond what pytest holds
PROCESS_MEMORY = 1536 * 2**20  # address space of a whole mailform process
WALL = 30.0                    # seconds: generous; a linear run takes a fraction of it


def _address_space() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def in_child(func: Callable, *args: Any, headroom: int = HEADROOM,
             seconds: float = WALL) -> tuple[str, Any]:
    """``func(*args)`` in a forked child under RLIMIT_AS and a wall-clock alarm."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        _child(func, args, write_end, _address_space() + headroom, seconds)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        data = reader.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise AssertionError(f"the child was killed by {name} (limit: {seconds} s, "
                             f"{headroom // 2**20} MiB more address space)")
    assert data, f"the child died without an answer (status {status})"
    return pickle.loads(data)


def _child(func: Callable, args: tuple, write_end: int, memory: int, seconds: float) -> None:
    outcome: tuple[str, Any]
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(math.ceil(seconds))
        outcome = ("ok", func(*args))
    except BaseException as exc:   # noqa: BLE001 - reported to the parent as text
        outcome = ("error", f"{type(exc).__name__}: {exc}")
    try:
        payload = pickle.dumps(outcome)
    except Exception as exc:  # noqa: BLE001
        payload = pickle.dumps(("error", f"unpicklable result: {exc}"))
    view = memoryview(payload)
    while view:
        view = view[os.write(write_end, view):]
    os._exit(0)


def _limit_process(memory: int) -> Callable[[], None]:
    def apply() -> None:  # pragma: no cover - runs in the child
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    return apply


def mailform_limited(args: list[str], cwd: Path, env: Optional[Mapping[str, str]] = None,
                     memory: int = PROCESS_MEMORY, timeout: float = WALL,
                     ) -> subprocess.CompletedProcess:
    """``python -m reconciler ARGS`` under RLIMIT_AS ``memory`` and a ``timeout``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILFORM_")}
    base.update({"PYTHONPATH": str(REPO), "NO_COLOR": "1",
                 "MAILFORM_REGISTRY": f"sqlite:///{cwd}/.mailform/reg.db"})
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, env=base,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          preexec_fn=_limit_process(memory))


def no_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" not in text
