"""How field values look in text renderings."""
from __future__ import annotations

import json
from typing import Any

from ..diff import Change

SENSITIVE_TEXT = "(sensitive value)"


_LITERALS = {True: "true", False: "false", None: "null"}


def show(value: Any, sensitive: bool = False) -> str:
    """The value as JSON (what ``json.dumps(value, ensure_ascii=False)`` gives; the common
    cases — plain strings, booleans, null, integers — without calling it)."""
    if sensitive and value is not None:
        return SENSITIVE_TEXT
    if value is None or value is True or value is False:
        return _LITERALS[value]
    kind = type(value)
    if kind is str and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    if kind is int:
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def change_text(change: Change) -> tuple[str, str]:
    """(symbol, 'path = value' text) for one change of an update."""
    before, after = show(change.before, change.sensitive), show(change.after, change.sensitive)
    if change.before is None:
        return "+", f"{change.path} = {after}"
    if change.after is None:
        return "-", f"{change.path} = {before} -> null"
    if change.sensitive:
        return "~", f"{change.path} = {SENSITIVE_TEXT}"
    return "~", f"{change.path} = {before} -> {after}"
