"""OAuth2 credentials without a mail server (issue 15): the refresh-token grant against
the test token endpoint (an HTTP server, no Dovecot), the cache, the errors, the SASL
mechanisms' bytes, ServerSettings from a spec, where credentials may go, import."""
from __future__ import annotations

import pytest

from devtools.oauthstack import CLIENT_ID, CLIENT_SECRET, TokenEndpoint
from reconciler.manifest.export import account_document, env_name
from reconciler.servers import (MECHANISMS, OAuth2Credential, SaslSession, ServerSettings,
                                TokenError, access_token, choose_mechanism, endpoint_refusal,
                                login_secret, servers_of, TokenFailure)
from reconciler.servers import oauth
from reconciler.workflow.destinations import Destinations, url_address


@pytest.fixture(scope="module")
def endpoint():
    running = TokenEndpoint(lifetime=3600).start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def empty_cache():
    oauth.forget()
    yield
    oauth.forget()


def cred(endpoint, user="alice@mailform.test", **changes):
    fields = dict(token_url=endpoint.token_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                  refresh_token=endpoint.grant(user), scope="mail")
    return OAuth2Credential(**{**fields, **changes})


def test_the_grant_gives_a_token_that_is_cached(endpoint):
    credential = cred(endpoint)
    before = endpoint.grants
    token = access_token(credential, 5)
    assert endpoint.introspect(token)["username"] == "alice@mailform.test"
    assert access_token(credential, 5) == token and endpoint.grants == before + 1
    oauth.forget(credential)
    assert access_token(credential, 5) != token and endpoint.grants == before + 2


def test_a_token_near_its_expiry_is_renewed(endpoint):
    credential = cred(endpoint)
    endpoint.lifetime = oauth.EARLY_REFRESH - 1       # already "shortly before expiry"
    try:
        first = access_token(credential, 5)
        assert access_token(credential, 5) != first
    finally:
        endpoint.lifetime = 3600


def test_a_server_that_wants_http_basic_gets_it(endpoint):
    endpoint.body_allowed = False
    try:
        assert access_token(cred(endpoint), 5)
    finally:
        endpoint.body_allowed = True


def test_a_public_client_sends_no_secret(endpoint):
    endpoint.clients["public-app"] = None
    credential = cred(endpoint, client_id="public-app", client_secret=None)
    assert access_token(credential, 5)


@pytest.mark.parametrize("change, error", [
    ({"client_secret": "wrong-Secret"}, "invalid_client"),
    ({"refresh_token": "1//unknown-refresh"}, "invalid_grant"),
    ({"refresh_token": ""}, "no_refresh_token"),
    ({"token_url": "http://login.example.com/token"}, "insecure_endpoint"),
])
def test_refusals_carry_the_endpoints_error_and_never_a_secret(endpoint, change, error):
    credential = cred(endpoint, **change)
    with pytest.raises(TokenError) as caught:
        access_token(credential, 5)
    assert caught.value.error == error
    for secret in credential.secrets():
        assert secret not in str(caught.value)


def test_an_unreachable_endpoint_is_transient(endpoint):
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    credential = cred(endpoint, token_url=f"http://127.0.0.1:{port}/token")
    with pytest.raises(TokenError) as caught:
        access_token(credential, 2)
    assert caught.value.error == "unreachable" and caught.value.transient


@pytest.mark.parametrize("url, refused", [
    ("https://login.microsoftonline.com/common/oauth2/v2.0/token", False),
    ("http://127.0.0.1:9/token", False), ("http://[::1]/t", False), ("http://localhost/t", False),
    ("http://oauth2.googleapis.com/token", True), ("https://user@evil.example/t", True),
    ("file:///etc/passwd", True),
])
def test_endpoint_refusal(url, refused):
    assert (endpoint_refusal(url) is not None) is refused


def test_login_secret_turns_refusals_into_sasl_errors(endpoint):
    settings = ServerSettings("smtp", "127.0.0.1", 587, username="alice@mailform.test",
                              oauth2=cred(endpoint, client_secret="bad-Secret"))
    with pytest.raises(TokenFailure) as caught:
        login_secret(settings)
    assert caught.value.error == "invalid_client" and "bad-Secret" not in str(caught.value)


# --- the SASL mechanisms --------------------------------------------------------------

def test_xoauth2_and_oauthbearer_bytes():
    xo = SaslSession("XOAUTH2", "a@example.com", "TOKEN")
    assert xo.initial() == b"user=a@example.com\x01auth=Bearer TOKEN\x01\x01"
    assert xo.respond(b'{"status":"401"}') == b""          # the error challenge: empty reply
    ob = SaslSession("OAUTHBEARER", "a,b=c@example.com", "TOKEN")
    assert ob.initial() == b"n,a=a=2Cb=3Dc@example.com,\x01auth=Bearer TOKEN\x01\x01"
    assert ob.respond(b'{"status":"invalid_token"}') == b"\x01"
    assert {"XOAUTH2", "OAUTHBEARER"} <= set(MECHANISMS)


def test_choose_mechanism_by_credential(endpoint):
    token_login = ServerSettings("imap", "h", 993, "ssl", oauth2=cred(endpoint))
    password_login = ServerSettings("imap", "h", 993, "ssl", secret="pw")
    offered = ["PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"]
    assert choose_mechanism(offered, token_login) == "OAUTHBEARER"
    assert choose_mechanism(["PLAIN", "XOAUTH2"], token_login) == "XOAUTH2"
    assert choose_mechanism(["PLAIN", "LOGIN"], token_login) is None
    assert choose_mechanism(offered, password_login) == "PLAIN"


