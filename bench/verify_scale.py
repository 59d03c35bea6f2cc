#!/usr/bin/env python3
"""Benchmark: `mailform verify` at scale (issue 4, Performance).

Starts the local Postfix + Dovecot stack (devtools/mailstack.py; needs root),
writes 1,000 accounts pointing at it — a mix of good and bad credentials,
ports and security modes, a third of them with an inbox — and runs
`mailform verify` as a whole process with the default concurrency (16) and
with --concurrency 1, in the same run.  Then 100 accounts pointing at a
listener that never answers, --timeout 2 --concurrency 50.

Wall time per run; peak RSS per child (os.wait4).  Last line:

    RESULT {"bench": "verify", "n": 1000, "seconds": …, "serial_seconds": …,
            "speedup": …, "tarpit_seconds": …, "peak_rss_mb": …}

Goals: speedup >= 8, tarpit_seconds <= 6, peak RSS <= 200 MB.

    .venv/bin/python bench/verify_scale.py            # n = 1000
    .venv/bin/python bench/verify_scale.py --n 200    # quicker
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
GOAL_SPEEDUP, GOAL_TARPIT, GOAL_RSS_MB = 8.0, 6.0, 200.0

# `mailform verify` as a process, whether or not the command is registered yet.
RUNNER = ("import sys; from reconciler.cli import cli, main; "
          "from reconciler.cli.cmd_verify import verify; "
          "'verify' in cli.commands or cli.add_command(verify); main(sys.argv[1:])")


def account(i: int, smtp: dict, inbox: dict | None, user: str) -> str:
    doc = (f"---\napiVersion: mailform/v1\nkind: EmailAccount\nmetadata:\n  name: acct-{i:05d}\n"
           f"spec:\n  type: smtp\n  email: {user}@mailform.test\n  display_name: Account {i}\n"
           f"  shared: true\n  smtp:\n    host: {smtp['host']}\n    port: {smtp['port']}\n"
           f"    security: {smtp['security']}\n    password: {{env: {smtp['pw']}}}\n")
    if inbox:
        doc += (f"  inbox:\n    protocol: {inbox['protocol']}\n    host: localhost\n"
                f"    port: {inbox['port']}\n    security: {inbox['security']}\n")
    return doc


def mix(i: int, ports: dict, closed: int) -> tuple[dict, dict | None, str]:
    """Account i: ~60% good, the rest one of five kinds of mistakes."""
    good = {"host": "localhost", "pw": "GOOD_PW"}
    kind = i % 10
    smtp = {
        0: dict(good, port=ports["submission"], security="starttls"),
        1: dict(good, port=ports["smtps"], security="ssl"),
        2: dict(good, port=ports["submission"], security="starttls"),
        3: dict(good, port=ports["smtps"], security="ssl"),
        4: dict(good, port=ports["smtp_notls"], security="none"),
        5: dict(good, port=ports["smtps"], security="ssl", pw="BAD_PW"),  # auth_failed
        6: dict(good, port=closed, security="starttls"),  # connection_refused
        7: dict(good, port=ports["submission"], security="ssl"),  # tls_handshake_failed
        8: dict(good, port=ports["smtp_notls"], security="starttls"),  # starttls_unsupported
        9: dict(good, port=ports["smtps_selfsigned"], security="ssl"),  # certificate_invalid
    }[kind]
    inbox = None
    if i % 3 == 0:
        inbox = [dict(protocol="imap", port=ports["imaps"], security="ssl"),
                 dict(protocol="pop3", port=ports["pop3"], security="starttls"),
                 dict(protocol="imap", port=ports["imap"], security="none")][(i // 3) % 3]
    return smtp, inbox, "alice"


def write_manifests(directory: str, docs: list[str], per_file: int = 100) -> None:
    os.makedirs(directory, exist_ok=True)
    for start in range(0, len(docs), per_file):
        with open(os.path.join(directory, f"accounts-{start:05d}.yaml"), "w") as handle:
            handle.write("".join(docs[start:start + per_file]))


def run_verify(path: str, env: dict, *args: str) -> tuple[float, float, dict]:
    """Run `mailform verify` as a child process: (wall seconds, peak RSS MB, JSON output)."""
    cmd = [sys.executable, "-c", RUNNER, "verify", path, "--format", "json", *args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        raw, errors = out.read(), err.read()
    try:
        data = json.loads(raw)
    except ValueError:
        sys.exit(f"verify produced no JSON (exit {proc.returncode}):\n{errors.decode()[-2000:]}")
    print(f"  (child CPU {usage.ru_utime + usage.ru_stime:.2f}s for {seconds:.2f}s wall)")
    return seconds, usage.ru_maxrss / 1024.0, data


def tarpit_listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)  # never accepted: the kernel completes connections, nobody speaks
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--tarpit-n", type=int, default=100)
    parser.add_argument("--skip-serial", action="store_true",
                        help="skip the --concurrency 1 pass (speedup becomes NaN)")
    args = parser.parse_args()

    from devtools.mailstack import MailStack

    work = tempfile.mkdtemp(prefix="mailform-bench-verify-")
    os.chmod(work, 0o755)
    stack = MailStack(os.path.join(work, "stack"))
    listener = tarpit_listener()
    try:
        stack.start()
        closed = _closed_port()
        docs = []
        for i in range(args.n):
            smtp, inbox, user = mix(i, stack.ports, closed)
            docs.append(account(i, smtp, inbox, user))
        write_manifests(os.path.join(work, "accounts"), docs)
        tarpit_port = listener.getsockname()[1]
        tar_docs = [account(i, dict(host="127.0.0.1", port=tarpit_port, pw="GOOD_PW",
                                    security=("none", "starttls", "ssl")[i % 3]), None, "alice")
                    for i in range(args.tarpit_n)]
        write_manifests(os.path.join(work, "tarpit"), tar_docs)
        env = dict(os.environ, GOOD_PW=stack.user_password("alice"), BAD_PW="wrong-password",
                   MAILFORM_CA_FILE=stack.ca_file, PYTHONPATH=ROOT)

        seconds, rss, data = run_verify(os.path.join(work, "accounts"), env)
        codes = Counter(r["code"] for r in data["results"])
        print(f"verify n={args.n} checks={len(data['results'])} concurrency=16: "
              f"{seconds:.2f}s, peak RSS {rss:.1f} MB, codes {dict(sorted(codes.items()))}")
        serial = float("nan")
        if not args.skip_serial:
            serial, rss1, data1 = run_verify(os.path.join(work, "accounts"), env,
                                             "--concurrency", "1")
            codes1 = Counter(r["code"] for r in data1["results"])
            print(f"verify n={args.n} concurrency=1: {serial:.2f}s, codes match: "
                  f"{codes1 == codes}")
        tarpit, rss2, data2 = run_verify(os.path.join(work, "tarpit"), env,
                                         "--timeout", "2", "--concurrency", "50")
        tcodes = Counter(r["code"] for r in data2["results"])
        print(f"tarpit n={args.tarpit_n} timeout=2 concurrency=50: {tarpit:.2f}s, "
              f"codes {dict(tcodes)}")
        peak = max(rss, rss1 if not args.skip_serial else 0.0, rss2)
        speedup = serial / seconds if seconds else float("nan")
        verdicts = [f"speedup {speedup:.1f} (goal >= {GOAL_SPEEDUP})",
                    f"tarpit {tarpit:.2f}s (goal <= {GOAL_TARPIT})",
                    f"peak RSS {peak:.1f} MB (goal <= {GOAL_RSS_MB})"]
        print("; ".join(verdicts))
        print("RESULT " + json.dumps({
            "bench": "verify", "n": args.n, "seconds": round(seconds, 2),
            "serial_seconds": round(serial, 2), "speedup": round(speedup, 2),
            "tarpit_seconds": round(tarpit, 2), "peak_rss_mb": round(peak, 1)}))
    finally:
        listener.close()
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
