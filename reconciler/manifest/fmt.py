"""`mailform fmt`: the canonical layout of manifest files, comments and quoting kept.

Canonical means: two-space indentation, block sequences indented under their
key (`- ` two spaces in), and the keys of every known mapping in SPEC order
(``model.canonical_key_order``); unknown keys follow in their own order.
ruamel.yaml's round-trip mode keeps comments, quoting and flow style.

A file is cut into documents at its marker lines (``---``, ``...``,
directives), which are kept verbatim, and each document is formatted on its
own: ruamel would otherwise drop a comment above the first ``---`` and write
empty documents as ``null``.

Files holding Jinja template syntax are laid out with every tag set aside and put
back byte for byte (``jinja_mask``); where statement tags enclose YAML lines, the
lines keep their order. A template whose YAML cannot be read with its tags set
aside (say, the same key on both sides of an ``{% else %}``), or whose layout would
move its tags, is skipped with the reason.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from ..errors import Problem
from ..model import canonical_key_order
from .jinja_mask import MaskError, mask, restore
from .template import needs_rendering

_MARKER = re.compile(r"^(---|\.\.\.)(\s|$)|^%")
_BLANK_OR_COMMENT = re.compile(r"^\s*(#.*)?$")
# Mappings below spec whose keys have a canonical order, by key.
_SPEC_CHILDREN = ("reply_to", "from_override", "smtp", "inbox", "lifecycle")


@dataclass
class FmtResult:
    """What formatting one file gives: status is unchanged, changed, skipped or error."""

    path: str
    status: str
    text: Optional[str] = None
    problem: Optional[Problem] = None
    note: str = ""


class FmtError(Exception):
    def __init__(self, line: int, column: int, message: str):
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


def _represent_none(representer: Any, data: None) -> Any:
    # round-trip mode writes a null as nothing at all; keep it visible
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _yaml(root_sequence: bool = False) -> Any:
    from ruamel.yaml import YAML  # imported only when formatting
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    if root_sequence:
        yaml.indent(mapping=2, sequence=2, offset=0)
    else:
        yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never re-wrap long lines
    yaml.representer.add_representer(type(None), _represent_none)
    return yaml


def _segments(text: str) -> Iterator[tuple[int, bool, str]]:
    """(first line index, is_marker, text) pieces: marker lines and document bodies."""
    body: list[str] = []
    start = 0
    for index, line in enumerate(text.splitlines(keepends=True)):
        if _MARKER.match(line):
            if body:
                yield start, False, "".join(body)
            yield index, True, line
            body, start = [], index + 1
        else:
            body.append(line)
    if body:
        yield start, False, "".join(body)


def _reorder(node: Any, order: list[str]) -> None:
    from ruamel.yaml.comments import CommentedMap
    if not isinstance(node, CommentedMap):
        return
    keys = list(node.keys())
    # known keys take SPEC order among their own places; unknown keys stay where they are
    places = [i for i, key in enumerate(keys) if key in order]
    wanted = list(keys)
    for place, key in zip(places, [k for k in order if k in node]):
        wanted[place] = key
    if wanted != keys:
        for key in wanted:
            node.move_to_end(key)


def _canonical_order(doc: Any) -> None:
    from ruamel.yaml.comments import CommentedMap
    if not isinstance(doc, CommentedMap):
        return
    order = canonical_key_order()
    _reorder(doc, order[""])
    _reorder(doc.get("metadata"), order["metadata"])
    spec = doc.get("spec")
    kind = doc.get("kind")
    if f"spec:{kind}" in order:
        _reorder(spec, order[f"spec:{kind}"])
    if kind != "EmailAccount" or not isinstance(spec, CommentedMap):
        return
    for child in _SPEC_CHILDREN:
        _reorder(spec.get(child), order[child])
    for section in ("smtp", "inbox"):
        settings = spec.get(section)
        if isinstance(settings, CommentedMap):
            _reorder(settings.get("password"), order["password"])


def _format_body(body: str, first_line: int, reorder: bool = True) -> str:
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    if all(_BLANK_OR_COMMENT.match(line) for line in body.splitlines()):
        return body
    try:
        doc = _yaml().load(body)
        if not isinstance(doc, (dict, list)):
            return body  # a lone scalar is no manifest; nothing to lay out
        if reorder:
            _canonical_order(doc)
        out = io.StringIO()
        _yaml(root_sequence=isinstance(doc, list)).dump(doc, out)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise FmtError(first_line + line, col,
                       f"YAML syntax error: {exc.problem or exc.context}") from None
    except (YAMLError, RecursionError) as exc:
        raise FmtError(first_line + 1, 1, f"YAML error: {exc}") from None
    return out.getvalue()


def format_text(text: str, reorder: bool = True) -> str:
    """The canonical layout of ``text`` (YAML without template syntax; without ``reorder``
    the keys keep their order). Raises FmtError."""
    return "".join(piece if marker else _format_body(piece, start, reorder)
                   for start, marker, piece in _segments(text))


def format_template(text: str) -> str:
    """The layout of a templated file, every Jinja tag kept byte for byte. Raises
    FmtError (its YAML cannot be read with the tags set aside) or MaskError."""
    masked = mask(text)
    try:
        return restore(masked, format_text(masked.text, reorder=masked.may_reorder))
    except FmtError as exc:
        raise FmtError(exc.line, exc.column, masked.unmask(exc.message)) from None


def _not_laid_out(exc: Exception) -> str:
    where = f" at line {exc.line}, column {exc.column}" if isinstance(exc, FmtError) else ""
    reason = exc.message if isinstance(exc, FmtError) else str(exc)
    return f"a template left as it is: with its tags set aside, {reason}{where}"


def format_file(path: str, write: bool = False) -> FmtResult:
    """Format one file; with ``write`` the file is rewritten when its layout changes."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        text = raw.decode("utf-8")
    except OSError as exc:
        return FmtResult(path, "error", problem=Problem(path, 1, 1, "", f"cannot read file: {exc.strerror}"))
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        return FmtResult(path, "error", problem=Problem(path, line, 1, "", "file is not valid UTF-8 text"))
    templated = needs_rendering(text)
    try:
        formatted = format_template(text) if templated else format_text(text)
    except (FmtError, MaskError) as exc:
        if templated:
            return FmtResult(path, "skipped", note=_not_laid_out(exc))
        return FmtResult(path, "error", problem=Problem(path, exc.line, exc.column, "", exc.message))
    if formatted == text:
        return FmtResult(path, "unchanged", text=formatted)
    if write:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(formatted)
    return FmtResult(path, "changed", text=formatted)
