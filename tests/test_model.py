"""The models of SPEC §2: defaults, field rules, cross-field rules, helpers."""
from __future__ import annotations

import email_validator
import pytest
from hypothesis import given, settings, strategies as st
from pydantic import ValidationError

from reconciler import model
from reconciler.model import (CROSS_FIELD_RULES, SECRET_PATHS, AccountSpec, BouncePolicy,
                              EmailAccount, SecretRef, canonical_key_order, ignorable_paths,
                              is_valid_name, rule_violations, warnings_for)


def doc(**spec):
    body = {"type": "smtp", "email": "news@example.com", "display_name": "News", "shared": True,
            "smtp": {"host": "smtp.example.com", "port": 587, "security": "starttls",
                     "password": {"env": "PW"}}}
    body.update(spec)
    return {"apiVersion": "mailform/v1", "kind": "EmailAccount",
            "metadata": {"name": "news"}, "spec": body}


def test_defaults_follow_the_spec():
    account = EmailAccount.model_validate(doc(inbox={"protocol": "imap", "host": "imap.example.com",
                                                     "port": 993, "security": "ssl"}))
    spec = account.spec
    assert spec.smtp.username == "news@example.com"          # username defaults to spec.email
    assert spec.smtp.authenticate is True and spec.smtp.verify_certificate is True
    assert spec.inbox.username == "news@example.com"
    assert spec.inbox.password == spec.smtp.password          # inbox password: the smtp one
    assert spec.inbox.folder == "INBOX"
    assert spec.inbox.batch_size == 100 and spec.inbox.delete_bounces is False
    assert spec.proxy is False and spec.reply_to is None and spec.from_override is None
    assert spec.lifecycle.prevent_destroy is False and spec.lifecycle.ignore_changes == []
    assert account.name == "news" and account.metadata.labels == {}
    assert account.source is None


def test_pop3_inbox_has_no_default_folder():
    account = EmailAccount.model_validate(doc(inbox={"protocol": "pop3", "host": "pop.example.com",
                                                     "port": 995, "security": "ssl"}))
    assert account.spec.inbox.folder is None


def test_bounce_policy_defaults():
    policy = BouncePolicy.model_validate({"apiVersion": "mailform/v1", "kind": "BouncePolicy",
                                          "metadata": {"name": "default"}})
    assert (policy.spec.soft_bounce_limit, policy.spec.soft_bounce_window_days) == (3, 30)


@pytest.mark.parametrize("spec, loc", [
    ({"shared": "yes"}, ("spec", "shared")),                      # strict: no coercion
    ({"email": "not-an-address"}, ("spec", "email")),
    ({"display_name": ""}, ("spec", "display_name")),
    ({"colour": "blue"}, ("spec", "colour")),
    ({"type": "gmail"}, ("spec", "type")),
    ({"lifecycle": {"ignore_changes": ["smtp.port", "nope"]}}, ("spec", "lifecycle", "ignore_changes", 1)),
    ({"lifecycle": {"ignore_changes": ["lifecycle.prevent_destroy"]}},
     ("spec", "lifecycle", "ignore_changes", 0)),
    ({"smtp": {"host": "h", "port": "587", "security": "starttls"}}, ("spec", "smtp", "port")),
    ({"smtp": {"host": "h", "port": 0, "security": "starttls"}}, ("spec", "smtp", "port")),
    ({"smtp": {"host": "h", "port": 25, "security": "starttls", "password": "hunter2"}},
     ("spec", "smtp", "password")),
    ({"inbox": {"protocol": "imap", "host": "h", "port": 993, "security": "ssl", "batch_size": 10001}},
     ("spec", "inbox", "batch_size")),
])
def test_field_rules(spec, loc):
    with pytest.raises(ValidationError) as caught:
        EmailAccount.model_validate(doc(**spec))
    assert loc in [tuple(e["loc"]) for e in caught.value.errors()]


def test_literal_secret_is_not_echoed():
    with pytest.raises(ValidationError) as caught:
        SecretRef.model_validate("hunter2-unique-literal")
    assert "hunter2-unique-literal" not in str(caught.value.errors(include_input=False))


