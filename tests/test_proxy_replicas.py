"""Proxy replicas on one PostgreSQL registry (issue 12): behind a load balancer speaking
the PROXY protocol (v1 and v2), sharing one atomic failed-login throttle, picking up
registry changes through LISTEN/NOTIFY."""
from __future__ import annotations

import base64
import ipaddress
import os
import socket
import struct
import threading
import time
import uuid

import pytest

from test_proxy import applied_world
from test_proxy_stack import Served, arrived, mailform, message

PG_URL = os.environ.get("MAILFORM_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")


def _postgres() -> bool:
    try:
        import psycopg
        with psycopg.connect(PG_URL, connect_timeout=2):
            return True
    except Exception:  # noqa: BLE001
        return False


pytestmark = pytest.mark.skipif(not _postgres(), reason="no PostgreSQL server")


@pytest.fixture(scope="module")
def world(mailstack, tmp_path_factory):
    import psycopg
    from reconciler.registry.crypto import generate_key
    tmp = tmp_path_factory.mktemp("replicas")
    schema = f"px_{uuid.uuid4().hex[:10]}"
    suffix = uuid.uuid4().hex[:6]
    users = {"sender": (f"prsender{suffix}", f"rs-pw-{suffix}"),
             "reader": (f"prreader{suffix}", f"rr-pw-{suffix}")}
    for local, password in users.values():
        mailstack.add_user(local, password)
    env = dict(os.environ, MAILFORM_CA_FILE=mailstack.ca_file, NO_COLOR="1",
               MAILFORM_REGISTRY=f"{PG_URL}?schema={schema}", MAILFORM_MASTER_KEY=generate_key())
    yield applied_world(mailstack, tmp, env, users, "PR")
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def replicas(world):
    pair = [Served(world, "--proxy-protocol", "--allow-plain-auth", "--max-auth-failures", "5")
            for _ in range(2)]
    yield pair
    for one in pair:
        one.stop()


def proxy_v1(client_ip: str) -> bytes:
    return f"PROXY TCP4 {client_ip} 127.0.0.1 40000 25\r\n".encode()


def proxy_v2(client_ip: str) -> bytes:
    addresses = ipaddress.IPv4Address(client_ip).packed + ipaddress.IPv4Address("127.0.0.1").packed
    body = addresses + struct.pack("!HH", 40000, 25)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def login_once(address, header: bytes, user: str, password: str) -> int:
    """One connection: PROXY header, EHLO, AUTH PLAIN; the AUTH reply code."""
    with socket.create_connection(address, timeout=60) as sock:
        reader = sock.makefile("rb")
        sock.sendall(header)
        assert reader.readline().startswith(b"220")
        sock.sendall(b"EHLO client.test\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        sock.sendall(f"AUTH PLAIN {blob}\r\n".encode())
        code = int(reader.readline()[:3])
        sock.sendall(b"QUIT\r\n")
        return code


@pytest.mark.mailstack
def test_both_replicas_relay_and_see_the_client_address(world, replicas):
    for proxy, header in zip(replicas, (proxy_v1("198.51.100.1"), proxy_v2("198.51.100.2"))):
        assert login_once(proxy.address, header, world.email("sender"),
                          world.password("sender")) == 235
    import smtplib
    msg = message(world, "sender", world.email("reader"))
    with socket.create_connection(replicas[1].address) as sock:
        sock.sendall(proxy_v2("198.51.100.3"))
        smtp = smtplib.SMTP()
        smtp.sock, smtp.file = sock, None
        assert smtp.getreply()[0] == 220
        smtp.ehlo("client.test")
        smtp.login(world.email("sender"), world.password("sender"))
        assert smtp.send_message(msg) == {}
        smtp.quit()
    assert arrived(world, "reader", msg["Subject"]) == 1
    errs = [proxy.stop()[1] for proxy in replicas]
    assert "client=198.51.100.1" in errs[0] and "client=198.51.100.2" in errs[1]
    assert "client=198.51.100.3" in errs[1] and "notified (LISTEN/NOTIFY)" in errs[0]


@pytest.mark.mailstack
def test_200_simultaneous_wrong_logins_across_two_replicas_check_at_most_the_limit(
        world, replicas):
    header = proxy_v1("203.0.113.77")
    codes: list[int] = []
    lock = threading.Lock()

    def attempt(index: int) -> None:
        code = login_once(replicas[index % 2].address, header, world.email("sender"),
                          f"wrong-{index}")
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(codes) == 200
    assert codes.count(535) <= 5 and codes.count(535) + codes.count(454) == 200
    # the right password is refused too now, on both replicas; another address is not
    for proxy in replicas:
        assert login_once(proxy.address, header, world.email("sender"),
                          world.password("sender")) == 454
    assert login_once(replicas[0].address, proxy_v1("203.0.113.78"), world.email("sender"),
                      world.password("sender")) == 235


@pytest.mark.mailstack
def test_a_password_change_reaches_both_replicas_by_notification(world, replicas):
    new = f"changed-{uuid.uuid4().hex}"
    mailform(["registry", "set", "reader", f"smtp.password={new}"], world.env)
    deadline, attempt = time.monotonic() + 10, 0
    for proxy in replicas:
        while True:
            attempt += 1        # a new address each time: failures are throttled per address
            header = proxy_v1(f"192.0.2.{attempt}")
            if login_once(proxy.address, header, world.email("reader"), new) == 235:
                break
            assert time.monotonic() < deadline, "the change was not picked up"
            time.sleep(0.2)
    for proxy in replicas:
        assert "notified (LISTEN/NOTIFY)" in proxy.stop()[1]


@pytest.fixture
def pg_url():
    import psycopg
    from reconciler.registry.crypto import generate_key
    schema = f"px_{uuid.uuid4().hex[:10]}"
    old = os.environ.get("MAILFORM_MASTER_KEY")
    os.environ["MAILFORM_MASTER_KEY"] = generate_key()
    yield f"{PG_URL}?schema={schema}"
    if old is None:
        os.environ.pop("MAILFORM_MASTER_KEY")
    else:
        os.environ["MAILFORM_MASTER_KEY"] = old
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_the_watcher_hears_a_serial_bump_at_once(pg_url):
    from reconciler.proxy.auth import ChangeWatcher
    from reconciler.registry import open_registry
    open_registry(pg_url).close()
    watcher = ChangeWatcher(lambda: open_registry(pg_url))
    assert watcher.start()
    try:
        assert not watcher.quiet()         # the first question always reads
        _heard_a_change(watcher, pg_url)
    finally:
        watcher.stop()


def _heard_a_change(watcher, pg_url: str) -> None:
    """Quiet (listening, and nothing happened since), then not, once the serial moved."""
    from reconciler.registry import open_registry
    _until(watcher.quiet, 15, "never quiet")  # (listening may take a moment on a busy box)
    registry = open_registry(pg_url)
    with registry.store.write() as cur:
        registry.history_log.bump_serial(cur)
    registry.close()
    _until(lambda: not watcher.quiet(), 5, "no notification")


def _until(predicate, seconds: float, why: str) -> None:
    from fleetkit import wait_for
    try:
        wait_for(predicate, seconds, poll=0.05)
    except AssertionError:
        raise AssertionError(why) from None


def test_the_watcher_listens_again_after_its_connection_is_cut(pg_url, monkeypatch):
    """``pg_terminate_backend`` on the listening connection: the serial is polled
    meanwhile (never quiet), then the watcher listens again and hears the next change."""
    import psycopg
    from reconciler.proxy.auth import ChangeWatcher
    from reconciler.registry import open_registry
    app = f"mailform-watch-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PGAPPNAME", app)
    monkeypatch.setattr(ChangeWatcher, "RETRY", 0.2)
    open_registry(pg_url).close()
    watcher = ChangeWatcher(lambda: open_registry(pg_url))
    assert watcher.start()

    def listening_backends() -> list[int]:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            return [pid for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                "AND query LIKE 'LISTEN%%'", (app,)).fetchall()]

    try:
        _until(watcher.quiet, 15, "never quiet")
        (first,) = listening_backends()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (first,))
        _until(lambda: listening_backends() not in ([], [first]), 15, "not listening again")
        _heard_a_change(watcher, pg_url)   # read once more, then quiet while listening
    finally:
        watcher.stop()


