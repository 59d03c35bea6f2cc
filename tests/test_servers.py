"""reconciler.servers: settings derived from the model, the one SASL client, redaction.

The unit tests need no server. The mail-stack tests hold the bug this module
exists for: an account whose password is not ASCII verifies (SMTP, IMAP,
POP3), is scanned, and relays through the proxy to the real Postfix.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import smtplib
import uuid
from dataclasses import replace
from email.message import EmailMessage

import pytest

from reconciler.model import API_VERSION, EmailAccount, InboxSettings, SmtpSettings
from reconciler.servers import (MECHANISMS, PREFERENCE, REDACTED, NoCommonMechanism, SaslError,
                                SaslSession, ServerSettings, ServerSettingsError,
                                choose_mechanism, imap_authenticate, pop3_authenticate, redact,
                                redact_auth_line, servers_for, servers_of, smtp_authenticate)

UMLAUT = "pässwörd-ü"
PLAIN_U = base64.b64encode(f"\0u\0{UMLAUT}".encode()).decode()   # AUTH PLAIN as "u"


def account_doc(email="news@example.com", smtp=None, inbox=None) -> dict:
    spec = {"type": "smtp", "email": email, "display_name": "News", "shared": True}
    spec["smtp"] = smtp if smtp is not None else {
        "host": "smtp.example.com", "port": 587, "security": "starttls",
        "password": {"env": "SMTP_PW"}}
    if inbox is not None:
        spec["inbox"] = inbox
    return {"apiVersion": API_VERSION, "kind": "EmailAccount", "metadata": {"name": "news"},
            "spec": spec}


def registry_form(account: EmailAccount) -> dict:
    """What apply stores: the spec without secrets, with the labels."""
    spec = account.spec.model_dump()
    for section in ("smtp", "inbox"):
        if spec.get(section):
            spec[section].pop("password", None)
    spec["labels"] = {}
    return spec


IMAP_INBOX = {"protocol": "imap", "host": "imap.example.com", "port": 993, "security": "ssl"}


# --------------------------------------------------------------------------- derivation

def test_defaults_are_the_models():
    account = EmailAccount.model_validate(account_doc(inbox=dict(IMAP_INBOX)))
    servers = servers_of(registry_form(account), {"smtp.password": "pw"})
    smtp, inbox = servers["smtp"], servers["inbox"]
    assert smtp.authenticate is SmtpSettings.model_fields["authenticate"].default
    assert smtp.verify_certificate is SmtpSettings.model_fields["verify_certificate"].default
    assert inbox.verify_certificate is InboxSettings.model_fields["verify_certificate"].default
    # the model's own fill-ins: user names, the folder, the inbox password
    assert (smtp.username, inbox.username) == (account.spec.smtp.username,
                                               account.spec.inbox.username)
    assert smtp.username == "news@example.com" and smtp.mail_from == "news@example.com"
    assert inbox.folder == account.spec.inbox.folder
    assert inbox.secret == "pw" and smtp.secret == "pw"


def test_manifest_and_registry_forms_give_the_same_servers():
    doc = account_doc(inbox=dict(IMAP_INBOX, password={"env": "IN_PW"}, username="box",
                                 folder="Bounces", verify_certificate=False))
    account = EmailAccount.model_validate(doc)
    secrets = {"smtp.password": "one", "inbox.password": "two"}
    from_manifest = servers_for(account, secrets)
    from_registry = servers_of(registry_form(account), secrets)
    assert from_manifest == from_registry
    inbox = from_registry["inbox"]
    assert (inbox.username, inbox.folder, inbox.verify_certificate) == ("box", "Bounces", False)
    assert inbox.secret == "two" and from_registry["smtp"].secret == "one"


def test_options_and_pop3():
    spec = {"email": "a@example.com",
            "inbox": {"protocol": "pop3", "host": "h", "port": 995, "security": "ssl"}}
    (role, inbox), = servers_of(spec, {"inbox.password": "pw"}, timeout=7,
                                ca_file="/ca.pem").items()
    assert role == "inbox" and inbox.kind == "pop3" and inbox.protocol == "pop3"
    assert (inbox.timeout, inbox.ca_file, inbox.trust_file()) == (7, "/ca.pem", "/ca.pem")
    assert servers_of({"email": "m@example.com", "type": "marketing"}, {}) == {}


def test_unauthenticated_smtp_and_no_secret():
    spec = {"email": "a@example.com",
            "smtp": {"host": "h", "port": 25, "security": "none", "authenticate": False}}
    smtp = servers_of(spec, {})["smtp"]
    assert smtp.authenticate is False and smtp.secret is None


def test_a_spec_that_describes_no_server_names_fields_never_values():
    spec = {"email": "a@example.com", "smtp": {"host": "h", "port": 0, "security": "tls"},
            "inbox": {"protocol": "imap", "host": "h", "port": 993, "security": "ssl"}}
    with pytest.raises(ServerSettingsError) as info:
        servers_of(spec, {"smtp.password": "hunter22"})
    text = str(info.value)
    assert "spec.smtp.port" in text and "spec.smtp.security" in text
    assert "hunter22" not in text


def test_the_secret_stays_out_of_repr_and_comparisons():
    one = ServerSettings("smtp", "h", 587, secret=UMLAUT)
    assert UMLAUT not in repr(one) and one == replace(one, secret="other")
    with pytest.raises(ValueError):
        ServerSettings("smtp", "h", 587, security="tls")
    with pytest.raises(ValueError):
        ServerSettings("nntp", "h", 119)


# --------------------------------------------------------------------------- SASL

def test_mechanism_choice():
    assert choose_mechanism(["login", "CRAM-MD5", "PLAIN"]) == "PLAIN"
    assert choose_mechanism(["CRAM-MD5", "LOGIN"]) == "LOGIN"
    assert choose_mechanism(["SCRAM-SHA-256", "CRAM-MD5"]) == "CRAM-MD5"
    assert choose_mechanism(["GSSAPI"]) is None and choose_mechanism([]) is None
    assert set(PREFERENCE) <= set(MECHANISMS)


def test_plain_is_utf8_and_sent_as_initial_response_or_on_the_first_challenge():
    session = SaslSession("plain", "ü@example.com", UMLAUT)
    assert session.mechanism == "PLAIN"
    assert session.initial() == "\0ü@example.com\0pässwörd-ü".encode("utf-8")
    deferred = SaslSession("PLAIN", "u", UMLAUT)
    assert deferred.initial(max_encoded=4) is None            # too long for the line
    assert deferred.respond(b"") == f"\0u\0{UMLAUT}".encode()
    with pytest.raises(SaslError):
        deferred.respond(b"more?")


def test_login_answers_each_challenge_in_utf8():
    session = SaslSession("LOGIN", "ü", UMLAUT)
    assert session.initial() is None
    assert session.respond(b"Username:") == "ü".encode()
    assert session.respond(b"Password:") == UMLAUT.encode()
    with pytest.raises(SaslError):
        session.respond(b"")


def test_cram_md5_rfc2195_example_and_utf8_key():
    session = SaslSession("CRAM-MD5", "tim", "tanstaaftanstaaf")
    assert session.initial() is None
    assert session.respond(b"<1896.697170952@postoffice.reston.mci.net>") == \
        b"tim b913a602c7eda7a495b4e6e7334d3890"
    utf8 = SaslSession("CRAM-MD5", "u", UMLAUT).respond(b"<1@x>")
    assert utf8 == b"u " + hmac.new(UMLAUT.encode(), b"<1@x>", hashlib.md5).hexdigest().encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FakeSmtp:
    """docmd() against a scripted server: records what the client sent."""

    def __init__(self, offered: str, script: list[tuple[int, bytes]]):
        self.esmtp_features = {"auth": offered}
        self.script, self.sent = list(script), []

    def docmd(self, cmd, args=""):
        self.sent.append(f"{cmd} {args}".strip())
        return self.script.pop(0)


def test_smtp_adapter_plain_login_and_cram():
    settings = ServerSettings("smtp", "h", 587, username="u", secret=UMLAUT)
    plain = FakeSmtp("LOGIN PLAIN", [(235, b"ok")])
    assert smtp_authenticate(plain, settings) == (235, b"ok")
    assert plain.sent == [f"AUTH PLAIN {PLAIN_U}"]
    login = FakeSmtp("LOGIN", [(334, b"VXNlcm5hbWU6"), (334, b"UGFzc3dvcmQ6"), (235, b"ok")])
    assert smtp_authenticate(login, settings)[0] == 235
    assert login.sent == ["AUTH LOGIN", b64(b"u"), b64(UMLAUT.encode())]
    cram = FakeSmtp("CRAM-MD5", [(334, base64.b64encode(b"<1@x>")), (535, b"no")])
    assert smtp_authenticate(cram, settings) == (535, b"no")
    with pytest.raises(NoCommonMechanism, match="GSSAPI"):
        smtp_authenticate(FakeSmtp("GSSAPI", []), settings)


def test_smtp_adapter_cancels_when_the_server_asks_too_much():
    server = FakeSmtp("PLAIN", [(334, b""), (501, b"cancelled")])
    with pytest.raises(SaslError):
        smtp_authenticate(server, ServerSettings("smtp", "h", 587, username="u", secret="p"))
    assert server.sent[-1] == "*"


class FakeImap:
    def __init__(self, capabilities):
        self.capabilities = tuple(capabilities)
        self.calls = []

    def authenticate(self, mechanism, callback):
        self.calls.append((mechanism, callback(b"")))
        return "OK", [b"done"]

    def login(self, user, password):
        self.calls.append(("LOGIN", user, password))
        return "OK", [b"done"]


def test_imap_adapter():
    settings = ServerSettings("imap", "h", 993, "ssl", username="u", secret=UMLAUT)
    imap = FakeImap(["IMAP4REV1", "AUTH=PLAIN", "AUTH=LOGIN"])
    assert imap_authenticate(imap, settings) == ("OK", [b"done"])
    assert imap.calls == [("PLAIN", f"\0u\0{UMLAUT}".encode())]
    ascii_only = FakeImap(["IMAP4REV1"])
    imap_authenticate(ascii_only, replace(settings, secret="plain-ascii"))
    assert ascii_only.calls == [("LOGIN", "u", "plain-ascii")]
    with pytest.raises(SaslError, match="non-ASCII"):
        imap_authenticate(FakeImap(["IMAP4REV1"]), settings)


class FakePop3:
    def __init__(self, script):
        self.script, self.sent = list(script), []

    def _shortcmd(self, line):
        self.sent.append(line)
        return self.script.pop(0)

    def user(self, name):
        self.sent.append(f"USER {name}")

    def pass_(self, secret):
        self.sent.append(f"PASS {secret}")
        return b"+OK logged in"


def test_pop3_adapter_auth_and_user_pass():
    settings = ServerSettings("pop3", "h", 995, "ssl", username="u", secret=UMLAUT)
    pop = FakePop3([b"+OK Logged in."])
    assert pop3_authenticate(pop, settings, {"SASL": ["PLAIN", "LOGIN"], "USER": []}) == \
        b"+OK Logged in."
    assert pop.sent == [f"AUTH PLAIN {PLAIN_U}"]
    login = FakePop3([b"+ VXNlcm5hbWU6", b"+ UGFzc3dvcmQ6", b"+OK"])
    pop3_authenticate(login, settings, {"SASL": ["LOGIN"]})
    assert login.sent == ["AUTH LOGIN", b64(b"u"), b64(UMLAUT.encode())]
    long = replace(settings, secret="x" * 300)
    deferred = FakePop3([b"+ ", b"+OK"])
    pop3_authenticate(deferred, long, {"SASL": ["PLAIN"]})
    assert deferred.sent[0] == "AUTH PLAIN" and len(deferred.sent) == 2   # RFC 5034: 255 max
    plain = FakePop3([])
    assert pop3_authenticate(plain, settings, {"USER": []}) == b"+OK logged in"
    assert plain.sent == ["USER u", f"PASS {UMLAUT}"]


# --------------------------------------------------------------------------- redaction

def test_redaction():
    assert redact(f"535 bad {UMLAUT}!", UMLAUT) == f"535 bad {REDACTED}!"
    assert redact("nothing to hide", None) == "nothing to hide"
    assert redact("nothing to hide", "") == "nothing to hide"     # empty: redacts nothing
    assert redact(None, UMLAUT) is None and redact("", UMLAUT) == ""
    assert redact("a b c", "b") == "a b c"                         # too short to hunt for
    assert redact("x one two", "one", "two") == f"x {REDACTED} {REDACTED}"
    settings = ServerSettings("smtp", "h", 25, secret="")
    assert settings.redact("text stays") == "text stays"


@pytest.mark.parametrize("line, expected", [
    ("AUTH PLAIN AHVAcA==", "AUTH PLAIN (redacted)"),
    ("a1 AUTHENTICATE PLAIN", "a1 AUTHENTICATE PLAIN"),
    ("dT1AcA==", "(redacted)"),
    ("PASS hunter2", "PASS (redacted)"),
    ("USER someone", "USER someone"),
])
def test_auth_line_redaction(line, expected):
    assert redact_auth_line(line) == expected


# --------------------------------------------------------------------------- real stack

MANIFEST_PASSWORD_ENV = "UMLAUT_PW"


@pytest.fixture(scope="module")
def umlaut(mailstack, tmp_path_factory):
    """A mailbox user whose password is not ASCII, an account using it for SMTP and the
    inbox, and a registry holding that account as apply writes it (proxy: true)."""
    from reconciler.manifest import account_secrets
    from reconciler.registry import open_registry
    from reconciler.registry.base import AccountWrite

    local = f"umlaut{uuid.uuid4().hex[:6]}"
    password = f"{UMLAUT}-{uuid.uuid4().hex[:6]}"
    email = mailstack.address(local)
    mailstack.add_user(local, password)
    smtp = {"host": "127.0.0.1", "port": mailstack.ports["submission"], "security": "starttls",
            "password": {"env": MANIFEST_PASSWORD_ENV}}
    inbox = {"protocol": "imap", "host": "127.0.0.1", "port": mailstack.ports["imaps"],
             "security": "ssl"}
    doc = account_doc(email=email, smtp=smtp, inbox=inbox)
    doc["spec"]["proxy"] = True
    account = EmailAccount.model_validate(doc)
    secrets = account_secrets(account, {MANIFEST_PASSWORD_ENV: password})
    url = f"sqlite:///{tmp_path_factory.mktemp('umlaut')}/reg.db"
    registry = open_registry(url)
    fingerprints = {"smtp.password": registry.fingerprint("smtp.password", password)}
    with registry.lock("test"), registry.transaction() as tx:
        tx.put_account(AccountWrite("news", "smtp", registry_form(account), secrets,
                                    fingerprints))
        tx.add_history({"actor": "test", "counts": {}, "changes": []})
    yield type("Umlaut", (), {"stack": mailstack, "local": local, "email": email,
                              "password": password, "account": account, "secrets": secrets,
                              "registry": registry, "url": url})
    registry.close()


@pytest.mark.mailstack
@pytest.mark.parametrize("kind, port, security", [
    ("imap", "imaps", "ssl"), ("imap", "imap", "starttls"),
    ("pop3", "pop3s", "ssl"), ("pop3", "pop3", "starttls")])
def test_non_ascii_account_verifies(umlaut, monkeypatch, kind, port, security):
    from reconciler.verify.accounts import check_items
    from reconciler.verify.runner import run_checks

    monkeypatch.setenv("MAILFORM_CA_FILE", umlaut.stack.ca_file)
    items = check_items(umlaut.account, umlaut.secrets)
    inbox = items[1].endpoint
    items[1] = replace(items[1], endpoint=replace(inbox, kind=kind, security=security,
                                                  port=umlaut.stack.ports[port]))
    results = run_checks(items, timeout=15, transcript=True)
    assert [(item.role, res.code) for item, res in zip(items, results)] == [
        ("smtp", "ok"), ("inbox", "ok")], [res.summary() for res in results]
    text = repr(results) + "".join(line for res in results for line in res.transcript)
    assert umlaut.password not in text


def _message(sender: str, to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@mailform.test>"
    msg.set_content("Relayed by the mailform proxy with a non-ASCII password.\n")
    return msg


def _submit(address, login: ServerSettings, msg: EmailMessage) -> None:
    """A mail client logging in to the proxy with the same UTF-8 SASL client."""
    with smtplib.SMTP(*address, timeout=20) as client:
        client.ehlo("client.test")
        assert smtp_authenticate(client, login)[0] == 235
        assert client.send_message(msg) == {}


@pytest.mark.mailstack
def test_non_ascii_account_relays_through_the_proxy_then_scans(umlaut, monkeypatch):
    from reconciler.bounces.scan import scan_account
    from reconciler.proxy.auth import AccountDirectory
    from reconciler.proxy.ratelimit import LimitSettings
    from reconciler.proxy.server import ProxyConfig, ProxyServer, ThreadedProxy
    from reconciler.registry import open_registry

    stack = umlaut.stack
    monkeypatch.setenv("MAILFORM_CA_FILE", stack.ca_file)
    config = ProxyConfig("127.0.0.1", 0, allow_plain_auth=True, hostname="proxy.test",
                         limits=LimitSettings(base_delay=0), upstream_timeout=15,
                         ca_file=stack.ca_file)
    directory = AccountDirectory(lambda: open_registry(umlaut.url))
    to_bob = _message(umlaut.email, stack.address("bob"), f"umlaut {uuid.uuid4().hex}")
    nobody = f"nobody-{uuid.uuid4().hex[:6]}@{stack.domain}"
    with ThreadedProxy(ProxyServer(config, directory)) as running:
        login = ServerSettings("smtp", *running.server.address, "none",
                               username=umlaut.email, secret=umlaut.password)
        _submit(running.server.address, login, to_bob)
        _submit(running.server.address, login, _message(umlaut.email, nobody, "to nobody"))
    directory.close()
    got = stack.wait_for_mail("bob", lambda m: m["Message-ID"] == to_bob["Message-ID"], 30)
    assert got["Subject"] == to_bob["Subject"]

    stack.wait_for_mail(umlaut.local, lambda m: nobody in m.as_string()
                        and m.get_content_type() == "multipart/report", 30)
    stored = umlaut.registry.account("news")
    for kind, port in (("imap", "imaps"), ("pop3", "pop3s")):
        inbox = servers_of(stored.spec, umlaut.registry.secrets("news"), timeout=15)["inbox"]
        inbox = replace(inbox, kind=kind, port=stack.ports[port])
        report = scan_account(umlaut.registry, "news", inbox, 100, False)
        assert report.ok, report.error
        assert report.bounces["hard"] >= 1 and nobody in report.unknown, report.to_dict()
