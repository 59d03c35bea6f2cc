"""A pull-request comment: summary table first, details folded, under 65,000 characters."""
from __future__ import annotations

from ..plan import Plan, ResourceChange
from .human import summary_line, unmanaged_line
from .values import change_text, show

LIMIT = 65_000
RESERVE = 600
ICONS = {"create": "➕ create", "update": "🔄 update", "delete": "🗑️ delete",
         "replace": "♻️ replace", "move": "🚚 move", "forget": "👋 forget"}


def _details(rc: ResourceChange) -> str:
    lines = []
    for change in rc.changes:
        if rc.action == "create":
            lines.append(f"+ {change.path} = {show(change.after, change.sensitive)}")
        elif rc.action == "delete":
            lines.append(f"- {change.path} = {show(change.before, change.sensitive)}")
        else:
            symbol, text = change_text(change)
            lines.append(f"{'!' if symbol == '~' else symbol} {text}")
    notes = "".join(f"\n> **Note:** {n}\n" for n in rc.notes + _action_notes(rc))
    notes += "".join(f"\n> {_check_line(role, result)}\n"
                     for role, result in sorted((rc.verification or {}).items()))
    body = "\n".join(lines).replace("```", "ʼʼʼ")
    block = f"```diff\n{body}\n```\n\n" if lines else ""
    return (f"<details><summary><code>{rc.address}</code> — {rc.action}</summary>\n{notes}\n"
            f"{block}</details>\n")


def _check_line(role: str, result: dict) -> str:
    """One `plan --verify` result, as the human plan's `# verify ROLE: …` line."""
    mark = "✅" if result.get("ok") else "❌"
    text = str(result.get("summary") or result.get("code")).replace("`", "'")
    return f"{mark} **verify {role}:** `{text}`"


def _failed_checks(plan: Plan) -> list[str]:
    """A callout naming every failed `plan --verify` check (the job fails on them)."""
    failed = [f"> - `{rc.name}` {role}: {result.get('code')}"
              for rc in plan.resource_changes
              for role, result in sorted((rc.verification or {}).items())
              if not result.get("ok")]
    if not failed:
        return []
    return ["> [!CAUTION]", "> Connectivity checks failed (see the accounts below):",
            *failed, ""]


def _action_notes(rc: ResourceChange) -> list[str]:
    if rc.action == "move":
        return [f"`{rc.previous_address}` has moved to `{rc.address}`"]
    if rc.action == "forget":
        return ["it stays in the registry, unchanged; mailform no longer manages it"]
    return []


def _guard_lines(plan: Plan) -> list[str]:
    out = []
    blocked, forced = plan.blocked_guards, [g for g in plan.guards if g.forced]
    if blocked:
        out += ["> [!WARNING]", "> Blocked by safety guards (apply needs `--force`):"]
        out += [f"> - **{g.name}**: {g.detail}" for g in blocked]
        out.append("")
    if forced:
        out += ["> [!CAUTION]", "> Safety guards passed with `--force`:"]
        out += [f"> - **{g.name}**: {g.detail}" for g in forced]
        out.append("")
    return out


def _header(plan: Plan) -> list[str]:
    out = [f"### mailform plan: {summary_line(plan.summary).rstrip('.')}", ""]
    if plan.unmanaged:
        out += [unmanaged_line(plan.unmanaged), ""]
    if not plan.has_changes:
        out += ["No changes. The registry matches the manifests.", ""]
    else:
        out += ["| Action | Account | Fields changed |", "| --- | --- | --- |"]
        size = 0
        for index, rc in enumerate(plan.resource_changes):
            name = f"`{rc.previous}` → `{rc.name}`" if rc.previous else f"`{rc.name}`"
            row = f"| {ICONS[rc.action]} | {name} | {len(rc.changes)} |"
            size += len(row) + 1
            if size > LIMIT // 2:
                rest = len(plan.resource_changes) - index
                out.append(f"| … | {rest} more accounts (trimmed) | |")
                break
            out.append(row)
        out.append("")
    out += _guard_lines(plan) + _failed_checks(plan)
    if plan.drift:
        out.append(f"**Drift:** {len(plan.drift)} account(s) changed outside of mailform; "
                   "this plan undoes it.")
        out.append("")
    return out


def _drift_block(plan: Plan) -> str:
    lines = []
    for drift in plan.drift:
        for change in drift.changes:
            lines.append(f"{drift.address}: {change_text(change)[1]}")
    body = "\n".join(lines).replace("```", "ʼʼʼ")
    return ("<details><summary>Objects changed outside of mailform</summary>\n\n"
            f"```\n{body}\n```\n\n</details>\n")


def render_markdown(plan: Plan) -> str:
    text = "\n".join(_header(plan)) + "\n"
    blocks = ([_drift_block(plan)] if plan.drift else []) + \
        [_details(rc) for rc in plan.resource_changes]
    shown = 0
    for block in blocks:
        if len(text) + len(block) > LIMIT - RESERVE:
            break
        text += block
        shown += 1
    if shown < len(blocks):
        text += (f"\n_Output trimmed to stay under {LIMIT:,} characters: {len(blocks) - shown} of "
                 f"{len(blocks)} detail blocks not shown. Run `mailform plan` for the full plan._\n")
    return text
