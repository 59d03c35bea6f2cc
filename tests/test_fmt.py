"""`mailform fmt`: canonical layout, comments and quoting kept, --check."""
from __future__ import annotations

import os
import re
import shutil

import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli.cmd_fmt import fmt
from reconciler.manifest.fmt import format_file, format_template, format_text
from reconciler.manifest.template import needs_rendering

TAGS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

MESSY = """\
# yaml-language-server: $schema=../schemas/mailform.v1.json
spec:   # the account
    shared: true     # usable by everyone
    smtp:
        password: {file: secrets/pw}
        port: 587   # submission
        host: "smtp.example.com"
        security: 'starttls'
    lifecycle:
        ignore_changes:
        - reply_to.name
        - smtp.port
    type: smtp
    email: support@example.com
    display_name: >-
        Support
kind: EmailAccount
metadata:
    labels: {zeta: "1", alpha: '2'}
    name: support
apiVersion: mailform/v1
---
# the second document keeps its comment
apiVersion: mailform/v1
metadata: {name: default}
kind: BouncePolicy
"""

CANONICAL = """\
# yaml-language-server: $schema=../schemas/mailform.v1.json
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: support
  labels: {zeta: "1", alpha: '2'}
spec:   # the account
  type: smtp
  email: support@example.com
  display_name: >-
    Support
  smtp:
    host: "smtp.example.com"
    port: 587       # submission
    security: 'starttls'
    password: {file: secrets/pw}
  shared: true       # usable by everyone
  lifecycle:
    ignore_changes:
      - reply_to.name
      - smtp.port
---
# the second document keeps its comment
apiVersion: mailform/v1
kind: BouncePolicy
metadata: {name: default}
"""


def invoke(*args):
    result = CliRunner().invoke(fmt, list(args), standalone_mode=False)
    if result.exception is not None:
        raise result.exception
    return result.return_value, result.stdout, result.stderr


def test_canonical_layout_comments_and_quoting_kept():
    """Comments keep their column; keys, indentation and block sequences are canonical."""
    assert format_text(MESSY) == CANONICAL


def test_canonical_text_is_left_alone():
    assert format_text(CANONICAL) == CANONICAL


def test_unknown_keys_stay_in_place_known_keys_take_spec_order():
    text = "spec:\n  shared: true\n  dispaly_name: X\n  type: marketing\n"
    assert format_text(text) == "spec:\n  shared: true\n  dispaly_name: X\n  type: marketing\n"
    text = ("kind: EmailAccount\nspec:\n  shared: true\n  dispaly_name: X\n  type: marketing\n"
            "apiVersion: mailform/v1\n")
    assert format_text(text) == ("apiVersion: mailform/v1\nkind: EmailAccount\nspec:\n"
                                 "  type: marketing\n  dispaly_name: X\n  shared: true\n")


def test_password_reference_and_nested_order():
    text = ("kind: EmailAccount\nspec:\n  inbox:\n    port: 993\n    protocol: imap\n"
            "    password: {file: f, env: E}\n  reply_to: {name: N, email: r@example.com}\n")
    assert format_text(text) == (
        "kind: EmailAccount\nspec:\n  reply_to: {email: r@example.com, name: N}\n"
        "  inbox:\n    protocol: imap\n    port: 993\n    password: {env: E, file: f}\n")


@pytest.mark.parametrize("text", [
    "# before the first marker\n---\na: 1\n",
    "a: 1\n---\n---\n# only a comment\n---\nb: 2\n...\n",
    "a: 1\n\n# trailing comment\n",
    "",
    "# only comments\n",
    "just a scalar\n",
    "- a\n- b: 1\n  c: 2\n",
    "a: null\nb: ~\nc:\n",
])
def test_document_structure_is_kept(text):
    out = format_text(text)
    assert list(yaml.safe_load_all(out)) == list(yaml.safe_load_all(text))
    if text.strip():
        assert [l for l in out.splitlines() if l.startswith(("#", "---", "..."))] == \
               [l for l in text.splitlines() if l.startswith(("#", "---", "..."))]
    assert format_text(out) == out


def fixture_files():
    for group in ("good", "bad"):
        for dirpath, _, names in os.walk(os.path.join(FIXTURES, group)):
            for name in sorted(names):
                yield os.path.join(dirpath, name)


