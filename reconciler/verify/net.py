"""Sockets under a deadline: resolve, connect, TLS, greeting wait, watchdog.

One `Attempt` is one try at talking to a server.  Every blocking operation
gets a socket timeout no longer than what is left of the check's deadline,
and a watchdog shuts the sockets down when the deadline passes, so that no
server (a tarpit, a server dribbling one byte a second) can hold a check
longer than its timeout.
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import select
import socket
import ssl
import threading
import time

from ..servers import ServerSettings, redact_auth_line  # noqa: F401  (re-exported)
from . import results as r
from . import tls

GREETING_PATIENCE = 0.3  # silence after which we also look for a TLS-only server
IMPLICIT_TLS_PORTS = {465, 993, 995}


class ProbeFailure(Exception):
    """A classified failure: the result code plus what the server said."""

    def __init__(self, code: str, reply_text: str | None = None, *, reply_code: int | None = None,
                 hint: str | None = None, cert_reason: str | None = None,
                 transient: bool = False):
        super().__init__(code, reply_text)
        self.code = code
        self.reply_text = reply_text
        self.reply_code = reply_code
        self.hint = hint
        self.cert_reason = cert_reason
        self.transient = transient


class Attempt:
    """State of one try: deadline, stage reached, TLS details, sockets to kill."""

    def __init__(self, endpoint: ServerSettings, deadline: float, number: int = 1,
                 transcript: list[str] | None = None):
        self.endpoint = endpoint
        self.transcript = transcript
        self.deadline = deadline
        self.number = number
        self.stage = "resolve"
        self.tls: dict = {}
        self.reply_code: int | None = None
        self.reply_text: str | None = None
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        WATCHDOG.schedule(self)

    # time
    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def timeout_for(self, budget: float | None = None) -> float:
        left = self.remaining()
        if left <= 0:
            raise ProbeFailure(r.TIMEOUT, f"deadline passed during {self.stage}")
        return max(0.01, min(left, budget) if budget else left)

    # watchdog
    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            fired = self.expired
        if fired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._closed:
                return
            self.expired = True
            socks = list(self._sockets)
        for sock in socks:
            _shutdown(sock)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            socks, self._sockets = self._sockets, []
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass

    # bookkeeping
    def log(self, direction: str, data) -> None:
        """Record protocol lines when a transcript is kept.  Everything the
        client sends while authenticating is redacted except the verb."""
        if self.transcript is None:
            return
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        lines = str(data).splitlines() or [""]
        if direction == "C" and self.stage == "data" and len(lines) > 1:
            self.transcript.append(f"C: (message, {len(data)} bytes)")
            return
        for line in lines:
            if direction == "C" and self.stage == "auth":
                line = redact_auth_line(line)
            self.transcript.append(f"{direction}: {line}")

    def reply(self, code: int | None, text) -> None:
        self.reply_code = code
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.reply_text = " ".join(str(text).split()) if text is not None else None

    def record_tls(self, sock) -> None:
        if isinstance(sock, ssl.SSLSocket):
            self.tls = tls.session_info(sock)

    def context(self) -> "WatchedContext":
        """The TLS context for this endpoint, for our sockets and the libraries' STARTTLS."""
        ep = self.endpoint
        return WatchedContext(tls.client_context(ep.verify_certificate, ep.trust_file()), self)

    # connection
    def open_socket(self, use_tls: bool) -> socket.socket:
        """Resolve, connect, handshake (implicit TLS) or wait for a plain greeting."""
        ep = self.endpoint
        self.stage = "resolve"
        addrs = resolve(ep.host, ep.port, self)
        self.stage = "connect"
        # Leave time for one retry of a lost connection attempt.
        budget = self.remaining() / 2 if self.number == 1 else None
        sock = connect(addrs, self, budget)
        if use_tls:
            self.stage = "tls"
            sock = self.context().wrap_socket(sock, server_hostname=ep.host)
        else:
            self.stage = "greeting"
            await_greeting(sock, addrs[0], self)
        self.stage = "greeting"
        sock.settimeout(self.timeout_for())
        return sock


class _Watchdog:
    """One thread for all attempts: shuts an attempt's sockets at its deadline.

    (A threading.Timer per check costs a thread start per check; this keeps a
    heap of deadlines instead.)"""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Attempt]] = []
        self._cond = threading.Condition()
        self._counter = 0
        self._thread: threading.Thread | None = None

    def schedule(self, att: Attempt) -> None:
        with self._cond:
            self._counter += 1
            heapq.heappush(self._heap, (att.deadline, self._counter, att))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                 name="verify-watchdog")
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, _, att = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            att._expire()  # noqa: SLF001 - outside the lock: shutdown() may block briefly


WATCHDOG = _Watchdog()


class WatchedContext:
    """Wraps sockets so that the watchdog can reach them during the handshake too.

    Duck-types the part of ssl.SSLContext that smtplib, imaplib and poplib use.
    """

    def __init__(self, ctx: ssl.SSLContext, att: Attempt):
        self.ctx = ctx
        self.att = att

    def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None,
                    **_ignored) -> ssl.SSLSocket:
        sock.settimeout(self.att.timeout_for())
        ssock = self.ctx.wrap_socket(sock, server_hostname=server_hostname,
                                     do_handshake_on_connect=False)
        self.att.watch(ssock)
        if self.att.expired:
            raise ProbeFailure(r.TIMEOUT, "deadline passed before the TLS handshake")
        ssock.do_handshake()
        self.att.record_tls(ssock)
        return ssock


def _shutdown(sock: socket.socket) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, ValueError):
        pass


