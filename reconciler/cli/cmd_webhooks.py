"""`mailform webhooks serve --listen HOST:PORT`: provider webhooks in (issue 14)."""
from __future__ import annotations

import os
import re
from datetime import datetime, timezone

import click

from ..errors import MailformError
from ..events import sendgrid, sns
from ..events.server import ServeConfig, make_server
from ..registry import open_registry
from .options import registry_option

MAILGUN_KEY_VAR = "MAILFORM_MAILGUN_SIGNING_KEY"
POSTMARK_USER_VAR = "MAILFORM_POSTMARK_USER"
POSTMARK_PASSWORD_VAR = "MAILFORM_POSTMARK_PASSWORD"
SENDGRID_KEY_VAR = "MAILFORM_SENDGRID_PUBLIC_KEY"


@click.group()
def webhooks():
    """Email providers' webhooks: bounces and complaints from SES, SendGrid, Mailgun,
    Postmark into the contact ledger."""


def _listen(ctx, param, value):
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"'{value}' is not HOST:PORT", ctx, param)
    return host.strip("[]") or "127.0.0.1", int(port)


def _pattern(ctx, param, value):
    try:
        re.compile(value)
    except re.error as exc:
        raise click.BadParameter(f"not a regular expression ({exc})", ctx, param)
    return value


@webhooks.command("serve")
@click.option("--listen", required=True, callback=_listen, metavar="HOST:PORT")
@click.option("--sns-cert-url-pattern", default=sns.DEFAULT_CERT_URL_PATTERN,
              callback=_pattern, show_default=True, metavar="REGEX",
              help="SNS signing-certificate URLs allowed (the whole URL must match).")
@click.option("--no-ses", is_flag=True, help="Do not serve /ses.")
@click.option("--sendgrid-public-key", envvar=SENDGRID_KEY_VAR, default=None, metavar="KEY",
              help=f"SendGrid's verification key, base64 DER or PEM (or {SENDGRID_KEY_VAR}); "
                   "/sendgrid is served only with it.")
@click.option("--postmark-user", envvar=POSTMARK_USER_VAR, default=None, metavar="USER",
              help=f"Basic-auth user in Postmark's webhook URL (or {POSTMARK_USER_VAR}); "
                   f"the password is read from {POSTMARK_PASSWORD_VAR} only.")
@registry_option
def serve(listen, sns_cert_url_pattern, no_ses, sendgrid_public_key, postmark_user,
          registry_url):
    """Serve POST /ses, /sendgrid, /mailgun, /postmark, each verifying the provider's
    signature (or basic auth for Postmark). The Mailgun signing key is read from
    MAILFORM_MAILGUN_SIGNING_KEY; /mailgun and /postmark are served only when their
    secrets are set. Stops on Ctrl-C."""
    config = _config(no_ses, sns_cert_url_pattern, sendgrid_public_key, postmark_user)
    if not config.enabled():
        raise MailformError("no provider to serve: give SES back (no --no-ses), a SendGrid "
                            f"key, {MAILGUN_KEY_VAR} or the Postmark credentials")
    with open_registry(registry_url) as registry:
        server = make_server(registry, config, *listen)
        host, port = server.server_address[:2]
        click.echo(f"Serving {', '.join('/' + p for p in config.enabled())} on "
                   f"http://{host}:{port}", err=True)
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            server.server_close()
    return 0


def _config(no_ses, pattern, sendgrid_key, postmark_user) -> ServeConfig:
    password = os.environ.get(POSTMARK_PASSWORD_VAR)
    if bool(postmark_user) != bool(password):
        raise MailformError(f"Postmark needs both {POSTMARK_USER_VAR} (or --postmark-user) "
                            f"and {POSTMARK_PASSWORD_VAR}")
    return ServeConfig(
        certificates=None if no_ses else sns.CertificateCache(pattern),
        sendgrid_key=sendgrid.load_key(sendgrid_key) if sendgrid_key else None,
        mailgun_key=os.environ.get(MAILGUN_KEY_VAR) or None,
        postmark_auth=(postmark_user, password) if postmark_user else None,
        log=_log)


def _log(line: str) -> None:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    click.echo(f"{stamp} {line}", err=True)