@pytest.mark.parametrize("path", sorted(fixture_files()),
                         ids=lambda p: os.path.relpath(p, FIXTURES))
def test_every_fixture_same_data_and_idempotent(path):
    result = format_file(path)
    if result.status in ("skipped", "error"):
        return
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if needs_rendering(text):                  # templates: every tag kept, in order
        assert TAGS.findall(result.text) == TAGS.findall(text)
        assert format_template(result.text) == result.text
        return
    before = list(yaml.safe_load_all(text))
    assert list(yaml.safe_load_all(result.text)) == before
    assert format_text(result.text) == result.text


def test_good_fixtures_are_canonical():
    for name in ("minimal_smtp.yaml", "minimal_marketing.yaml", "full_featured.yaml", "warnings.yaml"):
        assert format_file(os.path.join(FIXTURES, "good", name)).status == "unchanged", name


def test_examples_rendered_are_canonical():
    """The examples hold templates; once rendered, their layout is canonical too."""
    from reconciler.manifest.template import load_var_file, render
    values, _ = load_var_file(os.path.join(ROOT, "environments", "staging.yaml"))
    from reconciler.manifest import find_files
    for path in find_files([os.path.join(ROOT, "manifests")]):
        with open(path, encoding="utf-8") as handle:
            text = render(handle.read(), path, {"var": values, "environment": "staging"})
        assert format_text(text) == text, path


def test_check_names_files_and_changes_nothing(tmp_path):
    messy = tmp_path / "m" / "messy.yaml"
    messy.parent.mkdir()
    messy.write_text(MESSY, encoding="utf-8")
    shutil.copy(os.path.join(FIXTURES, "good", "minimal_smtp.yaml"), tmp_path / "m" / "ok.yml")
    code, out, err = invoke("--check", str(tmp_path / "m"))
    assert code == 1
    assert out == f"would reformat {messy}\n"
    assert "1 file would be reformatted, 1 unchanged." in err
    assert messy.read_text(encoding="utf-8") == MESSY


def test_fmt_rewrites_then_check_passes(tmp_path):
    messy = tmp_path / "messy.yaml"
    messy.write_text(MESSY, encoding="utf-8")
    code, out, _ = invoke(str(tmp_path))
    assert (code, out) == (0, f"reformatted {messy}\n")
    assert messy.read_text(encoding="utf-8") == CANONICAL
    code, out, err = invoke("--check", str(tmp_path))
    assert (code, out) == (0, "")
    assert "0 files would be reformatted, 1 unchanged." in err


def test_templates_that_cannot_be_laid_out_are_skipped_with_the_reason(tmp_path):
    path = tmp_path / "t.yaml"
    text = ("spec:\n{% if var.x %}\n    type: smtp\n{% else %}\n    type: marketing\n"
            "{% endif %}\nkind: EmailAccount\n")
    path.write_text(text, encoding="utf-8")
    for args in (["--check"], []):
        code, out, err = invoke(*args, str(tmp_path))
        assert code == 0 and out == ""
        assert f"skipped {path}: a template left as it is" in err
        assert 'duplicate key "type"' in err and "mfj" not in err, err
        assert path.read_text(encoding="utf-8") == text


