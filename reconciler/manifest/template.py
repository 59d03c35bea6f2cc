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
from .yamlpos import DuplicateKey, documents, syntax_problem

_MARKERS = ("{{", "{%", "{#")


class TemplateFailure(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


def _environment() -> Any:
    import jinja2  # only files that hold template syntax pay for importing Jinja2
    from jinja2.sandbox import SandboxedEnvironment
    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                autoescape=False)


_ENV: Optional[Any] = None


def needs_rendering(text: str) -> bool:
    return any(marker in text for marker in _MARKERS)


def render(text: str, filename: str, context: dict[str, Any]) -> str:
    """Render ``text``; raise TemplateFailure naming file and line on any error."""
    if not needs_rendering(text):
        return text
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    import jinja2.sandbox
    try:
        code = _ENV.compile(text, name=filename, filename=filename)
        template = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None), None)
        return template.render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateFailure(Problem(filename, exc.lineno or 1, 1, "",
                                      f"template syntax error: {exc.message}")) from None
    except jinja2.UndefinedError as exc:
        line = _template_line(exc, filename)
        raise TemplateFailure(Problem(filename, line, 1, "",
                                      f"template error: {_undefined_message(exc)}")) from None
    except Exception as exc:  # sandbox violations, errors raised inside expressions
        line = _template_line(exc, filename)
        what = ("refused by the sandbox" if isinstance(exc, jinja2.sandbox.SecurityError)
                else type(exc).__name__)
        raise TemplateFailure(Problem(filename, line, 1, "",
                                      f"template error: {what}: {exc}")) from None


def _undefined_message(exc: Any) -> str:
    text = exc.message or "undefined value"
    match = re.match(r"'dict object' has no attribute '([^']+)'", text)
    if match:
        return (f"undefined variable var.{match.group(1)} "
                "(set it with --var-file FILE or --var KEY=VALUE)")
    match = re.match(r"'([^']+)' is undefined", text)
    if match:
        return f"'{match.group(1)}' is undefined (templates see `var` and `environment`)"
    return text


def _template_line(exc: BaseException, filename: str) -> int:
    line = 1
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == filename:
            line = lineno
    return line


def load_var_file(path: str) -> tuple[dict[str, Any], list[Problem]]:
    """A --var-file: one YAML mapping. Returns (vars, problems)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        return {}, [Problem(path, 1, 1, "", f"cannot read var file: {exc.strerror}")]
    except UnicodeDecodeError:
        return {}, [Problem(path, 1, 1, "", "var file is not UTF-8 text")]
    try:
        docs = list(documents(text))
    except yaml.MarkedYAMLError as exc:
        return {}, [syntax_problem(path, exc)]
    except DuplicateKey as exc:
        mark = exc.second.start_mark
        return {}, [Problem(path, mark.line + 1, mark.column + 1, exc.path,
                            f"duplicate key '{exc.key}'")]
    if not docs:
        return {}, []
    if len(docs) > 1 or not isinstance(docs[0].value, dict):
        return {}, [Problem(path, 1, 1, "", "a var file must hold one YAML mapping")]
    return docs[0].value, []
