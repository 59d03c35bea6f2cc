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

The two take turns in ``--rounds`` batches (proxy, direct, direct, proxy, …), so that a
neighbour's load on a shared machine, and the stack's warm-up, fall on both alike. Before
the rates, the CPU milliseconds per message of each part (this client, the proxy's
processes, Postfix and Dovecot: user+sys from /proc, children included) are printed for
both sides: on a busy machine they say more than the rates. (Postfix delivers after it
answers, so a little of one batch's delivery falls in the next batch: the Postfix+Dovecot
split between the sides is approximate, their sum exact.)

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
import resource
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


def run(port: int, ctx, user: str, password: str, to: str, messages: range, clients: int,
        watched: dict) -> tuple[float, dict]:
    """Seconds taken by ``messages``, each message its own session; and the CPU seconds of
    each part (``watched``: name -> a function giving its CPU seconds so far)."""
    before = {name: cpu() for name, cpu in watched.items()}
    start = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda n: send_one(port, ctx, user, password, to, n), messages))
    return time.monotonic() - start, {name: cpu() - before[name]
                                      for name, cpu in watched.items()}


def compare(sides: dict, send, messages: int, rounds: int, watched: dict) -> dict:
    """Each side (name -> port) sends ``messages`` in ``rounds`` batches, the sides taking
    turns and the order flipped every round (A B, B A, …), so that both see the same
    warm-up and the same load from whatever else runs on the machine. Per side: messages
    per second over its own batches, and CPU milliseconds per message of each part."""
    batches = [range(i * messages // rounds, (i + 1) * messages // rounds)
               for i in range(rounds)]
    took = {name: 0.0 for name in sides}
    cpu = {name: dict.fromkeys(watched, 0.0) for name in sides}
    for turn, batch in enumerate(batches):
        for name in (list(sides) if turn % 2 == 0 else list(sides)[::-1]):
            seconds, used = send(sides[name], batch, watched)
            took[name] += seconds
            for part, value in used.items():
                cpu[name][part] += value
    return {name: (messages / took[name],
                   {part: round(value * 1000 / messages, 2)
                    for part, value in cpu[name].items()}) for name in sides}


_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid) -> list[str]:
    """/proc/PID/stat's fields after the command name (field 3 onwards)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()


def tree_cpu(pid: int) -> float:
    """CPU seconds (user+sys) of a process and its children, live ones, and those that
    exited and were waited for."""
    total = 0.0
    for one in [pid] + subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                      text=True).stdout.split():
        try:
            fields = _stat(one)
        except (OSError, ValueError):
            continue
        total += sum(int(v) for v in fields[11:15]) / _TICK
    return total


def sessions_cpu(sids: set[int]) -> float:
    """CPU seconds of every process in the given sessions (the mail stack's daemons and
    what they spawned), with the children they waited for."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(entry.name)
        except (OSError, ValueError):
            continue
        if int(fields[3]) in sids:
            total += sum(int(v) for v in fields[11:15]) / _TICK
    return total


def stack_sessions(spawned: list[int]) -> set[int]:
    """The sessions of the stack's daemons: each was spawned in a session of its own, and
    Postfix's master starts one more (setsid)."""
    sids = set(spawned)
    for pid in spawned:
        for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                    text=True).stdout.split():
            try:
                sids.add(int(_stat(child)[3]))
            except (OSError, ValueError):
                pass
    return sids


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
            sids = stack_sessions(list(stack.pids.values()))
            watched = {"client": own_cpu, "proxy": lambda: tree_cpu(proc.pid),
                       "postfix+dovecot": lambda: sessions_cpu(sids)}
            result = compare(
                {"proxy": port, "direct": stack.ports["submission"]},
                lambda where, batch, cpu: run(where, ctx, user, "bench-bench-pw", to, batch,
                                              args.clients, cpu),
                args.messages, args.rounds, watched)
            (proxied, via_cpu), (direct, direct_cpu) = result["proxy"], result["direct"]
            for name, split in (("proxy", via_cpu), ("direct", direct_cpu)):
                print(f"CPU ms per message {name}: " + ", ".join(
                    f"{part} {ms:.2f}" for part, ms in split.items())
                    + f", total {sum(split.values()):.2f}", flush=True)
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
    parser.add_argument("--rounds", type=int, default=4,
                        help="batches per side, the proxy and Postfix taking turns (the "
                             "order flipped every round) so that both see the same load")
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
