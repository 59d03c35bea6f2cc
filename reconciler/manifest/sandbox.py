"""The Jinja2 sandbox manifests are rendered in, with bounds on what a template may cost.

Anyone who can open a pull request writes templates, so rendering one must not take
the runner's memory or hours of CPU. On top of Jinja2's immutable sandbox (no
attribute starting with ``_``, no method that changes a list, dict or set) every
operation a template can make big goes through a check (see SECURITY.md):

* ``range()`` yields at most ``MAX_RANGE`` items;
* a value — a string's characters, a list's or dict's items, nested ones counted
  every time they are referenced — holds at most ``MAX_SIZE``: checked before
  repetition (``'a' * n``, ``[x] * n``), formatting (``%``, ``format``, widths),
  ``replace``/``join``/``indent``/``center``-like calls, and on the result of every
  call, filter, operator, concatenation (``~``) and printed expression;
* integers made by ``*`` and ``**`` have at most ``MAX_INT_BITS`` bits;
* all ``{% for %}`` loops of a file run at most ``MAX_ITERATIONS`` times together;
* a file renders to at most ``MAX_OUTPUT`` characters, within ``RENDER_SECONDS``
  (a deadline checked at every intercepted operation and loop iteration; no signal,
  no thread: it works wherever rendering runs).

A breach raises ``TemplateLimit`` inside the template, so it is reported at the
template's file and line like any other template error.
"""
from __future__ import annotations

from collections import abc
from functools import wraps
from typing import Any, Callable, Iterator, Optional

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from .costs import (MAX_INT_BITS, MAX_ITERATIONS, MAX_OUTPUT, MAX_RANGE,  # noqa: F401
                    MAX_SIZE, RENDER_SECONDS, SIZED_FILTERS, SIZED_METHODS, Budget,
                    TemplateLimit, TemplateLimits, active_limits, check_arguments,
                    check_brace_format, check_estimate, check_percent_format, check_size,
                    current, join_estimate, lines_estimate, replace_estimate, set_budget,
                    str_method_estimate, sum_estimate, tick, weight)

REMOVED_FILTERS = ("wordwrap", "urlize")   # no use in manifests; costly on long words
REMOVED_GLOBALS = ("lipsum",)


_FILTER_ESTIMATES: dict[str, Callable[..., int]] = {
    "replace": lambda value, old="", new="", count=None: replace_estimate(
        value, old, new, -1 if count is None else count),
    "join": lambda value, d="", *_, **__: join_estimate(d, value),
    "indent": lambda value, width=4, *_, **__: lines_estimate(value, width),
    "sum": sum_estimate,
}


def guard_filter(name: str, func: Callable) -> Callable:
    """A filter with its inputs, growth and result checked."""
    estimate = _FILTER_ESTIMATES.get(name)

    @wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        plain = _plain_arguments(func, args)
        check_arguments(plain[1:], kwargs, f"the filter {name}", name in SIZED_FILTERS)
        if plain:
            check_size(plain[0], f"the value given to the filter {name}")
        if name == "format" and plain and isinstance(plain[0], str):
            check_arguments(plain[1:], kwargs, "the filter format", check_percent_format(plain[0]))
        if estimate is not None and plain:
            check_estimate(estimate(*plain, **kwargs), f"the filter {name}")
        result = check_size(func(*args, **kwargs), f"the result of the filter {name}")
        if isinstance(result, abc.Iterator):
            return bounded_stream(result, f"the items of the filter {name}")
        return result
    return guarded


def bounded_stream(items: Iterator[Any], what: str) -> Iterator[Any]:
    """What a lazy filter (map, select, batch, reversed, …) yields, counted as it is
    consumed: ``range(10000) | map('center', 99999) | join`` would otherwise gather a
    gigabyte inside ``join`` (or ``list``) before any result could be checked."""
    limit, total = active_limits().size, 0
    for item in items:
        tick()
        total += weight(item, limit)
        if total > limit:
            raise TemplateLimit(f"{what} would hold more than {limit} characters or items "
                                "(the limit of a template value)")
        yield item


def _plain_arguments(func: Callable, args: tuple) -> tuple:
    """The arguments a template gave (without the context or environment Jinja adds)."""
    return args[1:] if getattr(func, "jinja_pass_arg", None) is not None else args


# -- the loop and concatenation guards the compiled templates call ---------------------------

def guard_loop(iterable: Any, **_: Any) -> Iterator[Any]:
    """Every ``{% for %}`` iterates through this: each iteration counted and timed.
    (Calls inside loops and blocks also pass Jinja's ``_loop_vars``/``_block_vars``.)"""
    budget = current()
    for item in iterable:
        if budget is not None:
            budget.iterate()
        yield item


def guard_concat(*parts: Any, **_: Any) -> str:
    """``a ~ b``: each part and the result bounded."""
    tick()
    for part in parts:
        check_size(part, "a part of a ~ concatenation")
    return check_size("".join(map(str, parts)), "a ~ concatenation")


_GUARDS = (guard_loop, guard_concat)


