"""Bounded YAML (SECURITY.md, "Bounded inputs"): alias expansion is capped per document,
so "billion laughs" (ten anchors of nine aliases, a few hundred bytes, 3.5 billion nodes
once expanded) is a positioned error, quickly and in little memory; recursive aliases,
deep nesting, huge files, symlinks out of the manifests' root and FIFOs are errors too."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from boundhelpers import in_child, mailform_limited, no_traceback
from reconciler.errors import ManifestError
from reconciler.manifest import load, load_var_file
from reconciler.manifest.yamlpos import (MAX_ALIAS_NODES, MAX_ALIASES, MAX_DOCUMENT_NODES,
                                         MAX_FILE_BYTES, documents)

LETTERS = "abcdefghij"


def billion_laughs(key_prefix: str = "") -> str:
    lines = [f'{key_prefix}a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip(LETTERS, LETTERS[1:]):
        aliases = ",".join([f"*{previous}"] * 9)
        lines.append(f"{key_prefix}{name}: &{name} [{aliases}]")
    return "\n".join(lines) + "\n"


def test_the_attack_is_small():
    assert len(billion_laughs().encode()) < 500


def test_billion_laughs_is_a_positioned_error_under_a_memory_limit(tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "lol.yaml").write_text(billion_laughs())
    result = mailform_limited(["validate", "--format", "json"], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert no_traceback(result.stdout + result.stderr)
    assert "manifests/lol.yaml" in result.stdout
    assert f"more than {MAX_ALIAS_NODES} nodes" in result.stdout


def test_billion_laughs_in_the_loader_names_file_line_column(tmp_path):
    path = tmp_path / "lol.yaml"
    path.write_text(billion_laughs())
    status, problems = in_child(_problems, str(path), headroom=256 * 2**20, seconds=20)
    assert status == "ok", problems
    assert len(problems) == 1
    file, line, column, message = problems[0]
    assert file == str(path) and line > 1 and column > 1
    assert "YAML aliases expand to more than" in message


def _problems(path: str) -> list[tuple]:
    try:
        load([path])
    except ManifestError as exc:
        return [(p.file, p.line, p.column, p.message) for p in exc.problems]
    return []


def test_billion_laughs_in_a_var_file(tmp_path):
    path = tmp_path / "vars.yaml"
    path.write_text(billion_laughs())
    status, (values, problems) = in_child(load_var_file, str(path), headroom=256 * 2**20)
    assert status == "ok" and values == {}
    assert "YAML aliases expand" in problems[0].message and problems[0].line > 1


def _error(text: str) -> str:
    with pytest.raises(yaml.MarkedYAMLError) as caught:
        list(documents(text))
    mark = caught.value.problem_mark
    return f"{mark.line + 1}:{mark.column + 1}: {caught.value.problem}"


def test_a_recursive_alias_is_an_error():
    assert "inside its own anchor" in _error("a: &a [1, *a]\n")
    assert "inside its own anchor" in _error("a: &a {b: {c: *a}}\n")


def test_too_many_aliases_is_an_error():
    text = "x: &x [1]\ny: [" + ", ".join(["*x"] * (MAX_ALIASES + 1)) + "]\n"
    assert f"more than {MAX_ALIASES} YAML aliases" in _error(text)


def test_deep_nesting_is_an_error_not_a_crash():
    assert "nesting" in _error("[" * 990 + "]" * 990)
    assert "nesting" in _error("[" * 5000 + "]" * 5000)


def test_ordinary_aliases_still_work():
    text = ("base: &base {host: smtp.example.com, port: 587}\n"
            "one: *base\ntwo: {<<: *base}\nlist: &l [1, 2]\nboth: [*l, *l]\nname: &n x\nn2: *n\n")
    value = next(documents(text)).value
    assert value["one"] == {"host": "smtp.example.com", "port": 587}
    assert value["both"] == [[1, 2], [1, 2]] and value["n2"] == "x"
    assert value["one"] is not value["base"]


def test_anchors_are_per_document():
    text = "a: &a [1, 2]\n---\nb: *a\n"
    with pytest.raises(yaml.YAMLError):
        list(documents(text))


def test_a_file_larger_than_the_limit_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "w") as handle:
        handle.write("# " + "x" * (MAX_FILE_BYTES + 10) + "\n")
    with pytest.raises(ManifestError) as caught:
        load([str(path)])
    assert "larger than 16 MiB" in str(caught.value)


def test_a_var_file_larger_than_the_limit_is_refused(tmp_path):
    path = tmp_path / "vars.yaml"
    path.write_text("a: " + "x" * (MAX_FILE_BYTES + 10) + "\n")
    values, problems = load_var_file(str(path))
    assert values == {} and "larger than 16 MiB" in problems[0].message


def test_a_manifest_symlinked_out_of_the_root_is_not_read(tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    secret = tmp_path / "secret.yaml"
    secret.write_text("apiVersion: mailform/v1\nkind: s3cret-in-a-value\n")
    (folder / "a.yaml").symlink_to(secret)
    with pytest.raises(ManifestError) as caught:
        load([str(folder)])
    assert "outside the manifests' root" in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_a_fifo_named_like_a_manifest_does_not_hang(tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    os.mkfifo(folder / "pipe.yaml")
    status, problems = in_child(_problems, str(folder), seconds=20)
    assert status == "ok"
    assert any("FIFO" in message for *_, message in problems), problems


def test_long_scalars_are_not_kept_by_the_tag_memo():
    from reconciler.manifest import yamlpos
    long_value = "v" * 10_000
    list(documents(f"a: {long_value}\n"))
    assert long_value not in yamlpos._PLAIN


def test_the_loader_keeps_its_speed_on_ordinary_files(tmp_path):
    doc = ("apiVersion: mailform/v1\nkind: EmailAccount\nmetadata: {{name: a{i}}}\nspec:\n"
           "  type: marketing\n  email: a{i}@example.com\n  display_name: A\n  shared: true\n")
    path = Path(tmp_path / "many.yaml")
    path.write_text("---\n".join(doc.format(i=i) for i in range(2000)))
    status, count = in_child(lambda p: len(load([p]).accounts), str(path), seconds=30)
    assert (status, count) == ("ok", 2000)


def _document_error(text: str) -> str:
    try:
        list(documents(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        return f"{mark.line + 1}:{mark.column + 1}: {exc.problem}"
    return "no error"


def test_a_huge_document_is_refused_before_it_is_composed():
    # 2 MiB of one flow list: composed, about 280 MiB; refused on the event stream instead
    text = "spec:\n  list: [" + "a," * 1_000_000 + "a]\n"
    status, message = in_child(_document_error, text, headroom=128 * 2**20, seconds=20)
    assert status == "ok", message
    assert message.startswith("2:") and f"more than {MAX_DOCUMENT_NODES} nodes" in message


def test_many_small_documents_in_a_large_file_are_fine():
    text = "---\n".join(["[" + "a," * 1000 + "a]\n"] * 400)
    status, count = in_child(lambda t: len(list(documents(t))), text, seconds=30)
    assert (status, count) == ("ok", 400)


def test_a_number_too_long_for_python_is_a_positioned_error():
    assert _document_error("a: 1\nb: " + "7" * 25_000 + "\n") == (
        "2:4: YAML number is too long to be read as an integer")
