"""Deliverability reports (dicts from `AccountReport.to_dict`) as a table or JSON."""
from __future__ import annotations

import json
from typing import Callable, Optional

HEADER = ("ACCOUNT", "DOMAIN", "SEVERITY", "CODE", "FINDING", "FIX")


def render_json(reports: list[dict], summary: dict) -> str:
    return json.dumps({"deliverability": reports, "summary": summary}, indent=2) + "\n"


def render_human(reports: list[dict], summary: dict,
                 style: Optional[Callable[[str, str], str]] = None) -> str:
    """A table of findings (one line each, the fix last), lookup errors, a summary."""
    rows = [HEADER]
    for report in reports:
        for finding in report["findings"]:
            rows.append((report["account"], finding["domain"], finding["severity"],
                         finding["code"], finding["message"], finding["fix"]))
    lines = _table(rows, style) if len(rows) > 1 else []
    for report in reports:
        if not report["findings"] and not report["errors"]:
            lines.append(f"account.{report['account']}: {report['domain']}: no findings")
        lines += [f"account.{report['account']}: lookup error: {e}" for e in report["errors"]]
        lines += _present(report)
    lines.append(summary_line(summary))
    return "\n".join(lines) + "\n"


def _present(report: dict) -> list[str]:
    """MTA-STS and TLS-RPT, reported when present."""
    records = report.get("records", {})
    found = [f"{label} ({'; '.join(f'{k}={v}' for k, v in records[key].items())})"
             for key, label in (("mta_sts", "MTA-STS"), ("tls_rpt", "TLS-RPT"))
             if records.get(key)]
    return [f"account.{report['account']}: {report['domain']} publishes "
            f"{' and '.join(found)}"] if found else []


def _table(rows: list[tuple], style) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    out = []
    for index, row in enumerate(rows):
        cells = [row[i].ljust(widths[i]) for i in range(4)]
        if index and style is not None:
            cells[2] = style(cells[2], row[2])
        out.append("  ".join(cells + [row[4]]).rstrip())
        if index:
            out.append(" " * (sum(widths) + 8) + f"fix: {row[5]}")
    return out


def summary_line(summary: dict) -> str:
    text = (f"DNS checks of {summary['accounts']} account(s): {summary['errors']} error(s), "
            f"{summary['warnings']} warning(s), {summary['info']} info")
    if summary.get("lookup_errors"):
        text += f", {summary['lookup_errors']} lookup error(s)"
    return text + "."
