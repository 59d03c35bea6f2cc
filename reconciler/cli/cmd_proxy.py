"""`mailform proxy serve`: the SMTP submission proxy (SPEC §7)."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys

import click

from ..proxy.auth import DEFAULT_TTL, AccountDirectory
from ..proxy.ratelimit import (DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY, DEFAULT_MAX_FAILURES,
                               DEFAULT_WINDOW, LimitSettings)
from ..proxy.relay import DEFAULT_TIMEOUT
from ..proxy.server import (DEFAULT_MAX_MESSAGE_SIZE, ConfigError, ProxyConfig, ProxyServer,
                            parse_listen, serve_until)
from ..registry import open_registry
from .options import registry_option


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


def _config(listen, tls_cert, tls_key, implicit_tls, allow_plain_auth, max_failures, window,
            delay, upstream_timeout, hostname, max_message_size) -> ProxyConfig:
    try:
        host, port = parse_listen(listen)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--listen") from None
    limits = LimitSettings(max_failures=max_failures, window=window, base_delay=delay,
                           max_delay=max(DEFAULT_MAX_DELAY, delay))
    return ProxyConfig(host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
                       implicit_tls=implicit_tls, allow_plain_auth=allow_plain_auth,
                       limits=limits, upstream_timeout=upstream_timeout, hostname=hostname,
                       max_message_size=max_message_size)


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
              help="Failed logins from one address within the window before it is refused.")
@click.option("--auth-failure-window", "window", type=click.FloatRange(min=1),
              default=DEFAULT_WINDOW, show_default=True,
              help="Seconds a failed login counts against its address.")
@click.option("--auth-failure-delay", "delay", type=click.FloatRange(min=0),
              default=DEFAULT_BASE_DELAY, show_default=True,
              help=f"Seconds before answering a failed login; doubles per failure "
                   f"(capped at {DEFAULT_MAX_DELAY:g} s).")
@click.option("--upstream-timeout", type=click.FloatRange(min=1), default=DEFAULT_TIMEOUT,
              show_default=True, help="Seconds for each step with an account's SMTP server.")
@click.option("--hostname", default=None, help="Name in the greeting (default: this host's name).")
@click.option("--max-message-size", type=click.IntRange(min=1024),
              default=DEFAULT_MAX_MESSAGE_SIZE, show_default=True, help="Bytes.")
@registry_option
def serve(listen, tls_cert, tls_key, implicit_tls, allow_plain_auth, max_failures, window,
          delay, upstream_timeout, hostname, max_message_size, registry_url):
    """Serve SMTP submission: clients log in with an account's email and SMTP password,
    and each message is relayed through the account's own SMTP server.

    Runs until SIGINT or SIGTERM. The registry is re-read every couple of seconds,
    so an apply takes effect without a restart.
    """
    config = _config(listen, tls_cert, tls_key, implicit_tls, allow_plain_auth, max_failures,
                     window, delay, upstream_timeout, hostname, max_message_size)
    directory = AccountDirectory(lambda: open_registry(registry_url), ttl=DEFAULT_TTL)
    try:
        try:
            server = ProxyServer(config, directory)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        allowed = directory.refresh()     # fail fast when the registry cannot be read
        _logging()
        asyncio.run(_run(server, allowed))
    finally:
        directory.close()
    click.echo("mailform proxy stopped.", err=True)
    return 0


async def _run(server: ProxyServer, allowed: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def ready(srv: ProxyServer) -> None:
        click.echo(f"mailform proxy listening on {srv.describe()}")
        click.echo(f"{allowed} account(s) may log in (proxy: true); registry re-read every "
                   f"{DEFAULT_TTL:g} s.", err=True)
        sys.stdout.flush()

    try:
        await serve_until(server, stop, ready)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
