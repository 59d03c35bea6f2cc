"""OAuth2 logins against real servers (issue 15): Dovecot's oauth2 passdb validates the
tokens against the local token/introspection endpoint of devtools/oauthstack.py;
Postfix submission authenticates through Dovecot SASL."""
from __future__ import annotations

import imaplib
import json
import os
import shutil
import tempfile

import pytest

from reconciler.servers import (OAuth2Credential, SaslSession, ServerSettings, access_token,
                                imap_authenticate)
from reconciler.servers import oauth
from reconciler.verify.check import check
from tests.clihelpers import Cli

pytestmark = pytest.mark.mailstack(own_stack=True)


@pytest.fixture(scope="module")
def stack():
    from devtools.mailstack import MailStackError
    from devtools.oauthstack import OAuthStack

    workdir = tempfile.mkdtemp(prefix="mailform-oauth-")
    os.chmod(workdir, 0o755)
    stack = OAuthStack(workdir)
    try:
        stack.start()
    except (MailStackError, OSError) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the OAuth2 mail stack could not start: {exc}", pytrace=False)
        pytest.skip(f"the OAuth2 mail stack could not start: {exc}")
    yield stack
    stack.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def credential(stack, user="alice", **changes) -> OAuth2Credential:
    from devtools.oauthstack import CLIENT_ID, CLIENT_SECRET
    fields = dict(token_url=stack.endpoint.token_url, client_id=CLIENT_ID,
                  client_secret=CLIENT_SECRET, scope="mail",
                  refresh_token=stack.endpoint.grant(stack.address(user)))
    fields.update(changes)
    return OAuth2Credential(**fields)


def endpoints(stack, cred, user="alice") -> dict[str, ServerSettings]:
    common = dict(host="127.0.0.1", username=stack.address(user), oauth2=cred,
                  ca_file=stack.ca_file, timeout=15)
    return {"smtp": ServerSettings("smtp", port=stack.ports["submission"], security="starttls",
                                   mail_from=stack.address(user), **common),
            "imap": ServerSettings("imap", port=stack.ports["imaps"], security="ssl", **common),
            "pop3": ServerSettings("pop3", port=stack.ports["pop3s"], security="ssl", **common)}


def test_one_token_logs_in_over_smtp_imap_and_pop3(stack):
    cred = credential(stack)
    before = stack.endpoint.grants
    for kind, ep in endpoints(stack, cred).items():
        result = check(ep, timeout=15, mode="envelope" if kind == "smtp" else "login",
                       transcript=True)
        assert result.ok, (kind, result.summary(), stack.log_tail(10))
        token = oauth.cached_token(cred)
        assert token and all(token not in line for line in result.transcript)
        assert cred.refresh_token not in json.dumps(result.to_dict())
    assert stack.endpoint.grants == before + 1      # cached per process


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_both_mechanisms_against_dovecot(stack, mechanism):
    cred = credential(stack, "bob")
    ep = endpoints(stack, cred, "bob")["imap"]
    with imaplib.IMAP4("127.0.0.1", stack.ports["imap"], timeout=10) as client:
        session = SaslSession(mechanism, ep.username, access_token(cred, 10))
        typ, _ = client.authenticate(mechanism, session.respond)
        assert typ == "OK"


def test_imap_adapter_refuses_a_token_the_server_does_not_know(stack):
    cred = credential(stack)
    ep = endpoints(stack, cred)["imap"]
    oauth._CACHE[cred.cache_key()] = ("ya29.not-issued-by-the-endpoint", 1e18)
    with imaplib.IMAP4_SSL("127.0.0.1", stack.ports["imaps"],
                           ssl_context=ep.tls_context(), timeout=10) as client:
        with pytest.raises(imaplib.IMAP4.error):
            imap_authenticate(client, ep)
    assert oauth.cached_token(cred) is None          # a refused token is not used again


def test_a_revoked_refresh_token_fails_at_stage_token(stack):
    cred = credential(stack)
    stack.endpoint.revoke(cred.refresh_token)
    for kind, ep in endpoints(stack, cred).items():
        result = check(ep, timeout=10)
        assert (result.code, result.stage) == ("auth_failed", "token"), (kind, result)
        assert "invalid_grant" in result.reply_text and "revoked" in result.reply_text
        assert "sign in again" in result.hint
        assert cred.refresh_token not in json.dumps(result.to_dict())


def test_a_wrong_client_secret_is_invalid_client(stack):
    cred = credential(stack, client_secret="not-the-secret")
    result = check(endpoints(stack, cred)["smtp"], timeout=10)
    assert (result.code, result.stage) == ("auth_failed", "token")
    assert result.reply_text.startswith("token endpoint: invalid_client")
    assert "not-the-secret" not in json.dumps(result.to_dict())


MANIFEST = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: office}}
spec:
  type: smtp
  email: {user}
  display_name: Office
  shared: true
  smtp:
    host: 127.0.0.1
    port: {smtp}
    security: starttls
    oauth2:
      token_url: {token_url}
      client_id: {client_id}
      client_secret: {{env: OFFICE_CLIENT_SECRET}}
      refresh_token: {{env: OFFICE_REFRESH_TOKEN}}
      scope: mail
  inbox: {{protocol: {protocol}, host: 127.0.0.1, port: {port}, security: ssl}}
"""


def test_cli_verify_of_an_oauth2_account(stack, tmp_path):
    from devtools.oauthstack import CLIENT_ID, CLIENT_SECRET
    user = stack.address("alice")
    refresh = stack.endpoint.grant(user)
    cli = Cli(tmp_path, env={"MAILFORM_CA_FILE": stack.ca_file, "OFFICE_REFRESH_TOKEN": refresh,
                             "OFFICE_CLIENT_SECRET": CLIENT_SECRET})
    cli.write("manifests/office.yaml", MANIFEST.format(
        user=user, smtp=stack.ports["submission"], protocol="pop3", port=stack.ports["pop3s"],
        token_url=stack.endpoint.token_url, client_id=CLIENT_ID))
    done = cli.run("verify", "--format", "json", "--timeout", "15")
    assert done.code == 0, done.text
    results = json.loads(done.out)
    assert refresh not in done.text and CLIENT_SECRET not in done.text
    debugged = cli.run("debug", "office", "--timeout", "10")
    assert debugged.code == 0, debugged.text
    assert "login" in debugged.out and "The declared settings work" in debugged.out
    assert refresh not in debugged.text and CLIENT_SECRET not in debugged.text
    stack.endpoint.revoke(refresh)
    oauth.forget()
    failed = cli.run("verify", "--timeout", "15")
    assert failed.code == 1, failed.text
    assert "invalid_grant" in failed.text and refresh not in failed.text
    assert results
