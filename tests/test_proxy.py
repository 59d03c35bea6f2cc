"""`mailform proxy serve` (SPEC §7): the SMTP submission proxy.

Unit tests for the rules (who may log in, throttling, listen checks) and end
to end tests on the real stack, which is every account's upstream: a client
logs in to the proxy with an account's email and SMTP password, and the
message must arrive in the recipient's Dovecot mailbox.
"""
from __future__ import annotations

import base64
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

import pytest

import clihelpers
from reconciler.registry import open_registry
from reconciler.servers import ServerSettings
from reconciler.proxy.auth import AccountDirectory, may_log_in
from reconciler.proxy.ratelimit import LimitSettings, LoginLimiter, client_key
from reconciler.proxy.relay import RelayResult, relay_message
from reconciler.proxy.server import (ConfigError, ProxyConfig, ProxyServer, ThreadedProxy,
                                     check_config, failure_reply, is_loopback, parse_listen)

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- unit: rules


@pytest.mark.parametrize("type_, spec, status, allowed", [
    ("smtp", {"proxy": True, "smtp": {}}, {}, True),
    ("smtp", {"proxy": True, "smtp": {}}, {"activation": "active"}, True),
    ("smtp", {"proxy": True, "smtp": {}}, {"activation": "pending_activation"}, False),
    ("smtp", {"proxy": False, "smtp": {}}, {}, False),
    ("smtp", {"smtp": {}}, {}, False),
    ("smtp", {"proxy": "true", "smtp": {}}, {}, False),
    ("marketing", {"proxy": True}, {}, False),
])
def test_who_may_log_in(type_, spec, status, allowed):
    assert may_log_in(type_, spec, status) is allowed


class FakeRegistry:
    """Just what AccountDirectory reads; fingerprints are a keyed hash like the real one."""

    def __init__(self, accounts):
        self._accounts = accounts
        self.reads = 0

    def fingerprint(self, path, value):
        import hashlib
        return hashlib.sha256(f"key:{path}:{value}".encode()).hexdigest()

    def accounts(self):
        self.reads += 1
        return dict(self._accounts)

    def account(self, name):
        return self._accounts.get(name)

    def secrets(self, name):
        return {"smtp.password": "pw-" + name}

    def close(self):
        pass


def stored(reg, name, email, proxy=True, activation="active", password=None):
    return SimpleNamespace(
        name=name, type="smtp", status={"activation": activation},
        spec={"email": email, "proxy": proxy, "smtp": {"host": "h", "port": 587}},
        fingerprints={"smtp.password": reg.fingerprint("smtp.password", password or "pw-" + name)})


def directory_with(*specs, ttl=0.0, clock=time.monotonic):
    reg = FakeRegistry({})
    for kwargs in specs:
        reg._accounts[kwargs["name"]] = stored(reg, **kwargs)
    return reg, AccountDirectory(lambda: reg, ttl=ttl, clock=clock)


def test_directory_checks_email_password_and_rule():
    _, directory = directory_with(
        dict(name="ok", email="ok@example.com"),
        dict(name="noproxy", email="np@example.com", proxy=False),
        dict(name="pending", email="pend@example.com", activation="pending_activation"))
    assert directory.authenticate(b"ok@example.com", b"pw-ok").name == "ok"
    assert directory.authenticate(b"OK@Example.COM", b"pw-ok").name == "ok"   # address case
    assert directory.authenticate(b"ok@example.com", b"pw-wrong") is None
    assert directory.authenticate(b"ok", b"pw-ok") is None                     # name is not a login
    assert directory.authenticate(b"np@example.com", b"pw-noproxy") is None
    assert directory.authenticate(b"pend@example.com", b"pw-pending") is None
    assert directory.authenticate(b"nobody@example.com", b"pw-ok") is None
    assert directory.authenticate(b"ok@example.com", b"\xff\xfe") is None       # not UTF-8


