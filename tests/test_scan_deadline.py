"""A scan always ends: a server trickling a FETCH literal (one byte a second, which resets
an ordinary socket timeout on every byte) costs its account a timeout error after about
--timeout, and the next account is scanned. Small fake IMAP servers on loopback; the
bound is a generous cap (10x), not a tight timing."""
from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

import clihelpers
from reconciler.bounces.deadline import ScanDeadline
from reconciler.registry import open_registry
from reconciler.registry.base import AccountWrite

BOUNCE = (b"From: MAILER-DAEMON@example.org\r\nTo: {email}\r\nSubject: failure\r\n"
          b"MIME-Version: 1.0\r\n"
          b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
          b"--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--B\r\n"
          b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n"
          b"\r\nFinal-Recipient: rfc822; gone@example.org\r\nAction: failed\r\n"
          b"Status: 5.1.1\r\n\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
          b"From: news@example.com\r\nTo: gone@example.org\r\nSubject: news\r\n\r\n--B--\r\n")


class FakeImap:
    """A minimal IMAP server (LOGIN, SELECT, UID FETCH) for one mailbox of ``count``
    messages; ``trickle``: message literals dribble one byte every ``pause`` seconds;
    ``slow``: every answer waits ``slow`` seconds first."""

    def __init__(self, count=3, trickle=False, pause=1.0, slow=0.0):
        self.count, self.trickle, self.pause, self.slow = count, trickle, pause, slow
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self):
        self.stopped.set()
        self.listener.close()

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        try:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1] fake ready\r\n")
            for line in conn.makefile("rb"):
                if self.slow:
                    time.sleep(self.slow)
                tag, _, rest = line.decode().strip().partition(" ")
                if not self._answer(conn, tag, rest.upper()):
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def _answer(self, conn, tag, command) -> bool:
        if command.startswith("SELECT"):
            conn.sendall(f"* {self.count} EXISTS\r\n* OK [UIDVALIDITY 42] v\r\n"
                         f"* OK [UIDNEXT {self.count + 1}] n\r\n".encode())
        elif command.startswith("UID FETCH") and "RFC822.SIZE" in command:
            conn.sendall(b"".join(f"* {n} FETCH (UID {n} RFC822.SIZE 900)\r\n".encode()
                                  for n in range(1, self.count + 1)))
        elif command.startswith("UID FETCH"):
            self._bodies(conn)
        elif command.startswith("LOGOUT"):
            conn.sendall(f"* BYE\r\n{tag} OK bye\r\n".encode())
            return False
        conn.sendall(f"{tag} OK done\r\n".encode())
        return True

    def _bodies(self, conn):
        for n in range(1, self.count + 1):
            body = BOUNCE.replace(b"{email}", b"news@example.com")
            conn.sendall(f"* {n} FETCH (UID {n} BODY[]<0> {{{len(body)}}}\r\n".encode())
            if not self.trickle:
                conn.sendall(body + b")\r\n")
                continue
            for byte in body:                       # never finishes within any timeout
                if self.stopped.is_set():
                    return
                conn.sendall(bytes([byte]))
                time.sleep(self.pause)


def account(name, port):
    spec = {"email": "news@example.com", "type": "smtp",
            "inbox": {"protocol": "imap", "host": "127.0.0.1", "port": port,
                      "security": "none", "username": "u", "batch_size": 100,
                      "delete_bounces": False}}
    return AccountWrite(name, "smtp", spec, {"inbox.password": "pw-fake-1"}, {})


@pytest.fixture
def registry_url(tmp_path):
    return f"sqlite:///{tmp_path}/reg.db"


def put(url, *writes):
    with open_registry(url) as reg, reg.lock("test"), reg.transaction() as tx:
        for write in writes:
            tx.put_account(write)
        tx.add_history({"actor": "test", "counts": {}, "changes": []})


