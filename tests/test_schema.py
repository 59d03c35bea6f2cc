"""The committed JSON Schema against the generator, and against the models.

Cross-check: every document of every fixture, good and bad, gets the same
verdict from the pydantic models (plus model.rule_violations) and from
`jsonschema` on the generated schema — except the fixtures that
tests/fixtures/expected.yaml marks `schema: "skip: <rule>"`, which is the one
list of rules the JSON Schema cannot express. For those, the test checks that
the schema really does accept them (so the list stays honest).
"""
from __future__ import annotations

import json
import os

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from reconciler.manifest.template import TemplateFailure, render
from reconciler.manifest.yamlpos import DuplicateKey, documents
from reconciler.model import API_VERSION, MODELS, rule_violations
from reconciler.project import Project
from reconciler.schema import (PROJECT_SCHEMA_FILE, SCHEMA_FILE, dumps, dumps_project, files,
                               generate, generate_project)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
COMMITTED = os.path.join(ROOT, "schemas", SCHEMA_FILE)

with open(os.path.join(FIXTURES, "expected.yaml"), encoding="utf-8") as _handle:
    EXPECTED = yaml.safe_load(_handle)

VALIDATOR = Draft202012Validator(generate(), format_checker=Draft202012Validator.FORMAT_CHECKER)

# The one list of exclusions, read from the table.
EXCLUSIONS = {name: case["schema"][len("skip:"):].strip()
              for name, case in EXPECTED["bad"].items()
              if str(case.get("schema", "")).startswith("skip:")}


def test_committed_schema_equals_generator():
    with open(COMMITTED, encoding="utf-8") as handle:
        assert handle.read() == dumps(), "run `mailform schema --out schemas`"


def test_schema_is_valid_2020_12():
    schema = json.loads(dumps())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_schema_has_one_branch_per_kind():
    schema = generate()
    refs = sorted(branch["$ref"] for branch in schema["oneOf"])
    assert refs == ["#/$defs/BouncePolicy", "#/$defs/EmailAccount", "#/$defs/Moved",
                    "#/$defs/Removed"]
    assert refs == sorted(f"#/$defs/{kind}" for kind in MODELS)


def test_exclusions_are_only_what_json_schema_cannot_say():
    reasons = set(EXCLUSIONS.values())
    assert all(r.startswith(("metadata.name is unique", "at most one BouncePolicy", "email syntax"))
               for r in reasons), reasons


def model_verdict(doc) -> bool:
    """True when the models accept this one document on its own."""
    if not isinstance(doc, dict) or doc.get("apiVersion") != API_VERSION:
        return False
    model = MODELS.get(doc.get("kind"))
    if model is None:
        return False
    if doc["kind"] == "EmailAccount" and rule_violations(doc):
        return False
    try:
        model.model_validate(doc)
    except ValidationError:
        return False
    return True


def schema_verdict(doc) -> bool:
    return VALIDATOR.is_valid(doc)


def fixture_documents(path: str, case: dict) -> list:
    files = [path] if os.path.isfile(path) else sorted(
        os.path.join(path, f) for f in os.listdir(path))
    context = {"var": variables(case), "environment": case.get("environment", "default")}
    docs = []
    for name in files:
        with open(name, encoding="utf-8") as handle:
            text = render(handle.read(), name, context)
        docs += [d.value for d in documents(text)]
    return docs


def variables(case: dict) -> dict:
    out = dict(case.get("vars") or {})
    for name in case.get("var_files") or ():
        with open(os.path.join(FIXTURES, "vars", name), encoding="utf-8") as handle:
            out.update(yaml.safe_load(handle))
    return out


CASES = ([("good", k, os.path.join(FIXTURES, "good", c["path"]), c)
          for k, c in sorted(EXPECTED["good"].items())]
         + [("bad", k, os.path.join(FIXTURES, "bad", k), c) for k, c in sorted(EXPECTED["bad"].items())])