def test_directory_same_email_on_two_accounts_picks_the_matching_password():
    _, directory = directory_with(dict(name="a", email="x@example.com", password="one"),
                                  dict(name="b", email="x@example.com", password="two"))
    assert directory.authenticate(b"x@example.com", b"two").name == "b"
    assert directory.authenticate(b"x@example.com", b"one").name == "a"


def test_directory_rereads_the_registry_after_ttl():
    now = [0.0]
    reg, directory = directory_with(dict(name="ok", email="ok@example.com"), ttl=2.0,
                                    clock=lambda: now[0])
    assert directory.authenticate(b"ok@example.com", b"pw-ok")
    reg._accounts["ok"] = stored(reg, "ok", "ok@example.com", proxy=False)
    assert directory.authenticate(b"ok@example.com", b"pw-ok")      # cached
    now[0] = 2.5
    assert directory.authenticate(b"ok@example.com", b"pw-ok") is None
    assert reg.reads == 2


def test_writes_to_one_sqlite_registry_take_turns_on_a_lock_of_the_process(tmp_path):
    """The proxy's connections to one SQLite file (logins, tags, the delivery log) queue on
    one lock of the process instead of sleeping in SQLite's busy handler; a PostgreSQL
    registry (row locks) is written to as it is."""
    from concurrent.futures import ThreadPoolExecutor
    from reconciler.proxy.auth import exclusive

    def overlap(registries) -> int:
        inside, most = [0], [0]

        def write(registry, n):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.02)
            inside[0] -= 1
            return n
        with ThreadPoolExecutor(6) as pool:
            done = list(pool.map(lambda n: exclusive(registries[n % 3], write, n), range(12)))
        assert done == list(range(12))
        return most[0]

    url = f"sqlite:///{tmp_path}/reg.db"
    registries = [open_registry(url) for _ in range(3)]
    try:
        assert overlap(registries) == 1
    finally:
        for registry in registries:
            registry.close()
    elsewhere = SimpleNamespace(store=SimpleNamespace(url="postgresql://db.example/mailform"))
    assert overlap([elsewhere] * 3) > 1


def test_limiter_slows_then_refuses_then_forgets():
    now = [100.0]
    limiter = LoginLimiter(LimitSettings(max_failures=3, window=60, base_delay=1, max_delay=3),
                           clock=lambda: now[0])
    assert limiter.retry_after("10.0.0.1") == 0
    assert [limiter.failure("10.0.0.1") for _ in range(3)] == [1, 2, 3]   # doubling, capped
    assert limiter.retry_after("10.0.0.1") == pytest.approx(60)
    assert limiter.retry_after("10.0.0.2") == 0                            # per address
    assert limiter.retry_after("::ffff:10.0.0.1") > 0                      # mapped IPv4
    now[0] += 61
    assert limiter.retry_after("10.0.0.1") == 0
    assert limiter.failures("10.0.0.1") == 0
    assert client_key("::ffff:127.0.0.1") == "127.0.0.1"


