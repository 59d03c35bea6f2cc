#!/usr/bin/env python3
"""Benchmark: one inbox of real Postfix bounces scanned by `mailform inbox scan` (issue 13).

Starts a throwaway mail stack (devtools/mailstack.py), makes Postfix write a few real
DSNs into one account's mailbox, then copies them (each with its own failed recipient)
into the Dovecot Maildir until it holds ``--messages`` bounces, and lets Dovecot index
them before the clock starts. Half of the failed recipients are contacts. The account
is applied to a fresh SQLite registry with ``batch_size`` = ``--messages``.

The measured run is one ``python -m reconciler inbox scan`` process (start-up
included); besides wall time, its CPU time (user + system) and Dovecot's (the master
and every process under it, from /proc) are reported — the machine is shared, so CPU
seconds are the steadier figure. The ``reconciler`` package runs compiled, as installed
(``source_copy``; ``--no-bytecode``: compiled at every start). ``--repeat N`` scans N
times, each on a fresh registry; with ``--profile FILE`` it runs under cProfile instead
(slower; for finding hot spots, not for the figure). Last line: ``RESULT {...}``.

    .venv/bin/python bench/scan_inbox.py --messages 10000
"""
from __future__ import annotations

import argparse
import imaplib
import json
import os
import resource
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from devtools.mailconf import MAIL_UID  # noqa: E402
from devtools.mailstack import MailStack, maildir_name  # noqa: E402

MANIFEST = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: big
spec:
  type: smtp
  email: {email}
  display_name: Bench
  shared: true
  smtp: {{host: 127.0.0.1, port: {submission}, security: starttls,
         password: {{env: BENCH_PASSWORD}}}}
  inbox: {{protocol: {protocol}, host: 127.0.0.1, port: {port}, security: ssl,
          batch_size: {batch}}}