def resolve(host: str, port: int, att: Attempt) -> list[tuple]:
    """getaddrinfo bounded by the deadline (it has no timeout of its own)."""
    try:
        ip = ipaddress.ip_address(host)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [(family, (host, port))]
    except ValueError:
        pass
    if host.rstrip(".").lower().endswith(".invalid") or host.lower() == "invalid":
        # RFC 6761 §6.4: never resolvable; answer at once, even without a resolver.
        raise ProbeFailure(r.DNS_ERROR, f"{host}: .invalid names never resolve (RFC 6761)",
                           hint="check the host name")
    box: dict = {}

    def lookup() -> None:
        try:
            box["addrs"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc

    worker = threading.Thread(target=lookup, daemon=True, name=f"resolve-{host}")
    worker.start()
    worker.join(att.timeout_for())
    if worker.is_alive():
        raise ProbeFailure(r.DNS_ERROR, f"DNS lookup of {host} timed out",
                           hint="the resolver did not answer in time; check DNS and the host name")
    if "error" in box:
        exc = box["error"]
        transient = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ProbeFailure(r.DNS_ERROR, f"{host}: {text}", transient=transient,
                           hint="check the host name")
    # Keep order, drop duplicates.
    seen, out = set(), []
    for family, _, _, _, addr in box["addrs"]:
        if (family, addr) not in seen:
            seen.add((family, addr))
            out.append((family, addr))
    return out


def connect(addrs: list[tuple], att: Attempt, budget: float | None) -> socket.socket:
    last: Exception | None = None
    for family, addr in addrs:
        sock = socket.socket(family, socket.SOCK_STREAM)
        att.watch(sock)
        try:
            sock.settimeout(att.timeout_for(budget))
            sock.connect(addr)
            return sock
        except OSError as exc:
            last = exc
            sock.close()
            if att.expired or isinstance(exc, TimeoutError):
                break
    assert last is not None
    raise last


def await_greeting(sock: socket.socket, addr: tuple, att: Attempt) -> None:
    """Wait until the server speaks.  If it stays silent, look (on a second
    connection) whether it expects a TLS handshake, i.e. implicit TLS."""
    if _readable(sock, min(GREETING_PATIENCE, att.remaining())):
        return
    verdict: dict = {}
    sniffer = threading.Thread(target=_sniff_tls, args=(addr, att, verdict), daemon=True)
    sniffer.start()
    while att.remaining() > 0 and not att.expired:
        if _readable(sock, min(0.05, att.remaining())):
            return
        if verdict.get("tls"):
            raise ProbeFailure(
                r.PROTOCOL_ERROR, "no greeting: the server waits for a TLS handshake",
                hint="this port expects implicit TLS: use security: ssl")
    hint = None
    if att.endpoint.port in IMPLICIT_TLS_PORTS:
        hint = "this port usually expects implicit TLS: use security: ssl"
    raise ProbeFailure(r.TIMEOUT, "no greeting from the server", hint=hint, transient=True)


def _readable(sock: socket.socket, wait: float) -> bool:
    try:
        ready, _, _ = select.select([sock], [], [], max(0.0, wait))
    except (OSError, ValueError):
        return True  # let the protocol library report the broken socket
    return bool(ready)


def _sniff_tls(addr: tuple, att: Attempt, verdict: dict) -> None:
    family, sockaddr = addr
    ctx = tls.client_context(False, None)
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        att.watch(sock)
        sock.settimeout(att.timeout_for())
        sock.connect(sockaddr)
        with ctx.wrap_socket(sock, server_hostname=att.endpoint.host):
            verdict["tls"] = True
    except ssl.SSLError as exc:
        verdict["tls"] = not tls.looks_like_plaintext_reply(exc) and not isinstance(
            exc, ssl.SSLEOFError)
    except (OSError, ProbeFailure):
        verdict["tls"] = False


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}


def classify(exc: BaseException, att: Attempt) -> ProbeFailure:
    """Turn any exception raised while probing into a classified failure."""
    if att.expired and not (isinstance(exc, ProbeFailure) and exc.code == r.TIMEOUT):
        return ProbeFailure(r.TIMEOUT, f"no answer within the timeout (during {att.stage})")
    if isinstance(exc, ProbeFailure):
        return exc
    if att.expired or isinstance(exc, (TimeoutError, socket.timeout)):
        return ProbeFailure(r.TIMEOUT, f"no answer within the timeout (during {att.stage})",
                            transient=att.stage in ("connect", "greeting"))
    if isinstance(exc, ssl.SSLError):
        code, reason, text, hint = tls.describe_tls_error(exc)
        return ProbeFailure(code, text, cert_reason=reason, hint=hint)
    if isinstance(exc, ConnectionRefusedError):
        return ProbeFailure(r.CONNECTION_REFUSED, "connection refused",
                            hint="nothing listens on this port; check host and port")
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE:
        return ProbeFailure(r.CONNECTION_REFUSED, exc.strerror or "unreachable",
                            hint="the host is unreachable from here")
    if isinstance(exc, UnicodeError):
        return ProbeFailure(r.PROTOCOL_ERROR, "a value could not be encoded for the protocol "
                            "(non-ASCII user name or password?)")
    if isinstance(exc, (EOFError, ConnectionError)) or "EOF" in str(exc) \
            or type(exc).__name__ == "SMTPServerDisconnected":
        return ProbeFailure(r.PROTOCOL_ERROR, f"connection closed by the server during {att.stage}",
                            transient=att.stage == "greeting")
    text = " ".join(str(exc).split()) or type(exc).__name__
    return ProbeFailure(r.PROTOCOL_ERROR, text)
