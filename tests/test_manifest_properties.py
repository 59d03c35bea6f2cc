"""Property-based: whatever the input, the loader gives a Desired or a clean error.

Never another exception (no traceback): arbitrary text, arbitrary YAML trees,
and valid documents mutated (keys dropped, types changed, unknown keys added).
"""
from __future__ import annotations

import copy
import os
import tempfile

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from reconciler.errors import MailformError, ManifestError
from reconciler.manifest import Desired, load

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

VALID = {
    "apiVersion": "mailform/v1", "kind": "EmailAccount",
    "metadata": {"name": "support", "labels": {"team": "support"}},
    "spec": {
        "type": "smtp", "email": "support@example.com", "display_name": "Support",
        "reply_to": {"email": "r@example.com", "name": "R"},
        "from_override": {"email_detail": "e", "name_detail": "n"},
        "smtp": {"host": "smtp.example.com", "port": 587, "security": "starttls",
                 "authenticate": True, "username": "u", "password": {"env": "PW"},
                 "verify_certificate": True},
        "shared": False, "owner": "o@example.com", "proxy": True,
        "inbox": {"protocol": "imap", "host": "imap.example.com", "port": 993, "security": "ssl",
                  "folder": "INBOX", "batch_size": 10, "delete_bounces": False},
        "lifecycle": {"prevent_destroy": False, "ignore_changes": ["reply_to.name"]},
    },
}


def run(text: str):
    """Load one file holding ``text``; return the Desired or the clean error."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "m.yaml")
        with open(path, "w", encoding="utf-8", errors="surrogatepass") as handle:
            handle.write(text)
        try:
            result = load([path], {"x": 1})
        except ManifestError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert problem.file == path and problem.line >= 1 and problem.column >= 1
                assert isinstance(problem.message, str) and problem.message
            return exc
        except MailformError as exc:
            return exc
    assert isinstance(result, Desired)
    return result


def test_the_base_document_is_valid():
    assert isinstance(run(yaml.safe_dump(VALID)), Desired)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
YAMLISH = st.lists(st.sampled_from([
    "apiVersion: mailform/v1\n", "kind: EmailAccount\n", "kind: BouncePolicy\n", "metadata:\n",
    "  name: a\n", "spec:\n", "  type: smtp\n", "  type: marketing\n", "  smtp:\n", "    port: 25\n",
    "  - x\n", "---\n", "...\n", "{{ var.x }}\n", "{% if %}\n", "{{ nope }}\n", "\t", ": ", "&a ",
    "*a\n", "!!binary x\n", "? [a]\n: b\n", "'", '"', "# c\n", "  ", "\n", "a: [1, {b: c}]\n",
    "<<: {a: 1}\n", "k: !!python/object:os.system x\n",
]), max_size=30).map("".join)


@SETTINGS
@given(TEXT)
def test_arbitrary_text(text):
    run(text)


@SETTINGS
@given(YAMLISH)
def test_yaml_like_text(text):
    run(text)


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=True), st.text(max_size=20),
                    st.sampled_from(["smtp", "marketing", "ssl", "none", "mailform/v1",
                                     "EmailAccount", "BouncePolicy", "a@example.com"]))
KEYS = st.one_of(st.text(max_size=12), st.sampled_from(
    ["apiVersion", "kind", "metadata", "spec", "name", "type", "smtp", "inbox", "port",
     "password", "env", "file", "shared", "owner"]))
TREES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=5)), max_leaves=25)


@SETTINGS
@given(st.lists(TREES, min_size=1, max_size=3))
def test_arbitrary_yaml_trees(trees):
    run(yaml.safe_dump_all(trees, allow_unicode=True))


PATHS = [(), ("metadata",), ("spec",), ("spec", "smtp"), ("spec", "inbox"), ("spec", "reply_to"),
         ("spec", "lifecycle"), ("spec", "smtp", "password"), ("spec", "from_override")]


@st.composite
def mutated(draw):
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS))
        node = doc
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or not node:
            continue
        key = draw(st.sampled_from(sorted(node)))
        action = draw(st.sampled_from(["drop", "retype", "unknown", "null"]))
        if action == "drop":
            del node[key]
        elif action == "retype":
            node[key] = draw(TREES)
        elif action == "unknown":
            node[draw(KEYS) + "_x"] = draw(SCALARS)
        else:
            node[key] = None
    return doc


@SETTINGS
@given(st.lists(mutated(), min_size=1, max_size=2))
def test_mutated_documents(docs):
    result = run(yaml.safe_dump_all(docs, sort_keys=False))
    if isinstance(result, ManifestError):
        # every error points into the file and names a field path or the document
        assert all(p.line <= 200 for p in result.problems)


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "m.yml")
        with open(path, "wb") as handle:
            handle.write(data)
        try:
            assert isinstance(load([path]), Desired)
        except MailformError:
            pass
