"""Loading: finding files, multi-document files, templating, secrets, error collection."""
from __future__ import annotations

import os
import textwrap

import pytest

from reconciler.errors import MailformError, ManifestError, SecretError
from reconciler.manifest import Desired, account_secrets, find_files, load, load_var_file, resolve
from reconciler.manifest.template import needs_rendering, render, TemplateFailure
from reconciler.model import SecretRef

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MARKETING = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: {name}
spec:
  type: marketing
  email: {name}@example.com
  display_name: {display}
  shared: true
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def account(name="news", display="News"):
    return MARKETING.format(name=name, display=display)


# --- finding files ----------------------------------------------------------------

def test_find_files_recursive_sorted_yaml_and_yml_only(tmp_path):
    write(tmp_path / "b.yaml", account("b"))
    write(tmp_path / "a" / "z.yml", account("z"))
    write(tmp_path / "a" / "notes.txt", "x")
    write(tmp_path / ".hidden" / "h.yaml", account("h"))
    found = [os.path.relpath(f, tmp_path) for f in find_files([str(tmp_path)])]
    assert found == [os.path.join("a", "z.yml"), "b.yaml"]


def test_a_file_given_twice_is_read_once(tmp_path):
    path = write(tmp_path / "a.yaml", account())
    assert find_files([path, str(tmp_path)]) == [path]


def test_missing_path_and_no_files_are_clean_errors(tmp_path):
    with pytest.raises(MailformError, match="no such file"):
        load([str(tmp_path / "nope")])
    with pytest.raises(MailformError, match="no manifest files"):
        load([str(tmp_path)])


def test_examples_load_for_both_environments():
    for env in ("staging", "production"):
        values, problems = load_var_file(os.path.join(ROOT, "environments", f"{env}.yaml"))
        assert problems == []
        desired = load([os.path.join(ROOT, "manifests")], values, env)
        assert isinstance(desired, Desired)
        assert {"newsletter", "support", "alice-outreach", "sales-events"} <= set(desired.accounts)
        assert desired.policy is not None
        assert desired.accounts["newsletter"].metadata.labels["environment"] == env


def test_multi_document_files_and_empty_documents(tmp_path):
    path = write(tmp_path / "m.yaml", "---\n" + account("one") + "---\n---\n# only a comment\n---\n"
                 + account("two") + "...\n")
    desired = load([path])
    assert list(desired.accounts) == ["one", "two"]
    assert desired.accounts["two"].source == (path, 15, 1)


def test_an_empty_file_is_no_error(tmp_path):
    write(tmp_path / "empty.yaml", "")
    write(tmp_path / "a.yaml", account())
    assert list(load([str(tmp_path)]).accounts) == ["news"]


def test_digest_changes_with_content(tmp_path):
    path = tmp_path / "a.yaml"
    write(path, account())
    first = load([str(path)]).digest
    assert first == load([str(path)]).digest and first.startswith("sha256:")
    write(path, account(display="Other"))
    assert load([str(path)]).digest != first


def test_all_errors_of_all_files_together_sorted(tmp_path):
    write(tmp_path / "b.yaml", account("b").replace("display_name: News", "display_name: 1"))
    write(tmp_path / "a.yaml", account("a").replace("type: marketing", "type: x")
          + "---\n" + account("c").replace("shared: true", "shared: 2"))
    with pytest.raises(ManifestError) as caught:
        load([str(tmp_path)])
    got = [(os.path.basename(p.file), p.line, p.path) for p in caught.value.problems]
    assert got == [("a.yaml", 6, "spec.type"), ("a.yaml", 19, "spec.shared"),
                   ("b.yaml", 8, "spec.display_name")]


def test_duplicate_names_name_both_places(tmp_path):
    write(tmp_path / "a.yaml", account("same"))
    write(tmp_path / "sub" / "b.yaml", "# comment\n" + account("same"))
    with pytest.raises(ManifestError) as caught:
        load([str(tmp_path)])
    (problem,) = caught.value.problems
    assert (os.path.relpath(problem.file, tmp_path), problem.line, problem.column) == (
        os.path.join("sub", "b.yaml"), 5, 9)
    assert f"{tmp_path / 'a.yaml'}:4:9" in problem.message


def test_the_same_name_may_be_an_account_and_a_policy(tmp_path):
    write(tmp_path / "a.yaml", account("default") + "---\napiVersion: mailform/v1\n"
          "kind: BouncePolicy\nmetadata:\n  name: default\n")
    desired = load([str(tmp_path)])
    assert "default" in desired.accounts and desired.policy.metadata.name == "default"


