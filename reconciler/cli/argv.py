"""Terraform habits on the command line: ``-out=FILE``, ``-auto-approve``, ``-target=NAME``.

Terraform spells long options with one dash; click reads ``-out=x.plan`` as the
short option ``-o`` with the value ``ut=x.plan``, a silent misparse. Before click
parses anything, ``normalise`` walks the words of the command line against the
command they go to:

* ``-NAME`` / ``-NAME=VALUE`` where the command has ``--NAME``: rewritten to
  ``--NAME`` / ``--NAME=VALUE`` (an alias);
* any other ``-NAME…`` of two or more letters that click would read as a short
  option with a value, or that the command does not take at all: a usage error
  (exit 64) naming the double-dash spelling.

Words after ``--``, and the value words of options that take one, are left alone.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import click

_LONG_SINGLE = re.compile(r"-([a-z][a-z0-9-]+)(=.*)?", re.DOTALL)
_HELP = ("-h", "--help")


class _Options:
    """The options one command (or group) takes: long names, and which take a value."""

    def __init__(self, command: click.Command):
        self.longs: set[str] = {"--help"}
        self.shorts: set[str] = {"-h"}
        self.valued: set[str] = set()
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            for opt in [*param.opts, *param.secondary_opts]:
                (self.longs if opt.startswith("--") else self.shorts).add(opt)
                if not param.is_flag and not param.count and not param._flag_needs_value:
                    self.valued.add(opt)


def normalise(root: click.Command, args: Sequence[str]) -> list[str]:
    """``args`` with single-dash long options rewritten; click.UsageError for a misparse."""
    out: list[str] = []
    command: Optional[click.Command] = root
    options = _Options(root)
    path: list[str] = []                       # the subcommands named so far: `state list`
    words = list(args)
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--":
            return out + words[index - 1:]
        if word.startswith("-") and word != "-":
            word = _fix(word, options, " ".join(path) if command is not None else "")
            out.append(word)
            if word.split("=", 1)[0] in options.valued and "=" not in word \
                    and index < len(words):
                out.append(words[index])       # the option's value, whatever it looks like
                index += 1
            continue
        out.append(word)
        command, options = _descend(command, word, options)
        if command is not None and command.name == word:
            path.append(word)
    return out


def _descend(command: Optional[click.Command], word: str, options: _Options):
    """A positional word: the subcommand it names, when ``command`` is a group."""
    if isinstance(command, click.Group):
        sub = command.get_command(click.Context(command), word)
        if sub is not None:
            return sub, _Options(sub)
        return None, options
    return command, options


def _fix(word: str, options: _Options, command: str) -> str:
    if word.startswith("--") or word in options.shorts:
        return word
    match = _LONG_SINGLE.fullmatch(word)
    if match is None:
        return word
    name, value = match.group(1), match.group(2) or ""
    if f"--{name}" in options.longs:
        return f"--{name}{value}"
    short = word[:2]
    if short in options.shorts and short in options.valued and not value:
        return word                              # `-oplan.json`: -o with its value
    where = f"`{command}`" if command else "this command"
    hint = ("; for JSON output use --format json"
            if name == "json" and "--format" in options.longs else "")
    if short in options.valued:
        raise click.UsageError(
            f"{word} would be read as {short} {word[2:]}; mailform spells long options "
            f"with two dashes (--{name}{value}), which {where} does not take{hint}")
    raise click.UsageError(f"no such option {word}: mailform spells long options with two "
                           f"dashes (--{name}{value}), which {where} does not take{hint}")
