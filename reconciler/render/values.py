"""How field values look in text renderings."""
from __future__ import annotations

import json
from typing import Any

from ..diff import Change

SENSITIVE_TEXT = "(sensitive value)"


def show(value: Any, sensitive: bool = False) -> str:
    if sensitive and value is not None:
        return SENSITIVE_TEXT
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
