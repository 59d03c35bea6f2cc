"""Printing helpers: the only place that writes problems to the terminal."""
from __future__ import annotations

import os
import sys

import click

from ..errors import Problem


def use_color(no_color: bool = False, stream=None) -> bool:
    stream = stream or sys.stdout
    if no_color or "NO_COLOR" in os.environ:
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def print_problems(problems: list[Problem], warnings: list[Problem] = ()) -> None:
    color = use_color(stream=sys.stderr)
    for warning in warnings:
        label = click.style("Warning:", fg="yellow", bold=True) if color else "Warning:"
        click.echo(f"{label} {warning}", err=True)
    for problem in problems:
        label = click.style("Error:", fg="red", bold=True) if color else "Error:"
        click.echo(f"{label} {problem}", err=True)


def plural(count: int, word: str, many: str = "") -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"
