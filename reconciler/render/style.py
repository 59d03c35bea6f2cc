"""ANSI styling for terminal output (the renderers do not depend on click)."""
from __future__ import annotations

_COLORS = {"red": 31, "green": 32, "yellow": 33, "magenta": 35}


def style(text: str, fg: str | None = None, bold: bool = False) -> str:
    codes = ([f"\x1b[{_COLORS[fg]}m"] if fg else []) + (["\x1b[1m"] if bold else [])
    return "".join(codes) + text + "\x1b[0m"
