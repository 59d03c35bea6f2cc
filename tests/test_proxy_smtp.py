"""The proxy's client side made cheaper (issue 12's benchmark) without changing what a
client sees: STARTTLS through the loop's own TLS (uvloop's), aiosmtpd's constructor work
done once per server, plain addresses parsed without the email package, DATA read in
chunks — each compared with what aiosmtpd itself does.

The STARTTLS rules are checked as an attacker would try them: plaintext pipelined after
STARTTLS is never executed (RFC 3207 §4.2), the session starts over after it, a failed
handshake ends the connection, and the PROXY header's client address survives it.
"""
from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from types import MethodType

import pytest
from hypothesis import given, settings, strategies as st

from reconciler.proxy.config import ProxyConfig
from reconciler.proxy.server import ProxyCore, new_loop
from reconciler.proxy.smtp import ProxySMTP

from test_proxy import client, proxy, world  # noqa: F401  (the stack, registry, a proxy)


class _NoDirectory:
    pass


def _two_connections(**config):
    """(slow, fast): the first connection of a core built by aiosmtpd's constructor, the
    second from the template."""
    async def build():
        core = ProxyCore(ProxyConfig("127.0.0.1", 0, **config), _NoDirectory())
        return ProxySMTP(core, None), ProxySMTP(core, None)
    loop = new_loop()
    try:
        return loop.run_until_complete(build())
    finally:
        loop.close()


@pytest.mark.parametrize("config", [{"allow_plain_auth": True},
                                    {"allow_plain_auth": True, "proxy_protocol": True}])
def test_a_connection_from_the_template_is_what_aiosmtpd_would_build(config):
    slow, fast = _two_connections(**config)
    assert set(vars(slow)) == set(vars(fast))
    for name, value in vars(slow).items():
        other = getattr(fast, name)
        if name == "_smtp_methods":
            assert value.keys() == other.keys()
            for key, bound in other.items():
                assert isinstance(bound, MethodType) and bound.__self__ is fast
                assert bound.__func__ is value[key].__func__
        elif name == "_auth_methods":
            assert value.keys() == other.keys()
            for key, attr in other.items():
                assert attr.is_builtin == value[key].is_builtin
                if attr.is_builtin:
                    assert attr.method.__self__ is fast
                    assert attr.method.__func__ is value[key].method.__func__
        elif name in ("_stream_reader_wr", "_strong_reader", "_closed", "_client_connected_cb",
                      "_drain_waiters", "_source_traceback"):
            assert other is not value or value is None      # asyncio's own, fresh each
        else:
            assert other is value or other == value, name
    assert fast._strong_reader is not slow._strong_reader


PLAIN = st.text("abcXYZ019.-+_=!#", min_size=1, max_size=12)
ARGS = st.one_of(
    st.builds(lambda l, d, r: f"<{l}@{d}>{r}", PLAIN, PLAIN,
              st.sampled_from(["", " ", "  SIZE=100", "\tBODY=8BITMIME", " SIZE=1 BODY=7BIT",
                               " (comment)", "(c) SIZE=1", ">", " X=\"q\"", "x"])),
    st.text("<>@ .a\"()[]\\,;:\t-", max_size=20))


def _outcome(func, *args):
    try:
        return "value", func(*args)
    except Exception as exc:  # noqa: BLE001 - aiosmtpd's parser raises on some junk
        return "raises", type(exc)


@settings(max_examples=400, deadline=None)
@given(ARGS)
def test_plain_addresses_parse_as_aiosmtpd_parses_them(arg):
    slow, fast = _two_connections(allow_plain_auth=True)
    base = ProxySMTP.__mro__[1]._getaddr          # aiosmtpd's own
    assert _outcome(fast._getaddr, arg) == _outcome(base, slow, arg)