def test_listen_and_config_checks():
    assert parse_listen("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("2525", "host:", "host:99999", ":25"):
        with pytest.raises(ConfigError):
            parse_listen(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    check_config(ProxyConfig("127.0.0.1", 0, allow_plain_auth=True))
    with pytest.raises(ConfigError, match="loopback"):
        check_config(ProxyConfig("0.0.0.0", 0, allow_plain_auth=True))
    with pytest.raises(ConfigError, match="--tls-cert"):
        check_config(ProxyConfig("127.0.0.1", 0, implicit_tls=True))


@pytest.mark.parametrize("stage", ["connect", "tls", "greeting", "auth", "mail", "rcpt", "data",
                                   "account", "registry"])
def test_every_upstream_failure_is_a_451(stage):
    reply = failure_reply(RelayResult(False, stage, 550, "5.1.1 no such user"))
    assert reply.startswith("451 4.") and "\n" not in reply


def test_relay_to_a_closed_port_fails_at_connect_quickly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = relay_message(ServerSettings("smtp", "127.0.0.1", port, "none", secret="hunter2",
                                          timeout=5),
                           "a@example.com", ["b@example.com"], b"Subject: x\r\n\r\nx\r\n")
    assert not result.ok and result.stage == "connect"
    assert "hunter2" not in repr(result) and "hunter2" not in repr(
        ServerSettings("smtp", "h", 1, secret="hunter2"))


def test_registry_unavailable_is_a_temporary_failure_not_a_counted_one():
    from reconciler.errors import RegistryError

    class Broken(FakeRegistry):
        def accounts(self):
            raise RegistryError("database is gone")

    limiter = LoginLimiter(LimitSettings(max_failures=1, base_delay=0))
    server = ProxyServer(ProxyConfig("127.0.0.1", 0, allow_plain_auth=True, hostname="p.test"),
                         AccountDirectory(lambda: Broken({})), limiter)
    with ThreadedProxy(server) as running, client(running.server.address) as smtp:
        for _ in range(2):
            code, text = auth_plain(smtp, "x@example.com", "pw")
            assert code == 454 and b"Temporary" in text
    assert limiter.failures("127.0.0.1") == 0


def test_a_message_is_tagged_before_relaying_and_an_unwritable_registry_is_a_451():
    from reconciler.errors import RegistryError
    from reconciler.proxy.auth import ProxyAccount

    class Writable(FakeRegistry):
        sign = staticmethod(lambda purpose, data: "hmac-sha256:" + "ab" * 32)

        def record_sent(self, tag, account, recipients):
            self.recorded = (account, recipients)

    class ReadOnly(Writable):
        def record_sent(self, tag, account, recipients):
            raise RegistryError("the registry is read-only here")

    account = ProxyAccount("ok", "ok@example.com")
    data = b"From: ok@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    reg = Writable({})
    tagged = AccountDirectory(lambda: reg).tag(account, ["A@example.org"], data)
    assert tagged.startswith(b"Message-ID: <mf1.") and tagged.endswith(data)
    assert reg.recorded == ("ok", ["A@example.org"])
    with pytest.raises(RegistryError):
        AccountDirectory(lambda: ReadOnly({})).tag(account, ["a@example.org"], data)
    assert failure_reply(RelayResult(False, "registry", None, "x")).startswith("451 4.3.0")


# --------------------------------------------------------------------------- end to end

MANIFEST = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: {name}}}
spec:
  type: smtp
  email: {email}
  display_name: {name}
  shared: true
  proxy: {proxy}
  smtp: {{host: 127.0.0.1, port: {port}, security: starttls, password: {{env: {var}}}}}
"""


def mailform(args, env, check=True):
    proc = clihelpers.mailform(*args, env=env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"mailform {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def applied_world(mailstack, tmp, env: dict, users: dict, prefix: str,
                  no_proxy=()) -> SimpleNamespace:
    """``users`` (name -> (local part, password), already users of the stack) applied to
    ``env``'s registry as smtp accounts with ``proxy: true`` (false for ``no_proxy``)
    whose server is the stack's submission port; their passwords in ``env`` as
    ``{prefix}_{NAME}_PW``. The world the proxy's end-to-end tests use."""
    docs = []
    for name, (local, password) in users.items():
        var = f"{prefix}_{name.upper()}_PW"
        env[var] = password
        docs.append(MANIFEST.format(name=name, email=mailstack.address(local), var=var,
                                    proxy="false" if name in no_proxy else "true",
                                    port=mailstack.ports["submission"]))
    (tmp / "manifests").mkdir()
    (tmp / "manifests" / "accounts.yaml").write_text("---\n".join(docs))
    mailform(["apply", str(tmp / "manifests"), "--auto-approve"], env)
    return SimpleNamespace(stack=mailstack, env=env, url=env["MAILFORM_REGISTRY"],
                           users=users, tmp=tmp,
                           email=lambda n: mailstack.address(users[n][0]),
                           password=lambda n: users[n][1], local=lambda n: users[n][0])


