"""Reading contact files: CSV (header `email,<detail>,…`) or JSON Lines.

Pure parsing: text in, (rows, problems) out. A bad row is reported by its line
number and skipped; every good row is kept.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Iterator

import email_validator


@dataclass(frozen=True)
class RowProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.line}: {self.message}"


def email_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "email is missing"
    try:
        email_validator.validate_email(value.strip(), check_deliverability=False,
                                       test_environment=True, globally_deliverable=False)
    except email_validator.EmailNotValidError as exc:
        return f"'{value.strip()}' is not a valid email address ({exc})"
    return None


def _csv_rows(text: str) -> Iterator[tuple[int, object]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [h.strip() for h in header]
    if not header or header[0].lower() != "email":
        yield 1, "the header must start with the column email (email,<detail>,…)"
        return
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            yield line, f"{len(row)} columns where the header has {len(header)}"
            continue
        details = {k: v for k, v in zip(header[1:], row[1:]) if v != ""}
        yield line, (row[0], details)


def _jsonl_rows(text: str) -> Iterator[tuple[int, object]]:
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError as exc:
            yield line, f"not valid JSON ({exc.msg})"
            continue
        if not isinstance(item, dict):
            yield line, "each line must be a JSON object with email and details"
            continue
        details = item.get("details", {})
        if not isinstance(details, dict):
            yield line, "details must be an object"
            continue
        yield line, (item.get("email"), {str(k): v for k, v in details.items()})


def parse_contacts(text: str, filename: str = "") -> tuple[list[tuple[str, dict]], list[RowProblem]]:
    """Rows (email, details) and the problems of the bad rows."""
    is_jsonl = filename.endswith((".jsonl", ".ndjson", ".json")) or text.lstrip().startswith("{")
    rows, problems = [], []
    for line, item in (_jsonl_rows(text) if is_jsonl else _csv_rows(text)):
        if isinstance(item, str):
            problems.append(RowProblem(line, item))
            continue
        email, details = item
        problem = email_problem(email)
        if problem:
            problems.append(RowProblem(line, problem))
            continue
        rows.append((email.strip(), details))
    return rows, problems