@pytest.mark.parametrize("group,name,path,case", CASES, ids=[f"{g}/{n}" for g, n, _, _ in CASES])
def test_models_and_schema_agree(group, name, path, case):
    mode = str(case.get("schema", ""))
    if mode == "parse":
        with pytest.raises((TemplateFailure, yaml.YAMLError, DuplicateKey, UnicodeDecodeError)):
            fixture_documents(path, case)
        return
    docs = fixture_documents(path, case)
    assert docs
    models = [model_verdict(d) for d in docs]
    schema = [schema_verdict(d) for d in docs]
    if name in EXCLUSIONS:
        # the models reject the fixture (see test_manifest_fixtures); the schema cannot
        assert all(schema), f"the schema now catches {name}: drop its exclusion"
        return
    assert models == schema, [e.message for d in docs for e in VALIDATOR.iter_errors(d)]
    assert all(models) == (group == "good")


DROP = object()
SMTP = {"host": "h.example.com", "port": 587, "security": "starttls", "password": {"env": "P"}}
INBOX = {"protocol": "imap", "host": "i.example.com", "port": 993, "security": "ssl"}


def account(**spec) -> dict:
    """A valid smtp account, with spec keys replaced (or removed with DROP)."""
    body = {"type": "smtp", "email": "a@example.com", "display_name": "A", "shared": True,
            "smtp": dict(SMTP)}
    body.update(spec)
    body = {k: v for k, v in body.items() if v is not DROP}
    return {"apiVersion": API_VERSION, "kind": "EmailAccount", "metadata": {"name": "x"},
            "spec": body}


BROKEN = {
    "smtp required for type smtp": account(smtp=DROP),
    "smtp not null for type smtp": account(smtp=None),
    "no smtp on marketing": account(type="marketing"),
    "no inbox on marketing": account(type="marketing", smtp=DROP, inbox=dict(INBOX, password={"env": "P"})),
    "no proxy on marketing": account(type="marketing", smtp=DROP, proxy=True),
    "owner when private": account(shared=False),
    "owner when shared is left out": account(shared=DROP),
    "ssl on 587": account(smtp=dict(SMTP, security="ssl")),
    "ssl on 25": account(smtp=dict(SMTP, port=25, security="ssl")),
    "ssl on 143": account(inbox=dict(INBOX, port=143)),
    "starttls on 465": account(smtp=dict(SMTP, port=465)),
    "none on 995": account(inbox=dict(INBOX, protocol="pop3", port=995, security="none")),
    "folder on pop3": account(inbox=dict(INBOX, protocol="pop3", port=995, folder="INBOX")),
    "smtp password": account(smtp={k: v for k, v in SMTP.items() if k != "password"}),
    "smtp password null": account(smtp=dict(SMTP, password=None)),
    "inbox password": account(smtp=dict(SMTP, password=DROP, authenticate=False), inbox=INBOX),
}
for _doc in BROKEN.values():  # DROP inside smtp removes the key
    if isinstance(_doc["spec"].get("smtp"), dict):
        _doc["spec"]["smtp"] = {k: v for k, v in _doc["spec"]["smtp"].items() if v is not DROP}


def test_the_valid_base_is_valid():
    assert model_verdict(account()) and schema_verdict(account())
    assert model_verdict(account(inbox=INBOX)) and schema_verdict(account(inbox=INBOX))


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_each_expressible_rule_is_in_the_schema(rule):
    """One cross-field rule broken in an otherwise valid document: both validators object."""
    doc = BROKEN[rule]
    assert rule_violations(doc)
    assert not model_verdict(doc)
    assert not schema_verdict(doc)


def test_secret_reference_shapes_agree():
    for ref, ok in [({"env": "A"}, True), ({"file": "f"}, True), ({"env": "A", "file": "f"}, False),
                    ({}, False), ({"env": None}, False), ({"vault": "x"}, False), ("literal", False)]:
        doc = {"apiVersion": API_VERSION, "kind": "EmailAccount", "metadata": {"name": "x"},
               "spec": {"type": "smtp", "email": "a@example.com", "display_name": "A",
                        "shared": True, "smtp": {"host": "h", "port": 587,
                                                 "security": "starttls", "password": ref}}}
        assert model_verdict(doc) is ok, ref
        assert schema_verdict(doc) is ok, ref