@pytest.fixture(scope="module")
def world(mailstack, tmp_path_factory):
    """One registry with: alice (proxy), bob (proxy: false), carol (proxy, password changed
    later), down (proxy, upstream port closed after apply), pend (proxy, pending activation)."""
    tmp = tmp_path_factory.mktemp("proxy")
    suffix = uuid.uuid4().hex[:6]
    users = {"alice": ("alice", mailstack.user_password("alice")),
             "bob": ("bob", mailstack.user_password("bob"))}
    for name in ("carol", "down", "pend"):
        local, password = f"px{name}{suffix}", f"{name}-pw-{uuid.uuid4().hex}"
        mailstack.add_user(local, password)
        users[name] = (local, password)
    env = dict(os.environ, MAILFORM_CA_FILE=mailstack.ca_file, NO_COLOR="1",
               MAILFORM_REGISTRY=f"sqlite:///{tmp}/reg.db")
    env.pop("MAILFORM_MASTER_KEY", None)
    applied = applied_world(mailstack, tmp, env, users, "PX", no_proxy=("bob",))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    mailform(["registry", "set", "down", f"smtp.port={closed_port}"], env)
    registry = open_registry(env["MAILFORM_REGISTRY"])
    try:
        registry.set_status("pend", {"activation": "pending_activation"})
    finally:
        registry.close()
    return applied


@pytest.fixture
def proxy(world):
    """start(**config) → (host, port) of an in-process proxy on a free loopback port."""
    running = []

    def start(ttl=0.0, limits=None, clock=time.monotonic, **config):
        config.setdefault("allow_plain_auth", True)
        cfg = ProxyConfig("127.0.0.1", 0, limits=limits or LimitSettings(base_delay=0),
                          upstream_timeout=10, hostname="proxy.test",
                          ca_file=world.stack.ca_file, **config)
        directory = AccountDirectory(lambda: open_registry(world.url), ttl=ttl, clock=clock)
        threaded = ThreadedProxy(ProxyServer(cfg, directory))
        running.append((threaded, directory))
        return threaded.start()

    yield start
    for threaded, directory in running:
        threaded.stop()
        directory.close()


def message(world, sender, to, subject=None):
    msg = EmailMessage()
    msg["From"], msg["To"] = world.email(sender), world.email(to)
    msg["Subject"] = subject or f"proxy test {uuid.uuid4().hex}"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@mailform.test>"
    msg.set_content("Sent through the mailform proxy.\n")
    return msg


def client(address, tls=False, ca_file=None):
    host, port = address
    smtp = (smtplib.SMTP_SSL(host, port, timeout=20, context=ssl.create_default_context(
        cafile=ca_file)) if tls else smtplib.SMTP(host, port, timeout=20))
    smtp.ehlo("client.test")
    return smtp


def auth_plain(smtp, user, password):
    blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return smtp.docmd("AUTH", f"PLAIN {blob}")


def secrets_of(world):
    return [pw for _, pw in world.users.values()]


def assert_no_secret(world, text):
    for secret in secrets_of(world):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text


@pytest.mark.mailstack
def test_login_and_relay_arrives_in_the_mailbox(world, proxy, caplog):
    caplog.set_level("INFO", logger="mailform.proxy")
    address = proxy()
    msg = message(world, "alice", "bob")
    with client(address) as smtp:
        assert set(smtp.esmtp_features["auth"].split()) == {"PLAIN", "LOGIN"}
        smtp.login(world.email("alice"), world.password("alice"))
        refused = smtp.send_message(msg)
        assert refused == {}
    got = world.stack.wait_for_mail("bob", lambda m: m["Message-ID"] == msg["Message-ID"])
    assert got["Subject"] == msg["Subject"]
    text = caplog.text
    assert "login ok account=alice" in text and "relayed account=alice" in text
    assert_no_secret(world, text)


