"""Plan → text, one small module per format."""
from __future__ import annotations

from typing import Callable

from ..plan import Plan


def render(plan: Plan, fmt: str, color: bool = False) -> str:
    if fmt == "json":
        from .json_out import render_json
        return render_json(plan)
    if fmt == "markdown":
        from .markdown import render_markdown
        return render_markdown(plan)
    from .human import render_human
    return render_human(plan, color=color)


def render_to(plan: Plan, fmt: str, write: Callable[[str], None], color: bool = False) -> None:
    """The rendering handed to ``write``: the human form piece by piece, as it is made."""
    if fmt in ("json", "markdown"):
        write(render(plan, fmt, color))
        return
    from .human import render_human
    render_human(plan, color=color, write=write)
