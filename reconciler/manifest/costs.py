"""What a template may cost, and the checks that hold it there (used by ``sandbox``).

Every bound is a constant here and in SECURITY.md; a breach raises ``TemplateLimit``.
"""
from __future__ import annotations

import re
import threading
import time
from collections import abc
from dataclasses import dataclass
from string import Formatter
from typing import Any, Optional

from jinja2.sandbox import SecurityError
from jinja2.runtime import Undefined
from jinja2.utils import Namespace

MAX_RANGE = 10_000                 # items of one range()
MAX_SIZE = 1_000_000               # characters / items of any value a template makes
MAX_INT_BITS = 4_096               # bits of an integer made by * or **
MAX_ITERATIONS = 1_000_000         # iterations of all {% for %} loops of one file
MAX_OUTPUT = 16 * 1024 * 1024      # characters one file renders to
RENDER_SECONDS = 10.0              # wall-clock time to render one file
MAX_TAGS = 20_000                  # {{ }} and {% %} tags of one file (compiling each: ~10 KB)
MAX_TOKENS = 200_000               # Jinja tokens of one file (compiling each: ~400 bytes)


@dataclass(frozen=True)
class TemplateLimits:
    """The bounds of one render; the defaults are the documented ones."""

    range: int = MAX_RANGE
    size: int = MAX_SIZE
    int_bits: int = MAX_INT_BITS
    iterations: int = MAX_ITERATIONS
    output: int = MAX_OUTPUT
    seconds: float = RENDER_SECONDS
    tags: int = MAX_TAGS
    tokens: int = MAX_TOKENS


class TemplateLimit(SecurityError):
    """A template went past one of the bounds."""


class Budget:
    """What one render has spent; checked at every intercepted operation."""

    __slots__ = ("limits", "deadline", "iterations", "ops", "printed")

    def __init__(self, limits: TemplateLimits):
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.iterations = self.ops = self.printed = 0

    def tick(self) -> None:
        self.ops += 1
        if not self.ops & 63 and time.monotonic() > self.deadline:
            raise TemplateLimit(f"rendering took longer than {self.limits.seconds:g} s "
                                "(the limit per file)")

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > self.limits.iterations:
            raise TemplateLimit(f"loops ran more than {self.limits.iterations} times "
                                "(the limit per file)")
        self.tick()

    def print(self, size: int) -> None:
        """Characters printed anywhere (also inside blocks and macros, whose output is kept)."""
        self.printed += size
        if self.printed > self.limits.output:
            raise TemplateLimit(f"the output would be longer than {self.limits.output} "
                                "characters (the limit per file)")


_STATE = threading.local()
_DEFAULT = TemplateLimits()


def current() -> Optional[Budget]:
    return getattr(_STATE, "budget", None)


def set_budget(budget: Optional[Budget]) -> None:
    _STATE.budget = budget


def active_limits() -> TemplateLimits:
    budget = current()
    return budget.limits if budget is not None else _DEFAULT


def tick() -> None:
    budget = current()
    if budget is not None:
        budget.tick()


# -- sizes ---------------------------------------------------------------------------------

def weight(value: Any, cap: int) -> int:
    """Characters and items of ``value``, nested ones counted each time they are referenced
    (what printing it would cost); stops counting once past ``cap``."""
    if isinstance(value, (str, bytes)):
        return len(value)
    total, stack = 0, [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, Undefined):   # strict: its length is an error of its own
            total += 1
        elif isinstance(item, Namespace):
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        elif isinstance(item, abc.Mapping):
            total += len(item)
            if total <= cap:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, abc.Collection):
            total += len(item)
            if total <= cap:
                stack.extend(item)
        else:
            total += 1
    return total


def check_size(value: Any, what: str = "a value") -> Any:
    limit = active_limits().size
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > active_limits().int_bits:
            raise TemplateLimit(f"{what} is an integer of more than "
                                f"{active_limits().int_bits} bits")
    elif weight(value, limit) > limit:
        raise TemplateLimit(f"{what} would hold more than {limit} characters or items "
                            "(the limit of a template value)")
    return value


