#!/usr/bin/env python3
"""Benchmark: one inbox of real Postfix bounces scanned by `mailform inbox scan` (issue 13).

Starts a throwaway mail stack (devtools/mailstack.py), makes Postfix write a few real
DSNs into one account's mailbox, then copies them (each with its own failed recipient)
into the Dovecot Maildir until it holds ``--messages`` bounces, and lets Dovecot index
them before the clock starts. Half of the failed recipients are contacts. The account
is applied to a fresh SQLite registry with ``batch_size`` = ``--messages``.

The measured run is one ``python -m reconciler inbox scan`` process (start-up
included); with ``--profile FILE`` it runs under cProfile instead (slower; for finding
hot spots, not for the figure). Last line: ``RESULT {...}``.

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
from devtools.mailstack import MailStack  # noqa: E402

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
    """``count`` copies of the seeds in Maildir/new, each failing for its own address."""
    new, failed = stack.maildir(local) / "new", []
    for path in stored_files(stack, local):
        path.unlink()
    for n in range(count):
        i = n % len(seeds)
        address = f"gone{n}@{stack.domain}"
        raw = seeds[i].replace(f"seed{i}@{stack.domain}".encode(), address.encode())
        (new / f"{1700000000 + n}.M{n}P1.bench").write_bytes(raw)
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


def prepare(stack: MailStack, work: Path, count: int, protocol: str) -> dict:
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
               MAILFORM_REGISTRY=f"sqlite:///{work}/registry.db", NO_COLOR="1")
    env.pop("MAILFORM_MASTER_KEY", None)
    for args in (["apply", str(manifests), "--auto-approve"],):
        proc = mailform(env, *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    contacts = work / "contacts.csv"
    contacts.write_text("email\n" + "".join(f"{a}\n" for a in failed[::2]))
    assert mailform(env, "contacts", "import", str(contacts)).returncode == 0
    return env


def measure(env: dict, profile: str) -> dict:
    started = time.monotonic()
    proc = mailform(env, "inbox", "scan", "big", "--format", "json", profile=profile)
    seconds = time.monotonic() - started
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (report,) = json.loads(proc.stdout)
    return {"scanned": report["scanned"], "seconds": round(seconds, 3),
            "per_second": round(report["scanned"] / seconds, 1), "peak_rss_mb": round(rss, 1),
            "hard": report["bounces"]["hard"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--protocol", choices=("imap", "pop3"), default="imap")
    parser.add_argument("--profile", default="", help="write cProfile stats to this file")
    parser.add_argument("--source", default=str(ROOT),
                        help="run the `reconciler` package of this tree (default: this one)")
    args = parser.parse_args()
    global SOURCE
    SOURCE = Path(args.source).resolve()
    work = Path(tempfile.mkdtemp(prefix="mailform-scanbench-"))
    os.chmod(work, 0o755)
    try:
        with MailStack(work / "stack") as stack:
            env = prepare(stack, work, args.messages, args.protocol)
            result = measure(env, os.path.abspath(args.profile) if args.profile else "")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"RESULT {json.dumps({'bench': 'scan_inbox', 'protocol': args.protocol, **result})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
