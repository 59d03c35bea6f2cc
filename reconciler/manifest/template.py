"""Jinja2 rendering of manifest files, sandboxed, undefined variables as errors.

Files without any template syntax are passed through untouched (fast path).
Rendering keeps line numbers for expressions that stay on one line: no block
trimming, trailing newline kept.
"""
from __future__ import annotations

import re
import traceback
from typing import Any, Optional

import yaml

from ..errors import Problem
from .yamlpos import MAX_FILE_BYTES, DuplicateKey, documents, syntax_problem

_MARKERS = ("{{", "{%", "{#")


class TemplateFailure(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


_ENV: Optional[Any] = None


def needs_rendering(text: str) -> bool:
    return any(marker in text for marker in _MARKERS)


def render(text: str, filename: str, context: dict[str, Any], limits: Optional[Any] = None) -> str:
    """Render ``text``; raise TemplateFailure naming file and line on any error.

    ``limits`` (a ``sandbox.TemplateLimits``; default: the documented bounds) caps what
    the template may cost; a breach is a template error at its line.
    """
    if not needs_rendering(text):
        return text
    from . import sandbox  # only files that hold template syntax pay for importing Jinja2
    global _ENV
    if _ENV is None:
        _ENV = sandbox.new_environment()
    budget = sandbox.Budget(limits or sandbox.TemplateLimits())
    _check_tags(text, filename, budget.limits.tags)
    _check_tokens(text, filename, budget.limits.tokens)
    sandbox.set_budget(budget)
    try:
        return _render(text, filename, context, budget)
    finally:
        sandbox.set_budget(None)


def _check_tags(text: str, filename: str, limit: int) -> None:
    """At most ``limit`` tags (``{{``, ``{%``) in one file, counted before Jinja compiles it:
    compiling costs about 10 KB per tag, so 2 MB of ``{{ x }}`` took 2 GB (and 16 MiB
    would take 15). The error points at the first tag past the limit."""
    if text.count("{{") + text.count("{%") <= limit:
        return
    pos = _nth_tag(text, limit + 1)
    line = text.count("\n", 0, pos) + 1
    raise TemplateFailure(Problem(filename, line, pos - text.rfind("\n", 0, pos), "",
                                  f"template error: beyond a limit: more than {limit} template "
                                  "tags ({{ }} and {% %}) in one file (the limit per file)"))


def _check_tokens(text: str, filename: str, limit: int) -> None:
    """At most ``limit`` Jinja tokens in one file, counted on the lexer's stream before the
    file is parsed and compiled: ``{{ [1,1,1,…] }}`` of 1 MB took 400 MB to compile (16 MiB
    would take 6 GB). A syntax error is left to the compiler, which positions it."""
    import jinja2
    count = 0
    try:
        for line, _, _ in _ENV.lexer.tokeniter(text, filename, filename):
            count += 1
            if count > limit:
                raise TemplateFailure(Problem(
                    filename, line, 1, "", f"template error: beyond a limit: more than {limit} "
                    "template tokens (names, numbers, operators, …) in one file (the limit "
                    "per file)"))
    except jinja2.TemplateSyntaxError:
        return


def _nth_tag(text: str, n: int) -> int:
    """The offset of the n-th tag opener (there are at least n); one pass."""
    nxt = {marker: text.find(marker) for marker in ("{{", "{%")}
    for _ in range(n - 1):
        marker = min((m for m in nxt if nxt[m] >= 0), key=nxt.__getitem__)
        nxt[marker] = text.find(marker, nxt[marker] + 2)
    return min(p for p in nxt.values() if p >= 0)


def _render(text: str, filename: str, context: dict[str, Any], budget: Any) -> str:
    import jinja2.sandbox
    try:
        code = _ENV.compile(text, name=filename, filename=filename)
        template = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None)
        return _bounded_output(template.generate(**context), budget)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateFailure(_syntax_problem(exc, filename, text)) from None
    except jinja2.UndefinedError as exc:
        line = _template_line(exc, filename)
        message, name = _undefined_message(exc)
        raise TemplateFailure(Problem(filename, line, _name_column(text, line, name), "",
                                      f"template error: {message}")) from None
    except Exception as exc:  # sandbox violations and limits, errors raised inside expressions
        line = _template_line(exc, filename)
        raise TemplateFailure(Problem(filename, line, _opener_column(text, line), "",
                                      f"template error: {_describe(exc)}")) from None


_OFFSET = re.compile(r"unexpected char (.+) at (\d+)", re.DOTALL)
_OPENER = re.compile(r"\{[{%#]")
_CLOSERS = {"{{": "}}", "{%": "%}", "{#": "#}"}


def _syntax_problem(exc: Any, filename: str, text: str) -> Problem:
    """A Jinja syntax error at line:column: the lexer's character offset turned into
    them, else the line's unclosed (or first) tag."""
    message, line = exc.message or "invalid template", exc.lineno or 1
    found = _OFFSET.fullmatch(message)
    if found:
        line, column = _line_column(text, int(found.group(2)))
        message = f"unexpected character {found.group(1)}"
    else:
        column = _opener_column(text, line)
    return Problem(filename, line, column, "", f"template syntax error: {message}")


