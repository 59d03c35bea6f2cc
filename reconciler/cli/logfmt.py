"""Logs of long-running commands: one line per event, as text or one JSON object.

``--log-format json`` prints ``{"time", "level", "logger", "event", "message", …}``
with the record's extra fields (procrastinate's ``action``, ``job``…, ours
``event``, ``account``…), one object per line on stderr.
"""
from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

import click

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body = {"time": _now(), "level": record.levelname.lower(), "logger": record.name,
                "event": getattr(record, "event", None) or getattr(record, "action", None)
                or "log", "message": record.getMessage()}
        body.update({k: v for k, v in vars(record).items()
                     if k not in _STANDARD and k not in body})
        if record.exc_info and record.exc_info[1] is not None:
            body["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(body, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = {k: v for k, v in vars(record).items()
                 if k not in _STANDARD and k in ("account", "kind", "jobs", "outcome", "job")}
        tail = "".join(f" {k}={v}" for k, v in extra.items())
        if record.exc_info and record.exc_info[1] is not None:
            tail += f" error={type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return f"{_now()} {record.levelname.lower()} {record.getMessage()}{tail}"


def setup(fmt: str, level: int = logging.INFO) -> None:
    """Route every logger (ours and procrastinate's) to stderr in ``fmt``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("procrastinate").setLevel(logging.WARNING if fmt == "text" else level)


def event(fmt: str, name: str, **fields) -> None:
    """One event of a command that prints its own (e.g. a reconcile pass)."""
    if fmt == "json":
        click.echo(json.dumps({"time": _now(), "event": name, **fields}, default=str))


def log_format_option(func):
    return click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
                        show_default=True,
                        help="How events are printed: text lines, or one JSON object per "
                             "event.")(func)


def metrics_listen_option(func):
    return click.option("--metrics-listen", metavar="HOST:PORT", default=None,
                        help="Serve Prometheus metrics on /metrics, and /healthz and "
                             "/readyz, at HOST:PORT.")(func)