def scan_cli(url, tmp_path, *args):
    env = dict(os.environ, MAILFORM_REGISTRY=url, NO_COLOR="1")
    env.pop("MAILFORM_MASTER_KEY", None)
    started = time.monotonic()
    proc = clihelpers.run_process(("inbox", "scan", "--all", "--format", "json", *args),
                                  env=env, cwd=tmp_path, timeout=120)
    return proc, json.loads(proc.stdout), time.monotonic() - started


@pytest.mark.parametrize("concurrency", ["1", "2"])
def test_a_trickling_server_costs_only_its_own_account(registry_url, tmp_path, concurrency):
    trickle, fine = FakeImap(trickle=True), FakeImap()
    try:
        put(registry_url, account("a-trickle", trickle.port), account("b-fine", fine.port))
        proc, reports, seconds = scan_cli(registry_url, tmp_path, "--timeout", "2",
                                          "--concurrency", concurrency)
    finally:
        trickle.close()
        fine.close()
    assert proc.returncode == 1
    first, second = reports
    assert first["account"] == "a-trickle" and first["result"] == "error"
    assert "timeout" in first["error"] and "UID FETCH" in first["error"], first
    assert second["account"] == "b-fine" and second["result"] == "ok"
    assert second["scanned"] == 3 and second["bounces"]["hard"] == 3
    assert seconds < 20, f"took {seconds:.1f}s with --timeout 2"
    assert "pw-fake-1" not in proc.stdout + proc.stderr


def test_the_whole_account_has_a_deadline(registry_url, tmp_path):
    """Each answer comes in time, but together they take longer than --deadline."""
    slow = FakeImap(slow=0.6)
    try:
        put(registry_url, account("slow", slow.port))
        proc, (report,), seconds = scan_cli(registry_url, tmp_path, "--timeout", "5",
                                            "--deadline", "1.5")
    finally:
        slow.close()
    assert report["result"] == "error" and "deadline of 1.5s" in report["error"], report
    assert seconds < 15


def blocked_read_is_cut(clock: ScanDeadline) -> tuple[socket.socket, socket.socket]:
    """A read in ``clock``'s step "read" that would block for ever, ended by the watchdog
    (not a socket timeout) within a few seconds; the socket pair, for the caller to close."""
    left, right = socket.socketpair()
    clock.watch(left)
    started = time.monotonic()
    with clock.step("read"):
        left.settimeout(None)          # only the watchdog can end this read
        assert left.recv(10) == b""
    assert clock.expired and time.monotonic() - started < 3
    return left, right


def test_the_deadline_shuts_a_blocked_read():
    """The watchdog, not the socket timeout, ends a read that would block for ever."""
    clock = ScanDeadline(total=30, per_step=0.3)
    left, right = blocked_read_is_cut(clock)
    assert "0.3s" in clock.describe() and "read" in clock.describe()
    with pytest.raises(TimeoutError):
        with clock.step("next"):
            pass
    clock.close()
    right.close()
    left.close()


@pytest.mark.parametrize("kind,security", [("imap", "none"), ("pop3", "none"), ("imap", "ssl")])
def test_a_silent_server_times_out_at_connect(registry_url, kind, security):
    """No greeting (or no TLS handshake) at all: a timeout within the step's time."""
    from reconciler.bounces.scan import scan_account
    from reconciler.servers import ServerSettings
    silent = socket.create_server(("127.0.0.1", 0))      # accepts, never speaks
    try:
        put(registry_url, account("quiet", silent.getsockname()[1]))
        settings = ServerSettings(kind, "127.0.0.1", silent.getsockname()[1], security,
                                  username="u", secret="pw-fake-1", timeout=1)
        started = time.monotonic()
        with open_registry(registry_url) as registry:
            report = scan_account(registry, "quiet", settings, 100, False)
    finally:
        silent.close()
    assert not report.ok and "timeout" in report.error, report.error
    assert time.monotonic() - started < 10
