"""Editing a manifest file in place: the port and security that `debug --fix` found.

The file is read with ruamel.yaml's round-trip loader only to find where the
values are; then exactly those characters are replaced, so that comments,
quoting, key order, indentation and line endings stay as the author wrote
them. A value the loader cannot see literally (a template expression, a name
built by Jinja2) is refused with its position: a human edits it.
"""
from __future__ import annotations

import os

from ..errors import ManifestError, Problem

BY_HAND = "change port and security by hand"


def fix_port_security(path: str, name: str, changes: dict[str, tuple[int, str]]) -> None:
    """Rewrite spec.<role>.port / .security of account ``name`` in ``path``
    (``changes``: role -> (port, security)). Raises ManifestError, file untouched,
    when a value is not a literal in the file."""
    with open(path, encoding="utf-8", newline="") as handle:
        text = handle.read()
    section_of = _locate(text, path, name)
    edits = []
    for role, (port, security) in changes.items():
        section = section_of(role)
        for key, new in (("port", str(port)), ("security", security)):
            line, col = section.lc.value(key)
            edits.append((line, col, section[key], new, f"spec.{role}.{key}"))
    lines = text.splitlines(keepends=True)
    for line, col, old, new, where in sorted(edits, reverse=True):
        lines[line] = _replace_scalar(lines[line], line, col, old, new, path, where)
    _write_atomically(path, "".join(lines))


def _refused(path: str, line: int, column: int, where: str, why: str) -> ManifestError:
    return ManifestError([Problem(path, line, column, where, f"{why}; {BY_HAND}")])


def _locate(text: str, path: str, name: str):
    """role -> the round-trip mapping of spec.<role> of account ``name``."""
    from ruamel.yaml import YAML

    try:
        docs = list(YAML(typ="rt").load_all(text))
    except Exception as exc:  # noqa: BLE001 - any parse failure means "edit by hand"
        raise _refused(path, 1, 1, "", f"not plain YAML before templating "
                       f"({type(exc).__name__})") from None
    for doc in docs:
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if doc and doc.get("kind") == "EmailAccount" and isinstance(meta, dict) \
                and meta.get("name") == name:
            spec = doc["spec"]
            return lambda role: spec[role]
    raise _refused(path, 1, 1, "metadata.name",
                   f"account {name} not found literally (is its name templated?)")


def _replace_scalar(text: str, line: int, col: int, old, new: str, path: str,
                    where: str) -> str:
    """``text`` (one line) with the scalar ``old`` at ``col`` replaced by ``new``,
    inside the same quotes."""
    old = str(old)
    quote = text[col] if col < len(text) and text[col] in "'\"" else ""
    start = col + len(quote)
    if "{" in old or not text.startswith(old, start) or \
            (quote and not text.startswith(quote, start + len(old))):
        raise _refused(path, line + 1, col + 1, where, "not a literal value (templated?)")
    return text[:start] + new + text[start + len(old):]


def _write_atomically(path: str, text: str) -> None:
    """Replace ``path`` in one step, keeping its mode: a crash leaves old or new."""
    tmp = f"{path}.mailform-fix.tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    try:
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    except OSError:
        pass
    os.replace(tmp, path)


__all__ = ["fix_port_security"]
