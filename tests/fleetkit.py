"""Many accounts whose Dovecot inboxes hold real Postfix bounces, on one PostgreSQL registry,
and worker processes to scan them (tests/test_fleet*.py and bench/scan_scale.py).

Postfix writes a few real DSNs for mail from a seed account to unknown users; each
account's Maildir then gets copies in which the seed's address is the account's own
and every failed recipient is unique, so each bounce can be counted exactly once.
"""
from __future__ import annotations

import base64
import csv
import os
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import psycopg

from devtools.mailstack import maildir_name

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MAIL_UID = "mail"

ACCOUNT = """\
---
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: {name}}}
spec:
  type: smtp
  email: {email}
  display_name: Fleet {name}
  shared: true
  smtp: {{host: 127.0.0.1, port: {submission}, security: starttls,
         password: {{env: FLEET_PASSWORD}}}}
  inbox: {{protocol: imap, host: 127.0.0.1, port: {imaps}, security: ssl,
          batch_size: {batch}}}
"""


def new_database(prefix: str = "mf_fleet") -> str:
    """A fresh PostgreSQL database; its URL (drop it with ``drop_database``)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def master_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def seed_dsns(stack, local: str, count: int = 3) -> list[bytes]:
    """Real DSNs Postfix wrote for mail from ``local`` to unknown users seed<i>."""
    context = ssl.create_default_context(cafile=stack.ca_file)
    with smtplib.SMTP("127.0.0.1", stack.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=context)
        smtp.login(stack.address(local), stack.user_password(local))
        for i in range(count):
            msg = EmailMessage()
            msg["From"], msg["To"] = stack.address(local), f"seed{i}@{stack.domain}"
            msg["Subject"], msg["Message-ID"] = f"campaign {i}", f"<{uuid.uuid4().hex}@x>"
            msg.set_content("Hello.\n")
            smtp.send_message(msg)
    deadline = time.monotonic() + 60
    while len(_files(stack, local)) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return [p.read_bytes() for p in _files(stack, local)]


def _files(stack, local: str) -> list[Path]:
    box = stack.maildir(local)
    return sorted(p for sub in ("new", "cur") for p in (box / sub).glob("*") if p.is_file())


def fill(stack, local: str, seeder: str, seeds: list[bytes], count: int) -> list[str]:
    """``count`` bounces in ``local``'s Maildir, each for its own failed recipient."""
    new = stack.maildir(local) / "new"
    new.mkdir(parents=True, exist_ok=True)
    failed = []
    for n in range(count):
        i = n % len(seeds)
        address = f"gone-{local}-{n}@{stack.domain}"
        raw = seeds[i]
        for k in range(len(seeds)):          # which seed a file holds: its own order
            raw = raw.replace(f"seed{k}@{stack.domain}".encode(), address.encode())
        raw = raw.replace(stack.address(seeder).encode(), stack.address(local).encode())
        (new / maildir_name(f"{1700000000 + n}.M{n}P1.{local}", raw)).write_bytes(raw)
        failed.append(address)
    for path in [stack.maildir(local), *stack.maildir(local).rglob("*")]:
        shutil.chown(path, MAIL_UID, MAIL_UID)
    return failed


def make_accounts(stack, workdir: Path, count: int, bounces: int, password: str
                  ) -> tuple[Path, list[str]]:
    """``count`` mailbox users with ``bounces`` bounces each and their manifests."""
    seeder = "seeder" + uuid.uuid4().hex[:6]
    stack.add_user(seeder, password)
    seeds = seed_dsns(stack, seeder)
    manifests, failed = workdir / "manifests", []
    manifests.mkdir(parents=True, exist_ok=True)
    docs = []
    for n in range(count):
        local = f"f{n:03d}x{uuid.uuid4().hex[:4]}"
        stack._users[local] = (password, None)
        docs.append(ACCOUNT.format(name=local, email=stack.address(local),
                                   submission=stack.ports["submission"],
                                   imaps=stack.ports["imaps"],
                                   batch=min(10000, max(bounces, 1) * 2)))
    stack._write_users()
    for n, local in enumerate(_locals(docs)):
        failed += fill(stack, local, seeder, seeds, bounces)
    time.sleep(1.2)                       # Dovecot re-reads its passwd-file once a second
    (manifests / "accounts.yaml").write_text("".join(docs))
    return manifests, failed


def _locals(docs: list[str]) -> list[str]:
    return [d.split("metadata: {name: ")[1].split("}")[0] for d in docs]


def env_for(stack, url: str, key: str, password: str) -> dict:
    env = dict(os.environ, MAILFORM_REGISTRY=url, MAILFORM_MASTER_KEY=key,
               FLEET_PASSWORD=password, MAILFORM_CA_FILE=stack.ca_file, NO_COLOR="1")
    return env


def apply_with_contacts(env: dict, manifests: Path, failed: list[str], work: Path,
                        cwd: Path = ROOT) -> None:
    """The accounts applied (unverified) and the failed recipients imported as contacts."""
    done = mailform(env, "apply", str(manifests), "--auto-approve", "--skip-verify", cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    contacts = work / "contacts.csv"
    with contacts.open("w", newline="") as handle:
        csv.writer(handle).writerows([["email"], *[[a] for a in failed]])
    done = mailform(env, "contacts", "import", str(contacts), cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr


def mailform(env: dict, *args: str, timeout: float = 600, cwd: Path = ROOT
             ) -> subprocess.CompletedProcess:
    """``python -m reconciler ARGS`` in ``cwd`` (whose ``reconciler`` it runs)."""
    return subprocess.run([sys.executable, "-m", "reconciler", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def start_worker(env: dict, *args: str, log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    handle = open(log, "ab")
    return subprocess.Popen([sys.executable, "-m", "reconciler", "worker", *args], env=env,
                            cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)


def stop_workers(procs: list[subprocess.Popen], timeout: float = 60) -> list[int]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return codes


def wait_for(predicate, timeout: float, poll: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"not within {timeout}s: {predicate}")
