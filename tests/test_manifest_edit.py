"""reconciler.manifest.edit: `debug --fix` rewrites exactly two values, or refuses with a position."""
from __future__ import annotations

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest.edit import fix_port_security

DOC = """\
# keep me
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: news}}
spec:
  smtp:
    host: localhost   # the relay
    port: {port}   # was 587 once
    security: "starttls"   # double-quoted
"""


def test_only_the_two_values_change(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_bytes(DOC.format(port=587).replace("\n", "\r\n").encode())
    path.chmod(0o640)
    fix_port_security(str(path), "news", {"smtp": (465, "ssl")})
    expected = DOC.format(port=465).replace('"starttls"', '"ssl"').replace("\n", "\r\n")
    assert path.read_bytes() == expected.encode()
    assert path.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("text, where", [
    (DOC.format(port="{{ port }}"), "spec.smtp.port"),
    (DOC.format(port=587).replace("name: news", "name: other"), "metadata.name"),
    ("{% for x in y %}\n", "metadata.name"),
    ("a: [b\n", ""),
])
def test_what_is_not_literal_is_refused_with_its_position(tmp_path, text, where):
    path = tmp_path / "a.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as info:
        fix_port_security(str(path), "news", {"smtp": (465, "ssl")})
    (problem,) = info.value.problems
    assert problem.file == str(path) and problem.path == where
    assert "by hand" in problem.message
    if where == "spec.smtp.port":
        assert (problem.line, problem.column) == (8, 11)
    assert path.read_text() == text


# --- templated manifests: a value from one template variable is fixed in its var file ---

TEMPLATED = """\
# {{ environment }} accounts
apiVersion: mailform/v1
kind: EmailAccount
metadata: {name: news}
spec:
  display_name: "{{ var.name | title }}"
  smtp:
    host: "{{ var.smtp.host }}"   # from the var file
    port: PORT
    security: SECURITY
{% if environment == "production" %}
  lifecycle: {prevent_destroy: true}
{% endif %}
"""

VARS = """\
# staging settings: keep this comment
smtp:
  host: smtp.example.com
  port: 587        # submission
  security: "starttls"   # quoted
"""


def _templated(tmp_path, port="{{ var.smtp.port }}", security="{{ var.smtp.security }}"):
    path = tmp_path / "a.yaml"
    path.write_text(TEMPLATED.replace("PORT", port).replace("SECURITY", security))
    var_file = tmp_path / "staging.yaml"
    var_file.write_text(VARS)
    return path, var_file


def test_one_variable_is_fixed_in_the_var_file_that_sets_it(tmp_path):
    path, var_file = _templated(tmp_path)
    before = path.read_text()
    other = tmp_path / "defaults.yaml"
    other.write_text("smtp: {port: 25, security: none}\n")
    written = fix_port_security(str(path), "news", {"smtp": (465, "ssl")},
                                var_files=[str(other), str(var_file)])
    assert path.read_text() == before                     # the manifest keeps its template
    assert var_file.read_text() == VARS.replace("587 ", "465 ").replace('"starttls"', '"ssl"')
    assert other.read_text() == "smtp: {port: 25, security: none}\n"   # loses to the later file
    assert [(w.file, w.line, w.field, w.value) for w in written] == [
        (str(var_file), 4, "var.smtp.port", "465"), (str(var_file), 5, "var.smtp.security", "ssl")]


def test_literal_values_in_a_templated_file_are_fixed_tags_kept(tmp_path):
    path, var_file = _templated(tmp_path, port="587", security="starttls")
    before = path.read_text()
    written = fix_port_security(str(path), "news", {"smtp": (465, "ssl")}, [str(var_file)])
    assert path.read_text() == before.replace("port: 587", "port: 465").replace(
        "security: starttls", "security: ssl")
    assert [(w.file, w.line) for w in written] == [(str(path), 9), (str(path), 10)]
    assert var_file.read_text() == VARS


@pytest.mark.parametrize("port, var_pairs, message", [
    ("{{ var.smtp.port | int }}", (), "is the template expression {{ var.smtp.port | int }}, "
                                      "not one template variable (it uses var.smtp.port)"),
    ("{{ var.smtp.port }}", (("smtp", "x"),), "comes from var.smtp.port, which --var sets"),
    ("{{ var.other_port }}", (), "comes from var.other_port, which no var file sets"),
    ("{{ 465 if environment == 'production' else 587 }}", (), "not one template variable"),
])
def test_anything_else_is_refused_with_the_variables_location(tmp_path, port, var_pairs,
                                                               message):
    path, var_file = _templated(tmp_path, port=port)
    before = path.read_text()
    with pytest.raises(ManifestError) as info:
        fix_port_security(str(path), "news", {"smtp": (465, "ssl")}, [str(var_file)],
                          var_pairs)
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.column) == (str(path), 9, 11)
    assert problem.path == "spec.smtp.port" and message in problem.message, problem
    assert "by hand" in problem.message
    assert path.read_text() == before and var_file.read_text() == VARS    # nothing written


def test_a_refusal_after_tags_that_span_lines_names_the_files_position(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(TEMPLATED.replace("# {{ environment }} accounts",
                                      "{#\n  several lines\n#}")
                    .replace("PORT", "{{ var.p + 1 }}").replace("SECURITY", "ssl"))
    with pytest.raises(ManifestError) as info:
        fix_port_security(str(path), "news", {"smtp": (465, "ssl")})
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (11, 11), problem
