"""The proxy's relay against small local upstreams (issue 12): per-recipient answers passed
back and recorded, every step with its deadline, logins never behind relays, sessions
reused per account, at most N per account.

The upstreams here are tiny asyncio SMTP servers (a well-behaved one, one that never
answers, one that answers a byte a second); the real stack is in test_proxy_stack.py.
"""
from __future__ import annotations

import asyncio
import base64
import smtplib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from reconciler.proxy.auth import ProxyAccount
from reconciler.proxy.config import ProxyConfig
from reconciler.proxy.ratelimit import LimitSettings
from reconciler.proxy.records import Outcome
from reconciler.proxy.server import ProxyServer, ThreadedProxy
from reconciler.registry import open_registry
from reconciler.servers import ServerSettings

STEP = 2.0     # --upstream-timeout of these tests


class FakeUpstream:
    """An SMTP server on 127.0.0.1 in its own thread. ``mode``: ok | silent | trickle
    (greeting a byte a second) | trickle-data (DATA's final reply a byte a second).
    ``chunking``: CHUNKING offered, BDAT taken (RFC 3030); ``chunks`` keeps each BDAT
    command line and its octets."""

    def __init__(self, mode: str = "ok", chunking: bool = False) -> None:
        self.mode, self.chunking = mode, chunking
        self.chunks: list[tuple[bytes, bytes]] = []
        self.messages: list[bytes] = []
        self.logins: list[bytes] = []
        self.verbs: list[bytes] = []
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "FakeUpstream":
        self._thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0), self.loop).result(5)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        async def stop():
            self.server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _slowly(self, writer, data: bytes) -> None:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1)

    async def _client(self, reader, writer) -> None:
        self.connections += 1
        try:
            if self.mode == "silent":
                await asyncio.sleep(3600)
            if self.mode == "trickle":
                await self._slowly(writer, b"220 slow.test ESMTP\r\n")
            writer.write(b"220 fake.test ESMTP\r\n")
            while line := await reader.readline():
                if not await self._command(line.rstrip(b"\r\n"), reader, writer):
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _command(self, line: bytes, reader, writer) -> bool:
        verb = line[:4].upper()
        self.verbs.append(verb)
        if verb == b"EHLO":
            writer.write(b"250-fake.test\r\n250-AUTH PLAIN LOGIN\r\n"
                         + (b"250-CHUNKING\r\n" if self.chunking else b"") + b"250 8BITMIME\r\n")
        elif verb == b"BDAT" and self.chunking:
            chunk = await reader.readexactly(int(line.split()[1]))
            self.chunks.append((line, chunk))
            self.messages.append(chunk)
            if self.mode == "trickle-data":
                await self._slowly(writer, b"250 2.0.0 queued as SLOW\r\n")
            writer.write(b"554 5.6.0 content refused\r\n" if b"refuse-me" in chunk
                         else b"250 2.0.0 queued as B00\r\n")
        elif verb == b"AUTH":
            self.logins.append(base64.b64decode(line.split()[2]))
            writer.write(b"235 2.7.0 ok\r\n")
        elif verb == b"RCPT":
            writer.write(b"550 5.1.1 <dead>: Recipient address rejected: User unknown\r\n"
                         if b"dead" in line else
                         b"554 5.7.1 <policy>: Relay access denied\r\n" if b"policy" in line
                         else b"250 2.1.5 ok\r\n")
        elif verb == b"DATA":
            writer.write(b"354 go on\r\n")
            await writer.drain()
            body = b""
            while (chunk := await reader.readline()) not in (b".\r\n", b""):
                body += chunk
            self.messages.append(body)
            if self.mode == "trickle-data":
                await self._slowly(writer, b"250 2.0.0 queued as SLOW\r\n")
            writer.write(b"250 2.0.0 queued as F00\r\n")
        elif verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            return False
        else:      # MAIL, RSET, NOOP
            writer.write(b"250 2.0.0 ok\r\n")
        await writer.drain()
        return True


class StubDirectory:
    """AccountDirectory's interface over fixed accounts; records go to a real registry."""

    def __init__(self, registry, upstreams: dict[str, int]) -> None:
        self.registry = registry
        self.upstreams = upstreams          # account name -> upstream port
        self._lock = threading.Lock()

    def authenticate(self, login, password):
        name = login.decode().split("@")[0]
        if name in self.upstreams and password == f"pw-{name}".encode():
            return ProxyAccount(name, f"{name}@example.com")
        return None

    def current(self, name, timeout=30.0, ca_file=None):
        settings = ServerSettings("smtp", "127.0.0.1", self.upstreams[name], "none",
                                  username=f"{name}@example.com", secret="upstream-pw-ü",
                                  timeout=timeout)
        return ProxyAccount(name, f"{name}@example.com"), settings

    def tag(self, account, recipients, data):
        return b"X-Test-Tag: 1\r\n" + data

    def write(self, func, *args):
        with self._lock:
            return func(self.registry, *args)


@pytest.fixture
def registry(tmp_path):
    reg = open_registry(f"sqlite:///{tmp_path}/reg.db")
    reg.upsert_contacts([("dead@example.org", {}), ("policy@example.org", {}),
                         ("live@example.org", {})])
    yield reg
    reg.close()