def test_secret_ref_describe():
    assert SecretRef(env="PW").describe() == "env PW"
    assert SecretRef(file="secrets/pw").describe() == "file secrets/pw"


@pytest.mark.parametrize("spec, loc", [
    ({"smtp": None}, ("spec", "smtp")),
    ({"type": "marketing"}, ("spec", "smtp")),
    ({"type": "marketing", "smtp": None, "proxy": True}, ("spec", "proxy")),
    ({"type": "marketing", "smtp": None, "inbox": {}}, ("spec", "inbox")),
    ({"shared": False}, ("spec", "owner")),
    ({"shared": False, "owner": ""}, ("spec", "owner")),
    ({"smtp": {"port": 587, "security": "ssl", "password": {"env": "X"}}}, ("spec", "smtp", "security")),
    ({"smtp": {"port": 25, "security": "ssl", "password": {"env": "X"}}}, ("spec", "smtp", "security")),
    ({"smtp": {"port": 465, "security": "starttls", "password": {"env": "X"}}}, ("spec", "smtp", "security")),
    ({"smtp": {"port": 465, "security": "none", "password": {"env": "X"}}}, ("spec", "smtp", "security")),
    ({"inbox": {"protocol": "imap", "port": 143, "security": "ssl"}}, ("spec", "inbox", "security")),
    ({"inbox": {"protocol": "pop3", "port": 110, "security": "ssl"}}, ("spec", "inbox", "security")),
    ({"inbox": {"protocol": "imap", "port": 993, "security": "starttls"}}, ("spec", "inbox", "security")),
    ({"inbox": {"protocol": "pop3", "port": 995, "security": "none"}}, ("spec", "inbox", "security")),
    ({"inbox": {"protocol": "pop3", "port": 995, "security": "ssl", "folder": "X"}},
     ("spec", "inbox", "folder")),
    ({"smtp": {"port": 587, "security": "starttls"}}, ("spec", "smtp", "password")),
    ({"smtp": {"port": 25, "security": "none", "authenticate": False},
      "inbox": {"protocol": "imap", "port": 993, "security": "ssl"}}, ("spec", "inbox", "password")),
])
def test_each_cross_field_rule(spec, loc):
    assert loc in [v[0] for v in rule_violations(doc(**spec))]


@pytest.mark.parametrize("spec", [
    {},
    {"smtp": {"port": 2525, "security": "starttls", "password": {"env": "X"}}},   # any other port
    {"smtp": {"port": 465, "security": "ssl", "password": {"env": "X"}}},
    {"smtp": {"port": 25, "security": "starttls", "authenticate": False}},
    {"shared": False, "owner": "alice@example.com"},
    {"type": "marketing", "smtp": None},
    {"inbox": {"protocol": "imap", "port": 143, "security": "starttls", "folder": "Bounces"}},
    {"inbox": {"protocol": "pop3", "port": 110, "security": "starttls", "password": {"file": "p"}}},
])
def test_no_violation_for_working_settings(spec):
    assert rule_violations(doc(**spec)) == []


@pytest.mark.parametrize("value", [None, "text", 3, [], {"spec": "x"}, {"spec": None}])
def test_rule_violations_tolerate_any_shape(value):
    assert rule_violations(value) == []


def test_cross_field_rules_are_listed():
    assert len(CROSS_FIELD_RULES) == 12
    assert any("unique" in rule for rule in CROSS_FIELD_RULES)


def test_warnings():
    account = EmailAccount.model_validate(doc(
        smtp={"host": "mail.example.com", "port": 25, "security": "none", "password": {"env": "X"},
              "verify_certificate": False}))
    paths = sorted(loc for loc, _ in warnings_for(account))
    assert paths == [("spec", "smtp", "security"), ("spec", "smtp", "verify_certificate")]
    quiet = EmailAccount.model_validate(doc(
        smtp={"host": "127.0.0.1", "port": 25, "security": "none", "password": {"env": "X"}}))
    assert warnings_for(quiet) == []
    no_auth = EmailAccount.model_validate(doc(
        smtp={"host": "relay.example.com", "port": 25, "security": "none", "authenticate": False}))
    assert warnings_for(no_auth) == []