@pytest.mark.mailstack
def test_sender_must_be_the_account_email(world, proxy):
    address = proxy()
    with client(address) as smtp:
        smtp.login(world.email("alice"), world.password("alice"))
        code, text = smtp.mail(world.email("bob"))
        assert code == 553 and world.email("alice").encode() in text
        code, _ = smtp.mail(world.email("alice").upper())   # address case does not matter
        assert code == 250


@pytest.mark.mailstack
def test_bad_logins_all_get_the_same_535(world, proxy, caplog):
    caplog.set_level("INFO", logger="mailform.proxy")
    address = proxy(limits=LimitSettings(max_failures=50, base_delay=0))
    attempts = [
        (world.email("alice"), "not-the-password"),              # wrong password
        (world.email("bob"), world.password("bob")),             # proxy: false
        (world.email("pend"), world.password("pend")),           # pending activation
        ("nobody@mailform.test", world.password("alice")),       # unknown address
        ("alice", world.password("alice")),                      # account name, not email
    ]
    replies = set()
    with client(address) as smtp:
        for user, password in attempts:
            replies.add(auth_plain(smtp, user, password))
        assert smtp.mail(world.email("bob"))[0] == 530           # still not logged in
    assert len(replies) == 1
    (code, text), = replies
    assert code == 535 and b"5.7.8" in text
    assert caplog.text.count("login failed") == len(attempts)
    assert_no_secret(world, caplog.text)
    assert "not-the-password" not in caplog.text


@pytest.mark.mailstack
def test_auth_login_mechanism(world, proxy):
    address = proxy()
    with client(address) as smtp:
        smtp.user, smtp.password = world.email("alice"), world.password("alice")
        code, _ = smtp.auth("LOGIN", smtp.auth_login)
        assert code == 235


@pytest.mark.mailstack
def test_auth_refused_before_tls_without_allow_plain_auth(world, proxy):
    address = proxy(allow_plain_auth=False)
    with client(address) as smtp:
        assert not smtp.has_extn("auth")
        code, text = auth_plain(smtp, world.email("alice"), world.password("alice"))
        assert code == 530
        assert smtp.mail(world.email("alice"))[0] == 530


@pytest.mark.mailstack
def test_starttls_then_auth(world, proxy):
    cert = str(world.stack.certs["server"])
    address = proxy(allow_plain_auth=False, tls_cert=cert)
    msg = message(world, "alice", "bob")
    with client(address) as smtp:
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")
        code, text = auth_plain(smtp, world.email("alice"), world.password("alice"))
        assert code == 530 and b"STARTTLS" in text
        smtp.starttls(context=ssl.create_default_context(cafile=world.stack.ca_file))
        smtp.ehlo("client.test")
        assert smtp.has_extn("auth")
        smtp.login(world.email("alice"), world.password("alice"))
        smtp.send_message(msg)
    world.stack.wait_for_mail("bob", lambda m: m["Message-ID"] == msg["Message-ID"])


@pytest.mark.mailstack
def test_implicit_tls(world, proxy):
    cert = str(world.stack.certs["server"])
    address = proxy(allow_plain_auth=False, tls_cert=cert, implicit_tls=True)
    with client(address, tls=True, ca_file=world.stack.ca_file) as smtp:
        assert smtp.has_extn("auth") and not smtp.has_extn("starttls")
        assert smtp.login(world.email("alice"), world.password("alice"))[0] == 235


@pytest.mark.mailstack
def test_repeated_failures_are_slowed_then_refused(world, proxy, caplog):
    address = proxy(limits=LimitSettings(max_failures=3, window=600, base_delay=0.1,
                                         max_delay=5))
    took = []
    with client(address) as smtp:
        for _ in range(3):
            start = time.monotonic()
            assert auth_plain(smtp, world.email("alice"), "wrong")[0] == 535
            took.append(time.monotonic() - start)
        start = time.monotonic()
        code, text = auth_plain(smtp, world.email("alice"), world.password("alice"))
        refused_in = time.monotonic() - start
    assert took[0] >= 0.09 and took[1] >= 0.19 and took[2] >= 0.39     # 0.1, 0.2, 0.4
    assert code == 454 and b"4.7.0" in text                            # even the right password
    assert refused_in < 0.5                                            # not slowed by 0.8 more
    with client(address) as smtp:                                      # a new connection too
        assert auth_plain(smtp, world.email("alice"), world.password("alice"))[0] == 454