def test_a_local_part_over_the_limit_is_refused_on_the_fast_path_too():
    slow, fast = _two_connections(allow_plain_auth=True)
    slow.local_part_limit = fast.local_part_limit = 64        # RFC 5321's (off by default)
    assert fast._getaddr("<" + "a" * 64 + "@example.com>")[0] is not None
    arg = "<" + "a" * 65 + "@example.com>"
    assert fast._getaddr(arg) == (None, None) == ProxySMTP.__mro__[1]._getaddr(slow, arg)


# --------------------------------------------------------------------------- DATA in chunks


class _Writer:
    def __init__(self) -> None:
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def _data_outcome(fast: bool, stream: bytes, chunks: list[int], size_limit: int):
    """(replies, content the DATA hook saw, what stayed in the reader) of one DATA
    command fed ``stream`` in ``chunks``: ours (fast) or aiosmtpd's own."""
    from aiosmtpd.smtp import SMTP, Session

    async def go():
        core = ProxyCore(ProxyConfig("127.0.0.1", 0, allow_plain_auth=True,
                                     max_message_size=size_limit), _NoDirectory())
        conn = ProxySMTP(core, None)
        conn._reader = asyncio.StreamReader(limit=conn.line_length_limit)
        conn._writer = _Writer()
        conn.transport = object()
        conn.session = Session(asyncio.get_running_loop())
        conn.session.host_name, conn.session.extended_smtp = "client.test", True
        conn.session.authenticated = True
        conn.envelope = conn._create_envelope()
        conn.envelope.rcpt_tos = ["to@example.org"]
        seen = []

        async def hook(server, session, envelope):
            seen.append(envelope.original_content)
            return "250 2.0.0 queued"
        conn._handle_hooks = {"DATA": lambda *a: hook(conn, conn.session, conn.envelope)}

        async def feed():
            at = 0
            for size in chunks + [len(stream)]:
                conn._reader.feed_data(stream[at:at + size])
                at += size
                await asyncio.sleep(0)
        feeding = asyncio.ensure_future(feed())
        if fast:
            await conn.smtp_DATA("")
        else:
            await SMTP.smtp_DATA(conn, "")
        await feeding
        return conn._writer.sent, seen, bytes(conn._reader._buffer)
    loop = new_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(go(), 30))
    finally:
        loop.close()


PIECES = st.sampled_from([b"a", b"text ", b".", b"..", b"\r", b"\n", b"\r\n", b".\r\n",
                          b"\r\n.", b"\n.\n", b"\r.\r", b"x" * 997, b"y" * 1500, b"\xff"])


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=12), st.booleans(), st.lists(st.integers(1, 700), max_size=6),
       st.sampled_from([40, 300, 3000, 1 << 25]))
def test_data_in_chunks_is_what_aiosmtpd_reads_line_by_line(pieces, pipelined, chunks, size):
    stream = b"".join(pieces) + b"\r\n.\r\n" + (b"QUIT\r\n" if pipelined else b"")
    assert _data_outcome(True, stream, chunks, size) == \
        _data_outcome(False, stream, chunks, size)


@pytest.mark.parametrize("stream", [b".\r\n", b".\r\nQUIT\r\n", b"..\r\n.\r\n",
                                    b"a\n.\nb\r\n.\r\n", b"a\r.\rb\r\n.\r\n",
                                    b"z" * 1001 + b"\r\n.\r\n", b"z" * 1000 + b"\r\n.\r\n",
                                    b"z" * 999 + b"\r\n.\r\n", b"z" * 5000 + b"\r\n.\r\n",
                                    (b"line\r\n" * 100) + b".\r\nNOOP\r\n",
                                    (b"line\r\n" * 600) + b".\r\nQUIT\r\n"])
@pytest.mark.parametrize("size", [40, 600, 1 << 25])
def test_data_edges_are_read_as_aiosmtpd_reads_them(stream, size):
    for chunks in ([], [1] * 8, [3, 1000, 2]):
        assert _data_outcome(True, stream, chunks, size) == \
            _data_outcome(False, stream, chunks, size)