def test_ignorable_paths_are_real_spec_paths():
    paths = ignorable_paths()
    assert {"display_name", "reply_to.name", "smtp.port", "inbox.batch_size"} <= paths
    assert not any(p == "lifecycle" or p.startswith("lifecycle.") for p in paths)
    assert "smtp.password.env" not in paths    # a secret reference is one value
    for path in SECRET_PATHS:
        assert path in paths


def test_canonical_key_order_covers_every_field():
    order = canonical_key_order()
    assert order[""] == ["apiVersion", "kind", "metadata", "spec"]
    assert order["spec:EmailAccount"] == list(AccountSpec.model_fields)
    assert order["spec:EmailAccount"][:3] == ["type", "email", "display_name"]
    assert order["smtp"][:3] == ["host", "port", "security"]
    assert order["password"] == ["env", "file"]


@pytest.mark.parametrize("name, ok", [("a", True), ("news-letter-2", True), ("a" * 63, True),
                                      ("a" * 64, False), ("-a", False), ("a-", False),
                                      ("A", False), ("a_b", False), ("", False)])
def test_names(name, ok):
    assert is_valid_name(name) is ok


# --- the email fast path gives the same verdicts as email_validator -------------

def slow_verdict(value: str) -> bool:
    local, _, domain = value.rpartition("@")
    probe = f"{local}@example.com" if domain.lower() == "localhost" else value
    try:
        email_validator.validate_email(probe, check_deliverability=False, test_environment=True,
                                       globally_deliverable=False)
    except email_validator.EmailNotValidError:
        return False
    return True


def fast_verdict(value: str) -> bool:
    try:
        model._check_email(value)
    except Exception:
        return False
    return True


LOCAL = st.text(alphabet=st.sampled_from(list("abcXYZ09.-_+!#'~\"@ é")), max_size=70)
DOMAIN = st.sampled_from(["example.com", "EXAMPLE.com", "localhost", "mail.example.org",
                          "ex--ample.com", "ab--cd.com", "-bad.com", "a..b.com", "x", "例え.jp",
                          "", "example.com.", "a" * 250 + ".com"])


@settings(max_examples=200, deadline=None)
@given(local=LOCAL, domain=DOMAIN)
def test_email_fast_path_keeps_the_verdicts(local, domain):
    model._GOOD_DOMAINS.update(
        {"example.com", "EXAMPLE.com", "localhost", "mail.example.org"})
    value = f"{local}@{domain}"
    assert fast_verdict(value) == slow_verdict(value), value


# --- OAuth2 logins, proxy_password, DKIM selector (issue 15) ----------------------

OAUTH2 = {"token_url": "https://login.example.com/oauth2/v2.0/token", "client_id": "app-1",
          "client_secret": {"env": "CS"}, "refresh_token": {"env": "RT"},
          "scope": "https://outlook.office.com/SMTP.Send offline_access"}


def oauth_smtp(**extra):
    return {"host": "smtp.example.com", "port": 587, "security": "starttls", "oauth2": OAUTH2,
            **extra}


def test_oauth2_is_the_alternative_to_a_password():
    account = EmailAccount.model_validate(doc(smtp=oauth_smtp()))
    assert account.spec.smtp.password is None
    assert account.spec.smtp.oauth2.refresh_token == SecretRef(env="RT")
    assert rule_violations(doc(smtp=oauth_smtp())) == []


def test_an_inbox_without_a_login_inherits_the_smtp_oauth2():
    inbox = {"protocol": "imap", "host": "imap.example.com", "port": 993, "security": "ssl"}
    account = EmailAccount.model_validate(doc(smtp=oauth_smtp(), inbox=inbox))
    assert account.spec.inbox.oauth2 == account.spec.smtp.oauth2
    assert account.spec.inbox.password is None
    assert rule_violations(doc(smtp=oauth_smtp(), inbox=inbox)) == []
    own = EmailAccount.model_validate(doc(smtp=oauth_smtp(), inbox={**inbox, "password": {"env": "I"}}))
    assert own.spec.inbox.oauth2 is None and own.spec.inbox.password == SecretRef(env="I")


