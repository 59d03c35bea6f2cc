"""The layout of ARCHITECTURE.md as tests: import contracts, module size, function length.

The import contracts live in pyproject.toml (``[tool.importlinter]``) and are
checked by import-linter's own command, so that `lint-imports` on a shell and
this test agree.
"""
from __future__ import annotations

import ast
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reconciler"
MODULE_LINE_LIMIT = 400          # "a module over ~400 lines is a sign that it holds two ideas"
MEDIAN_FUNCTION_LIMIT = 15       # "functions stay short": median body length, in lines
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def function_lengths() -> list[tuple[int, str]]:
    """(body lines, "module.py:line name") of every function and method in the package.

    A body runs from its first statement (a docstring counts) to its last line.
    """
    out = []
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.body[0].lineno + 1
                out.append((length, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return out


def test_import_contracts_hold():
    """`lint-imports` (this interpreter's), without its cache in the work tree."""
    command = [sys.executable, "-c", LINT_IMPORTS, "--no-cache"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    report = proc.stdout + proc.stderr
    start = report.find("Broken contracts")
    assert proc.returncode == 0, report[start:] if start >= 0 else report


def test_modules_stay_under_400_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for p in _modules()}
    over = {name: n for name, n in sizes.items() if n >= MODULE_LINE_LIMIT}
    assert not over, f"modules of {MODULE_LINE_LIMIT} lines or more: {over}"


def test_functions_are_short_on_the_whole():
    lengths = function_lengths()
    median = statistics.median(n for n, _ in lengths)
    longest = sorted(lengths, reverse=True)[:10]
    assert median <= MEDIAN_FUNCTION_LIMIT, (
        f"median function body {median} lines over {len(lengths)} functions "
        f"(limit {MEDIAN_FUNCTION_LIMIT}); longest: {longest}")