def _send_expecting_4xx(smtp, world, msg):
    """An upstream failure is a 4xx at the step it happened (MAIL when the session cannot
    open, RCPT or DATA later): the client keeps the message."""
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as info:
        smtp.send_message(msg)
    assert 400 <= info.value.smtp_code < 500
    return info.value.smtp_error.decode()


@pytest.mark.mailstack
def test_unreachable_upstream_gives_451(world, proxy, caplog):
    caplog.set_level("INFO", logger="mailform.proxy")
    address = proxy()
    msg = message(world, "down", "bob")
    with client(address) as smtp:
        smtp.login(world.email("down"), world.password("down"))
        text = _send_expecting_4xx(smtp, world, msg)
    assert text.startswith("4.4.1") and "connect" in text
    assert "upstream failure account=down" in caplog.text
    assert_no_secret(world, caplog.text)


@pytest.mark.mailstack
def test_password_changed_in_registry(world, proxy, caplog):
    """A `registry set` takes effect without restart: the old password no longer logs in,
    the new one does, and the upstream refusing it is a 451."""
    caplog.set_level("INFO", logger="mailform.proxy")
    now = [0.0]                                  # the directory's clock, moved by hand
    address = proxy(ttl=30.0, clock=lambda: now[0])
    with client(address) as smtp:
        assert smtp.login(world.email("carol"), world.password("carol"))[0] == 235
    new = f"changed-{uuid.uuid4().hex}"
    mailform(["registry", "set", "carol", f"smtp.password={new}"], world.env)
    now[0] += 31.0                               # the cached copy is now older than the ttl
    with client(address) as smtp:
        assert auth_plain(smtp, world.email("carol"), world.password("carol"))[0] == 535
        assert auth_plain(smtp, world.email("carol"), new)[0] == 235
        text = _send_expecting_4xx(smtp, world, message(world, "carol", "bob"))
    assert text.startswith("4.7.0") and "auth" in text
    assert new not in caplog.text
    assert_no_secret(world, caplog.text)


SERVE = [sys.executable, "-m", "reconciler", "proxy", "serve"]


def test_cli_serve_refuses_plain_auth_on_a_non_loopback_listener(tmp_path):
    env = dict(os.environ, MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/reg.db", NO_COLOR="1")
    refused = mailform(["proxy", "serve", "--listen", "0.0.0.0:0", "--allow-plain-auth"],
                       env, check=False)
    assert refused.returncode == 64 and "loopback" in refused.stderr
    assert not (tmp_path / "reg.db").exists()


@pytest.mark.mailstack
def test_cli_serve_end_to_end(world):
    proc = subprocess.Popen([*SERVE, "--listen", "127.0.0.1:0", "--allow-plain-auth",
                             "--auth-failure-delay", "0"], cwd=ROOT, env=world.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert found, line + proc.stderr.read() if proc.poll() is not None else line
        address = ("127.0.0.1", int(found.group(1)))
        msg = message(world, "alice", "bob")
        with client(address) as smtp:
            assert auth_plain(smtp, world.email("alice"), "wrong-password-xyz")[0] == 535
            smtp.login(world.email("alice"), world.password("alice"))
            smtp.send_message(msg)
        world.stack.wait_for_mail("bob", lambda m: m["Message-ID"] == msg["Message-ID"])
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "login failed" in err and "login ok account=alice" in err and "relayed" in err
    assert "wrong-password-xyz" not in err
    assert_no_secret(world, err + out)