def test_settings_never_show_oauth2_secrets(endpoint):
    credential = cred(endpoint)
    settings = ServerSettings("smtp", "h", 587, oauth2=credential)
    token = access_token(credential, 5)
    assert credential.refresh_token not in repr(settings)
    assert settings.redact(f"echo {token} {credential.refresh_token} {CLIENT_SECRET}") == \
        "echo (sensitive value) (sensitive value) (sensitive value)"


# --- ServerSettings from a spec ----------------------------------------------------------

SPEC = {"email": "office@example.com",
        "smtp": {"host": "smtp.office365.com", "port": 587, "security": "starttls",
                 "oauth2": {"token_url": "https://login.microsoftonline.com/x/oauth2/v2.0/token",
                            "client_id": "app", "scope": "s",
                            "refresh_token": {"env": "RT"}, "client_secret": {"env": "CS"}}},
        "inbox": {"protocol": "imap", "host": "outlook.office365.com", "port": 993,
                  "security": "ssl"}}


def test_servers_of_carries_the_credential_and_the_inbox_inherits_it():
    secrets = {"smtp.oauth2.refresh_token": "rt-value", "smtp.oauth2.client_secret": "cs-value"}
    servers = servers_of(SPEC, secrets)
    smtp, inbox = servers["smtp"].oauth2, servers["inbox"].oauth2
    assert smtp == inbox
    assert (smtp.token_url, smtp.client_id, smtp.scope) == (
        SPEC["smtp"]["oauth2"]["token_url"], "app", "s")
    assert (smtp.refresh_token, smtp.client_secret) == ("rt-value", "cs-value")
    assert servers["smtp"].secret is None


def test_servers_of_a_registry_record_without_the_refresh_token():
    record = {**SPEC, "smtp": {**SPEC["smtp"], "oauth2": {
        k: v for k, v in SPEC["smtp"]["oauth2"].items() if k in ("token_url", "client_id")}}}
    settings = servers_of(record, {})["smtp"]
    with pytest.raises(TokenFailure) as caught:
        login_secret(settings)
    assert caught.value.error == "no_refresh_token"


# --- where credentials may go (plan --verify) ---------------------------------------------

def _destinations(token_url, fingerprints, allow=()):
    return Destinations(applied={"office": {"smtp": ("smtp.office365.com", 587)}},
                        allow=allow, secrets={"office": fingerprints},
                        fingerprint=lambda path, value: f"fp:{value}",
                        token_endpoints={"office": {"smtp": url_address(token_url)}})


def test_the_token_endpoint_is_a_credential_destination():
    good = OAuth2Credential("https://login.microsoftonline.com/t", "app", "rt", "cs")
    settings = ServerSettings("smtp", "smtp.office365.com", 587, oauth2=good)
    applied = {"smtp.oauth2.refresh_token": "fp:rt", "smtp.oauth2.client_secret": "fp:cs"}
    assert _destinations("https://login.microsoftonline.com/other", applied).may_log_in(
        "office", "smtp", settings)
    moved = ServerSettings("smtp", "smtp.office365.com", 587,
                           oauth2=OAuth2Credential("https://evil.example/t", "app", "rt", "cs"))
    assert not _destinations(good.token_url, applied).may_log_in("office", "smtp", moved)
    assert _destinations(good.token_url, applied, ("evil.example",)).may_log_in(
        "office", "smtp", moved)
    other_token = ServerSettings("smtp", "smtp.office365.com", 587,
                                 oauth2=OAuth2Credential(good.token_url, "app", "other-rt", "cs"))
    assert not _destinations(good.token_url, applied).may_log_in("office", "smtp", other_token)


# --- import ---------------------------------------------------------------------------------

def test_import_prints_oauth2_with_env_references():
    record = {"type": "smtp", "email": "office@example.com", "display_name": "O", "shared": True,
              "smtp": {k: v for k, v in SPEC["smtp"].items() if k != "oauth2"}}
    record["smtp"]["oauth2"] = {"token_url": "https://t.example/token", "client_id": "app"}
    doc = account_document("office", record, ["smtp.oauth2.refresh_token",
                                              "smtp.oauth2.client_secret"])
    oauth2 = doc["spec"]["smtp"]["oauth2"]
    assert list(oauth2) == ["token_url", "client_id", "client_secret", "refresh_token"]
    assert oauth2["refresh_token"] == {"env": "MAILFORM_OFFICE_SMTP_OAUTH2_REFRESH_TOKEN"}
    assert env_name("office", "proxy_password") == "MAILFORM_OFFICE_PROXY_PASSWORD"


def test_concurrent_logins_share_one_grant(endpoint):
    from concurrent.futures import ThreadPoolExecutor
    credential = cred(endpoint)
    before = endpoint.grants
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: access_token(credential, 5), range(8)))
    assert len(tokens) == 1 and endpoint.grants == before + 1


def test_commands_start_without_the_oauth_http_client():
    """authlib and requests are imported when a token is fetched, not by every command
    that can reach the SASL helper (about 0.15 s of start-up each)."""
    import subprocess
    import sys
    code = ("import sys, reconciler.cli.cmd_plan, reconciler.servers, reconciler.verify; "
            "print(sorted(m for m in ('authlib', 'requests') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
