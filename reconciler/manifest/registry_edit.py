"""`registry set NAME PATH=VALUE`: an operator's edit must leave a valid account.

The edit is applied to the registry's record, turned back into a manifest document
(``export``) and validated like any manifest: what the edit breaks (an unknown
field, a port that is not a number, ssl on port 587) is refused, naming the field.
Problems the record had before the edit are not the edit's fault and do not count.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

from ..errors import Problem
from ..model import SECRET_FIELDS
from .export import account_document
from .loader import document_problems


def edit_problems(name: str, account_type: str, spec: Mapping[str, Any],
                  secret_paths: Iterable[str], path: str, value: Any) -> list[str]:
    """Why setting ``path`` to ``value`` in account ``name``'s record is refused
    ("spec.smtp.port: must be a valid integer", …); empty when it is a valid edit."""
    parts = path.split(".")
    if not path or not all(parts):
        return [f"'{path}' is not a field path: use dotted names like smtp.port"]
    if path in SECRET_FIELDS:
        return [] if isinstance(value, str) else [f"spec.{path}: must be a string"]
    secret_paths = list(secret_paths)
    before = _problems(name, account_type, dict(spec), secret_paths)
    edited = _with(dict(spec), parts, value)
    if edited is None:
        return [f"spec.{path}: {'.'.join(parts[:-1])} is not a mapping"]
    after = _problems(name, account_type, edited, secret_paths)
    return [text for text in after if text not in before]


def edited_spec(spec: Mapping[str, Any], path: str, value: Any) -> dict:
    """The record's spec with the edit made (a valid edit: ``edit_problems`` said so)."""
    edited = _with(dict(spec), path.split("."), value)
    if edited is None:
        raise ValueError(f"{path}: not a path into mappings")
    return edited


def _problems(name: str, account_type: str, spec: dict, secret_paths: list[str]) -> list[str]:
    doc = account_document(name, {"type": account_type, **spec}, secret_paths)
    return [_text(p) for p in document_problems(doc)]


def _text(problem: Problem) -> str:
    return f"{problem.path}: {problem.message}" if problem.path else problem.message


def _with(spec: dict, parts: list[str], value: Any) -> dict | None:
    """A copy of ``spec`` with the path set (None removes it); None when a part on the
    way is not a mapping."""
    out = copy.deepcopy(spec)
    node = out
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            return None
        node = child
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return out
