"""Editing a manifest file in place: the port and security that `debug --fix` found.

The file is read with ruamel.yaml's round-trip loader only to find where the
values are; then exactly those characters are replaced, so that comments,
quoting, key order, indentation and line endings stay as the author wrote
them. A templated file is read with its Jinja tags set aside (``jinja_mask``)
and put back byte for byte.

A value that is one template variable (``port: {{ var.smtp_port }}``) is changed
where that variable is set: in the last ``--var-file`` that sets it (the one that
wins), the same way, comments kept. Anything else that is not a literal — a
filter, an expression, a variable given with ``--var``, a templated account
name — is refused with its position and the variable's: a human edits it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from ..errors import ManifestError, Problem
from .jinja_mask import Masked, mask, restore

BY_HAND = "change port and security by hand"
_ONE_VARIABLE = re.compile(r"\{\{-?\s*var((?:\.[A-Za-z_]\w*)+)\s*-?\}\}")
_VAR_NAMES = re.compile(r"\bvar((?:\.[A-Za-z_]\w*)+)")


@dataclass(frozen=True)
class Written:
    """One value `--fix` wrote: where (file, 1-based line) and which field."""

    file: str
    line: int
    field: str
    value: str


@dataclass
class _Edit:
    line: int          # 0-based, in the file's (masked) text
    column: int
    old: Any
    new: str
    where: str         # spec.smtp.port, or var.smtp_port


def fix_port_security(path: str, name: str,
                      changes: dict[str, tuple[Optional[int], Optional[str]]],
                      var_files: Sequence[str] = (), var_pairs: Iterable[tuple[str, str]] = ()
                      ) -> list[Written]:
    """Rewrite spec.<role>.port / .security of account ``name`` in ``path``
    (``changes``: role -> (port, security[, host]), None for a value that stays: it is not
    touched, templated or not), or the var files that set them. Raises
    ManifestError, every file untouched, when a value is neither a literal nor one
    template variable set in a var file."""
    source = _Source.read(path)
    local, in_vars = _edits(source, name, changes, var_files, {key for key, _ in var_pairs})
    texts = {var_file: _edited(_Source.read(var_file, templated=False), edits)
             for var_file, edits in in_vars.items()}
    if local:
        texts[path] = _edited(source, local)
    for target, text in texts.items():
        _write_atomically(target, text)
    return [Written(path, source.masked.position(e.line, e.column)[0] + 1, e.where, e.new)
            for e in local] + [Written(f, e.line + 1, e.where, e.new)
                               for f, edits in in_vars.items() for e in edits]


def _edits(source: "_Source", name: str,
           changes: dict[str, tuple[Optional[int], Optional[str]]],
           var_files: Sequence[str], given: set[str]
           ) -> tuple[list[_Edit], dict[str, list[_Edit]]]:
    """The edits to make: in the manifest itself, and per var file."""
    section_of = _locate(source, name)
    local: list[_Edit] = []
    in_vars: dict[str, list[_Edit]] = {}
    for role, change in changes.items():
        section = section_of(role)
        for key, new in zip(("port", "security", "host"), change):  # host: debug --discover
            if new is None:
                continue
            new = str(new)
            line, col = section.lc.value(key)
            edit = _Edit(line, col, section[key], new, f"spec.{role}.{key}")
            variable = source.variable(edit)
            if variable is None:
                local.append(edit)
                continue
            var_file, var_edit = _var_file_edit(source, edit, variable, var_files, given)
            in_vars.setdefault(var_file, []).append(var_edit)
    return local, in_vars


class _Source:
    """A file's text, with its template tags set aside when it has any."""

    def __init__(self, path: str, text: str, templated: bool = True) -> None:
        self.path, self.text = path, text
        self.masked: Masked = mask(text) if templated else Masked(text, "", original=text)

    @classmethod
    def read(cls, path: str, templated: bool = True) -> "_Source":
        with open(path, encoding="utf-8", newline="") as handle:
            return cls(path, handle.read(), templated)

    def tag_of(self, value: Any) -> Optional[str]:
        """The template text a scalar stands for, when it holds any."""
        text = str(value)
        if not self.masked.order or self.masked.nonce not in text:
            return None
        return self.masked.unmask(text)

    def variable(self, edit: _Edit) -> Optional[str]:
        """None for a literal; the dotted variable (``smtp_port``) for a value that is
        exactly ``{{ var.NAME }}``; refused otherwise."""
        tag = self.tag_of(edit.old)
        if tag is None:
            return None
        one = _ONE_VARIABLE.fullmatch(tag.strip())
        if one is None:
            names = ", ".join(f"var{m}" for m in dict.fromkeys(_VAR_NAMES.findall(tag)))
            raise _refused(self, edit, f"is the template expression {tag}, not one "
                           f"template variable{f' (it uses {names})' if names else ''}")
        return one.group(1)[1:]


