"""A real, throwaway Postfix + Dovecot stack on 127.0.0.1 for tests and demos.

Everything lives below one work directory; nothing touches the system's own
mail setup except one line in ``/etc/postfix/main.cf``
(``alternate_config_directories``, which Postfix requires before it accepts
``-c DIR``; our directory is added on start and removed on stop).

Several stacks may run at once (one per pytest-xdist worker, the standalone
command): a lock file (``STARTUP_LOCK``) lets one process at a time pick free
ports until its daemons listen on them, and edit ``main.cf``.

Needs root (Postfix and Dovecot drop privileges themselves) and the Debian
packages postfix, dovecot-imapd, dovecot-pop3d, dovecot-lmtpd (``make
system-deps``).

    with MailStack(workdir) as stack:
        stack.ports["submission"]      # STARTTLS required, SASL via Dovecot
        stack.user_password("alice")   # default users: see DEFAULT_USERS
        stack.wait_for_mail("alice", lambda m: "hello" in m["Subject"])

Standalone: ``python -m devtools.mailstack up DIR`` prints the ports, users
and CA file as JSON and runs until Ctrl-C.

Listeners (``ports`` keys), all on 127.0.0.1:

=================  ===================================================
smtp               port-25 style: STARTTLS offered, no AUTH, relays
                   only to the local domain
submission         STARTTLS required before AUTH; SASL through Dovecot
smtps              implicit TLS, SASL
smtp_notls         no STARTTLS, AUTH offered in plain text
smtp_noauth        STARTTLS offered, no AUTH
smtps_wronghost    implicit TLS, certificate for wrong.example.net
smtps_expired      implicit TLS, expired certificate (issued by the CA)
smtps_selfsigned   implicit TLS, self-signed certificate for localhost
imap / imaps       IMAP plain+STARTTLS / implicit TLS
pop3 / pop3s       POP3 plain+STLS / implicit TLS
=================  ===================================================

Mail for the local domain goes to Dovecot over LMTP.  Mail to an unknown
local user is accepted and then bounced: Postfix writes a DSN into the
sender's mailbox.  ``MAIL FROM:<blocked@DOMAIN>`` is rejected ("Sender
address rejected").  User ``full`` has a tiny quota: mail to it bounces with
5.2.2 (mailbox full).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import email
import email.policy
import imaplib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from .certs import make_certificates
from .mailconf import MAIL_UID, dovecot_conf, postfix_main_cf, postfix_master_cf

DOMAIN = "mailform.test"
# local part -> (password, quota or None)
DEFAULT_USERS: dict[str, tuple[str, str | None]] = {
    "alice": ("alice-Secret-1", None),
    "bob": ("bob-Secret-2", None),
    "blocked": ("blocked-Secret-3", None),  # MAIL FROM is rejected
    "full": ("full-Secret-4", "1B"),  # 1-byte quota: every delivery fails 5.2.2
}
PORT_NAMES = (
    "smtp", "submission", "smtps", "smtp_notls", "smtp_noauth",
    "smtps_wronghost", "smtps_expired", "smtps_selfsigned",
    "imap", "imaps", "pop3", "pop3s",
)
MAIN_CF = Path("/etc/postfix/main.cf")
STARTUP_LOCK = Path(tempfile.gettempdir()) / "mailform-mailstack.lock"


# the one local address Postfix refuses at RCPT (550 5.1.1), as for an unknown user
REJECTED_LOCAL = "rejected"


def maildir_name(base: str, raw: bytes) -> str:
    """A Maildir file name as Dovecot's own delivery writes it: with the message's size
    (``S=``) and its size with CRLF line ends (``W=``, what IMAP calls RFC822.SIZE), so
    Dovecot need not read every message once to learn it, as for mail it delivered."""
    virtual = len(raw) + raw.count(b"\n") - raw.count(b"\r\n")
    return f"{base},S={len(raw)},W={virtual}"


class MailStackError(RuntimeError):
    """The stack could not start; the message carries the log tail."""


# --------------------------------------------------------------------------- helpers

def free_ports(count: int) -> list[int]:
    """Ports that were free a moment ago (bound and released together)."""
    socks, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            socks.append(s)
            if port >= 10000:
                ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


_held = threading.local()


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """Hold the stacks' lock (an exclusive flock on STARTUP_LOCK), across processes.
    Re-entrant within a thread: a failed start stops (and unregisters) while holding it."""
    depth = getattr(_held, "depth", 0)
    if depth:
        _held.depth = depth + 1
        try:
            yield
        finally:
            _held.depth -= 1
        return
    import fcntl

    with open(STARTUP_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        _held.depth = 1
        try:
            yield
        finally:
            _held.depth = 0
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


def _check_traversable(path: Path) -> None:
    """Postfix and Dovecot drop to unprivileged users who must reach `path`."""
    for parent in [path, *path.parents]:
        if not parent.stat().st_mode & 0o001:
            raise MailStackError(
                f"{parent} is not searchable by other users (mode "
                f"{oct(parent.stat().st_mode & 0o777)}); the mail stack's workdir must be "
                "reachable by the postfix, dovecot and mail users (use e.g. "
                "tempfile.mkdtemp() and chmod 0755)")


# --------------------------------------------------------------------------- the stack

class MailStack:
    """Postfix + Dovecot on 127.0.0.1, everything below `workdir`."""

    def __init__(self, workdir: str | os.PathLike, domain: str = DOMAIN,
                 users: dict[str, tuple[str, str | None]] | None = None):
        self.workdir = Path(workdir).resolve()
        self.domain = domain
        self.ports: dict[str, int] = {}
        self.ca_file: str = ""
        self.certs: dict[str, Path] = {}
        self._initial_users = dict(DEFAULT_USERS if users is None else users)
        self._users: dict[str, tuple[str, str | None]] = {}
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: list = []
        self._registered = False
        self.started = False

    # paths
    @property
    def postfix_dir(self) -> Path:
        return self.workdir / "postfix" / "config"

    @property
    def dovecot_conf_file(self) -> Path:
        return self.workdir / "dovecot" / "dovecot.conf"

    @property
    def users_file(self) -> Path:
        return self.workdir / "dovecot" / "users"

    # lifecycle
    def __enter__(self) -> "MailStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 30.0) -> "MailStack":
        if os.geteuid() != 0:
            raise MailStackError("the mail stack needs root (Postfix and Dovecot drop privileges)")
        for tool in ("postfix", "postconf", "dovecot"):
            if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
                raise MailStackError(f"{tool} not installed: run `make system-deps`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        _check_traversable(self.workdir)
        atexit.register(self.stop)
        # from choosing free ports until the daemons listen on them: no other stack may
        # choose the same ones meanwhile
        with exclusive():
            try:
                self._prepare()
                self._start_dovecot()
                self._start_postfix()
                self._wait_ready(timeout)
            except BaseException:
                self.stop()
                raise
        self.started = True
        return self

    def _prepare(self) -> None:
        root = self.workdir
        self.certs = make_certificates(root / "certs")
        self.ca_file = str(self.certs["ca"])
        self.ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES))))
        for sub in ("postfix/config", "postfix/queue", "postfix/data", "dovecot/run",
                    "dovecot/state", "mail"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(root / "postfix" / "data", "postfix", "postfix")
        private = root / "postfix" / "queue" / "private"  # Dovecot puts its sockets here
        private.mkdir(mode=0o700, exist_ok=True)
        shutil.chown(private, "postfix", "root")
        shutil.chown(root / "mail", MAIL_UID, MAIL_UID)
        (self.postfix_dir / "main.cf").write_text(postfix_main_cf(root, self.certs, self.domain))
        (self.postfix_dir / "master.cf").write_text(postfix_master_cf(self.ports, self.certs))
        (self.postfix_dir / "sender_access").write_text(
            f"blocked@{self.domain} REJECT sender blocked by mailstack policy\n")
        (self.postfix_dir / "recipient_access").write_text(
            f"{REJECTED_LOCAL}@{self.domain} 550 5.1.1 <{REJECTED_LOCAL}@{self.domain}>: "
            "Recipient address rejected: User unknown in virtual mailbox table\n")
        self.users_file.write_text("")
        self.users_file.chmod(0o640)
        shutil.chown(self.users_file, "root", "dovecot")
        for local, (password, quota) in self._initial_users.items():
            self.add_user(local, password, quota)
        self.dovecot_conf_file.write_text(dovecot_conf(root, self.certs, self.ports))
        self._register_config_dir()

    def _register_config_dir(self) -> None:
        """Postfix accepts `-c DIR` only for directories listed in the default main.cf."""
        with exclusive():
            self._add_config_dir()

    def _add_config_dir(self) -> None:
        if not MAIN_CF.exists():
            MAIN_CF.parent.mkdir(parents=True, exist_ok=True)
            MAIN_CF.write_text("# created by devtools/mailstack.py\n")
        current = _run(["postconf", "-h", "alternate_config_directories"]).stdout.strip()
        dirs = [d for d in current.replace(",", " ").split() if d]
        if str(self.postfix_dir) not in dirs:
            dirs.append(str(self.postfix_dir))
            _run(["postconf", "-e", f"alternate_config_directories = {' '.join(dirs)}"])
        self._registered = True

    def _unregister_config_dir(self) -> None:
        if not self._registered:
            return
        self._registered = False
        with exclusive():
            self._remove_config_dir()

    def _remove_config_dir(self) -> None:
        current = _run(["postconf", "-h", "alternate_config_directories"]).stdout.strip()
        dirs = [d for d in current.replace(",", " ").split() if d and d != str(self.postfix_dir)]
        if dirs:
            _run(["postconf", "-e", f"alternate_config_directories = {' '.join(dirs)}"])
        else:
            _run(["postconf", "-X", "alternate_config_directories"])

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.workdir / f"{name}.out", "ab")
        self._logs.append(log)
        self._procs[name] = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)

    def _start_dovecot(self) -> None:
        self._spawn("dovecot", ["dovecot", "-F", "-c", str(self.dovecot_conf_file)])
        deadline = time.monotonic() + 15
        # Postfix checks for its SASL socket when smtpd starts; wait for Dovecot's sockets.
        queue_private = self.workdir / "postfix" / "queue" / "private"
        while not (queue_private / "auth").exists():
            if self._procs["dovecot"].poll() is not None or time.monotonic() > deadline:
                raise MailStackError("dovecot did not start:\n" + self.log_tail())
            time.sleep(0.05)

    def _start_postfix(self) -> None:
        res = _run(["postconf", "-c", str(self.postfix_dir), "-F", "*/*/chroot = n"])
        if res.returncode:
            raise MailStackError(f"postconf failed: {res.stderr.strip()}")
        self._spawn("postfix", ["postfix", "-c", str(self.postfix_dir), "start-fg"])

    @property
    def pids(self) -> dict[str, int]:
        """Each server's master process id ("dovecot", "postfix"): what the benchmarks read
        the servers' CPU time from."""
        return {name: proc.pid for name, proc in self._procs.items()}

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        plain = {"smtp": b"220", "imap": b"* OK", "pop3": b"+OK"}
        pending = set(self.ports)
        while pending:
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise MailStackError(f"{name} exited ({proc.returncode}):\n" + self.log_tail())
            for name in sorted(pending):
                if self._port_ready(self.ports[name], plain.get(name)):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise MailStackError(
                    f"listeners not ready after {timeout}s: {sorted(pending)}\n" + self.log_tail())
            if pending:
                time.sleep(0.1)

    @staticmethod
    def _port_ready(port: int, greeting: bytes | None) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if greeting is None:
                    return True
                return s.recv(64).startswith(greeting)
        except OSError:
            return False

    def stop(self) -> None:
        """Stop both servers (idempotent; safe after a failed start)."""
        self._signal_master(signal.SIGTERM)
        dovecot = self._procs.get("dovecot")
        if dovecot is not None and dovecot.poll() is None:
            dovecot.terminate()
        for name, proc in list(self._procs.items()):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=5)
        self._signal_master(signal.SIGKILL)
        self._procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        self._unregister_config_dir()
        self.started = False
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def _signal_master(self, signum: int) -> None:
        """Signal our Postfix master (found by its pid file) if it still runs."""
        pid_file = self.workdir / "postfix" / "queue" / "pid" / "master.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return
        if b"master" in cmdline:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for name in ("postfix.out", "dovecot.out", "dovecot.log"):
            tail = _tail(self.workdir / name, lines)
            if tail:
                parts.append(f"--- {name}\n{tail}")
        return "\n".join(parts)

    # users
    def address(self, local: str) -> str:
        return f"{local}@{self.domain}"

    def add_user(self, local: str, password: str, quota: str | None = None) -> str:
        """Create (or replace) a mailbox; returns its address (= login name).

        `quota` is a Dovecot storage limit such as "10K" or "1M".
        """
        if ":" in local or "@" in local or not local:
            raise ValueError(f"bad local part {local!r}")
        self._users[local] = (password, quota)
        self._write_users()
        if self.started:
            self._await_login(local)
        return self.address(local)

    def _await_login(self, local: str, timeout: float = 5.0) -> None:
        """Dovecot re-reads the passwd-file at most once a second: wait until it did."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.messages(local)
                return
            except imaplib.IMAP4.error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _write_users(self) -> None:
        lines = []
        for local, (password, quota) in self._users.items():
            encoded = base64.b64encode(password.encode()).decode()
            extra = f"userdb_quota_rule=*:storage={quota}" if quota else ""
            lines.append(f"{self.address(local)}:{{PLAIN.b64}}{encoded}::::::{extra}")
        tmp = self.users_file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o640)
        shutil.chown(tmp, "root", "dovecot")
        tmp.replace(self.users_file)

    @property
    def users(self) -> dict[str, str]:
        """local part -> password."""
        return {local: pw for local, (pw, _) in self._users.items()}

    def user_password(self, local: str) -> str:
        return self._users[local][0]

    # mailboxes
    def maildir(self, local: str) -> Path:
        return self.workdir / "mail" / self.address(local).split("@")[0] / "Maildir"

    def messages(self, local: str, folder: str = "INBOX") -> list[email.message.EmailMessage]:
        """All messages of a mailbox, read over IMAP (plain port) as that user."""
        with imaplib.IMAP4("127.0.0.1", self.ports["imap"], timeout=10) as imap:
            token = f"\0{self.address(local)}\0{self.user_password(local)}".encode()
            imap.authenticate("PLAIN", lambda _challenge: token)  # UTF-8 safe, unlike LOGIN
            imap.select(folder, readonly=True)
            typ, data = imap.search(None, "ALL")
            out = []
            for num in data[0].split():
                typ, parts = imap.fetch(num, "(BODY.PEEK[])")
                raw = next(p[1] for p in parts if isinstance(p, tuple))
                out.append(email.message_from_bytes(raw, policy=email.policy.default))
            return out

    def wait_for_mail(self, local: str, predicate: Callable[[email.message.EmailMessage], bool]
                      = lambda m: True, timeout: float = 30.0) -> email.message.EmailMessage:
        """The first message in `local`'s INBOX matching `predicate`, polling until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.messages(local):
                if predicate(msg):
                    return msg
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching message for {local} within {timeout}s\n"
                                   + self.log_tail(15))
            time.sleep(0.2)

    def env(self) -> dict[str, str]:
        """Environment for CLIs: the CA to trust, ports, domain and user passwords."""
        env = {"MAILFORM_CA_FILE": self.ca_file, "MAILSTACK_DOMAIN": self.domain,
               "MAILSTACK_HOST": "127.0.0.1"}
        env.update({f"MAILSTACK_PORT_{k.upper()}": str(v) for k, v in self.ports.items()})
        env.update({f"MAILSTACK_PASSWORD_{k.upper()}": pw for k, pw in self.users.items()})
        return env

    def describe(self) -> dict:
        return {"domain": self.domain, "host": "127.0.0.1", "ports": self.ports,
                "ca_file": self.ca_file,
                "users": {self.address(k): pw for k, pw in self.users.items()},
                "workdir": str(self.workdir)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "up":
        print("usage: python -m devtools.mailstack up DIR", file=sys.stderr)
        return 64
    stack = MailStack(argv[1])

    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)     # also when inherited as ignored (a background job)
    try:
        stack.start()
        print(json.dumps(stack.describe(), indent=2), flush=True)
        while True:
            time.sleep(3600)
    except MailStackError as exc:
        print(f"mailstack: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
