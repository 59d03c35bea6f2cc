"""Shared fixtures.

`mailstack`: a real Postfix + Dovecot stack (devtools/mailstack.py), started
once per session.  Tests using it carry `@pytest.mark.mailstack`.  When the
stack cannot start (not root, packages missing) those tests are skipped —
except under CI=true, where the session fails with the stack's log tail.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@pytest.fixture(scope="session")
def mailstack():
    from devtools.mailstack import MailStack, MailStackError

    workdir = tempfile.mkdtemp(prefix="mailform-stack-")
    os.chmod(workdir, 0o755)  # postfix, dovecot and mail users must reach it
    stack = MailStack(workdir)
    try:
        stack.start()
    except (MailStackError, OSError) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        message = f"the local mail stack could not start: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)