def _var_file_edit(source: _Source, edit: _Edit, variable: str, var_files: Sequence[str],
                   given: set[str]) -> tuple[str, _Edit]:
    """(var file, edit) for the variable a value comes from: the last var file setting it."""
    where = f"var.{variable}"
    if variable.split(".")[0] in given:
        raise _refused(source, edit, f"comes from {where}, which --var sets on the "
                       "command line; change it there")
    for var_file in reversed(var_files):
        found = _find_var(var_file, variable.split("."))
        if found is not None:
            line, col, old = found
            return var_file, _Edit(line, col, old, edit.new, where)
    files = ", ".join(var_files) or "no --var-file was given"
    raise _refused(source, edit, f"comes from {where}, which no var file sets ({files})")


def _find_var(var_file: str, keys: list[str]) -> Optional[tuple[int, int, Any]]:
    """0-based line and column of the value of ``keys`` in a var file, and the value."""
    from ruamel.yaml import YAML
    try:
        with open(var_file, encoding="utf-8") as handle:
            node = YAML(typ="rt").load(handle)
    except Exception as exc:  # noqa: BLE001 - any failure to read: it cannot be edited
        raise ManifestError([Problem(var_file, 1, 1, "", f"cannot read the var file "
                                     f"({type(exc).__name__}); {BY_HAND}")]) from None
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, dict) or keys[-1] not in node:
        return None
    line, col = node.lc.value(keys[-1])
    return line, col, node[keys[-1]]


def _edited(source: _Source, edits: list[_Edit]) -> str:
    lines = source.masked.text.splitlines(keepends=True)
    for edit in sorted(edits, key=lambda e: (e.line, e.column), reverse=True):
        lines[edit.line] = _replace_scalar(lines[edit.line], edit, source)
    return restore(source.masked, "".join(lines))


def _refused(source: _Source, edit: _Edit, why: str) -> ManifestError:
    line, column = source.masked.position(edit.line, edit.column)
    return ManifestError([Problem(source.path, line + 1, column + 1, edit.where,
                                  f"{why}; {BY_HAND}")])


def _locate(source: _Source, name: str):
    """role -> the round-trip mapping of spec.<role> of account ``name``."""
    from ruamel.yaml import YAML

    try:
        docs = list(YAML(typ="rt").load_all(source.masked.text))
    except Exception as exc:  # noqa: BLE001 - any parse failure means "edit by hand"
        raise ManifestError([Problem(source.path, 1, 1, "", (
            f"not YAML even with its template tags set aside ({type(exc).__name__}); "
            f"{BY_HAND}"))]) from None
    for doc in docs:
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if doc and doc.get("kind") == "EmailAccount" and isinstance(meta, dict) \
                and meta.get("name") == name:
            spec = doc["spec"]
            return lambda role: spec[role]
    raise ManifestError([Problem(source.path, 1, 1, "metadata.name", (
        f"account {name} not found literally (is its name templated?); {BY_HAND}"))])


def _replace_scalar(text: str, edit: _Edit, source: _Source) -> str:
    """``text`` (one line) with the scalar ``edit.old`` at its column replaced by
    ``edit.new``, inside the same quotes."""
    old, col = str(edit.old), edit.column
    quote = text[col] if col < len(text) and text[col] in "'\"" else ""
    start = col + len(quote)
    if "{" in old or not text.startswith(old, start) or \
            (quote and not text.startswith(quote, start + len(old))):
        raise _refused(source, edit, "not a literal value")
    return text[:start] + edit.new + text[start + len(old):]


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


__all__ = ["Written", "fix_port_security"]