"""
SEEDS = 5


def real_dsns(stack: MailStack, local: str) -> list[bytes]:
    """A few DSNs Postfix wrote for mail to unknown local users, as stored by Dovecot."""
    context = ssl.create_default_context(cafile=stack.ca_file)
    with smtplib.SMTP("127.0.0.1", stack.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=context)
        smtp.login(stack.address(local), stack.user_password(local))
        for i in range(SEEDS):
            msg = EmailMessage()
            msg["From"], msg["To"] = stack.address(local), f"seed{i}@{stack.domain}"
            msg["Subject"] = f"campaign {i}"
            msg.set_content("Hello.\n")
            smtp.send_message(msg)
    deadline = time.monotonic() + 60
    while len(stored_files(stack, local)) < SEEDS and time.monotonic() < deadline:
        time.sleep(0.2)
    return [p.read_bytes() for p in stored_files(stack, local)]


def stored_files(stack: MailStack, local: str) -> list[Path]:
    box = stack.maildir(local)
    return sorted(p for sub in ("new", "cur") for p in (box / sub).glob("*") if p.is_file())


def fill(stack: MailStack, local: str, seeds: list[bytes], count: int) -> list[str]:
    """``count`` copies of the seeds in Maildir/new, each failing for its own address,
    named as Dovecot's delivery names its files (with the size and the CRLF size: the
    RFC822.SIZE a scan asks for is known without reading the message)."""
    new, failed = stack.maildir(local) / "new", []
    for path in stored_files(stack, local):
        path.unlink()
    for n in range(count):
        i = n % len(seeds)
        address = f"gone{n}@{stack.domain}"
        raw = seeds[i].replace(f"seed{i}@{stack.domain}".encode(), address.encode())
        (new / maildir_name(f"{1700000000 + n}.M{n}P1.bench", raw)).write_bytes(raw)
        failed.append(address)
    for path in [new, *new.iterdir()]:
        shutil.chown(path, MAIL_UID, MAIL_UID)
    return failed


def index(stack: MailStack, local: str) -> int:
    """Let Dovecot index the mailbox (a SELECT) before the clock starts."""
    with imaplib.IMAP4("127.0.0.1", stack.ports["imap"], timeout=600) as imap:
        imap.login(stack.address(local), stack.user_password(local))
        typ, data = imap.select("INBOX", readonly=True)
        return int(data[0])


SOURCE = ROOT     # --source: the tree whose `reconciler` runs (to compare with another)


def mailform(env: dict, *args: str, profile: str = "") -> subprocess.CompletedProcess:
    prefix = ["-m", "cProfile", "-o", profile] if profile else []
    return subprocess.run([sys.executable, *prefix, "-m", "reconciler", *args], env=env,
                          cwd=SOURCE, capture_output=True, text=True)


def prepare(stack: MailStack, work: Path, count: int, protocol: str) -> tuple[dict, list]:
    """The mailbox filled and indexed, the manifest written: (env, failed recipients)."""
    password = "bench-Secret-1"
    stack.add_user("big", password)
    seeds = real_dsns(stack, "big")
    failed = fill(stack, "big", seeds, count)
    assert index(stack, "big") == count
    manifests = work / "manifests"
    manifests.mkdir()
    port = stack.ports["imaps" if protocol == "imap" else "pop3s"]
    (manifests / "big.yaml").write_text(MANIFEST.format(
        email=stack.address("big"), submission=stack.ports["submission"], port=port,
        protocol=protocol, batch=count))
    env = dict(os.environ, BENCH_PASSWORD=password, MAILFORM_CA_FILE=stack.ca_file,
               NO_COLOR="1")
    env.pop("MAILFORM_MASTER_KEY", None)
    return env, failed


def fresh_registry(env: dict, work: Path, failed: list, run: int) -> dict:
    """A new SQLite registry with the account applied and half the failed recipients
    as contacts (each run scans the whole inbox again)."""
    env = dict(env, MAILFORM_REGISTRY=f"sqlite:///{work}/registry{run}.db")
    proc = mailform(env, "apply", str(work / "manifests"), "--auto-approve")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    contacts = work / "contacts.csv"
    contacts.write_text("email\n" + "".join(f"{a}\n" for a in failed[::2]))
    assert mailform(env, "contacts", "import", str(contacts)).returncode == 0
    return env


def source_copy(work: Path, source: Path, compiled: bool = True) -> Path:
    """A copy of ``source``'s ``reconciler`` package, by default with its modules compiled,
    as any installation has them (``pip install`` compiles every module; a checkout
    writes ``__pycache__`` on its first run) — unlike a process started with
    PYTHONDONTWRITEBYTECODE=1 and no bytecode, which compiles every module at every
    start. A copy of this run: the shared source tree gets no ``__pycache__`` from
    here, and whatever it has does not count."""
    tree = work / "source"
    shutil.copytree(source / "reconciler", tree / "reconciler",
                    ignore=shutil.ignore_patterns("__pycache__"))
    if compiled:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "reconciler")],
                       check=True, capture_output=True)
    return tree


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants, the reaped ones
    included (their time is in their parent's cutime/cstime), read from /proc."""
    ticks, children = os.sysconf("SC_CLK_TCK"), {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append((int(entry.name), fields))
    total, todo = 0, [pid]
    own = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total += sum(int(v) for v in own[11:15])
    while todo:
        for child, fields in children.get(todo.pop(), []):
            total += sum(int(v) for v in fields[11:15])
            todo.append(child)
    return total / ticks


def measure(env: dict, profile: str, stack: MailStack) -> dict:
    dovecot = stack.pids["dovecot"]
    mail_before = tree_cpu(dovecot)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = mailform(env, "inbox", "scan", "big", "--format", "json", profile=profile)
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    time.sleep(0.5)          # Dovecot's imap process ends after the LOGOUT
    mail_cpu = tree_cpu(dovecot) - mail_before
    rss = after.ru_maxrss / 1024
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (report,) = json.loads(proc.stdout)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return {"scanned": report["scanned"], "seconds": round(seconds, 3),
            "per_second": round(report["scanned"] / seconds, 1), "peak_rss_mb": round(rss, 1),
            "hard": report["bounces"]["hard"], "scan_cpu_seconds": round(cpu, 2),
            "scan_user_seconds": round(after.ru_utime - usage.ru_utime, 2),
            "dovecot_cpu_seconds": round(mail_cpu, 2),
            "per_cpu_second": round(report["scanned"] / max(cpu, 1e-9), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--protocol", choices=("imap", "pop3"), default="imap")
    parser.add_argument("--profile", default="", help="write cProfile stats to this file")
    parser.add_argument("--repeat", type=int, default=1,
                        help="scan the inbox this many times, each on a fresh registry "
                             "(RESULT: the median run by messages/s, and every run)")
    parser.add_argument("--source", default=str(ROOT),
                        help="run the `reconciler` package of this tree (default: this one)")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="no precompiled bytecode: every module compiled at start")
    args = parser.parse_args()
    global SOURCE
    SOURCE = Path(args.source).resolve()
    work = Path(tempfile.mkdtemp(prefix="mailform-scanbench-"))
    os.chmod(work, 0o755)
    try:
        with MailStack(work / "stack") as stack:
            env, failed = prepare(stack, work, args.messages, args.protocol)
            SOURCE = source_copy(work, SOURCE, compiled=not args.no_bytecode)
            runs = []
            for run in range(args.repeat):
                fresh = fresh_registry(env, work, failed, run)
                runs.append(measure(fresh, os.path.abspath(args.profile) if args.profile
                                    else "", stack))
                print(f"run {run + 1}: {runs[-1]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = sorted(runs, key=lambda r: r["per_second"])[len(runs) // 2]
    if len(runs) > 1:
        result = {**result, "runs": [(r["per_second"], r["scan_cpu_seconds"],
                                      r["dovecot_cpu_seconds"]) for r in runs]}
    print(f"RESULT {json.dumps({'bench': 'scan_inbox', 'protocol': args.protocol, **result})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
