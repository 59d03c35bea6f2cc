"""A test driver: `apply --auto-approve --skip-verify` through the core workflow, pausing
inside the apply transaction (after every write, before the commit) until released.

    python tests/pausing_apply.py [MANIFEST PATHS…]

The pause is injected through the workflow's progress events (the ``writing`` event),
so production code carries no test hook. When paused it prints PAUSE_LINE on stderr and
waits for a line (or end of file) on stdin: `release` it, or kill it. Exits like
`mailform apply` (0 applied or nothing to do, 5 locked).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAUSE_LINE = "pausing inside the apply transaction"


def popen(cli, env: dict | None = None) -> subprocess.Popen:
    """Start the driver in ``cli``'s directory with its environment (plus ``env``)."""
    full = dict(cli.env, **(env or {}))
    return subprocess.Popen([sys.executable, str(Path(__file__))], cwd=cli.dir, env=full,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def release(proc: subprocess.Popen) -> None:
    """Let a paused (or not yet paused) driver go on: end of file on its stdin."""
    try:
        proc.stdin.close()
    except (BrokenPipeError, OSError):      # it is gone already
        pass


def main(paths: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from reconciler.errors import LockedError
    from reconciler.registry import open_registry
    from reconciler.workflow.inputs import Inputs, load
    from reconciler.workflow.run import ApplyRequest, AutoApprove, apply

    def pause(event) -> None:
        if event.kind == "writing":
            print(PAUSE_LINE, file=sys.stderr, flush=True)
            sys.stdin.readline()             # until the test releases us (or kills us)

    request = ApplyRequest(loaded=load(Inputs(tuple(paths))))
    try:
        with open_registry(os.environ["MAILFORM_REGISTRY"]) as registry:
            outcome = apply(registry, request, AutoApprove(), None, pause)
    except LockedError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return LockedError.exit_code
    print(outcome.status, outcome.result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
