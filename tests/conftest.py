"""Shared fixtures.

`mailstack`: a real Postfix + Dovecot stack (devtools/mailstack.py), started
once per session — under pytest-xdist once per worker, each on free ports of its
own (the stacks take turns to pick ports and to register in /etc/postfix/main.cf;
see devtools/mailstack.py).  When the stack cannot start (not root, packages
missing) the tests that use it are skipped — except under CI=true, where the
session fails with the stack's log tail.

The `mailstack` marker follows the fixture: every test whose fixtures need the
stack (directly or through another fixture) gets the marker here, so
`pytest -m "not mailstack"` leaves out exactly those.  A test that needs no
server (a fake socket server, a closed port, pure parsing) must not carry the
marker — it would be deselected with the stack; such tests are named in a
warning at collection — an error under CI=true or MAILFORM_STRICT_MARKERS=1.
A test that starts a stack of its own, without the fixture, says so:
``@pytest.mark.mailstack(own_stack=True)``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


MARKER = "mailstack"


@pytest.hookimpl(tryfirst=True)     # before `-m` deselects anything
def pytest_collection_modifyitems(config, items):
    wrongly_marked = []
    for item in items:
        marker = item.get_closest_marker(MARKER)
        needs_stack = MARKER in getattr(item, "fixturenames", ())
        if needs_stack and marker is None:
            item.add_marker(MARKER)
        elif not needs_stack and marker is not None and not marker.kwargs.get("own_stack"):
            wrongly_marked.append(item.nodeid)
    if wrongly_marked:
        message = (f"{len(wrongly_marked)} test(s) marked {MARKER} use no mail stack; "
                   f"`-m 'not {MARKER}'` would deselect them: " + ", ".join(wrongly_marked))
        if os.environ.get("MAILFORM_STRICT_MARKERS") == "1" or \
                os.environ.get("CI", "").lower() == "true":
            raise pytest.UsageError(message)
        config.issue_config_time_warning(pytest.PytestWarning(message), stacklevel=2)


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


@pytest.fixture(scope="session", autouse=True)
def offline_dns():
    """Every DNS lookup mailform makes in a test goes to a local server (see
    tests/dnsstub.py) unless the test sets MAILFORM_DNS_SERVER itself."""
    from dnsstub import NxdomainServer

    if os.environ.get("MAILFORM_DNS_SERVER"):
        yield None
        return
    server = NxdomainServer().start()
    os.environ["MAILFORM_DNS_SERVER"] = server.address
    try:
        yield server
    finally:
        os.environ.pop("MAILFORM_DNS_SERVER", None)
        server.stop()

