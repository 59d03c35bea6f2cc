"""`mailform validate` (and `schema`) from the outside: exit codes, output shapes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from clihelpers import mailform
from reconciler.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
BAD, GOOD = os.path.join(FIXTURES, "bad"), os.path.join(FIXTURES, "good")


def run(capsys, *argv):
    """reconciler.cli.main in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as caught:
        main(list(argv))
    out, err = capsys.readouterr()
    return caught.value.code, out, err


def run_process(*argv, cwd=ROOT, env=None):
    """A real `python -m reconciler` (the end-to-end smoke tests)."""
    proc = subprocess.run([sys.executable, "-m", "reconciler", *argv], cwd=cwd, text=True,
                          capture_output=True, env=dict(os.environ, **(env or {})), timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def run_fresh(*argv, cwd=ROOT, env=None):
    """As `run_process` would see it (its cwd, its environment), but in-process."""
    result = mailform(*argv, cwd=cwd, env=dict(os.environ, **(env or {})))
    return result.code, result.out, result.err


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


# --- end to end, as a user runs it -----------------------------------------------

def test_examples_validate_end_to_end():
    for env, run_it in (("staging", run_process), ("production", run_fresh)):
        code, out, err = run_it("validate", "--var-file", f"environments/{env}.yaml",
                                "--environment", env)
        assert (code, err) == (0, "")
        assert out == "4 accounts, 1 bounce policy: valid\n"


def test_errors_end_to_end_sorted_on_stderr(tmp_path):
    code, out, err = run_process("validate", os.path.join(BAD, "many_errors.yaml"),
                                 os.path.join(BAD, "ssl_on_587.yaml"), cwd=str(tmp_path))
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[-1] == "6 errors: invalid"
    where = [line.split(": ")[1] for line in lines[:-1]]
    assert [w.rsplit(":", 2)[1:] for w in where] == [
        ["5", "9"], ["6", "1"], ["8", "10"], ["13", "15"], ["15", "5"], ["13", "15"]]
    assert all(line.startswith("Error: ") for line in lines[:-1])
    assert "Traceback" not in err


def test_usage_errors_exit_64_end_to_end():
    code, _, err = run_process("validate", "--var", "novalue")
    assert code == 64 and "key=value" in err
    code, _, err = run_fresh("validate", "--no-such-option")
    assert code == 64 and "No such option" in err
    code, _, _ = run_fresh("validate", "--format", "xml")
    assert code == 64


def test_json_format_end_to_end():
    code, out, _ = run_fresh("validate", "--format", "json", os.path.join(BAD, "bad_email.yaml"))
    assert code == 1
    data = json.loads(out)
    assert data["valid"] is False and data["warnings"] == []
    (error,) = data["errors"]
    assert set(error) == {"file", "line", "column", "path", "message"}
    assert (error["line"], error["column"], error["path"]) == (8, 10, "spec.email")


# --- in process -------------------------------------------------------------------

def test_summary_counts(capsys):
    code, out, err = run(capsys, "validate", os.path.join(GOOD, "full_featured.yaml"))
    assert (code, out, err) == (0, "3 accounts, 1 bounce policy: valid\n", "")
    code, out, _ = run(capsys, "validate", os.path.join(GOOD, "minimal_smtp.yaml"))
    assert (code, out) == (0, "1 account, 0 bounce policies: valid\n")


def test_warnings_are_printed_but_do_not_fail(capsys):
    path = os.path.join(GOOD, "warnings.yaml")
    code, out, err = run(capsys, "validate", path)
    assert code == 0 and out == "2 accounts, 0 bounce policies: valid\n"
    assert err.splitlines() == [
        f"Warning: {path}:13:15: spec.smtp.security: security none sends the password in clear "
        "to mail.legacy.example.com",
        f"Warning: {path}:21:25: spec.inbox.verify_certificate: certificate verification is off: "
        "a man in the middle can read the password"]
    code, out, _ = run(capsys, "validate", "--format", "json", path)
    data = json.loads(out)
    assert code == 0 and data["valid"] is True and data["errors"] == []
    assert [(w["line"], w["path"]) for w in data["warnings"]] == [
        (13, "spec.smtp.security"), (21, "spec.inbox.verify_certificate")]


def test_json_lists_every_error_sorted(capsys):
    code, out, err = run(capsys, "validate", "--format", "json", os.path.join(BAD, "many_errors.yaml"),
                         os.path.join(BAD, "duplicate_across_files"))
    assert code == 1 and err == ""
    data = json.loads(out)
    keys = [(e["file"], e["line"], e["column"]) for e in data["errors"]]
    assert keys == sorted(keys) and len(keys) == 6
    assert data["errors"][0]["file"].endswith("duplicate_across_files/b.yaml")


def test_all_bad_fixtures_at_once_no_traceback(capsys):
    code, out, err = run(capsys, "validate", BAD)
    assert code == 1 and out == ""
    assert "Traceback" not in err and "internal error" not in err
    assert err.splitlines()[-1].endswith("errors: invalid")


def test_templating_options(capsys, tmp_path):
    manifest = write(tmp_path / "m" / "a.yaml", """\
        apiVersion: mailform/v1
        kind: EmailAccount
        metadata:
          name: {{ var.name }}-{{ environment }}
        spec:
          type: marketing
          email: news@example.com
          display_name: News
          shared: true
        """)
    first = write(tmp_path / "one.yaml", "name: one\n")
    second = write(tmp_path / "two.yaml", "name: two\n")
    code, out, _ = run(capsys, "validate", "--format", "json", manifest)
    assert code == 1 and "undefined variable var.name" in out
    code, out, _ = run(capsys, "validate", manifest, "--var-file", first, "--var-file", second,
                       "--environment", "stage")
    assert code == 0
    code, out, _ = run(capsys, "validate", "--format", "json", manifest, "--var-file", first,
                       "--var", "name=BAD")
    errors = json.loads(out)["errors"]
    assert code == 1 and [(e["line"], e["path"]) for e in errors] == [(4, "metadata.name")]


def test_environment_from_env_var(capsys, tmp_path, monkeypatch):
    manifest = write(tmp_path / "a.yaml", """\
        apiVersion: mailform/v1
        kind: EmailAccount
        metadata: {name: "n-{{ environment }}"}
        spec: {type: marketing, email: n@example.com, display_name: N, shared: true}
        """)
    monkeypatch.setenv("MAILFORM_ENVIRONMENT", "Bad_Env")
    code, out, _ = run(capsys, "validate", "--format", "json", manifest)
    assert code == 1 and json.loads(out)["errors"][0]["path"] == "metadata.name"


def test_default_path_is_manifests(capsys, monkeypatch, tmp_path):
    write(tmp_path / "manifests" / "a.yaml", """\
        apiVersion: mailform/v1
        kind: BouncePolicy
        metadata: {name: default}
        """)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "validate")
    assert (code, out) == (0, "0 accounts, 1 bounce policy: valid\n")