@pytest.fixture
def start_proxy(registry):
    running = []

    def start(upstreams, **config):
        cfg = ProxyConfig("127.0.0.1", 0, allow_plain_auth=True, hostname="proxy.test",
                          upstream_timeout=STEP, limits=LimitSettings(base_delay=0), **config)
        proxy = ThreadedProxy(ProxyServer(cfg, StubDirectory(registry, upstreams)))
        running.append(proxy)
        return proxy.start()

    yield start
    for proxy in running:
        proxy.stop()


def login(address, name):
    smtp = smtplib.SMTP(*address, timeout=30)
    smtp.login(f"{name}@example.com", f"pw-{name}")
    return smtp


MESSAGE = b"From: a@example.com\r\nSubject: hi\r\nMessage-ID: <m1@example.com>\r\n\r\nhello\r\n"


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_outcome_classification_uses_the_bounce_rules():
    assert Outcome("a", 550, "5.1.1 <a>: User unknown").judged() == ("user-unknown", "hard")
    assert Outcome("a", 554, "5.7.1 Relay access denied").judged()[1] == "blocked"
    assert Outcome("a", 450, "4.2.0 try later").judged()[1] == "soft"
    assert Outcome("a", 250, "2.1.5 ok").judged() is None
    assert Outcome("a", None, "no complete answer").judged() is None   # not the contact's
    assert Outcome("a", 550, "no enhanced code").status() == "5.0.0"


def test_each_recipient_gets_the_upstreams_answer_and_refusals_are_recorded(
        start_proxy, registry):
    with FakeUpstream() as up:
        address = start_proxy({"acct": up.port})
        with login(address, "acct") as smtp:
            smtp.ehlo()
            assert smtp.mail("acct@example.com")[0] == 250
            code, text = smtp.rcpt("dead@example.org")
            assert code == 550 and text.startswith(b"5.1.1") and b"User unknown" in text
            assert smtp.rcpt("policy@example.org")[0] == 554
            assert smtp.rcpt("live@example.org")[0] == 250
            code, text = smtp.data(MESSAGE)
            assert (code, text) == (250, b"2.0.0 queued as F00")
        assert len(up.messages) == 1
        relayed = up.messages[0]
        assert relayed.startswith(b"Received: from ") and b"by proxy.test (mailform proxy)" in relayed
        assert b"X-Test-Tag: 1\r\n" in relayed and relayed.endswith(b"hello\r\n")
        assert up.logins == [b"\0acct@example.com\0upstream-pw-\xc3\xbc"]     # UTF-8 SASL
    wait_for(lambda: registry.delivery_log.entries("acct"))
    assert registry.contact("dead@example.org")["status"] == "faulty"          # hard
    assert registry.contact("policy@example.org")["status"] == "active"        # blocked
    assert registry.contact("live@example.org")["status"] == "active"
    entry, = registry.delivery_log.entries("acct")
    assert entry["message_id"] == "<m1@example.com>" and entry["size"] > len(MESSAGE)
    results = {r["address"]: r for r in entry["recipients"]}
    assert results["dead@example.org"]["kind"] == "hard"
    assert results["dead@example.org"]["reason"] == "user-unknown"
    assert results["policy@example.org"]["kind"] == "blocked"
    assert results["live@example.org"]["result"] == "accepted"
    assert entry["upstream_reply"].startswith("250 2.0.0")


def test_upstream_sessions_are_reused_with_rset_and_bounded_per_account(start_proxy):
    with FakeUpstream() as up:
        address = start_proxy({"acct": up.port}, max_upstream_sessions=2)
        for _ in range(3):
            with login(address, "acct") as smtp:
                smtp.sendmail("acct@example.com", ["live@example.org"], MESSAGE)
        assert up.connections == 1 and len(up.messages) == 3
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(lambda _: login(address, "acct").sendmail(
                "acct@example.com", ["live@example.org"], MESSAGE), range(6)))
        assert up.connections <= 2 and len(up.messages) == 9


def test_rset_only_when_a_transaction_was_left_open(start_proxy):
    """A message's final reply ends the upstream transaction (RFC 5321): the next message
    reuses the session without RSET; a client that gives up after RCPT leaves one open,
    so the session is RSET before it is used again."""
    with FakeUpstream() as up:
        address = start_proxy({"acct": up.port}, max_upstream_sessions=1)
        for _ in range(2):
            with login(address, "acct") as smtp:
                smtp.sendmail("acct@example.com", ["live@example.org"], MESSAGE)
        assert up.verbs.count(b"RSET") == 0 and up.verbs.count(b"MAIL") == 2
        with login(address, "acct") as smtp:
            smtp.ehlo()
            assert smtp.mail("acct@example.com")[0] == 250
            assert smtp.rcpt("live@example.org")[0] == 250
            smtp.rset()
        with login(address, "acct") as smtp:
            smtp.sendmail("acct@example.com", ["live@example.org"], MESSAGE)
        deadline = time.monotonic() + 5
        while up.verbs.count(b"MAIL") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        mails = [i for i, verb in enumerate(up.verbs) if verb == b"MAIL"]
        assert up.verbs[mails[2]:mails[3]].count(b"RSET") == 1
        assert up.connections == 1 and len(up.messages) == 3