class _Guarding(NodeTransformer):
    """Makes every loop and every ``~`` of a parsed template call the guards above."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _call("guard_loop", [node.iter], node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call("guard_concat", node.nodes, node.lineno)


def _guard_tree(tree: nodes.Template) -> nodes.Template:
    tree = _Guarding().visit(tree)
    tree.set_environment(tree.environment)
    return tree


def _call(guard: str, args: list, lineno: int) -> nodes.Call:
    target = nodes.ImportedName(f"{__name__}.{guard}", lineno=lineno)
    return nodes.Call(target, list(args), [], None, None, lineno=lineno)


# -- the environment -------------------------------------------------------------------------

def bounded_range(*args: int) -> range:
    """``range()`` of at most MAX_RANGE items."""
    tick()
    for arg in args:
        if not isinstance(arg, int):
            raise TypeError("range() takes integers")
    result, limit = range(*args), active_limits().range
    try:
        size = len(result)
    except OverflowError:          # more items than a machine word counts
        size = limit + 1
    if size > limit:
        raise TemplateLimit(f"range() of more than {limit} items (the limit)")
    return result


def _finalize(value: Any) -> Any:
    """Every ``{{ expression }}`` printed: bounded before it is turned into text."""
    limit = active_limits().size
    size = weight(value, limit)
    if size > limit:
        check_size(value, "a printed value")
    budget = current()
    if budget is not None:
        budget.tick()
        budget.print(size)
    return value


def bounded_concat(parts: Any) -> str:
    """Joins the output of a block, macro or call block (``environment.concat``)."""
    parts = list(parts)
    check_estimate(sum(len(part) for part in parts), "the output of a block or macro")
    return "".join(parts)


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with every costly operation checked (see the module doc)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    concat = staticmethod(bounded_concat)

    def __init__(self, **options: Any):
        super().__init__(finalize=_finalize, **options)
        self.globals["range"] = bounded_range
        for name in REMOVED_GLOBALS:
            self.globals.pop(name, None)
        for name in REMOVED_FILTERS:
            self.filters.pop(name, None)
        self.filters = {name: guard_filter(name, func) for name, func in self.filters.items()}

    def _parse(self, source: str, name: Optional[str], filename: Optional[str]) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        # only a {% for %} or a ~ is rewritten: a template without either has nothing to guard
        return _guard_tree(tree) if "for" in source or "~" in source else tree

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        tick()
        _check_binop(operator_, left, right)
        result = self.binop_table[operator_](left, right)
        return check_size(result, f"the result of {operator_}")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        if any(__obj is guard for guard in _GUARDS):
            return __obj(*args, **kwargs)
        tick()
        name = getattr(__obj, "__name__", "a function")
        what = f"the call of {name}"
        string_method = isinstance(getattr(__obj, "__self__", None), str)
        check_arguments(args, kwargs, what, string_method and name in SIZED_METHODS)
        if string_method:
            check_estimate(str_method_estimate(__obj, args, kwargs), what)
        result = super().call(__context, __obj, *args, **kwargs)
        return check_size(result, f"the result of {what}")

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Optional[Callable[..., str]]:
        formatter = super().wrap_str_format(value)
        if formatter is None:
            return None
        template = value.__self__

        @wraps(formatter)
        def bounded(*args: Any, **kwargs: Any) -> str:
            tick()
            check_arguments(args, kwargs, "str.format", check_brace_format(template))
            return check_size(formatter(*args, **kwargs), "the result of str.format")
        return bounded


def _check_binop(op: str, left: Any, right: Any) -> None:
    if op == "*":
        _check_multiply(left, right)
    elif op == "**":
        _check_power(left, right)
    elif op == "%" and isinstance(left, str):
        values = right if isinstance(right, tuple) else (right,)
        check_arguments(values, {}, "%", check_percent_format(left))
    elif op == "+" and not _numbers(left, right):
        limit = active_limits().size
        check_estimate(weight(left, limit) + weight(right, limit), "+")


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) for v in values)


def _check_multiply(left: Any, right: Any) -> None:
    if _numbers(left, right):
        if isinstance(left, int) and isinstance(right, int):
            bits = abs(left).bit_length() + abs(right).bit_length()
            if bits > active_limits().int_bits:
                raise TemplateLimit(f"* would make an integer of about {bits} bits; "
                                    f"the limit is {active_limits().int_bits}")
        return
    times, sequence = (left, right) if isinstance(left, int) else (right, left)
    if isinstance(times, int) and times > 0:
        check_estimate(weight(sequence, active_limits().size) * times, "a repetition with *")


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        if exponent * abs(base).bit_length() > active_limits().int_bits:
            raise TemplateLimit(f"** would make an integer of more than "
                                f"{active_limits().int_bits} bits (the limit)")


def new_environment() -> BoundedEnvironment:
    return BoundedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              autoescape=False)


__all__ = ["BoundedEnvironment", "Budget", "TemplateLimit", "TemplateLimits", "new_environment",
           "current", "set_budget", "MAX_RANGE", "MAX_SIZE", "MAX_INT_BITS", "MAX_ITERATIONS",
           "MAX_OUTPUT", "RENDER_SECONDS"]
