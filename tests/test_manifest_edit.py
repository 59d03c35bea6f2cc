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
    ("{% for x in y %}\n", ""),
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
