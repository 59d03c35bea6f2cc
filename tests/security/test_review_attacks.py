"""Attacks found by an independent review of issue 9 (SECURITY.md), each held here:

* the project file (written by anyone who can open a pull request) naming a var file or a
  manifest folder outside its own folder: a var file's values are printed in the plan
  (``display_name: "{{ var.users }}"`` with ``~/.kube/config`` as a var file), a FIFO or
  ``/dev/stdin`` hangs the run, and a manifest folder elsewhere widens the manifests' root
  that ``{file:}`` secrets are confined to;
* a file of many small invalid documents (16 MiB of ``--- {}``) collected millions of
  problems: 2 GB and a MemoryError; a document of 100,000 unknown fields took minutes
  (each problem's position was a linear search);
* a lazy filter (``map``) feeding ``join`` or ``list``: each item under the size limit, the
  whole a gigabyte before any result was checked.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from boundhelpers import in_child, mailform_limited, no_traceback
from reconciler.manifest.template import TemplateFailure, render

ACCOUNT = """apiVersion: mailform/v1
kind: EmailAccount
metadata: {name: a}
spec:
  type: marketing
  email: a@example.com
  shared: true
  display_name: "DISPLAY"
"""


def _project(tmp_path: Path, manifests: str = "[manifests]", var_files: str = "[]") -> Path:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "a.yaml").write_text(ACCOUNT.replace("DISPLAY", "{{ var.users }}"))
    (tmp_path / "mailform.yaml").write_text(
        "apiVersion: mailform/v1\nkind: Project\nmetadata: {name: demo}\nspec:\n"
        f"  manifests: {manifests}\n  environments:\n    staging:\n"
        f"      var_files: {var_files}\n")
    return tmp_path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file of the runner's, outside the checkout, that would be a valid var file."""
    home = tmp_path / "home" / ".kube"
    home.mkdir(parents=True)
    (home / "config").write_text("users: [{name: ci, user: {token: KUBE-TOKEN-XYZ}}]\n")
    return home / "config"


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_a_project_file_cannot_name_a_var_file_outside_its_folder(tmp_path, outside, how):
    repo = tmp_path / "repo"
    repo.mkdir()
    name = {"absolute": str(outside), "dotdot": "../home/.kube/config",
            "symlink": "vars.yaml"}[how]
    _project(repo, var_files=f"[{name}]")
    if how == "symlink":
        (repo / "vars.yaml").symlink_to(outside)
    for command in (["validate", "--environment", "staging"],
                    ["plan", "--environment", "staging"]):
        result = mailform_limited(command, cwd=repo)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "KUBE-TOKEN-XYZ" not in result.stdout + result.stderr
        assert "spec.environments.staging.var_files.0" in result.stderr
        assert "outside the project file's folder" in result.stderr
        assert no_traceback(result.stderr)


def test_a_project_file_cannot_hang_the_run_on_a_fifo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    os.mkfifo(tmp_path / "fifo")
    _project(repo, var_files="[fifo.yaml, /dev/stdin]")
    (repo / "fifo.yaml").symlink_to(tmp_path / "fifo")
    result = mailform_limited(["validate", "--environment", "staging"], cwd=repo, timeout=20)
    assert result.returncode == 1 and no_traceback(result.stderr)
    assert result.stderr.count("outside the project file's folder") == 2, result.stderr


def test_a_project_file_cannot_widen_the_manifests_root(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "secret").write_text("OUTSIDE-SECRET\n")
    _project(repo, manifests=f"[manifests, {tmp_path / 'empty'}]")
    (repo / "manifests" / "a.yaml").write_text(ACCOUNT.replace("DISPLAY", "x").replace(
        "type: marketing", "type: smtp").replace("shared: true", "shared: true\n  smtp: {host: "
        "smtp.example.com, port: 587, security: starttls, password: {file: ../../secret}}"))
    result = mailform_limited(["plan", "--environment", "staging"], cwd=repo)
    assert result.returncode == 1
    assert "spec.manifests.1" in result.stderr and "outside the project file's folder" in \
        result.stderr
    assert "OUTSIDE-SECRET" not in result.stdout + result.stderr


def test_var_files_and_manifests_inside_the_project_still_work(tmp_path):
    repo = _project(tmp_path, manifests="[.]", var_files="[env/staging.yaml]")
    (repo / "env").mkdir()
    (repo / "env" / "staging.yaml").write_text("users: Staging Users\n")
    result = mailform_limited(["validate", "--environment", "staging"], cwd=repo)
    assert result.returncode == 0, result.stderr


def test_many_small_invalid_documents_stop_after_a_thousand_errors(tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "docs.yaml").write_text("--- {}\n" * (16 * 2**20 // 7 - 16))
    result = mailform_limited(["validate"], cwd=tmp_path, timeout=60)
    assert result.returncode == 1 and no_traceback(result.stderr), result.stderr[-2000:]
    assert "more than 1000 errors: stopped reading here" in result.stderr
    assert result.stderr.count("\n") < 1100


def test_a_document_of_many_unknown_fields_is_reported_in_linear_time(tmp_path):
    (tmp_path / "manifests").mkdir()
    fields = "".join(f"  f{i}: 1\n" for i in range(99_000))
    (tmp_path / "manifests" / "a.yaml").write_text(
        "apiVersion: mailform/v1\nkind: EmailAccount\nmetadata: {name: a}\nspec:\n" + fields)
    result = mailform_limited(["validate"], cwd=tmp_path, timeout=30)   # was minutes
    assert result.returncode == 1 and no_traceback(result.stderr)
    assert "a.yaml:5:3: spec.f0: unknown field 'f0'" in result.stderr


def _render(source: str) -> str:
    try:
        return "rendered " + str(len(render(source, "f.yaml", {"var": {}, "environment": "e"})))
    except TemplateFailure as exc:
        return str(exc.problem)


@pytest.mark.parametrize("consumer", ["join", "list", "max", "unique | list",
                                      "select | list", "reverse | first"])
def test_a_lazy_filter_is_bounded_by_what_it_yields(consumer):
    source = ("{{ range(10000) | map('string') | map('center', 99999) | " + consumer
              + " | length }}")
    status, text = in_child(_render, source)
    assert status == "ok", text
    assert text.startswith("f.yaml:1:1: template error: beyond a limit: the items of the "
                           "filter map would hold more than 1000000"), text


def test_a_small_lazy_filter_still_renders():
    assert render("{{ range(100) | map('string') | join(',') | length }}", "f.yaml",
                  {"var": {}, "environment": "e"}) == "289"


@pytest.mark.parametrize("source, message", [
    ("a: " + "{{ x }}" * 40_000, "more than 20000 template tags"),
    ("a: {{ [" + "1," * 500_000 + "1] | length }}", "more than 200000 template tokens"),
    ("a: {{ range(" + "1," * 500_000 + "1) }}", "more than 200000 template tokens"),
])
def test_a_template_too_big_to_compile_is_refused_before_compiling(source, message):
    status, text = in_child(_render, source, headroom=256 * 2**20, seconds=20)
    assert status == "ok", text             # 2 MB of {{ x }} took 2 GB to compile
    assert "template error: beyond a limit: " + message in text, text