def test_where_the_upstream_offers_chunking_a_message_goes_as_one_bdat(start_proxy):
    """RFC 3030: one ``BDAT <size> LAST`` with the message as the client meant it (lines
    that start with a dot keep it: no dot-stuffing in a chunk), no 354 round trip; its
    reply is the client's final answer, a refusal included."""
    body = b"From: a@example.com\r\nSubject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n"
    with FakeUpstream(chunking=True) as up:
        address = start_proxy({"acct": up.port})
        with login(address, "acct") as smtp:
            smtp.sendmail("acct@example.com", ["live@example.org"], body)
        with login(address, "acct") as smtp:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.sendmail("acct@example.com", ["live@example.org"], body + b"refuse-me\r\n")
        assert (refused.value.smtp_code, refused.value.smtp_error) == (554, b"5.6.0 content refused")
        assert b"DATA" not in up.verbs and up.verbs.count(b"BDAT") == 2
        (command, chunk), _ = up.chunks
        assert command == b"BDAT %d LAST" % len(chunk) and chunk.startswith(b"Received: from ")
        assert chunk.endswith(b"\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n")
        assert up.connections == 1          # the session is kept after a refusal
        with login(address, "acct") as smtp:   # a bare LF is sent as CRLF, as DATA sends it
            smtp.ehlo()
            smtp.mail("acct@example.com")
            smtp.rcpt("live@example.org")
            assert smtp.docmd("DATA")[0] == 354
            smtp.send(b"Subject: lf\r\n\r\none\ntwo\r\n.\r\n")
            assert smtp.getreply()[0] == 250
        assert up.chunks[-1][1].endswith(b"\r\n\r\none\r\ntwo\r\n")


@pytest.mark.parametrize("mode, step, chunking", [
    ("silent", "MAIL", False), ("trickle", "MAIL", False), ("trickle-data", "DATA", False),
    ("trickle-data", "DATA", True)])
def test_a_stalled_upstream_gives_451_within_the_step_deadline(start_proxy, mode, step,
                                                               chunking):
    with FakeUpstream(mode, chunking) as up:
        address = start_proxy({"acct": up.port})
        with login(address, "acct") as smtp:
            smtp.ehlo()
            start = time.monotonic()
            code, text = smtp.mail("acct@example.com")
            if step == "DATA":
                assert code == 250 and smtp.rcpt("live@example.org")[0] == 250
                start = time.monotonic()
                code, text = smtp.data(MESSAGE)
            took = time.monotonic() - start
    assert code == 451 and b"try again later" in text
    assert STEP - 0.5 <= took <= 2 * STEP + 3        # cut at the deadline, not the trickle's end


def test_logins_are_answered_while_relays_stall(start_proxy):
    """20 clients stuck on an upstream that never answers; another account still logs in
    at once (the bound here is generous; bench/proxy.py measures the p99)."""
    with FakeUpstream("silent") as stuck, FakeUpstream() as fine:
        address = start_proxy({"stuck": stuck.port, "fine": fine.port})
        clients = [login(address, "stuck") for _ in range(20)]
        for smtp in clients:
            smtp.ehlo()
            smtp.putcmd("MAIL", "FROM:<stuck@example.com>")     # no waiting for the answer
        time.sleep(0.5)
        took = []
        for _ in range(10):
            start = time.monotonic()
            with login(address, "fine") as smtp:
                took.append(time.monotonic() - start)
        assert max(took) < 1.0, took
        for smtp in clients:
            assert smtp.getreply()[0] == 451
            smtp.close()


def test_the_limiter_hands_out_check_slots_then_locks():
    from reconciler.proxy.ratelimit import LoginLimiter
    limiter = LoginLimiter(LimitSettings(max_failures=2, window=60, base_delay=0))
    assert [limiter.reserve("10.0.0.1") for _ in range(3)] == ["ok", "ok", "wait"]
    limiter.release("10.0.0.1")                       # a login succeeded
    assert limiter.reserve("10.0.0.1") == "ok"
    assert limiter.failed("10.0.0.1") == 1
    assert limiter.reserve("10.0.0.1") == "wait"      # one failed, one in flight
    assert limiter.failed("10.0.0.1") == 2
    assert limiter.reserve("10.0.0.1") == "locked"
    assert limiter.reserve("10.0.0.2") == "ok"


def test_prune_forgets_old_delivery_log_rows(registry):
    from datetime import datetime, timedelta, timezone
    old = datetime.now(timezone.utc) - timedelta(days=31)
    registry.delivery_log.record({"id": "old", "account": "a", "mail_from": "a@x", "size": 1,
                                  "started": old, "finished": old})
    registry.delivery_log.record({"id": "new", "account": "a", "mail_from": "a@x", "size": 1})
    assert registry.delivery_log.prune(30) == 1
    assert [e["id"] for e in registry.delivery_log.entries()] == ["new"]
