"""The click commands: the only place that prints, prompts or chooses exit codes."""
from __future__ import annotations

import importlib
import os
import sys

import click

from .. import __version__
from ..errors import MailformError, ManifestError

USAGE_EXIT = 64


# command name -> (module, attribute): imported only when the command runs, so that
# `mailform validate` does not pay for the proxy's or the probes' imports.
COMMANDS = {
    "validate": ("cmd_validate", "validate"),
    "plan": ("cmd_plan", "plan"),
    "apply": ("cmd_plan", "apply"),
    "verify": ("cmd_verify", "verify"),
    "debug": ("cmd_debug", "debug"),
    "state": ("cmd_state", "state"),
    "registry": ("cmd_state", "registry_group"),
    "accounts": ("cmd_state", "accounts"),
    "history": ("cmd_state", "history"),
    "force-unlock": ("cmd_state", "force_unlock"),
    "import": ("cmd_import", "import_"),
    "fmt": ("cmd_fmt", "fmt"),
    "schema": ("cmd_validate", "schema"),
    "contacts": ("cmd_contacts", "contacts"),
    "bounces": ("cmd_bounces", "bounces"),
    "inbox": ("cmd_inbox", "inbox"),
    "sender": ("cmd_sender", "sender"),
    "proxy": ("cmd_proxy", "proxy"),
    "reconcile": ("cmd_reconcile", "reconcile"),
    "events": ("cmd_events", "events"),
    "webhooks": ("cmd_webhooks", "webhooks"),
    "worker": ("cmd_worker", "worker"),
}


# Terraform's commands that have another name here: `mailform init` says where to look.
TERRAFORM_COMMANDS = {"init": "registry init", "show": "state show NAME"}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def resolve_command(self, ctx, args):
        if args and args[0] in TERRAFORM_COMMANDS and args[0] not in COMMANDS:
            ctx.fail(f"No such command '{args[0]}': mailform's is "
                     f"`mailform {TERRAFORM_COMMANDS[args[0]]}`.")
        return super().resolve_command(ctx, args)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mailform")
def cli():
    """mailform: email accounts as code.

    Declare sending accounts in YAML, `plan` the diff against the platform's
    registry, `apply` it once every changed account has proven it can log in.
    """


def main(argv=None) -> None:
    """Entry point: maps errors to SPEC §3 exit codes, never shows a traceback."""
    try:
        from .argv import normalise
        args = normalise(cli, sys.argv[1:] if argv is None else argv)
        code = cli.main(args=args, prog_name="mailform", standalone_mode=False)
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
    except ManifestError as exc:
        from .output import plural, print_problems
        print_problems(exc.problems, exc.warnings)
        click.echo(f"{plural(len(exc.problems), 'error')}: invalid", err=True)
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
