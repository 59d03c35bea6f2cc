"""`mailform proxy serve` (the SMTP submission proxy, SPEC §7) and `mailform proxy log`."""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys

import click

from ..proxy.auth import DEFAULT_TTL
from ..proxy.config import (DEFAULT_LOG_RETENTION_DAYS, DEFAULT_MAX_MESSAGE_SIZE,
                            DEFAULT_MAX_UPSTREAM_SESSIONS, DEFAULT_SHUTDOWN_GRACE,
                            DEFAULT_UPSTREAM_IDLE, ConfigError, ProxyConfig, check_config,
                            parse_listen)
from ..proxy.ratelimit import (DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY, DEFAULT_MAX_FAILURES,
                               DEFAULT_WINDOW, LimitSettings)
from ..proxy.relay import DEFAULT_TIMEOUT
from ..proxy.server import ProxyServer, serve_until
from ..proxy.service import (Proxy, bind, delivery_entries, fork_workers, run_loop,
                             stop_workers)
from ..registry import open_registry
from .cmd_events import parse_date
from .options import format_option, registry_option
from .reading import open_for_reading


@click.group()
def proxy():
    """The SMTP submission proxy: mail clients send through an account."""


def _logging() -> None:
    logger = logging.getLogger("mailform.proxy")
    if not any(getattr(h, "_mailform_proxy", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s mailform-proxy %(levelname)s %(message)s"))
        handler._mailform_proxy = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _config(listen, max_failures, window, delay, **options) -> ProxyConfig:
    try:
        host, port = parse_listen(listen)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    limits = LimitSettings(max_failures=max_failures, window=window, base_delay=delay,
                           max_delay=max(DEFAULT_MAX_DELAY, delay))
    return ProxyConfig(host=host, port=port, limits=limits, **options)


@proxy.command("serve")
@click.option("--listen", required=True, metavar="HOST:PORT",
              help="Address to listen on, e.g. 127.0.0.1:2525 or [::]:587 (port 0: any free port).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False),
              help="PEM certificate (chain) for STARTTLS; enables TLS.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False),
              help="PEM private key (default: in the --tls-cert file).")
@click.option("--implicit-tls", is_flag=True,
              help="SMTPS: TLS from the first byte instead of STARTTLS.")
@click.option("--allow-plain-auth", is_flag=True,
              help="Accept AUTH without TLS. Only on a loopback listener.")
@click.option("--max-auth-failures", "max_failures", type=click.IntRange(min=1),
              default=DEFAULT_MAX_FAILURES, show_default=True,
              help="Failed logins from one address within the window before it is refused "
                   "(counted in the registry: shared by replicas).")
@click.option("--auth-failure-window", "window", type=click.FloatRange(min=1),
              default=DEFAULT_WINDOW, show_default=True,
              help="Seconds a failed login counts against its address.")
@click.option("--auth-failure-delay", "delay", type=click.FloatRange(min=0),
              default=DEFAULT_BASE_DELAY, show_default=True,
              help=f"Seconds before answering a failed login; doubles per failure "
                   f"(capped at {DEFAULT_MAX_DELAY:g} s).")
@click.option("--upstream-timeout", type=click.FloatRange(min=1), default=DEFAULT_TIMEOUT,
              show_default=True, help="Seconds for each step with an account's SMTP server "
                                      "(connect, TLS, EHLO, AUTH, MAIL, each RCPT, DATA).")
@click.option("--max-upstream-sessions", type=click.IntRange(min=1),
              default=DEFAULT_MAX_UPSTREAM_SESSIONS, show_default=True,
              help="Concurrent sessions with one account's SMTP server (per worker).")
@click.option("--upstream-idle", type=click.FloatRange(min=0), default=DEFAULT_UPSTREAM_IDLE,
              show_default=True, help="Seconds an idle upstream session is kept for reuse.")
@click.option("--proxy-protocol", is_flag=True,
              help="Every connection starts with a PROXY v1/v2 header (behind a load "
                   "balancer): throttling and logs see the client's address.")
@click.option("--log-retention-days", type=click.FloatRange(min=1),
              default=DEFAULT_LOG_RETENTION_DAYS, show_default=True,
              help="Days the delivery log keeps a message.")
@click.option("--shutdown-grace", type=click.FloatRange(min=0), default=DEFAULT_SHUTDOWN_GRACE,
              show_default=True, help="Seconds sessions in flight get to finish after SIGTERM.")
@click.option("--metrics-listen", default=None, metavar="HOST:PORT",
              help="Serve /metrics, /healthz and /readyz on this address.")
@click.option("--hostname", default=None, help="Name in the greeting (default: this host's name).")
@click.option("--max-message-size", type=click.IntRange(min=1024),
              default=DEFAULT_MAX_MESSAGE_SIZE, show_default=True, help="Bytes.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes accepting on the listener (they share the registry and "
                   "its throttle, like replicas).")
@registry_option
def serve(listen, max_failures, window, delay, metrics_listen, workers, registry_url,
          **options):
    """Serve SMTP submission: clients log in with an account's email and SMTP password,
    and each message is relayed through the account's own SMTP server.

    Runs until SIGINT or SIGTERM (sessions in flight may finish first). Registry
    changes are picked up without a restart (notified on PostgreSQL, the serial polled
    every couple of seconds on SQLite).
    """
    config = _config(listen, max_failures, window, delay, **options)
    opener = lambda: open_registry(registry_url)  # noqa: E731
    sock, pids = None, []
    try:
        check_config(config)
        if workers > 1:
            sock = bind(config)
            opener().close()            # fail fast, before forking, when it cannot be read
            pids = fork_workers(workers - 1)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    child = workers > 1 and not pids
    _serve(config, opener, sock, None if child else metrics_listen, pids, child)
    if child:
        os._exit(0)                     # the parent reports; nothing of click's here
    stop_workers(pids, config.shutdown_grace + 2 * config.upstream_timeout + 10)
    click.echo("mailform proxy stopped.", err=True)
    return 0


def _serve(config, opener, sock, metrics_listen, pids, child) -> None:
    running = Proxy(config, opener, DEFAULT_TTL, sock)
    try:
        running.prepare()     # fail fast when the registry cannot be read
        gc.freeze()           # what is loaded by now stays: the proxy's collections stay cheap
        _logging()
        stop_metrics = _metrics(metrics_listen, running.ready)
        try:
            run_loop(_run(running, pids, quiet=child))
        finally:
            stop_metrics()
    finally:
        running.close()


def _metrics(listen, ready):
    if not listen:
        return lambda: None
    from .. import metrics
    try:
        return metrics.start(listen, ready)
    except (ValueError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics-listen") from None


async def _run(running: Proxy, workers: list[int], quiet: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stopping() -> None:
        stop.set()
        for pid in workers:             # each worker stops gracefully at the same time
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping)

    def ready(srv: ProxyServer) -> None:
        click.echo(f"mailform proxy listening on {srv.describe()}")
        how = ("notified (LISTEN/NOTIFY)" if running.listening
               else f"polled every {DEFAULT_TTL:g} s (serial)")
        click.echo(f"{running.allowed} account(s) may log in (proxy: true); registry changes "
                   f"{how}.", err=True)
        sys.stdout.flush()

    try:
        await serve_until(running.server, stop, None if quiet else ready)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@proxy.command("log")
@click.argument("name", required=False)
@click.option("--since", default=None, metavar="DATE", help="Messages finished at or after DATE.")
@format_option("text", "json")
@registry_option
def log_(name, since, fmt, registry_url):
    """The delivery log: each message relayed (or refused) through the proxy, with
    each recipient's answer; of account NAME only when given."""
    registry = open_for_reading(registry_url)
    try:
        rows = delivery_entries(registry, name, parse_date(since, "--since"))
    finally:
        registry.close()
    for row in rows:
        click.echo(json.dumps(row, sort_keys=True) if fmt == "json" else _line(row))


def _line(row: dict) -> str:
    recipients = " ".join(f"{r['address']}={r.get('code') or '-'}"
                          + (f"({r['kind']}:{r['reason']})" if r.get("kind") else "")
                          for r in row["recipients"])
    return (f"{row['finished']} {row['account']} id={row['id']} "
            f"message-id={row.get('message_id', '-')} from={row['mail_from']} "
            f"size={row.get('size', 0)} client={row.get('client', '-')} {recipients} "
            f"upstream={row.get('upstream_reply', '-')!r}")