def test_throttle_slots_are_handed_out_once_each_under_concurrency(pg_url):
    from concurrent.futures import ThreadPoolExecutor
    from reconciler.registry import open_registry
    registries = [open_registry(pg_url) for _ in range(8)]
    client = "203.0.113.9"
    try:
        with ThreadPoolExecutor(8) as pool:
            said = list(pool.map(
                lambda i: registries[i].login_throttle.reserve(client, 5, 600), range(8)))
        assert sorted(said) == ["ok"] * 5 + ["wait"] * 3     # 5 checks in flight at most
        throttle = registries[0].login_throttle
        throttle.release(client)                             # one login succeeded
        assert throttle.reserve(client, 5, 600) == "ok"
        assert [throttle.failed(client) for _ in range(5)] == [1, 2, 3, 4, 5]
        assert throttle.reserve(client, 5, 600) == "locked"
        assert registries[3].login_throttle.failures(client, 600) == 5
        assert throttle.reserve("203.0.113.10", 5, 600) == "ok"
        past = int(time.time() * 1000) + 601_000             # the window is over
        assert throttle.reserve(client, 5, 600, now_ms=past) == "ok"
    finally:
        for registry in registries:
            registry.close()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_whole_attempts_in_one_transaction_never_check_more_than_the_limit(
        backend, pg_url, tmp_path):
    """``LoginThrottle.attempt`` (what the proxy uses): 40 simultaneous wrong passwords
    from one address on 8 connections run ``check`` at most 5 times; a right one after
    that is refused too; a right one from another address passes and leaves no slot."""
    import threading
    from concurrent.futures import ThreadPoolExecutor
    from reconciler.registry import open_registry
    url = pg_url if backend == "postgresql" else f"sqlite:///{tmp_path}/reg.db"
    open_registry(url).close()
    registries = [open_registry(url) for _ in range(8)]
    checked, lock = [], threading.Lock()

    def wrong():
        with lock:
            checked.append(1)
        time.sleep(0.01)                 # a check takes a moment: they really overlap
        return None

    client = "203.0.113.20"
    try:
        with ThreadPoolExecutor(8) as pool:
            said = list(pool.map(lambda i: registries[i % 8].login_throttle.attempt(
                client, 5, 600, wrong), range(40)))
        assert len(checked) == 5
        assert sorted(verdict for verdict, _, _ in said) == ["locked"] * 35 + ["ok"] * 5
        assert sorted(failures for verdict, _, failures in said if verdict == "ok") \
            == [1, 2, 3, 4, 5]
        throttle = registries[0].login_throttle
        assert throttle.attempt(client, 5, 600, lambda: "account")[0] == "locked"
        assert throttle.attempt("203.0.113.21", 5, 600, lambda: "account") == \
            ("ok", "account", 0)
        assert throttle.reserve("203.0.113.21", 1, 600) == "ok"   # no slot was left taken

        def broken():
            raise RuntimeError("registry unreadable")
        with pytest.raises(RuntimeError):
            throttle.attempt("203.0.113.22", 1, 600, broken)
        assert throttle.reserve("203.0.113.22", 1, 600) == "ok"   # rolled back, not counted
    finally:
        for registry in registries:
            registry.close()