def test_cli_schema_writes_the_committed_files(tmp_path):
    from click.testing import CliRunner
    from reconciler.cli.cmd_validate import schema
    result = CliRunner().invoke(schema, ["--out", str(tmp_path)])
    assert result.exit_code == 0
    assert (tmp_path / SCHEMA_FILE).read_text(encoding="utf-8") == dumps()
    assert (tmp_path / PROJECT_SCHEMA_FILE).read_text(encoding="utf-8") == dumps_project()
    printed = CliRunner().invoke(schema, [])
    assert printed.output == dumps()
    assert CliRunner().invoke(schema, ["--project"]).output == dumps_project()


# --- Moved and Removed: the models and the schema agree --------------------------------

def _doc(kind: str, spec) -> dict:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": "m"}, "spec": spec}


@pytest.mark.parametrize("doc,ok", [
    (_doc("Moved", {"from": "old", "to": "new"}), True),
    (_doc("Moved", {"from": "old"}), False),
    (_doc("Moved", {"from_": "old", "to": "new"}), False),
    (_doc("Moved", {"from": "Old Name", "to": "new"}), False),
    (_doc("Moved", {"from": "old", "to": "new", "extra": 1}), False),
    (_doc("Removed", {"name": "gone"}), True),
    (_doc("Removed", {}), False),
    (_doc("Removed", {"name": 3}), False),
    (_doc("Removed", "gone"), False),
])
def test_moved_and_removed_agree(doc, ok):
    assert model_verdict(doc) is ok
    assert schema_verdict(doc) is ok


# --- the project file's schema ------------------------------------------------------------

PROJECT_COMMITTED = os.path.join(ROOT, "schemas", PROJECT_SCHEMA_FILE)
PROJECT_VALIDATOR = Draft202012Validator(generate_project())


def test_committed_project_schema_equals_generator():
    with open(PROJECT_COMMITTED, encoding="utf-8") as handle:
        assert handle.read() == dumps_project(), "run `mailform schema --out schemas`"
    Draft202012Validator.check_schema(generate_project())
    assert set(files()) == {SCHEMA_FILE, PROJECT_SCHEMA_FILE}


def _project(**spec) -> dict:
    return {"apiVersion": API_VERSION, "kind": "Project", "metadata": {"name": "growth"},
            "spec": spec}


FULL_PROJECT = _project(
    manifests=["manifests", "more"], default_environment="staging",
    environments={"staging": {"registry": "sqlite:///.mailform/staging.db",
                              "var_files": ["environments/staging.yaml"],
                              "guards": {"max_destroy_percent": 50, "max_change_percent": 12.5}},
                  "production": {"registry": {"env": "PROD_REGISTRY"}}},
    ownership={"name": "growth"})


@pytest.mark.parametrize("doc,ok", [
    (FULL_PROJECT, True),
    (_project(), True),
    ({"apiVersion": API_VERSION, "kind": "Project", "metadata": {"name": "p"}}, True),
    ({**_project(), "kind": "EmailAccount"}, False),
    (_project(manifests=[]), False),
    (_project(manifests="manifests"), False),
    (_project(environments={"staging": {"registry": {"env": "A", "file": "x"}}}), False),
    (_project(environments={"staging": {"registry": {"vault": "x"}}}), False),
    (_project(environments={"staging": {"registry": ""}}), False),
    (_project(environments={"s": {"guards": {"max_destroy_percent": 101}}}), False),
    (_project(environments={"s": {"guards": {"max_destroy_percent": -1}}}), False),
    (_project(environments={"s": {"guards": {"max_destroy_percent": "30"}}}), False),
    (_project(environments={"s": {"guards": {"max_destroy_percent": True}}}), False),
    (_project(environments={"s": {"guards": {"max_delete_percent": 30}}}), False),
    (_project(environments={"s": {"var_files": "one.yaml"}}), False),
    (_project(environments={"bad name": {}}), False),
    (_project(ownership={"name": "Not Valid"}), False),
    (_project(ownership={}), False),
    (_project(colour="red"), False),
])
def test_project_models_and_schema_agree(doc, ok):
    try:
        Project.model_validate(doc)
        model = True
    except ValidationError:
        model = False
    schema = PROJECT_VALIDATOR.is_valid(doc)
    assert model is ok, doc
    assert schema is ok, doc
