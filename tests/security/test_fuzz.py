"""The classifier and the loader fuzzed (SECURITY.md, "Linear time" and "Bounded inputs").

Each run happens in a forked child under RLIMIT_AS (768 MiB more than pytest holds) and a
wall-clock alarm; hypothesis gives every input a deadline of its own. The classifier must
return a verdict for any bytes; the loader must load or report problems — never raise
anything else, never take more than the caps.
"""
from __future__ import annotations

import os
import tempfile
from datetime import timedelta

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from boundhelpers import in_child
from reconciler.bounces.classify import Verdict, classify
from reconciler.errors import ManifestError
from reconciler.manifest import load
from reconciler.manifest.template import TemplateFailure, render
from reconciler.manifest.yamlpos import DuplicateKey, documents

SETTINGS = settings(max_examples=120, deadline=timedelta(seconds=3), database=None,
                    suppress_health_check=list(HealthCheck))


def _runs(pieces: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Text made of pieces, some repeated thousands of times (the shapes that hurt)."""
    run = st.tuples(pieces, st.sampled_from([1, 1, 2, 7, 300, 5000, 40_000]))
    return st.lists(run, max_size=12).map(lambda items: "".join(p * n for p, n in items))


MAIL_PIECES = st.sampled_from([
    "a", "@", "a@b.cc", " ", "\t", "\r\n", "\n", "\n ", "-", "--", "=", "_", ".", "<", ">", "(",
    ")", '"', ";", ":", "5.1.1", "550", "4.2.2", "=?utf-8?q?", "?=", "<script>", "</style>",
    "<b", "&amp;", "From: ", "To: ", "Subject: ", "Content-Type: multipart/report; "
    "report-type=delivery-status; boundary=B\r\n", "--B\r\n", "Content-Type: "
    "message/delivery-status\r\n", "Final-Recipient: rfc822; ", "Action: failed\r\n",
    "Status: 5.1.1\r\n", "Content-Transfer-Encoding: base64\r\n", "The following address failed:",
    "mailer-daemon", "user unknown", "mailbox full", "X-Failed-Recipients: ",
]) | st.text(max_size=20)


@SETTINGS
@given(st.binary(max_size=3000) | _runs(MAIL_PIECES).map(lambda t: t.encode("utf-8", "replace")))
def _classify_anything(raw: bytes) -> None:
    verdict = classify(raw)
    assert isinstance(verdict, Verdict)
    assert verdict.note is None or not verdict.note.startswith("unreadable"), verdict.note


def test_classify_fuzzed_under_limits():
    status, outcome = in_child(_classify_anything, seconds=300)
    assert status == "ok", outcome


YAML_PIECES = st.sampled_from([
    "a", "key", ": ", "- ", "\n", "  ", "[", "]", "{", "}", ",", "&a ", "&b ", "*a", "*b", "'",
    '"', "---\n", "...\n", "<<: ", "? ", "!!str ", "!!binary ", "# c", "|\n", ">\n", "1.5",
    "0x1F", "2001-12-14t21:59:43.10-05:00", "1:20:30", "~", "null", "yes", "\t", "\\",
    "apiVersion: mailform/v1\n", "kind: EmailAccount\n", "metadata: {name: x}\n",
]) | st.text(max_size=12)


@SETTINGS
@given(_runs(YAML_PIECES))
def _documents_of_anything(text: str) -> None:
    try:
        for _ in documents(text):
            pass
    except (yaml.YAMLError, DuplicateKey):
        pass


def test_yaml_documents_fuzzed_under_limits():
    status, outcome = in_child(_documents_of_anything, seconds=300)
    assert status == "ok", outcome


TEMPLATE_PIECES = st.sampled_from([
    "{{ ", " }}", "{% ", " %}", "for i in ", "range(", "10000", ")", "endfor", "if ", "endif",
    "set x = ", "'a'", " * ", " ** ", " ~ ", " + ", " % ", "|replace('a', 'bb')", "|join",
    "|center(", "[x, x, x]", "x", "var", "environment", "macro m(a)", "endmacro", "m(x)",
    "namespace(s='a')", ".format(", "'{:>9}'", "'%09d'", "\n", "a: ", "(", "9" * 7,
]) | st.text(max_size=8)


@SETTINGS
@given(_runs(TEMPLATE_PIECES))
def _load_anything(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "a.yaml")
        with open(path, "w", encoding="utf-8", errors="replace") as handle:
            handle.write(text)
        try:
            load([path], {"x": "a"})
        except ManifestError as exc:
            assert all(p.file == path and p.line >= 1 for p in exc.problems)


def test_loader_fuzzed_under_limits():
    status, outcome = in_child(_load_anything, seconds=300)
    assert status == "ok", outcome


@SETTINGS
@given(_runs(TEMPLATE_PIECES))
def _render_anything(text: str) -> None:
    try:
        render(text, "f.yaml", {"var": {}, "environment": "e"})
    except TemplateFailure as exc:
        assert exc.problem.file == "f.yaml" and exc.problem.line >= 1


def test_templates_fuzzed_under_limits():
    status, outcome = in_child(_render_anything, seconds=300)
    assert status == "ok", outcome