def test_warnings_do_not_fail(tmp_path):
    write(tmp_path / "a.yaml", """\
        apiVersion: mailform/v1
        kind: EmailAccount
        metadata: {name: w}
        spec:
          type: smtp
          email: w@example.com
          display_name: W
          shared: true
          smtp: {host: mail.example.com, port: 25, security: none, password: {env: P}}
        """)
    desired = load([str(tmp_path)])
    assert [(w.line, w.path, w.severity) for w in desired.warnings] == [
        (9, "spec.smtp.security", "warning")]


def test_warnings_travel_with_errors(tmp_path):
    write(tmp_path / "a.yaml", """\
        apiVersion: mailform/v1
        kind: EmailAccount
        metadata: {name: w}
        spec:
          type: smtp
          email: w@example.com
          display_name: W
          shared: true
          smtp: {host: mail.example.com, port: 587, security: starttls, password: {env: P},
                 verify_certificate: false}
        """)
    write(tmp_path / "b.yaml", account("b").replace("type: marketing", "type: x"))
    with pytest.raises(ManifestError) as caught:
        load([str(tmp_path)])
    assert [w.path for w in caught.value.warnings] == ["spec.smtp.verify_certificate"]


# --- templating -------------------------------------------------------------------

TEMPLATE = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: {{ var.name }}
  labels: {env: "{{ environment }}", tier: "{{ var.tier }}"}
spec:
  type: marketing
  email: news@example.com
  display_name: News
  shared: true