def test_yaml_errors_are_reported_with_position(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\n---\nb: [1\nc: 2\n", encoding="utf-8")
    (tmp_path / "latin1.yaml").write_bytes(b"a: caf\xe9\n")
    code, out, err = invoke(str(tmp_path))
    assert code == 1
    assert f"Error: {path}:4:" in err and "YAML syntax error" in err
    assert f"{tmp_path / 'latin1.yaml'}:1:1: file is not valid UTF-8 text" in err
    assert path.read_text(encoding="utf-8") == "a: 1\n---\nb: [1\nc: 2\n"


def test_template_options_are_accepted_and_default_path(tmp_path, monkeypatch):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "a.yaml").write_text("kind: BouncePolicy\napiVersion: mailform/v1\n",
                                                   encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, out, _ = invoke("--check", "--var-file", "nope.yaml", "--var", "a=b",
                          "--environment", "production")
    assert code == 1 and out == "would reformat manifests/a.yaml\n"


def test_usage_error_for_bad_var(tmp_path):
    import click
    with pytest.raises(click.BadParameter):
        invoke("--var", "novalue", str(tmp_path))


def test_fmt_does_not_import_ruamel_for_validate():
    import subprocess
    import sys
    code = ("import sys; import reconciler.cli.cmd_fmt, reconciler.cli.cmd_validate;"
            "print(any(m.startswith('ruamel') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


# --- templated files (issue 10, problem 8): laid out, every tag kept byte for byte -------

MESSY_TEMPLATE = """\
# {{ environment }}: the support desk
spec:
    smtp:
        port: {{ var.port }}    # from the var file
        host: "{{ var.host }}"
        security: {{ 'ssl' if var.port == 465 else 'starttls' }}
        password: {env: {{ environment | upper }}_PW}
    type: smtp
    email: support@{{ var.domain }}
    display_name: Support
    shared: true
kind: EmailAccount
metadata:
    name: {{ var.prefix }}-support
apiVersion: mailform/v1
"""

CANONICAL_TEMPLATE = """\
# {{ environment }}: the support desk
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: {{ var.prefix }}-support
spec:
  type: smtp
  email: support@{{ var.domain }}
  display_name: Support
  smtp:
    host: "{{ var.host }}"
    port: {{ var.port }}        # from the var file
    security: {{ 'ssl' if var.port == 465 else 'starttls' }}
    password: {env: {{ environment | upper }}_PW}
  shared: true
"""

BLOCKS = """\
{% for team in var.teams %}
---
kind: EmailAccount
apiVersion: mailform/v1
metadata:
    name: {{ team }}-news
spec:
    type: marketing
{% if environment == "production" %}
    lifecycle:
        prevent_destroy: true
{% endif %}
    email: {{ team }}@example.com
    display_name: News
    shared: true
{% endfor %}
"""


def test_a_templated_file_is_laid_out_keeping_every_tag(tmp_path):
    from clihelpers import Cli
    cli = Cli(tmp_path)
    path = cli.write("manifests/support.yaml", MESSY_TEMPLATE)
    checked = cli.run("fmt", "--check")
    assert checked.code == 1 and checked.out == "would reformat manifests/support.yaml\n"
    assert cli.run("fmt").code == 0
    assert path.read_text() == CANONICAL_TEMPLATE
    assert cli.run("fmt", "--check").code == 0
    cli.write("v.yaml", "port: 465\nhost: h.example.com\ndomain: example.com\nprefix: eu\n")
    rendered = cli.run("validate", "--var-file", "v.yaml")
    assert rendered.code == 0 and "1 account," in rendered.out, rendered


def test_statement_tags_keep_the_lines_they_enclose(tmp_path):
    from clihelpers import Cli
    cli = Cli(tmp_path)
    path = cli.write("manifests/teams.yaml", BLOCKS)
    assert cli.run("fmt").code == 0
    text = path.read_text()
    assert TAGS.findall(text) == TAGS.findall(BLOCKS)
    lines = [line.strip() for line in text.splitlines()]
    assert lines == [line.strip() for line in BLOCKS.splitlines()]   # same lines, same order
    assert "    lifecycle:" not in text and "  lifecycle:\n    prevent_destroy: true" in text
    assert cli.run("fmt", "--check").code == 0
    cli.write("teams.yaml", "teams: [growth, sales]\n")
    for environment in ("staging", "production"):
        valid = cli.run("validate", "--var-file", "teams.yaml", "--environment", environment)
        assert valid.code == 0 and "2 accounts" in valid.out, valid


def test_the_examples_are_formatted_not_skipped():
    from clihelpers import mailform
    result = mailform("fmt", "--check", "manifests")
    assert result.code == 0 and "skipped" not in result.err, result


def test_setting_tags_aside_is_linear_on_hostile_templates(tmp_path):
    import time
    for text in ("a: " + "{{ " * 40_000, "a: " + "{{ x }}" * 40_000, "{% if x %}\n" * 40_000,
                 "a: '" + "{# " * 40_000 + "'\n"):
        path = tmp_path / "t.yaml"
        path.write_text(text)
        started = time.monotonic()
        result = format_file(str(path))
        # about 5 s for the worst of them on a busy 2-core machine; quadratic: many minutes
        assert time.monotonic() - started < 60, text[:20]
        assert result.status in ("unchanged", "changed", "skipped")
        assert path.read_text() == text
