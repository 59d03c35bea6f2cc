#!/usr/bin/env python3
"""Benchmark: the SMTP proxy against sending straight to Postfix (issue 12).

A throwaway mail stack (devtools/mailstack.py: Postfix + Dovecot) is the upstream. The
same messages are sent, each in its own client session with STARTTLS and AUTH as mail
clients do, by ``--clients`` concurrent clients:

* through ``mailform proxy serve`` (a STARTTLS listener, one account whose upstream is
  the stack's submission port; ``--workers`` one process per core as in production; the
  proxy keeps upstream sessions open and reuses them, up to one per client in all:
  ``--max-upstream-sessions`` 20 shared out among the workers);
* straight to the stack's submission port (STARTTLS, AUTH), in the same run.

Then login latency under stall: ``--clients`` relays hang on an account whose upstream
accepts connections and never answers, while another account logs in (STARTTLS, then
AUTH timed) ``--logins`` times; the p99 of the AUTH round trips is reported. Peak RSS is
the largest VmHWM of the proxy's processes. Needs root (the stack's Postfix and Dovecot). Last line:
``RESULT {"bench": "proxy", ...}``.

    .venv/bin/python bench/proxy.py
    .venv/bin/python bench/proxy.py --messages 400
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.mailstack import MailStack  # noqa: E402

MANIFEST = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: {name}}}
spec:
  type: smtp
  email: {email}
  display_name: {name}
  shared: true
  proxy: true
  smtp: {{host: 127.0.0.1, port: {port}, security: {security}, password: {{env: {var}}}}}
"""
BODY = ("From: {sender}\r\nTo: {to}\r\nSubject: bench {n}\r\n\r\n" + "A line of text.\r\n" * 40)


def setup(stack: MailStack, work: Path, stall_port: int) -> dict:
    """Users on the stack, a registry with the accounts, the environment to run mailform."""
    env = dict(os.environ, MAILFORM_CA_FILE=stack.ca_file, NO_COLOR="1",
               MAILFORM_REGISTRY=f"sqlite:///{work}/reg.db")
    env.pop("MAILFORM_MASTER_KEY", None)
    docs = []
    for name, port, security in (("bench", stack.ports["submission"], "starttls"),
                                 ("login", stack.ports["submission"], "starttls"),
                                 ("stall", stall_port, "none")):
        password = f"{name}-bench-pw"
        stack.add_user(f"b{name}", password)
        env[f"B_{name.upper()}_PW"] = password
        docs.append(MANIFEST.format(name=name, email=stack.address(f"b{name}"), port=port,
                                    security=security, var=f"B_{name.upper()}_PW"))
    (work / "m").mkdir()
    (work / "m" / "accounts.yaml").write_text("---\n".join(docs))
    subprocess.run([sys.executable, "-m", "reconciler", "apply", str(work / "m"),
                    "--auto-approve", "--skip-verify"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    return env


def start_proxy(stack: MailStack, env: dict, workers: int,
                sessions: int) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "proxy", "serve", "--listen", "127.0.0.1:0",
         "--tls-cert", str(stack.certs["server"]), "--hostname", "proxy.bench",
         "--upstream-timeout", "30", "--workers", str(workers),
         "--max-upstream-sessions", str(max(1, sessions // workers))],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not found:
        proc.kill()
        raise SystemExit(f"the proxy did not start: {line!r}")
    return proc, int(found.group(1))


def send_one(port: int, ctx: ssl.SSLContext, user: str, password: str, to: str, n: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(user, password)
        smtp.sendmail(user, [to], BODY.format(sender=user, to=to, n=n).encode())


def run(port: int, ctx, user: str, password: str, to: str, messages: int, clients: int) -> float:
    """Messages per second, each message its own session."""
    start = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda n: send_one(port, ctx, user, password, to, n), range(messages)))
    return messages / (time.monotonic() - start)


def login_p99(port: int, ctx, stack: MailStack, clients: int, logins: int) -> float:
    """p99 of AUTH round trips (ms) while ``clients`` relays hang on the silent upstream."""
    stuck = []
    for _ in range(clients):
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=120)
        smtp.starttls(context=ctx)
        smtp.login(stack.address("bstall"), "stall-bench-pw")
        smtp.putcmd("MAIL", f"FROM:<{stack.address('bstall')}>")
        stuck.append(smtp)
    time.sleep(1.0)
    took = []
    for _ in range(logins):
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            smtp.starttls(context=ctx)
            smtp.ehlo()
            start = time.monotonic()
            smtp.login(stack.address("blogin"), "login-bench-pw")
            took.append((time.monotonic() - start) * 1000)
    for smtp in stuck:
        smtp.close()
    took.sort()
    return took[min(len(took) - 1, int(len(took) * 0.99))]


def peak_rss_mb(pid: int) -> float:
    """The largest VmHWM of the proxy's processes (the first and the workers it forked)."""
    pids = [pid] + subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                  text=True).stdout.split()
    peaks = []
    for one in pids:
        try:
            status = Path(f"/proc/{one}/status").read_text()
        except OSError:
            continue
        peaks.append(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024)
    return max(peaks)


def measure(work: Path, stall_port: int, args) -> tuple[float, float, float, float]:
    with MailStack(work / "stack") as stack:
        env = setup(stack, work, stall_port)
        ctx = ssl.create_default_context(cafile=stack.ca_file)
        proc, port = start_proxy(stack, env, args.workers, args.clients)
        try:
            user, to = stack.address("bbench"), stack.address("blogin")
            proxied = run(port, ctx, user, "bench-bench-pw", to, args.messages, args.clients)
            direct = run(stack.ports["submission"], ctx, user, "bench-bench-pw", to,
                         args.messages, args.clients)
            p99 = login_p99(port, ctx, stack, args.clients, args.logins)
            return proxied, direct, p99, peak_rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--logins", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="proxy processes (`proxy serve --workers`; default: one per "
                             "core, as it is run in production); the upstream sessions "
                             "(one per client) are shared out among them")
    args = parser.parse_args()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(256)             # accepts (the kernel does), never answers
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)           # the stack's daemons run as other users
        proxied, direct, p99, rss = measure(Path(tmp), silent.getsockname()[1], args)
    silent.close()
    ratio = proxied / direct
    print(f"{args.messages} messages, {args.clients} clients, {args.workers} proxy "
          f"worker(s): proxy {proxied:.1f} msg/s, "
          f"direct {direct:.1f} msg/s, ratio {ratio:.2f} (goal >= 0.9)")
    print(f"login p99 under {args.clients} stalled relays: {p99:.1f} ms (goal <= 200); "
          f"proxy peak RSS {rss:.1f} MB (goal <= 150)")
    print("RESULT " + json.dumps({"bench": "proxy", "messages": args.messages,
                                  "proxy_per_second": round(proxied, 1),
                                  "direct_per_second": round(direct, 1),
                                  "ratio": round(ratio, 2),
                                  "login_p99_ms_under_stall": round(p99, 1),
                                  "peak_rss_mb": round(rss, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
