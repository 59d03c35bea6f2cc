"""Golden files for the human, JSON and markdown renderings of one plan holding every
action, drift, a sensitive change, a blocked guard and an activation note.
Regenerate with UPDATE_GOLDEN=1 after a deliberate change, and review the diff."""
import json
import os
from pathlib import Path

import pytest

from reconciler.planner import PlanInput, build_plan
from reconciler.render import render
from reconciler.render.markdown import LIMIT

from planfixtures import account, every_action_plan, stored

GOLDEN = Path(__file__).parent / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt,name", [("human", "plan_every_action.txt"),
                                      ("json", "plan_every_action.json"),
                                      ("markdown", "plan_every_action.md")])
def test_golden(fmt, name):
    check_golden(name, render(every_action_plan(), fmt))


def test_human_shape():
    text = render(every_action_plan(), "human")
    assert text.index("Objects changed outside of mailform") < text.index("will perform")
    assert "# account.newsletter will be created" in text
    assert "# account.support will be updated in-place" in text
    assert "# account.legacy will be destroyed" in text
    assert "# account.events must be replaced" in text
    assert "-/+ account \"events\"" in text
    assert "(sensitive value)" in text and "hmac" not in text
    assert "unchanged fields hidden" in text
    assert text.rstrip().splitlines()[-1] == "Plan: 2 to add, 2 to change, 2 to destroy."
    assert "\x1b[" not in text


def test_human_color_only_when_asked():
    assert "\x1b[" in render(every_action_plan(), "human", color=True)


def test_no_changes_line():
    acc = account("a")
    plan = build_plan(PlanInput({"a": acc}, {"a": stored(acc)}, "l", 1,
                                fingerprints={"a": {"smtp.password": "hmac-sha256:same"}}))
    assert render(plan, "human").rstrip().splitlines()[-1] == \
        "No changes. The registry matches the manifests."


def test_json_is_spec_object():
    body = json.loads(render(every_action_plan(), "json"))
    assert list(body) == ["format_version", "registry", "manifest_digest", "drift",
                          "resource_changes", "summary", "guards", "checksum"]
    rc = body["resource_changes"][0]
    assert list(rc) == ["address", "name", "action", "changes", "verification", "notes"]
    assert "payload" not in body and "hmac" not in json.dumps(body)


def test_markdown_is_trimmed_under_limit():
    desired = {f"acc-{i:05d}": account(f"acc-{i:05d}", display_name="X" * 200)
               for i in range(2000)}
    plan = build_plan(PlanInput(desired, {}, "l", 0))
    text = render(plan, "markdown")
    assert len(text) < LIMIT
    assert "Output trimmed" in text and "more accounts (trimmed)" in text
