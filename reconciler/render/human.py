"""Terraform-shaped text: drift first, one block per account, the Plan line last."""
from __future__ import annotations

from typing import Callable, Optional

from ..plan import MEMO_LIMIT, Plan, ResourceChange
from .style import style
from .values import change_text, show

HEADLINES = {"create": "will be created", "update": "will be updated in-place",
             "delete": "will be destroyed", "replace": "must be replaced",
             "forget": "will be forgotten"}
SYMBOLS = {"create": "+", "update": "~", "delete": "-", "replace": "-/+", "move": "~"}
FORGET_NOTE = "  # (it stays in the registry, unchanged; mailform no longer manages it)"
COLORS = {"+": "green", "~": "yellow", "-": "red", "-/+": "magenta"}
RULE = "─" * 77


class _Out:
    """The lines of a rendering; with ``write``, handed out every ``FLUSH_LINES`` lines
    (a plan of 100,000 creates is never held as one text)."""

    FLUSH_LINES = 1000

    def __init__(self, color: bool, write: Optional[Callable[[str], None]] = None):
        self.color, self.lines, self.write = color, [], write
        self.created: dict[int, str] = {}    # id(change) -> its line in a create (shared)

    def sym(self, symbol: str) -> str:
        return style(symbol, fg=COLORS[symbol], bold=True) if self.color else symbol

    def bold(self, text: str) -> str:
        return style(text, bold=True) if self.color else text

    def add(self, text: str = "") -> None:
        self.lines.append(text)
        if self.write is not None and len(self.lines) >= self.FLUSH_LINES:
            self.flush()

    def extend(self, lines: list[str]) -> None:
        self.lines += lines
        if self.write is not None and len(self.lines) >= self.FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        if self.lines:
            self.write("\n".join(self.lines) + "\n")
            self.lines = []

    def text(self) -> str:
        """What is left: written out (returns "") or, without ``write``, the whole text."""
        if self.write is not None:
            self.flush()
            return ""
        return "\n".join(self.lines) + "\n"


def _created_lines(out: _Out, rc: ResourceChange) -> None:
    """A create's fields; a change object met before (a plan of creates shares most of them,
    see diff._created) is written as the line made for it then (up to MEMO_LIMIT)."""
    memo, lines = out.created, []
    for change in rc.changes:
        line = memo.get(id(change))
        if line is None:
            line = (f"      {out.sym('+')} {change.path} = "
                    f"{show(change.after, change.sensitive)}")
            if len(memo) < MEMO_LIMIT:
                memo[id(change)] = line
        lines.append(line)
    out.extend(lines)


def _fields(out: _Out, rc: ResourceChange) -> None:
    if rc.action == "create":
        _created_lines(out, rc)
        return
    for change in rc.changes:
        if rc.action == "delete":
            out.add(f"      {out.sym('-')} {change.path} = {show(change.before, change.sensitive)}"
                    " -> null")
        else:
            symbol, text = change_text(change)
            forces = "  # forces replacement" if rc.action == "replace" and change.path == "type" else ""
            out.add(f"      {out.sym(symbol)} {text}{forces}")
    if rc.action == "move" and not rc.changes:
        out.add("        # (unchanged apart from its name)")
    if rc.unchanged and rc.action in ("update", "move"):
        noun = "field" if rc.unchanged == 1 else "fields"
        out.add(f"        # ({rc.unchanged} unchanged {noun} hidden)")


def _headline(rc: ResourceChange) -> str:
    if rc.action == "move":
        return f"  # {rc.previous_address} has moved to {rc.address}"
    return f"  # {rc.address} {HEADLINES[rc.action]}"


def _resource(out: _Out, rc: ResourceChange) -> None:
    out.add(out.bold(_headline(rc)))
    for note in rc.notes:
        out.add(f"  # note: {note}")
    if rc.action == "forget":
        out.add(FORGET_NOTE)
        out.add("")
        return
    if rc.verification:
        for server, result in sorted(rc.verification.items()):
            out.add(f"  # verify {server}: {result.get('summary') or result.get('code')}".rstrip())
    symbol = SYMBOLS[rc.action]
    pad = "" if symbol == "-/+" else "  "
    mark = out.sym(symbol) if rc.changes or rc.action != "move" else " "
    out.add(f"{pad}{mark} {rc.resource} \"{rc.name}\" {{")
    _fields(out, rc)
    out.add("    }")
    out.add("")


def summary_line(summary: dict) -> str:
    """`Plan: X to add, Y to change, Z to destroy.`, with `, N to forget` when N > 0."""
    forget = f", {summary['forget']} to forget" if summary.get("forget") else ""
    return (f"{summary['add']} to add, {summary['change']} to change, "
            f"{summary['destroy']} to destroy{forget}.")


def _guards(out: _Out, plan: Plan) -> None:
    for guard in plan.guards:
        if guard.blocked:
            label = style("Blocked", fg="red", bold=True) if out.color else "Blocked"
            out.add(f"{label} by guard {guard.name}: {guard.detail}")
        elif guard.forced:
            out.add(f"Guard {guard.name} passed with --force: {guard.detail}")
    if any(g.blocked or g.forced for g in plan.guards):
        out.add("")


def unmanaged_line(count: int) -> str:
    noun = "account" if count == 1 else "accounts"
    return (f"{count} {noun} of the registry managed by another project or by none: "
            "left alone.")


def _drift(out: _Out, plan: Plan) -> None:
    out.add(out.bold("Objects changed outside of mailform"))
    out.add("")
    out.add("mailform detected the following changes made outside of mailform "
            "since the last \"mailform apply\":")
    out.add("")
    for drift in plan.drift:
        out.add(out.bold(f"  # {drift.address} has changed"))
        out.add(f"  {out.sym('~')} account \"{drift.name}\" {{")
        for change in drift.changes:
            symbol, text = change_text(change)
            out.add(f"      {out.sym(symbol)} {text}")
        out.add("    }")
        out.add("")
    out.add("Unless you have made equivalent changes to your manifests, the plan below will undo them.")
    out.add("")
    out.add(RULE)
    out.add("")


def render_human(plan: Plan, color: bool = False,
                 write: Optional[Callable[[str], None]] = None) -> str:
    """The plan as text; with ``write``, written out piece by piece (returns "")."""
    out = _Out(color, write)
    if plan.unmanaged:
        out.add(unmanaged_line(plan.unmanaged))
        out.add("")
    if plan.drift:
        _drift(out, plan)
    if not plan.has_changes:
        out.add(out.bold("No changes.") + " The registry matches the manifests." if color else
                "No changes. The registry matches the manifests.")
        return out.text()
    out.add("mailform will perform the following actions:")
    out.add("")
    for rc in plan.resource_changes:
        _resource(out, rc)
    _guards(out, plan)
    out.add(out.bold("Plan:") + " " + summary_line(plan.summary))
    return out.text()