def test_an_oversized_message_is_read_to_its_end_in_bounded_memory():
    """20 MB against a 100 KB limit, fed as a client sends it: the verdict is 552's, the
    pipelined command after the end stays, and the reader never holds more than the limit
    and a few lines (tracemalloc's peak, with a tenfold margin)."""
    import tracemalloc
    from reconciler.proxy.data import TOO_MUCH, read_data

    async def go():
        reader = asyncio.StreamReader(limit=1001)
        chunk = b"a line of a message that is far too big\r\n" * 1500

        async def feed():
            for _ in range(330):
                reader.feed_data(chunk)
                await asyncio.sleep(0)
            reader.feed_data(b".\r\nQUIT\r\n")
        feeding = asyncio.ensure_future(feed())
        verdict = await read_data(reader, 1001, 100_000)
        await feeding
        return verdict, bytes(reader._buffer)
    tracemalloc.start()
    loop = new_loop()
    try:
        verdict, rest = loop.run_until_complete(asyncio.wait_for(go(), 60))
    finally:
        loop.close()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert verdict == (TOO_MUCH, None) and rest == b"QUIT\r\n"
    assert peak < 10 * (100_000 + 65_536 * 2)


# --------------------------------------------------------------------------- STARTTLS


@pytest.fixture
def tls_proxy(world, proxy):  # noqa: F811
    """start(**config): an in-process proxy offering STARTTLS, AUTH only after it."""
    return lambda **config: proxy(tls_cert=str(world.stack.certs["server"]),
                                  allow_plain_auth=False, **config)


class Line:
    """A raw client: bytes out, reply lines in (plain, then over TLS)."""

    def __init__(self, address, header: bytes = b"") -> None:
        self.sock = socket.create_connection(address, timeout=20)
        if header:
            self.sock.sendall(header)
        self.buffer = b""
        assert self.reply()[0] == 220

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, list[bytes]]:
        lines = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError(f"closed after {lines!r}")
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), lines

    def starttls(self, ca_file: str) -> None:
        context = ssl.create_default_context(cafile=ca_file)
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")
        assert self.buffer == b""

    def close(self) -> None:
        self.sock.close()


@pytest.mark.mailstack
def test_plaintext_pipelined_after_starttls_is_never_executed(world, tls_proxy):  # noqa: F811
    line = Line(tls_proxy())
    try:
        line.send(b"EHLO client.test\r\n")
        assert line.reply()[0] == 250
        blob = base64.b64encode(f"\0{world.email('alice')}\0{world.password('alice')}".encode())
        line.send(b"STARTTLS\r\nAUTH PLAIN " + blob + b"\r\nMAIL FROM:<x@y.z>\r\n")
        assert line.reply()[0] == 220
        line.starttls(world.stack.ca_file)
        line.send(b"NOOP\r\n")                 # the first answer over TLS is NOOP's own
        code, lines = line.reply()
        assert code == 250 and b"OK" in lines[0]
        line.send(b"MAIL FROM:<" + world.email("alice").encode() + b">\r\n")
        code, _ = line.reply()
        assert code == 503                     # no EHLO since TLS: the session started over
    finally:
        line.close()


@pytest.mark.mailstack
def test_after_starttls_the_session_starts_over_and_auth_works(world, tls_proxy):  # noqa: F811
    line = Line(tls_proxy())
    try:
        line.send(b"EHLO client.test\r\n")
        code, lines = line.reply()
        assert any(b"STARTTLS" in one for one in lines)
        line.send(b"STARTTLS\r\n")
        assert line.reply()[0] == 220
        line.starttls(world.stack.ca_file)
        line.send(b"EHLO client.test\r\n")
        code, lines = line.reply()
        assert code == 250 and not any(b"STARTTLS" in one for one in lines)
        assert any(b"AUTH" in one for one in lines)
        blob = base64.b64encode(f"\0{world.email('alice')}\0{world.password('alice')}".encode())
        line.send(b"AUTH PLAIN " + blob + b"\r\n")
        assert line.reply()[0] == 235
        line.send(b"STARTTLS\r\n")             # not twice
        assert line.reply()[0] == 554            # as Postfix: "TLS already active"
    finally:
        line.close()


