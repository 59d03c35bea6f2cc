"""One bad password must not fail its neighbours (issue 15): Dovecot with its default
auth penalty (auth_failure_delay 2 s, the anvil penalty doubling up to 15 s) — the
OAuth2 stack started with ``auth_penalty=True``."""
from __future__ import annotations

import imaplib
import json
import os
import shutil
import socket
import tempfile
import threading
import time

import pytest

from reconciler.servers import ServerSettings
from reconciler.verify import results as r
from reconciler.verify.runner import DELAY_SEEN, CheckItem, delayed_logins, run_checks
from tests.clihelpers import Cli

pytestmark = pytest.mark.mailstack(own_stack=True)


@pytest.fixture(scope="module")
def stack():
    from devtools.mailstack import MailStackError
    from devtools.oauthstack import OAuthStack

    workdir = tempfile.mkdtemp(prefix="mailform-penalty-")
    os.chmod(workdir, 0o755)
    stack = OAuthStack(workdir, auth_penalty=True)
    try:
        stack.start()
    except (MailStackError, OSError) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the mail stack could not start: {exc}", pytrace=False)
        pytest.skip(f"the mail stack could not start: {exc}")
    yield stack
    stack.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def fail_logins(stack, times: int) -> None:
    """Failed logins from 127.0.0.1: Dovecot's penalty for the next login grows."""
    for number in range(times):
        with imaplib.IMAP4("127.0.0.1", stack.ports["imap"], timeout=30) as client:
            with pytest.raises(imaplib.IMAP4.error):
                client.login(stack.address("bob"), f"wrong-{number}")


def imap(stack, user: str, password: str) -> ServerSettings:
    return ServerSettings("imap", "127.0.0.1", stack.ports["imaps"], "ssl",
                          username=stack.address(user), secret=password, ca_file=stack.ca_file)


def test_a_wrong_password_does_not_time_out_the_good_accounts(stack):
    fail_logins(stack, 2)                      # the next login waits several seconds
    items = [CheckItem(imap(stack, "alice", stack.user_password("alice")), account="alice"),
             CheckItem(imap(stack, "bob", "not-bobs-password"), account="bob"),
             CheckItem(imap(stack, "full", stack.user_password("full")), account="full")]
    results = run_checks(items, concurrency=3, timeout=3)
    by_account = {res.account: res for res in results}
    assert by_account["bob"].code == r.AUTH_FAILED, by_account["bob"]
    for name in ("alice", "full"):
        res = by_account[name]
        assert res.ok, res
        if res.attempts > 1:                   # it timed out first, and says why
            assert DELAY_SEEN in res.hint
    assert any(DELAY_SEEN in (res.hint or "") for res in results), results


def test_cli_verify_timeout_3_with_one_wrong_password(stack, tmp_path):
    fail_logins(stack, 3)
    docs = []
    for name, user in (("alice", "alice"), ("bob", "bob"), ("full", "full")):
        docs.append(f"""\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: {name}}}
spec:
  type: smtp
  email: {stack.address(user)}
  display_name: {name}
  shared: true
  smtp: {{host: 127.0.0.1, port: {stack.ports['submission']}, security: starttls,
          password: {{env: PW_{name.upper()}}}}}
  inbox: {{protocol: imap, host: 127.0.0.1, port: {stack.ports['imaps']}, security: ssl}}
""")
    cli = Cli(tmp_path, env={"MAILFORM_CA_FILE": stack.ca_file,
                             "PW_ALICE": stack.user_password("alice"), "PW_BOB": "wrong-pw",
                             "PW_FULL": stack.user_password("full")})
    cli.write("manifests/accounts.yaml", "---\n".join(docs))
    done = cli.run("verify", "--timeout", "3", "--format", "json", timeout=180)
    assert done.code == 1, done.text
    results = json.loads(done.out)["results"]
    bad = [res for res in results if not res["ok"]]
    assert bad and {res["account"] for res in bad} == {"bob"}, bad
    assert all(res["code"] == "auth_failed" for res in bad)


def test_only_shared_servers_are_rechecked():
    timeout = r.CheckResult(code=r.TIMEOUT, stage="auth")
    refused = r.CheckResult(code=r.AUTH_FAILED, stage="auth")
    alone = CheckItem(ServerSettings("imap", "other.example", 993, "ssl"))
    shared = [CheckItem(ServerSettings("imap", "mail.example", 993, "ssl")),
              CheckItem(ServerSettings("pop3", "MAIL.example.", 995, "ssl")),
              CheckItem(ServerSettings("smtp", "mail.example", 465, "ssl"), mode="probe")]
    todo = [alone, *shared]
    assert delayed_logins(todo, [timeout, timeout, refused, timeout]) == [[1]]
    assert delayed_logins(todo, [timeout, refused, refused, timeout]) == []


class SilentAtLogin:
    """An IMAP server that greets, then never answers a login: a slow server, not a
    penalty. Runs in a thread on a free loopback port."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    @staticmethod
    def _talk(conn):
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] slow\r\n")
        try:
            for line in conn.makefile("rb"):
                tag, _, command = line.decode().partition(" ")
                if command.upper().startswith("CAPABILITY"):
                    conn.sendall(f"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n{tag} OK done\r\n"
                                 .encode())
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for conn in self.conns:
            conn.close()


def test_a_server_slow_for_everyone_is_rechecked_once_only(monkeypatch):
    from reconciler.verify import runner
    monkeypatch.setattr(runner, "LOGIN_DELAY_ALLOWANCE", 0.5)
    server = SilentAtLogin()
    try:
        items = [CheckItem(ServerSettings("imap", "127.0.0.1", server.port, "none",
                                          username=f"u{n}@example.com", secret="pw"))
                 for n in range(3)]
        started = time.monotonic()
        results = run_checks(items, concurrency=3, timeout=1)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert [(res.code, res.stage) for res in results] == [(r.TIMEOUT, "auth")] * 3
    assert DELAY_SEEN in results[0].hint and results[1].hint is None
    assert elapsed < 1 + 1.5 + 2          # one re-check, not three
