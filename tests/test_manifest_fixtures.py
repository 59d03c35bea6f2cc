"""Every fixture under tests/fixtures/ against the one table of expectations.

The table (tests/fixtures/expected.yaml) names, per bad fixture, the exact and
complete list of errors — file:line:column, dotted path, a fragment of the
message — and, per good fixture, the accounts, policy and warnings.
"""
from __future__ import annotations

import os

import pytest
import yaml

from reconciler.errors import ManifestError
from reconciler.manifest import load, load_var_file

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
BAD, GOOD, VARS = (os.path.join(FIXTURES, d) for d in ("bad", "good", "vars"))

with open(os.path.join(FIXTURES, "expected.yaml"), encoding="utf-8") as _handle:
    EXPECTED = yaml.safe_load(_handle)


def variables(case: dict) -> dict:
    out = dict(case.get("vars") or {})
    for name in case.get("var_files") or ():
        values, problems = load_var_file(os.path.join(VARS, name))
        assert not problems
        out.update(values)
    return out


def where(problem, base: str) -> str:
    return f"{os.path.relpath(problem.file, base)}:{problem.line}:{problem.column}"


def test_the_table_covers_every_fixture():
    assert sorted(EXPECTED["bad"]) == sorted(os.listdir(BAD))
    assert {case["path"] for case in EXPECTED["good"].values()} == set(os.listdir(GOOD))
    assert len(EXPECTED["bad"]) >= 30


@pytest.mark.parametrize("name", sorted(EXPECTED["bad"]))
def test_bad_fixture(name, monkeypatch):
    case = EXPECTED["bad"][name]
    monkeypatch.chdir(BAD)  # file names in messages as a user types them: relative
    with pytest.raises(ManifestError) as caught:
        load([name], variables(case), case.get("environment", "default"))
    got = [(where(p, BAD), p.path, p.message) for p in caught.value.problems]
    expected = case["errors"]
    assert [(w, p) for w, p, _ in got] == [(w, p) for w, p, _ in expected], got
    for (_, _, message), (_, _, fragment) in zip(got, expected):
        assert fragment.lower() in message.lower(), (message, fragment)


@pytest.mark.parametrize("case_id", sorted(EXPECTED["good"]))
def test_good_fixture(case_id):
    case = EXPECTED["good"][case_id]
    desired = load([os.path.join(GOOD, case["path"])], variables(case),
                   case.get("environment", "default"))
    assert list(desired.accounts) == case["accounts"]
    assert (desired.policy is not None) == bool(case.get("policy"))
    got = [(where(w, GOOD), w.path, w.message) for w in desired.warnings]
    expected = case.get("warnings") or []
    assert [(w, p) for w, p, _ in got] == [(w, p) for w, p, _ in expected]
    for (_, _, message), (_, _, fragment) in zip(got, expected):
        assert fragment in message


def test_every_cross_field_rule_has_a_fixture():
    """Each rule of model.CROSS_FIELD_RULES is exercised by at least one bad fixture."""
    from reconciler.model import CROSS_FIELD_RULES
    messages = " | ".join(e[2] for case in EXPECTED["bad"].values() for e in case["errors"])
    fragments = {
        CROSS_FIELD_RULES[0]: "smtp settings are required",
        CROSS_FIELD_RULES[1]: "not allowed on a marketing account",
        CROSS_FIELD_RULES[2]: "owner is required",
        CROSS_FIELD_RULES[3]: "ssl cannot work on port",
        CROSS_FIELD_RULES[4]: "starttls cannot work on port",
        CROSS_FIELD_RULES[5]: "imap inboxes only",
        CROSS_FIELD_RULES[6]: "password reference is required",
        CROSS_FIELD_RULES[7]: "first defined at",
        CROSS_FIELD_RULES[8]: "alternatives",
        CROSS_FIELD_RULES[9]: "not allowed when authenticate is false",
        CROSS_FIELD_RULES[10]: "only for accounts with proxy: true",
        CROSS_FIELD_RULES[11]: "needs proxy_password",
    }
    assert set(fragments) == set(CROSS_FIELD_RULES)
    for rule, fragment in fragments.items():
        assert fragment in messages, rule


def test_literal_password_is_never_repeated():
    secret = "Tr0ub4dor-literal-x9"
    path = os.path.join(BAD, "literal_password.yaml")
    assert secret in open(path, encoding="utf-8").read()
    with pytest.raises(ManifestError) as caught:
        load([path])
    assert all(secret not in str(p) for p in caught.value.problems)
    assert secret not in str(caught.value)


def test_all_bad_fixtures_in_one_run_are_sorted_by_file_and_line():
    names = [n for n, c in EXPECTED["bad"].items() if not c.get("vars")]
    with pytest.raises(ManifestError) as caught:
        load([BAD])
    problems = caught.value.problems
    keys = [(p.file, p.line, p.column) for p in problems]
    assert keys == sorted(keys)
    reported = {os.path.relpath(p.file, BAD).split(os.sep)[0] for p in problems}
    assert set(names) <= reported
    # one run reports what the single runs report (duplicates are global, so compare counts)
    single = sum(len(EXPECTED["bad"][n]["errors"]) for n in names)
    assert len(problems) >= single