"""


def load_desired(paths, var_files, var_pairs, environment):
    from reconciler.workflow.inputs import Inputs, load_desired as load
    return load(Inputs(paths, var_files, var_pairs, environment))


def test_var_files_later_wins_and_var_wins_over_files(tmp_path):
    manifest = write(tmp_path / "m" / "a.yaml", TEMPLATE)
    first = write(tmp_path / "v1.yaml", "name: one\ntier: gold\n")
    second = write(tmp_path / "v2.yaml", "name: two\n")
    desired = load_desired((manifest,), (first, second), (), "prod")
    account_ = desired.accounts["two"]
    assert account_.metadata.labels == {"env": "prod", "tier": "gold"}
    desired = load_desired((manifest,), (first, second), (("name", "three"),), "default")
    assert list(desired.accounts) == ["three"]
    assert desired.accounts["three"].metadata.labels["env"] == "default"


def test_bad_var_files_are_reported(tmp_path):
    manifest = write(tmp_path / "m" / "a.yaml", account())
    bad = write(tmp_path / "v.yaml", "- a list\n")
    broken = write(tmp_path / "w.yaml", "a: [1\n")
    with pytest.raises(ManifestError) as caught:
        load_desired((manifest,), (bad, broken, str(tmp_path / "missing.yaml")), (), "default")
    messages = [str(p) for p in caught.value.problems]
    assert any("one YAML mapping" in m for m in messages)
    assert any("w.yaml:2:1" in m and "YAML syntax error" in m for m in messages)
    assert any("cannot read var file" in m for m in messages)


def test_undefined_variable_names_file_and_line(tmp_path):
    path = write(tmp_path / "a.yaml", TEMPLATE)
    with pytest.raises(ManifestError) as caught:
        load([path], {"name": "n"})
    (problem,) = caught.value.problems
    assert (problem.file, problem.line) == (path, 5)
    assert "var.tier" in problem.message


def test_undefined_top_level_name(tmp_path):
    path = write(tmp_path / "a.yaml", "# x\n\n" + TEMPLATE.replace("{{ environment }}", "{{ env }}"))
    with pytest.raises(ManifestError) as caught:
        load([path], {"name": "n", "tier": "t"})
    (problem,) = caught.value.problems
    assert problem.line == 7 and "'env' is undefined" in problem.message


def test_line_numbers_exact_after_one_line_expressions(tmp_path):
    text = """\
        {# a comment #}
        apiVersion: mailform/v1
        kind: EmailAccount
        metadata:
          name: {{ var.name }}
        {% set port = var.port %}
        spec:
          type: smtp
          email: "{{ var.name }}@example.com"
          display_name: {{ var.name | upper }}
          shared: true
          smtp:
            host: {{ "smtp." ~ var.domain }}
            port: {{ port }}
            security: {% if port == 465 %}ssl{% else %}starttls{% endif %}
            password: {env: PW}
          colour: {{ var.name }}
        """
    path = write(tmp_path / "a.yaml", text)
    with pytest.raises(ManifestError) as caught:
        load([path], {"name": "x", "port": "25x", "domain": "example.com"})
    got = [(p.line, p.column, p.path) for p in caught.value.problems]
    assert got == [(14, 11, "spec.smtp.port"), (17, 3, "spec.colour")]


def test_template_syntax_error_names_line(tmp_path):
    path = write(tmp_path / "a.yaml", account() + "{% if var.x %}\n")
    with pytest.raises(ManifestError) as caught:
        load([path], {"x": 1})
    (problem,) = caught.value.problems
    assert problem.file == path and problem.line == 10
    assert "template syntax error" in problem.message


@pytest.mark.parametrize("expression", [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ var.__class__ }}",
    "{{ range(10**9) | list }}",
])
def test_sandbox_refuses_cleanly(tmp_path, expression):
    path = write(tmp_path / "a.yaml", "# x\n" + account().replace("News", f'"{expression}"', 1))
    with pytest.raises(ManifestError) as caught:
        load([path])
    (problem,) = caught.value.problems
    assert problem.line == 9 and problem.message.startswith("template error")


def test_files_without_template_syntax_are_not_rendered():
    assert not needs_rendering("a: b\n")
    assert needs_rendering("a: {{ b }}\n") and needs_rendering("{# c #}") and needs_rendering("{% x %}")
    text = "a: '{ not jinja }'\n"
    assert render(text, "f", {}) == text


def test_render_keeps_trailing_newline_and_reports_problem():
    assert render("a: {{ var.x }}\n", "f.yaml", {"var": {"x": 1}}) == "a: 1\n"
    with pytest.raises(TemplateFailure) as caught:
        render("a: 1\nb: {{ 1 / 0 }}\n", "f.yaml", {"var": {}})
    assert caught.value.problem.line == 2 and "ZeroDivisionError" in caught.value.problem.message


# --- secrets ------------------------------------------------------------------------

SECRET_VALUE = "s3cr3t-Zq81-never-printed"


def test_resolve_env_and_file(tmp_path):
    (tmp_path / "pw").write_text(SECRET_VALUE + "\n", encoding="utf-8")
    assert resolve(SecretRef(env="PW"), str(tmp_path), "news", "spec.smtp.password",
                   {"PW": SECRET_VALUE}) == SECRET_VALUE
    assert resolve(SecretRef(file="pw"), str(tmp_path), "news", "spec.smtp.password", {}) == SECRET_VALUE


@pytest.mark.parametrize("ref, environ, files, fragment", [
    (SecretRef(env="MISSING_PW"), {}, {}, "env MISSING_PW: environment variable is not set"),
    (SecretRef(env="EMPTY_PW"), {"EMPTY_PW": ""}, {}, "empty"),
    (SecretRef(file="nope/pw"), {}, {}, "file nope/pw: cannot read"),
    (SecretRef(file="empty"), {}, {"empty": b"\n"}, "file empty: file is empty"),
    (SecretRef(file="binary"), {}, {"binary": b"\xff\xfe" + SECRET_VALUE.encode()}, "not UTF-8"),
    (SecretRef(file="big"), {}, {"big": SECRET_VALUE.encode() * 3000}, "larger than 64 KiB"),
])
def test_resolve_errors_name_account_and_reference_never_a_value(tmp_path, ref, environ, files,
                                                                 fragment):
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    environ = dict(environ, OTHER=SECRET_VALUE)
    with pytest.raises(SecretError) as caught:
        resolve(ref, str(tmp_path), "support", "spec.smtp.password", environ)
    message = str(caught.value)
    assert message.startswith("account support: spec.smtp.password: ")
    assert fragment in message
    assert SECRET_VALUE not in message and SECRET_VALUE not in repr(caught.value)
    assert caught.value.account == "support"


def test_account_secrets_are_relative_to_the_manifest(tmp_path):
    write(tmp_path / "m" / "a.yaml", """\
        apiVersion: mailform/v1
        kind: EmailAccount
        metadata: {name: support}
        spec:
          type: smtp
          email: support@example.com
          display_name: Support
          shared: true
          smtp: {host: smtp.example.com, port: 587, security: starttls, password: {file: pw.txt}}
          inbox: {protocol: imap, host: imap.example.com, port: 993, security: ssl,
                  password: {env: INBOX_PW}}
        """)
    (tmp_path / "m" / "pw.txt").write_text(SECRET_VALUE, encoding="utf-8")
    account_ = load([str(tmp_path / "m")]).accounts["support"]
    assert account_secrets(account_, {"INBOX_PW": "other"}) == {
        "smtp.password": SECRET_VALUE, "inbox.password": "other"}
    with pytest.raises(SecretError) as caught:
        account_secrets(account_, {})
    assert "account support: spec.inbox.password: env INBOX_PW" in str(caught.value)
    assert SECRET_VALUE not in str(caught.value)
