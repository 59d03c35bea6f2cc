"""Attack: a pull request points an applied account at the author's server and CI runs
`plan --verify`. The credentials must not go there: a connectivity-only check, and the
plan says so. Hosts the runner allows, and the account's applied server, get the login;
`apply` (reviewed manifests) logs in wherever the manifest says."""
from __future__ import annotations

import json
import socket
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from clihelpers import Cli, smtp_account
from reconciler.servers import ServerSettings
from reconciler.workflow.destinations import Destinations, allowed_hosts

PASSWORD = "the-real-pässword"


class Recorder:
    """An SMTP server that offers AUTH over plain text and remembers every login try."""

    def __init__(self):
        self.logins: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        with self.lock:
            self.logins.append((mechanism, bytes(auth_data.password or b"")))
        return AuthResult(success=False, handled=False)     # 535 at once


@pytest.fixture
def attacker():
    recorder = Recorder()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(object(), hostname="127.0.0.1", port=port, authenticator=recorder,
                            auth_require_tls=False, auth_exclude_mechanism=["LOGIN"])
    controller.start()
    try:
        yield port, recorder
    finally:
        controller.stop()


def _account(port: int, host: str = "127.0.0.1") -> dict:
    return smtp_account("news", smtp={"host": host, "port": port, "security": "none",
                                      "password": {"env": "NEWS_SMTP_PASSWORD"}})


@pytest.fixture
def cli(tmp_path, attacker):
    c = Cli(tmp_path, env={"NEWS_SMTP_PASSWORD": PASSWORD})
    c.write_accounts([_account(25, "smtp.example.com")])
    assert c.apply().code == 0          # applied (unverified) at the real provider
    return c


def test_plan_verify_sends_no_credentials_to_a_new_host(cli, attacker):
    port, recorder = attacker
    cli.write_accounts([_account(port)])
    planned = cli.plan("--verify", "--format", "json")
    body = json.loads(planned.out)
    (rc,) = body["resource_changes"]
    assert rc["verification"]["smtp"]["credentials_sent"] is False
    assert rc["verification"]["smtp"]["code"] == "ok"            # it was reached
    assert any("without logging in" in note for note in rc["notes"])
    assert recorder.logins == []
    human = cli.plan("--verify")
    assert "connectivity only: no login" in human.out and recorder.logins == []


def test_allowed_hosts_and_apply_log_in(cli, attacker):
    port, recorder = attacker
    cli.write_accounts([_account(port)])
    allowed = cli.plan("--verify", "--verify-allow-host", "127.0.0.*")
    assert allowed.code == 1 and recorder.logins, allowed        # logged in, and refused
    assert PASSWORD.encode() in recorder.logins[-1][1]
    recorder.logins.clear()
    from_env = cli.plan("--verify", env={"MAILFORM_VERIFY_ALLOW_HOSTS": "other.example, 127.0.0.1"})
    assert from_env.code == 1 and recorder.logins
    recorder.logins.clear()
    applied = cli.run("apply", "--auto-approve")          # reviewed: full verification
    assert recorder.logins, applied


def test_the_applied_server_gets_the_login_again(tmp_path, attacker):
    port, recorder = attacker
    cli = Cli(tmp_path, env={"NEWS_SMTP_PASSWORD": PASSWORD})
    cli.write_accounts([_account(port)])
    assert cli.run("apply", "--auto-approve", "--skip-verify").code == 0
    cli.write_accounts([smtp_account("news", display_name="Renamed",
                                     smtp={"host": "127.0.0.1", "port": port, "security": "none",
                                           "password": {"env": "NEWS_SMTP_PASSWORD"}})])
    cli.plan("--verify")
    assert recorder.logins and PASSWORD.encode() in recorder.logins[0][1]


def _settings(host: str, port: int) -> ServerSettings:
    return ServerSettings(kind="smtp", host=host, port=port, security="starttls")


def test_destinations_compare_role_host_and_port():
    class Stored:
        applied = {"smtp": {"host": "SMTP.Example.com.", "port": 587},
                   "inbox": {"host": "imap.example.com", "port": 993}}

    dest = Destinations.from_registry({"news": Stored()}, ["*.trusted.example"])
    assert dest.may_log_in("news", "smtp", _settings("smtp.example.com", 587))
    assert not dest.may_log_in("news", "smtp", _settings("smtp.example.com", 465))
    assert not dest.may_log_in("news", "smtp", _settings("imap.example.com", 993))   # role
    assert not dest.may_log_in("other", "smtp", _settings("smtp.example.com", 587))  # account
    assert dest.may_log_in("other", "smtp", _settings("mx.trusted.example", 25))
    assert not dest.may_log_in("other", "smtp", _settings("trusted.example.evil", 25))
    assert allowed_hosts(["a"], {"MAILFORM_VERIFY_ALLOW_HOSTS": " b , ,c"}) == ("a", "b", "c")
