"""Plan → text, one small module per format."""
from __future__ import annotations

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