def test_missing_path_and_bad_var_file(capsys, tmp_path):
    code, _, err = run(capsys, "validate", str(tmp_path / "nope"))
    assert code == 1 and "no such file or directory" in err and "Traceback" not in err
    bad_vars = write(tmp_path / "vars.yaml", "- not a mapping\n")
    code, _, err = run(capsys, "validate", os.path.join(GOOD, "minimal_smtp.yaml"), "--var-file", bad_vars)
    assert code == 1 and f"{bad_vars}:1:1" in err and "one YAML mapping" in err


def test_literal_secret_never_printed(capsys):
    code, out, err = run(capsys, "validate", "--format", "json", os.path.join(BAD, "literal_password.yaml"))
    assert code == 1 and "Tr0ub4dor-literal-x9" not in out + err
    code, out, err = run(capsys, "validate", os.path.join(BAD, "literal_password.yaml"))
    assert code == 1 and "Tr0ub4dor-literal-x9" not in out + err


def test_usage_errors_exit_64(capsys):
    for argv in (["validate", "--var", "novalue"], ["validate", "--var", "=x"],
                 ["validate", "--bogus"], ["validate", "--format", "yaml"], ["nosuchcommand"]):
        code, _, err = run(capsys, *argv)
        assert code == 64, argv
        assert "Traceback" not in err


def test_schema_command(capsys, tmp_path):
    code, out, _ = run(capsys, "schema")
    assert code == 0 and json.loads(out)["$schema"].endswith("2020-12/schema")
    code, out, _ = run(capsys, "schema", "--out", str(tmp_path / "s"))
    assert code == 0 and (tmp_path / "s" / "mailform.v1.json").exists()


def test_help_lists_validate(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "validate" in out and "schema" in out