def _lines(text: str) -> list[str]:
    """The template's lines as Jinja counts them (any newline convention)."""
    return re.split(r"\r\n|\r|\n", text)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset into the template Jinja lexed."""
    before = "\n".join(_lines(text))[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _row(text: str, line: int) -> str:
    lines = _lines(text)
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _opener_column(text: str, line: int) -> int:
    """The column of the first tag on ``line`` left open on that line, else of its first
    tag, else 1."""
    row = _row(text, line)
    last_closer = {closer: row.rfind(closer) for closer in _CLOSERS.values()}
    first = None
    for match in _OPENER.finditer(row):
        start = match.start()
        first = start if first is None else first
        if last_closer[_CLOSERS[match.group(0)]] < start + 2:
            return start + 1
    return first + 1 if first is not None else 1


def _name_column(text: str, line: int, name: str) -> int:
    """The column of ``name`` (``var.x``, ``var['x']`` or a bare name) inside a tag on
    ``line``, else of the line's first open tag. One pass over the line."""
    row = _row(text, line)
    if name:
        key = re.escape(name.removeprefix("var."))
        wanted = (rf"\bvar\s*(?:\.\s*{key}\b|\[\s*['\"]{key}['\"])" if name.startswith("var.")
                  else rf"(?<![.\w]){key}\b")
        inside = False
        for token in re.finditer(rf"(?P<open>\{{[{{%])|(?P<close>\}}\}}|%\}})|(?P<name>{wanted})",
                                 row):
            if token.group("open") or token.group("close"):
                inside = bool(token.group("open"))
            elif inside:
                return token.start() + 1
    return _opener_column(text, line)


def _bounded_output(chunks: Any, budget: Any) -> str:
    """The rendered text, refused (at the template line being rendered) once it would be
    longer than the limit."""
    from .sandbox import TemplateLimit
    out, size = [], 0
    for chunk in chunks:
        size += len(chunk)
        if size > budget.limits.output:
            chunks.throw(TemplateLimit(f"the output would be longer than "
                                       f"{budget.limits.output} characters (the limit per file)"))
        out.append(chunk)
    return "".join(out)


def _describe(exc: BaseException) -> str:
    from .sandbox import TemplateLimit
    import jinja2.sandbox
    if isinstance(exc, TemplateLimit):
        return f"beyond a limit: {exc}"
    if isinstance(exc, jinja2.sandbox.SecurityError):
        return f"refused by the sandbox: {exc}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return f"{type(exc).__name__}: {exc}"


def _undefined_message(exc: Any) -> tuple[str, str]:
    """The message of an undefined-variable error, and the name it is about ("" unknown)."""
    text = exc.message or "undefined value"
    match = re.match(r"'dict object' has no (?:attribute|element) '([^']+)'", text)
    if match:
        return (f"undefined variable var.{match.group(1)} "
                "(set it with --var-file FILE or --var KEY=VALUE)", f"var.{match.group(1)}")
    match = re.match(r"'([^']+)' is undefined", text)
    if match:
        return (f"'{match.group(1)}' is undefined (templates see `var` and `environment`)",
                match.group(1))
    return text, ""


def _template_line(exc: BaseException, filename: str) -> int:
    """The template line of the innermost template frame, else (an error while compiling,
    e.g. an expression nested too deeply) the line the parser or code generator reached."""
    from jinja2.nodes import Node
    from jinja2.parser import Parser
    line, compiling = 0, 0
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == filename:
            line = lineno
            continue
        here = frame.f_locals.get("self")
        if isinstance(here, Parser):
            compiling = here.stream.current.lineno
            continue
        node = frame.f_locals.get("node", here)
        if isinstance(node, Node):
            compiling = getattr(node, "lineno", None) or compiling
    return line or compiling or 1


def load_var_file(path: str) -> tuple[dict[str, Any], list[Problem]]:
    """A --var-file: one YAML mapping. Returns (vars, problems)."""
    try:
        with open(path, encoding="utf-8") as handle:   # the runner names it: a pipe is fine
            text = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return {}, [Problem(path, 1, 1, "", f"cannot read var file: {exc.strerror}")]
    except UnicodeDecodeError:
        return {}, [Problem(path, 1, 1, "", "var file is not UTF-8 text")]
    if len(text) > MAX_FILE_BYTES:
        return {}, [Problem(path, 1, 1, "",
                            f"var file is larger than {MAX_FILE_BYTES // 2**20} MiB")]
    try:
        docs = list(documents(text))
    except yaml.MarkedYAMLError as exc:
        return {}, [syntax_problem(path, exc, text)]
    except yaml.YAMLError as exc:
        return {}, [Problem(path, 1, 1, "", f"YAML error: {exc}")]
    except DuplicateKey as exc:
        mark = exc.second.start_mark
        return {}, [Problem(path, mark.line + 1, mark.column + 1, exc.path,
                            f"duplicate key '{exc.key}'")]
    if not docs:
        return {}, []
    if len(docs) > 1 or not isinstance(docs[0].value, dict):
        return {}, [Problem(path, 1, 1, "", "a var file must hold one YAML mapping")]
    return docs[0].value, []
