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


def moves_plan():
    """A shared registry: a pure move, a move with a change, a forget, a forced guard and
    another project's accounts."""
    import dataclasses
    mine = {f"keep-{i}": account(f"keep-{i}") for i in range(8)}
    actual = {n: dataclasses.replace(stored(a), owner="growth") for n, a in mine.items()}
    actual["promo"] = dataclasses.replace(stored(account("promo", "marketing")), owner="growth")
    actual["old"] = dataclasses.replace(stored(account("old")), owner="growth")
    actual["legacy"] = dataclasses.replace(stored(account("legacy")), owner="growth")
    actual["theirs"] = dataclasses.replace(stored(account("theirs")), owner="billing")
    desired = dict(mine)
    desired["promotions"] = account("promotions", "marketing", email="promo@example.com",
                                    display_name="Promo")
    desired["renamed"] = account("renamed", email="old@example.com", display_name="Renamed")
    fps = {n: {"smtp.password": "hmac-sha256:same"} for n in desired if desired[n].spec.smtp}
    plan = build_plan(PlanInput(desired, actual, "00000000-lineage", 9, "sha256:digest",
                                fingerprints=fps, ownership="growth",
                                moves=[("rename-promo", "promo", "promotions"),
                                       ("rename-old", "old", "renamed")],
                                removals=[("let-go", "legacy")], max_change_percent=5))
    return plan.forced()


@pytest.mark.parametrize("fmt,name", [("human", "plan_moves.txt"), ("json", "plan_moves.json"),
                                      ("markdown", "plan_moves.md")])
def test_golden_moves(fmt, name):
    check_golden(name, render(moves_plan(), fmt))


def test_moves_forgets_and_forced_guards_in_words():
    text = render(moves_plan(), "human")
    assert "# account.promo has moved to account.promotions" in text
    assert "# account.old has moved to account.renamed" in text
    assert "# account.legacy will be forgotten" in text
    assert "1 account of the registry managed by another project or by none: left alone." \
        in text
    assert "Guard update_threshold passed with --force: 1 of 11 (9%), limit 5%" in text
    assert "Blocked" not in text
    assert text.rstrip().splitlines()[-1] == \
        "Plan: 0 to add, 1 to change, 0 to destroy, 1 to forget."
    body = json.loads(render(moves_plan(), "json"))
    assert body["summary"] == {"add": 0, "change": 1, "destroy": 0, "move": 2, "forget": 1}
    assert body["unmanaged"] == 1
    moved = {rc["name"]: rc for rc in body["resource_changes"]}
    assert moved["promotions"]["action"] == "move"
    assert moved["promotions"]["previous_address"] == "account.promo"
    assert moved["legacy"]["action"] == "forget"
    markdown = render(moves_plan(), "markdown")
    assert "### mailform plan: 0 to add, 1 to change, 0 to destroy, 1 to forget" in markdown
    assert "`promo` → `promotions`" in markdown and "passed with `--force`" in markdown


@pytest.mark.parametrize("color", [False, True])
def test_human_rendering_streamed_in_pieces_is_the_same_text(color):
    """`plan`/`apply` write the human form piece by piece (a huge plan is never held as
    one text): the pieces make exactly the text rendered at once."""
    from reconciler.render import render_to

    desired = {f"acc-{i:05d}": account(f"acc-{i:05d}", display_name=f'"Q" {i}\\ ü')
               for i in range(300)}
    for plan in (build_plan(PlanInput(desired, {}, "l", 0)), every_action_plan()):
        pieces: list[str] = []
        render_to(plan, "human", pieces.append, color=color)
        assert "".join(pieces) == render(plan, "human", color=color)
    assert len(pieces) >= 1
    big: list[str] = []
    render_to(build_plan(PlanInput(desired, {}, "l", 0)), "human", big.append)
    assert len(big) > 1 and all(p.endswith("\n") for p in big)
