"""Which git commit a reconcile pass runs from, and whether that checkout is stale.

Every apply records the manifests' digest; a pass from a git checkout also
records the checkout's commit (history entry field ``commit``). A pass whose
commit is an ancestor of the commit of the last apply that recorded one — or
that does not know that commit at all (not fetched yet) — is from a stale
checkout and refuses to apply, so two workers on checkouts of different ages
never undo each other. The check runs under the registry lock, just before
planning, so no other apply can slip in between.
"""
from __future__ import annotations

import os
import subprocess
from typing import Iterable, Optional

from ..errors import MailformError

GIT_TIMEOUT = 10


class StaleCheckoutError(MailformError):
    """The manifests come from a commit older than the one last applied."""


def _git(cwd: str, *args: str) -> Optional[subprocess.CompletedProcess]:
    try:
        return subprocess.run(["git", "-C", cwd, *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None


def _folder(paths: Iterable[str]) -> str:
    first = next(iter(paths), ".") or "."
    return first if os.path.isdir(first) else os.path.dirname(os.path.abspath(first))


def commit_of(paths: Iterable[str]) -> Optional[str]:
    """The commit checked out where the first manifest path lies (None: not in git)."""
    done = _git(_folder(paths), "rev-parse", "--verify", "HEAD")
    if done is None or done.returncode != 0:
        return None
    return done.stdout.strip() or None


def last_applied_commit(history: list[dict]) -> Optional[str]:
    for entry in reversed(history):
        if entry.get("commit"):
            return entry["commit"]
    return None


def is_stale(paths: Iterable[str], ours: str, last: str) -> Optional[str]:
    """Why the checkout at ``ours`` must not apply over ``last`` (None: it may)."""
    if ours == last:
        return None
    folder = _folder(paths)
    known = _git(folder, "cat-file", "-e", f"{last}^{{commit}}")
    if known is None or known.returncode != 0:
        return (f"the last apply came from commit {last[:12]}, which this checkout "
                f"({ours[:12]}) does not have: fetch and update the checkout")
    ancestor = _git(folder, "merge-base", "--is-ancestor", ours, last)
    if ancestor is not None and ancestor.returncode == 0:
        return (f"this checkout's commit {ours[:12]} is older than the last applied "
                f"commit {last[:12]}: update the checkout")
    return None


def refuse_if_stale(paths: Iterable[str], ours: Optional[str], history: list[dict]) -> None:
    """Raise ``StaleCheckoutError`` when the checkout is behind the last apply."""
    last = last_applied_commit(history)
    if ours is None or last is None:
        return
    why = is_stale(list(paths), ours, last)
    if why:
        raise StaleCheckoutError(f"stale checkout: {why}; nothing was applied")