@pytest.mark.parametrize("smtp, loc, fragment", [
    (oauth_smtp(password={"env": "PW"}), ("spec", "smtp", "oauth2"), "alternatives"),
    (oauth_smtp(authenticate=False), ("spec", "smtp", "oauth2"), "authenticate is false"),
    ({"host": "h.example.com", "port": 587, "security": "starttls"}, ("spec", "smtp", "password"),
     "or oauth2"),
])
def test_oauth2_cross_field_rules(smtp, loc, fragment):
    found = rule_violations(doc(smtp=smtp))
    assert [l for l, _ in found] == [loc] and fragment in found[0][1]


def test_proxy_password_rules():
    assert [l for l, _ in rule_violations(doc(smtp=oauth_smtp(), proxy=True))] == \
        [("spec", "proxy_password")]
    assert rule_violations(doc(smtp=oauth_smtp(), proxy=True,
                               proxy_password={"env": "PP"})) == []
    found = rule_violations(doc(proxy_password={"env": "PP"}))
    assert [l for l, _ in found] == [("spec", "proxy_password")] and "proxy: true" in found[0][1]


@pytest.mark.parametrize("url, ok", [
    ("https://login.microsoftonline.com/common/oauth2/v2.0/token", True),
    ("https://oauth2.googleapis.com/token", True),
    ("http://127.0.0.1:8080/token", True), ("http://localhost/token", True),
    ("http://[::1]:9/t", True), ("http://login.example.com/token", False),
    ("http://127.0.0.1.evil.example/token", False), ("ftp://x/token", False),
    ("https://", False), ("https://user@evil.example/x", False), ("token", False),
])
def test_token_url_is_https_or_loopback(url, ok):
    body = doc(smtp=oauth_smtp(oauth2={**OAUTH2, "token_url": url}))
    if ok:
        EmailAccount.model_validate(body)
        return
    with pytest.raises(ValidationError) as caught:
        EmailAccount.model_validate(body)
    assert "https://" in str(caught.value)


def test_oauth2_secrets_must_be_references():
    with pytest.raises(ValidationError) as caught:
        EmailAccount.model_validate(doc(smtp=oauth_smtp(oauth2={**OAUTH2, "refresh_token": "1//x"})))
    shown = str(caught.value.errors(include_input=False))
    assert "never a literal" in shown and "1//x" not in shown


def test_secret_fields_and_helpers():
    account = EmailAccount.model_validate(doc(
        smtp=oauth_smtp(), proxy=True, proxy_password={"env": "PP"},
        inbox={"protocol": "pop3", "host": "pop.example.com", "port": 995, "security": "ssl"}))
    paths = dict(model.secret_refs(account.spec))
    assert sorted(paths) == ["inbox.oauth2.client_secret", "inbox.oauth2.refresh_token",
                             "proxy_password", "smtp.oauth2.client_secret",
                             "smtp.oauth2.refresh_token"]
    dumped = model.without_secrets(account.spec.model_dump())
    assert dumped["smtp"]["oauth2"] == {"token_url": OAUTH2["token_url"], "client_id": "app-1",
                                        "scope": OAUTH2["scope"]}
    assert "proxy_password" not in dumped and "password" not in dumped["smtp"]
    assert set(SECRET_PATHS) < set(model.SECRET_FIELDS)


def test_dkim_selector():
    account = EmailAccount.model_validate(doc(dkim={"selector": "s2024._v1"}))
    assert account.spec.dkim.selector == "s2024._v1"
    for bad in ("", "a b", "-x", "x..y"):
        with pytest.raises(ValidationError):
            EmailAccount.model_validate(doc(dkim={"selector": bad}))
    assert "dkim.selector" in ignorable_paths()
