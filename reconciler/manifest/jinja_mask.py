"""Setting a template's Jinja syntax aside while its YAML is read or laid out.

Every ``{{ … }}``, ``{% … %}`` and ``{# … #}`` is replaced by a placeholder that
YAML reads as plain text: a line that holds only tags becomes a comment line, any
other tag a plain word inside the scalar it belongs to. ``restore`` puts each one
back byte for byte — a line that held only tags comes back whole, with its own
indentation — and refuses (``MaskError``) when the text lost, doubled or reordered
a placeholder: the template's logic would no longer be the one its author wrote.

Keys may be put in canonical order (``Masked.may_reorder``) only when every tag is an
expression inside a value (``{{ … }}``, ``{# … #}``): it moves with its key. Statement
tags (``{% if %}``, ``{% for %}``, ``{% set %}``) and tags on lines of their own enclose
or precede YAML lines, so there the lines keep their order; only indentation changes.
``Masked.position`` turns a line and column of the masked text back into the file's.
"""
from __future__ import annotations

import bisect
import re
import secrets
from dataclasses import dataclass, field

_OPENER = re.compile(r"\{[{%#]")
_CLOSER = {"{{": "}}", "{%": "%}", "{#": "#}"}
_SPACES = re.compile(r"[ \t]*")
_NEWLINE = re.compile(r"\r?\n")


class MaskError(Exception):
    """The text cannot be put back without changing the template."""


@dataclass
class Masked:
    """The text YAML can read, and what each placeholder stands for."""

    text: str
    nonce: str
    words: dict[str, str] = field(default_factory=dict)     # placeholder -> tag
    lines: dict[str, str] = field(default_factory=dict)     # placeholder -> whole line
    order: list[str] = field(default_factory=list)
    # (offset in text, length there, length in the file) of each placeholder
    shifts: list[tuple[int, int, int]] = field(default_factory=list)
    original: str = ""

    @property
    def may_reorder(self) -> bool:
        return not self.lines and not any(t.startswith("{%") for t in self.words.values())

    def unmask(self, message: str) -> str:
        """A text about the masked text (a message, a scalar) with its tags put back."""
        if not self.order:
            return message
        known = {**self.words, **self.lines}
        return re.sub(rf"mfj{self.nonce}[lw]\d+x",
                      lambda m: known.get(m.group(0), m.group(0)).strip(), message)

    def position(self, line: int, column: int) -> tuple[int, int]:
        """0-based (line, column) in the file of a 0-based position in ``text``."""
        rows = self.text.splitlines(keepends=True)
        offset = sum(len(row) for row in rows[:line]) + column
        moved = sum(there - here for start, here, there in self.shifts if start + here <= offset)
        before = self.original[:offset + moved]
        return before.count("\n"), len(before) - (before.rfind("\n") + 1)


def mask(text: str) -> Masked:
    """``text`` with its template syntax replaced by placeholders."""
    masked = Masked("", secrets.token_hex(4), original=text)
    out = _Out(masked)
    tags = _tags(text)
    pos = 0
    for start, end in _whole_lines(text, tags):
        _mask_words(text, pos, start, tags, out)
        body = text[start:end].rstrip("\r\n")
        name = _name(masked, "l")
        masked.lines[name] = body
        indent = body[:len(body) - len(body.lstrip(" "))]
        out.placeholder(f"{indent}#{name}", len(body))
        out.add(text[start + len(body):end])
        pos = end
    _mask_words(text, pos, len(text), tags, out)
    masked.text = "".join(out.parts)
    return masked


def restore(masked: Masked, formatted: str) -> str:
    """The formatted text with every placeholder put back; MaskError when the formatting
    changed which placeholders there are or their order."""
    if not masked.order:
        return formatted
    found = re.findall(rf"mfj{masked.nonce}[lw]\d+x", formatted)
    expected = list(masked.order)
    if masked.may_reorder:
        found, expected = sorted(found), sorted(expected)
    if found != expected:
        raise MaskError("laying it out would move its template tags ({%, {{, {#) relative "
                        "to each other")
    out = []
    for line in formatted.splitlines(keepends=True):
        name = line.strip()[1:]
        if line.strip().startswith("#") and name in masked.lines:
            out.append(masked.lines[name] + line[len(line.rstrip("\r\n")):])
        else:
            out.append(line)
    return re.sub(rf"mfj{masked.nonce}w\d+x", lambda m: masked.words[m.group(0)], "".join(out))


def _tags(text: str) -> list[tuple[int, int]]:
    """(start, end) of every tag, in order, as Jinja's lexer cuts them: an opener runs to
    the first closer of its kind. Linear: a kind found unclosed is not searched again."""
    spans: list[tuple[int, int]] = []
    unclosed: set[str] = set()
    pos = 0
    while True:
        opener = _OPENER.search(text, pos)
        if opener is None:
            return spans
        kind = opener.group(0)
        close = -1 if kind in unclosed else text.find(_CLOSER[kind], opener.end())
        if close < 0:
            unclosed.add(kind)
            pos = opener.end()
            continue
        spans.append((opener.start(), close + 2))
        pos = close + 2


def _whole_lines(text: str, tags: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, end) of the lines that hold only template tags and spaces (a tag over
    several lines included); end takes the line break."""
    spans, index, line_start, previous_end = [], 0, 0, 0
    while index < len(tags):
        first = tags[index]
        line_start = text.rfind("\n", previous_end, first[0]) + 1 or line_start
        end, index = first[1], index + 1
        while index < len(tags) and _SPACES.fullmatch(text, end, tags[index][0]):
            end, index = tags[index][1], index + 1
        after = _SPACES.match(text, end).end()
        alone = previous_end <= line_start and _SPACES.fullmatch(text, line_start, first[0])
        if alone and text[after:after + 1] in "\r\n":
            newline = _NEWLINE.match(text, after)
            spans.append((line_start, newline.end() if newline else after))
        previous_end = end
    return spans


class _Out:
    """The masked text as it is built, and where each placeholder lands in it."""

    def __init__(self, masked: Masked) -> None:
        self.masked, self.parts, self.length = masked, [], 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def placeholder(self, text: str, original_length: int) -> None:
        self.masked.shifts.append((self.length, len(text), original_length))
        self.add(text)


def _mask_words(text: str, start: int, end: int, tags: list[tuple[int, int]],
                out: _Out) -> None:
    """``text[start:end]`` into ``out``, each tag in it replaced by a placeholder word."""
    pos = start
    for first in range(bisect.bisect_left(tags, (start, -1)), len(tags)):
        tag_start, tag_end = tags[first]
        if tag_end > end:
            break
        out.add(text[pos:tag_start])
        name = _name(out.masked, "w")
        out.masked.words[name] = text[tag_start:tag_end]
        out.placeholder(name, tag_end - tag_start)
        pos = tag_end
    out.add(text[pos:end])


def _name(masked: Masked, kind: str) -> str:
    name = f"mfj{masked.nonce}{kind}{len(masked.order)}x"
    masked.order.append(name)
    return name