@pytest.mark.mailstack
def test_a_failed_handshake_ends_the_connection_and_the_proxy_goes_on(world, tls_proxy):  # noqa: F811
    address = tls_proxy()
    line = Line(address)
    try:
        line.send(b"EHLO client.test\r\nSTARTTLS\r\n")
        line.reply()
        assert line.reply()[0] == 220
        line.send(b"this is not a TLS client hello\r\n" * 4)
        line.sock.settimeout(10)
        with pytest.raises((ConnectionError, OSError)):
            for _ in range(10):
                line.reply()
    finally:
        line.close()
    again = Line(address)                      # and the next client is served
    try:
        again.send(b"EHLO client.test\r\nSTARTTLS\r\n")
        again.reply()
        assert again.reply()[0] == 220
        again.starttls(world.stack.ca_file)
        again.send(b"EHLO client.test\r\n")
        assert again.reply()[0] == 250
    finally:
        again.close()


@pytest.mark.mailstack
def test_the_proxy_headers_client_address_survives_starttls(world, tls_proxy, caplog):  # noqa: F811
    line = Line(tls_proxy(proxy_protocol=True),
                header=b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 587\r\n")
    try:
        line.send(b"EHLO client.test\r\nSTARTTLS\r\n")
        line.reply()
        assert line.reply()[0] == 220
        line.starttls(world.stack.ca_file)
        line.send(b"EHLO client.test\r\n")
        line.reply()
        blob = base64.b64encode(f"\0{world.email('alice')}\0wrong".encode())
        with caplog.at_level("WARNING", logger="mailform.proxy"):
            line.send(b"AUTH PLAIN " + blob + b"\r\n")
            assert line.reply()[0] == 535
    finally:
        line.close()
    assert "client=203.0.113.7" in caplog.text


@pytest.mark.mailstack
def test_the_declared_size_reaches_the_upstream_which_refuses_at_mail(world, proxy):  # noqa: F811
    """Postfix's message_size_limit (10 MB by default) is below the proxy's own (32 MB):
    a client declaring 20 MB gets Postfix's 552 at MAIL FROM, before sending a byte."""
    with client(proxy()) as smtp:
        smtp.login(world.email("alice"), world.password("alice"))
        code, text = smtp.mail(world.email("alice"), options=["SIZE=20000000"])
        assert code == 552 and b"size" in text.lower()
        smtp.rset()
        assert smtp.mail(world.email("alice"), options=["SIZE=2000"])[0] == 250


@pytest.mark.mailstack
def test_a_large_message_with_dot_lines_arrives_unchanged(world, proxy):  # noqa: F811
    """About 300 KB, read in many chunks: lines that begin with dots come out as they went
    in (stuffed by the client, unstuffed by the proxy, stuffed again upstream); the body
    in the mailbox is the one sent, byte for byte."""
    import uuid
    lines = [f"{'.' * (n % 3)}line {n} " + "x" * (n % 90) for n in range(4000)]
    body = "\r\n".join(lines) + "\r\n"
    mid = f"<{uuid.uuid4().hex}@mailform.test>"
    raw = (f"From: {world.email('alice')}\r\nTo: {world.email('bob')}\r\n"
           f"Subject: big\r\nMessage-ID: {mid}\r\n\r\n" + body).encode()
    with client(proxy()) as smtp:
        smtp.login(world.email("alice"), world.password("alice"))
        smtp.sendmail(world.email("alice"), [world.email("bob")], raw)
    got = world.stack.wait_for_mail("bob", lambda m: m["Message-ID"] == mid)
    assert got.get_payload(decode=True).replace(b"\r\n", b"\n") == body.replace(
        "\r\n", "\n").encode()


def test_the_proxy_runs_on_uvloop():
    uvloop = pytest.importorskip("uvloop")
    loop = new_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert asyncio.get_event_loop_policy() is not None
