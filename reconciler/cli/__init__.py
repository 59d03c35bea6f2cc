"""The click commands: the only place that prints, prompts or chooses exit codes."""
from __future__ import annotations

import os
import sys

import click

from .. import __version__
from ..errors import MailformError

USAGE_EXIT = 64


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mailform")
def cli():
    """mailform: email accounts as code.

    Declare sending accounts in YAML, `plan` the diff against the platform's
    registry, `apply` it once every changed account has proven it can log in.
    """


def _register() -> None:
    from .cmd_bounces import bounces
    from .cmd_contacts import contacts
    from .cmd_debug import debug
    from .cmd_verify import verify
    from .cmd_fmt import fmt
    from .cmd_import import import_
    from .cmd_inbox import inbox
    from .cmd_proxy import proxy
    from .cmd_reconcile import reconcile
    from .cmd_sender import sender
    from .cmd_plan import apply, plan
    from .cmd_state import accounts, force_unlock, history, registry_group, state
    from .cmd_validate import schema, validate
    for command in (validate, plan, apply, verify, debug, state, registry_group, accounts, history,
                    force_unlock, import_, contacts, bounces, inbox, sender, proxy, reconcile, fmt, schema):
        cli.add_command(command)


_register()


def main(argv=None) -> None:
    """Entry point: maps errors to SPEC §3 exit codes, never shows a traceback."""
    try:
        code = cli.main(args=argv, prog_name="mailform", standalone_mode=False)
    except click.exceptions.UsageError as exc:
        exc.show()
        code = USAGE_EXIT
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = 1
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except MailformError as exc:
        click.echo(f"Error: {exc}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = 130
    except BrokenPipeError:
        code = 1
    except Exception as exc:  # a bug: say so plainly, traceback only on request
        if os.environ.get("MAILFORM_DEBUG"):
            raise
        click.echo(f"Error: internal error ({type(exc).__name__}); "
                   "set MAILFORM_DEBUG=1 to see the traceback", err=True)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)