def check_estimate(estimate: int, what: str) -> None:
    limit = active_limits().size
    if estimate > limit:
        raise TemplateLimit(f"{what} would make more than {limit} characters or items "
                            "(the limit of a template value)")


# Filters and string methods whose number arguments are sizes of what they make.
SIZED_FILTERS = frozenset({"center", "indent", "batch", "slice", "truncate"})
SIZED_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def check_arguments(args: tuple, kwargs: dict, what: str, sizes: bool = False) -> None:
    """Each argument bounded; with ``sizes``, numbers too (they say how much to make)."""
    limit = active_limits().size
    for arg in (*args, *kwargs.values()):
        if sizes and isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > limit:
            raise TemplateLimit(f"{what}: the size {arg} is larger than {limit} "
                                "(the limit of a template value)")
        check_size(arg, f"an argument of {what}")


# -- formatting ------------------------------------------------------------------------------

_PERCENT_SPEC = re.compile(r"%[#0\- +]*+(\*|\d++)?+(?:\.(\*|\d++))?+")
_BIG_NUMBER = re.compile(r"\d{7,}")


def check_percent_format(fmt: str) -> bool:
    """``%`` conversions whose width or precision would make a huge string are refused.
    True when a ``*`` takes a width from the arguments (then they are sizes)."""
    limit, starred = active_limits().size, False
    for match in _PERCENT_SPEC.finditer(fmt):
        for number in match.groups():
            starred = starred or number == "*"
            if number and number != "*" and (len(number) > 9 or int(number) > limit):
                raise TemplateLimit(f"the format width {number} is larger than {limit}")
    return starred


def check_brace_format(fmt: str) -> bool:
    """Same for ``str.format`` fields (``{:>100000000}``). True when a field's spec holds
    a nested field (``{:{width}}``), whose arguments are then sizes."""
    limit, nested = active_limits().size, False
    for _, _, spec, _ in Formatter().parse(fmt):
        nested = nested or "{" in (spec or "")
        for number in _BIG_NUMBER.findall(spec or ""):
            if len(number) > 9 or int(number) > limit:
                raise TemplateLimit(f"the format width {number} is larger than {limit}")
    return nested


# -- amplifying calls ------------------------------------------------------------------------

def replace_estimate(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return len(text) + times * max(0, len(new) - len(old))


def join_estimate(sep: Any, items: Any) -> int:
    count = len(items) if isinstance(items, abc.Sized) else 0
    return weight(items, active_limits().size) + len(sep if isinstance(sep, str) else "") * count


def lines_estimate(text: Any, width: Any) -> int:
    lines = text.count("\n") + 1 if isinstance(text, str) else 1
    pad = width if isinstance(width, int) else len(width) if isinstance(width, str) else 0
    return weight(text, active_limits().size) + lines * pad


def str_method_estimate(method: Any, args: tuple, kwargs: dict) -> int:
    """What a method of a string may grow to: replace, join, expandtabs and translate
    multiply (center and the like are bounded by their size argument)."""
    text, name = method.__self__, method.__name__
    if name == "replace":
        return replace_estimate(text, *args, **kwargs)
    if name == "join" and args:
        return join_estimate(text, args[0])
    if name == "expandtabs":
        size = (args or tuple(kwargs.values()) or (8,))[0]
        return len(text) + text.count("\t") * (size if isinstance(size, int) else 8)
    if name == "translate":
        return len(text) * (1 + sum(weight(a, active_limits().size) for a in args))
    return 0


def sum_estimate(items: Any, *args: Any, **kwargs: Any) -> int:
    start = kwargs.get("start", args[1] if len(args) > 1 else 0)
    if isinstance(start, (int, float)):
        return 0
    count = len(items) if isinstance(items, abc.Sized) else 0
    return count * weight(items, active_limits().size)   # each step copies what was added so far
