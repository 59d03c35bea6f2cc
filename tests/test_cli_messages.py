"""Messages that used to mislead (issue 10, problem 6), as `mailform` prints them."""
from __future__ import annotations

import json

import pytest

from clihelpers import Cli

HEAD = "apiVersion: mailform/v1\nkind: EmailAccount\nmetadata:\n  name: a\n"
SMTP = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: a
spec:
  type: TYPE
  email: a@example.com
  display_name: A
  shared: true
  smtp:
    host: smtp.example.com
    port: PORT
    security: starttls
    password: {env: A_PW}
"""


@pytest.fixture
def cli(tmp_path):
    return Cli(tmp_path)


def _errors(result) -> list[str]:
    return [line for line in result.err.splitlines() if line.startswith("Error:")]


def test_a_quoted_port_is_a_string_and_says_how_to_write_it(cli):
    cli.write("manifests/a.yaml", SMTP.replace("TYPE", "smtp").replace("PORT", '"587"'))
    result = cli.run("validate")
    assert result.code == 1
    assert _errors(result) == ['Error: manifests/a.yaml:12:11: spec.smtp.port: must be a whole '
                               'number, not the string "587": write it without quotes']
    cli.write("manifests/a.yaml", SMTP.replace("TYPE", "smtp").replace("PORT", "abc"))
    assert 'must be a whole number, not the string "abc"' in cli.run("validate").err


def test_a_tab_is_named(cli):
    cli.write("manifests/a.yaml", HEAD + "spec:\n\ttype: smtp\n")
    result = cli.run("validate")
    assert _errors(result) == ["Error: manifests/a.yaml:6:1: YAML syntax error: a tab character; "
                               "YAML indents with spaces only (replace the tab with spaces)"]


def test_plan_to_a_missing_folder_says_so_before_planning(cli):
    cli.write("manifests/a.yaml", SMTP.replace("TYPE", "smtp").replace("PORT", "587"))
    result = cli.run("plan", "-o", "/missing-dir/x.plan", env={"A_PW": "x"})
    assert result.code == 1 and "internal error" not in result.err, result
    assert result.err.strip() == ("Error: cannot save the plan to /missing-dir/x.plan: the "
                                  "folder /missing-dir does not exist")


@pytest.mark.parametrize("line, expected", [
    ("  labels: {a: {{ var.x @ }}}\n", "5:24: template syntax error: unexpected character '@'"),
    ("  x: {{ var.x\n", "5:6: template syntax error: unexpected end of template"),
    ("  labels: {a: '{{ var.x }}', b: '{{ var.y }}'}\n",
     "5:37: template error: undefined variable var.y"),
    ("  labels: {a: '{{ environment }}-{{ enviroment }}'}\n",
     "5:37: template error: 'enviroment' is undefined"),
])
def test_template_errors_give_line_and_column(cli, line, expected):
    cli.write("manifests/a.yaml", HEAD + line)
    result = cli.run("validate", "--var", "x=1")
    assert result.code == 1
    (error,) = _errors(result)
    assert error.startswith(f"Error: manifests/a.yaml:{expected}"), error


def test_a_missing_path_has_no_made_up_position(cli):
    result = cli.run("validate", "dir")
    assert result.code == 1 and _errors(result) == ["Error: dir: no such file or directory"]
    as_json = json.loads(cli.run("validate", "dir", "--format", "json").out)
    assert as_json["errors"] == [{"file": "dir", "line": 0, "column": 0, "path": "",
                                  "message": "no such file or directory"}]


def test_a_file_that_is_not_a_manifest_is_not_valid(cli):
    cli.write("notes.txt", "remember the milk\n")
    result = cli.run("validate", "notes.txt")
    assert result.code == 1 and "valid" not in result.out, result
    assert _errors(result) == ["Error: notes.txt: not a manifest file: manifests are *.yaml or "
                               "*.yml files"]


def test_a_forbidden_block_is_reported_at_its_key(cli):
    cli.write("manifests/a.yaml", SMTP.replace("TYPE", "marketing").replace("PORT", "587"))
    errors = _errors(cli.run("validate"))
    assert ("Error: manifests/a.yaml:10:3: spec.smtp: smtp is not allowed on a marketing "
            "account (the platform's own servers send it)") in errors, errors
