"""Attacks found by an independent review of issue 9 (SECURITY.md), on credentials:

* an account whose applied server the pull request's author controls is given another
  account's password (``{env: SMTP_NEWS_PASSWORD}``): `plan --verify` logged in there with
  it, since only the account, role, host and port were compared — now the secret must be
  one that account's last apply wrote;
* the project file's ``registry: {env: NAME}`` naming any of the runner's variables (a
  token, a password): its value was printed as the registry's URL;
* a saved plan file with a key given twice (a reader keeping the first sees another plan
  than the signed one) or a lone surrogate (an internal error): refused, nothing sent.
"""
from __future__ import annotations

import json
import socket
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from clihelpers import Cli, smtp_account

NEWS_PASSWORD = "news-real-password"
EVIL_PASSWORD = "evil-own-password"


class Recorder:
    def __init__(self):
        self.logins: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, server, session, envelope, mechanism, auth_data):
        with self.lock:
            self.logins.append(bytes(auth_data.password or b""))
        return AuthResult(success=True)


@pytest.fixture
def servers():
    """Two recording servers: the provider of `news`, and one the attacker runs."""
    started = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        recorder = Recorder()
        controller = Controller(object(), hostname="127.0.0.1", port=port,
                                authenticator=recorder, auth_require_tls=False)
        controller.start()
        started.append((port, recorder, controller))
    try:
        yield [(port, recorder) for port, recorder, _ in started]
    finally:
        for _, _, controller in started:
            controller.stop()


def _account(name: str, port: int, variable: str, **spec) -> dict:
    return smtp_account(name, smtp={"host": "127.0.0.1", "port": port, "security": "none",
                                    "password": {"env": variable}}, **spec)


def test_an_applied_server_gets_no_other_accounts_password(tmp_path, servers):
    (news_port, provider), (evil_port, attacker) = servers
    cli = Cli(tmp_path, env={"SMTP_NEWS": NEWS_PASSWORD, "SMTP_EVIL": EVIL_PASSWORD,
                             "MAILFORM_SECRET_ENV": "SMTP_*"})
    cli.write_accounts([_account("news", news_port, "SMTP_NEWS"),
                        _account("evil", evil_port, "SMTP_EVIL")])
    assert cli.apply().code == 0     # both applied: evil's server is its author's own
    cli.write_accounts([_account("news", news_port, "SMTP_NEWS"),
                        _account("evil", evil_port, "SMTP_NEWS")])     # the pull request
    planned = cli.plan("--verify", "--format", "json")
    assert NEWS_PASSWORD.encode() not in attacker.logins, attacker.logins
    assert attacker.logins == []
    (change,) = json.loads(planned.out)["resource_changes"]
    assert change["name"] == "evil"
    assert change["verification"]["smtp"]["credentials_sent"] is False
    # the same account, the same server and the same secret still log in
    cli.write_accounts([_account("news", news_port, "SMTP_NEWS", display_name="Renamed"),
                        _account("evil", evil_port, "SMTP_EVIL", display_name="Renamed")])
    cli.plan("--verify")
    assert provider.logins == [NEWS_PASSWORD.encode()]
    assert attacker.logins == [EVIL_PASSWORD.encode()]


PROJECT = """apiVersion: mailform/v1
kind: Project
metadata: {name: demo}
spec:
  environments:
    staging:
      registry: {env: VARIABLE}
"""


@pytest.mark.parametrize("value", ["ghp_TOKEN-VALUE-123", "/srv/plain/path.db"])
def test_a_project_registry_variable_must_hold_a_url_and_is_never_shown(tmp_path, value):
    cli = Cli(tmp_path, env={"MAILFORM_REGISTRY": None, "GITHUB_TOKEN": value})
    cli.write("mailform.yaml", PROJECT.replace("VARIABLE", "GITHUB_TOKEN"))
    cli.write_accounts([smtp_account("news")])
    for args in (("plan", "--environment", "staging"), ("state", "list", "--environment",
                                                        "staging")):
        result = cli.run(*args)
        assert result.code == 1, result
        assert value not in result.out + result.err
        assert "GITHUB_TOKEN, which does not hold a registry URL" in result.err


def test_a_project_registry_variable_holding_a_url_still_works(tmp_path):
    cli = Cli(tmp_path, env={"MAILFORM_REGISTRY": None,
                             "STAGING_REGISTRY": f"sqlite:///{tmp_path}/staging.db",
                             "NEWS_SMTP_PASSWORD": "pw"})
    cli.write("mailform.yaml", PROJECT.replace("VARIABLE", "STAGING_REGISTRY"))
    cli.write_accounts([smtp_account("news")])
    assert cli.apply("--environment", "staging").code == 0
    assert (tmp_path / "staging.db").exists()


@pytest.mark.parametrize("edit", ["first key", "last key", "lone surrogate"])
def test_a_plan_file_with_a_key_twice_or_unencodable_text_is_refused(tmp_path, servers, edit):
    (port, recorder), _ = servers
    cli = Cli(tmp_path, env={"SMTP_NEWS": NEWS_PASSWORD})
    cli.write_accounts([_account("news", port, "SMTP_NEWS")])
    assert cli.apply().code == 0
    cli.write_accounts([_account("news", port, "SMTP_NEWS", display_name="Renamed")])
    assert cli.plan("-o", "p.json").code == 0
    text = (tmp_path / "p.json").read_text()
    body = json.loads(text)
    if edit == "lone surrogate":
        body["payload"]["account.news"]["record"]["display_name"] = "\ud800"
        text = json.dumps(body)
    else:
        other = json.loads(json.dumps(body["payload"]))
        other["account.news"]["record"]["smtp"]["host"] = "attacker.example"
        extra = '"payload": ' + json.dumps(other)
        text = ("{" + extra + ", " + text.lstrip()[1:] if edit == "first key"
                else text.rstrip()[:-1] + ", " + extra + "}")
    (tmp_path / "p.json").write_text(text)
    recorder.logins.clear()
    result = cli.run("apply", "p.json", "--auto-approve")
    assert result.code == 1, result
    assert "cannot read the plan file" in result.err and "internal error" not in result.err
    assert recorder.logins == []
