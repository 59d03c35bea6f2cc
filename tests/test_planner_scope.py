"""The planner's scope, pure: ownership of a shared registry, Moved and Removed, and the
guards' limits counted on the accounts the project manages."""
from __future__ import annotations

import dataclasses

import pytest

from reconciler.plan import Action, from_file_dict, to_file_dict
from reconciler.planner import PlanInput, build_plan, threshold_guard
from reconciler.policy import RELEASED, manages
from reconciler.scope import ScopeError

from planfixtures import account, fp, stored


def owned(acc, owner, **kw):
    return dataclasses.replace(stored(acc, **kw), owner=owner)


def fps(*names):
    return {n: {"smtp.password": fp("same")} for n in names}


def by_name(plan):
    return {rc.name: rc for rc in plan.resource_changes}


def test_who_manages_what():
    assert manages(None, None) and manages(None, "other")        # no ownership: every account
    assert not manages(None, RELEASED)                              # … but those let go
    assert manages("growth", "growth")
    assert not manages("growth", "billing") and not manages("growth", None)
    assert not manages("growth", RELEASED)


def test_a_shared_registry_leaves_other_projects_accounts_alone():
    ours = account("ours")
    actual = {"ours": owned(ours, "growth"), "theirs": owned(account("theirs"), "billing"),
              "nobodys": owned(account("nobodys"), None),
              "drifted": owned(account("drifted"), "billing",
                               live={"display_name": "changed by hand"})}
    plan = build_plan(PlanInput({"ours": ours}, actual, "l", 1, fingerprints=fps("ours"),
                                ownership="growth"))
    assert not plan.has_changes and plan.drift == []       # no deletes, no drift
    assert plan.unmanaged == 3 and plan.to_dict()["unmanaged"] == 3


def test_without_ownership_every_account_is_managed_as_before():
    actual = {"theirs": owned(account("theirs"), "billing"),
              "gone": owned(account("gone"), RELEASED)}
    plan = build_plan(PlanInput({}, actual, "l", 1))
    assert {rc.name: rc.action for rc in plan.resource_changes} == {"theirs": Action.DELETE}
    assert plan.unmanaged == 1 and "unmanaged" not in build_plan(PlanInput({}, {}, "l", 1)).to_dict()


def test_a_manifest_naming_another_projects_account_is_an_error_naming_it():
    actual = {"theirs": owned(account("theirs"), "billing"),
              "loose": owned(account("loose"), None)}
    with pytest.raises(ScopeError) as caught:
        build_plan(PlanInput({"theirs": account("theirs"), "loose": account("loose")}, actual,
                             "l", 1, ownership="growth"))
    text = str(caught.value)
    assert "account.theirs is managed by project 'billing'" in text
    assert "account.loose is managed by no project" in text
    assert "mailform import --adopt theirs" in text


def test_created_accounts_record_the_project_and_updates_keep_the_owner():
    new, old = account("new"), account("old")
    actual = {"old": owned(old, "growth")}
    plan = build_plan(PlanInput({"new": new, "old": account("old", display_name="Changed")},
                                actual, "l", 1, fingerprints=fps("new", "old"),
                                ownership="growth"))
    assert {rc.name: rc.payload.owner for rc in plan.resource_changes} == \
        {"new": "growth", "old": "growth"}
    plain = build_plan(PlanInput({"new": new}, {}, "l", 1, fingerprints=fps("new")))
    assert plain.resource_changes[0].payload.owner is None


def test_moved_renames_without_destroying():
    promo = account("promo", "marketing")
    actual = {"promo": owned(promo, "growth", status={"activation": "pending_activation"})}
    desired = {"promotions": account("promotions", "marketing", email="promo@example.com",
                                     display_name="Promo")}
    plan = build_plan(PlanInput(desired, actual, "l", 1, contact_count=5000,
                                moves=[("rename", "promo", "promotions")]))
    (rc,) = plan.resource_changes
    assert rc.action is Action.MOVE and rc.previous == "promo" and rc.payload is None
    assert rc.changes == [] and rc.to_dict()["previous_address"] == "account.promo"
    assert plan.summary == {"add": 0, "change": 0, "destroy": 0, "move": 1}
    assert plan.accounts_to_write() == []          # nothing to verify: nothing changes


def test_a_move_with_changes_counts_as_a_change_and_carries_its_payload():
    actual = {"old": stored(account("old"))}
    desired = {"new": account("new", email="old@example.com", display_name="New Name")}
    plan = build_plan(PlanInput(desired, actual, "l", 1, fingerprints=fps("new"),
                                moves=[("m", "old", "new")]))
    (rc,) = plan.resource_changes
    assert rc.action is Action.MOVE and rc.payload is not None
    assert [(c.path, c.after) for c in rc.changes] == [("display_name", "New Name")]
    assert plan.summary == {"add": 0, "change": 1, "destroy": 0, "move": 1}
    assert plan.accounts_to_write() == [rc]


def test_a_move_that_changes_the_type_is_a_replace_from_the_old_name():
    actual = {"old": stored(account("old"))}
    plan = build_plan(PlanInput({"new": account("new", "marketing")}, actual, "l", 1,
                                moves=[("m", "old", "new")]))
    (rc,) = plan.resource_changes
    assert rc.action is Action.REPLACE and rc.previous == "old"
    assert any("moved from account.old" in n for n in rc.notes)


def test_moves_are_followed_and_done_moves_are_harmless():
    actual = {"a": stored(account("a"))}
    desired = {"c": account("c")}
    desired = {"c": account("c", email="a@example.com", display_name="A")}
    chain = [("one", "a", "b"), ("two", "b", "c")]
    plan = build_plan(PlanInput(desired, actual, "l", 1, fingerprints=fps("c"), moves=chain))
    assert [(rc.previous, rc.name, rc.action) for rc in plan.resource_changes] == \
        [("a", "c", Action.MOVE)]
    done = build_plan(PlanInput(desired, {"c": stored(desired["c"])}, "l", 2,
                                fingerprints=fps("c"), moves=chain))
    assert not done.has_changes


@pytest.mark.parametrize("accounts,actual,moves,message", [
    ({"b": 1}, {"a": 1, "b": 1}, [("m", "a", "b")], "account.b already exists"),
    ({}, {"a": 1}, [("m", "a", "b")], "account.b is not declared"),
    ({"a": 1, "b": 1}, {"a": 1}, [("m", "a", "b")], "account.a is still declared"),
    ({"b": 1}, {"a": 1}, [("m", "a", "b"), ("n", "a", "c")], "already moved to account.b"),
    ({}, {}, [("m", "a", "b"), ("n", "b", "a")], "circle"),
])
def test_impossible_moves_are_errors_naming_the_document(accounts, actual, moves, message):
    desired = {n: account(n) for n in accounts}
    registry = {n: stored(account(n)) for n in actual}
    with pytest.raises(ScopeError, match=message):
        build_plan(PlanInput(desired, registry, "l", 1, moves=moves))


def test_moving_another_projects_account_is_refused():
    actual = {"a": owned(account("a"), "billing")}
    with pytest.raises(ScopeError, match="Moved 'm'.*project 'billing'"):
        build_plan(PlanInput({"b": account("b")}, actual, "l", 1, ownership="growth",
                             moves=[("m", "a", "b")]))


def test_removed_forgets_without_deleting():
    actual = {"x": stored(account("x")), "keep": stored(account("keep"))}
    plan = build_plan(PlanInput({"keep": account("keep")}, actual, "l", 1,
                                fingerprints=fps("keep"), removals=[("let-go", "x")]))
    (rc,) = plan.resource_changes
    assert rc.action is Action.FORGET and rc.name == "x" and rc.payload is None
    assert plan.summary == {"add": 0, "change": 0, "destroy": 0, "forget": 1}
    assert not any(g.blocked for g in plan.guards)
    gone = build_plan(PlanInput({}, {}, "l", 1, removals=[("let-go", "x")]))
    assert not gone.has_changes                    # already let go: nothing to do
    with pytest.raises(ScopeError, match="still declared"):
        build_plan(PlanInput({"x": account("x")}, actual, "l", 1, removals=[("r", "x")]))


def test_targets_reach_moves_by_either_name_and_forgets():
    actual = {"old": stored(account("old")), "x": stored(account("x"))}
    inp = dict(moves=[("m", "old", "new")], removals=[("r", "x")], fingerprints=fps("new"))
    for target in ("old", "new"):
        plan = build_plan(PlanInput({"new": account("new")}, actual, "l", 1, targets=[target],
                                    **inp))
        assert [rc.name for rc in plan.resource_changes] == ["new"]
    plan = build_plan(PlanInput({"new": account("new")}, actual, "l", 1, targets=["x"], **inp))
    assert [rc.action for rc in plan.resource_changes] == [Action.FORGET]


def test_guards_count_the_accounts_the_project_manages_and_state_the_limit():
    ours = {f"a{i}": owned(account(f"a{i}"), "growth") for i in range(12)}
    theirs = {f"t{i}": owned(account(f"t{i}"), "billing") for i in range(100)}
    keep = {n: account(n) for n in list(ours)[:2]}
    plan = build_plan(PlanInput(keep, {**ours, **theirs}, "l", 1, fingerprints=fps(*keep),
                                ownership="growth"))
    guard = {g.name: g for g in plan.guards}["delete_threshold"]
    assert guard.blocked and guard.detail == "10 of 12 (83%), limit 30%"
    relaxed = build_plan(PlanInput(keep, {**ours, **theirs}, "l", 1, fingerprints=fps(*keep),
                                   ownership="growth", max_destroy_percent=90))
    guard = {g.name: g for g in relaxed.guards}["delete_threshold"]
    assert not guard.blocked and guard.detail == "10 of 12 (83%), limit 90%"


def test_threshold_edges():
    assert not threshold_guard("t", 3, 10, 30).blocked          # 30% is not more than 30%
    assert threshold_guard("t", 4, 10, 30).blocked
    assert threshold_guard("t", 1, 10, 0).blocked               # 0: any change blocks
    small = threshold_guard("t", 5, 9, 30)
    assert not small.blocked and "not applied below 10 accounts" in small.detail
    assert threshold_guard("t", 0, 0, 30).detail == "0 of 0 (0%), limit 30%"


def test_a_policy_left_undeclared_in_a_shared_registry_is_left_alone():
    stored_policy = {"soft_bounce_limit": 5, "soft_bounce_window_days": 30}
    shared = build_plan(PlanInput({}, {}, "l", 1, actual_policy=stored_policy, ownership="g"))
    assert not shared.has_changes
    alone = build_plan(PlanInput({}, {}, "l", 1, actual_policy=stored_policy))
    assert [rc.address for rc in alone.resource_changes] == ["bounce_policy.default"]


def _signer(data: bytes) -> str:
    import hashlib
    return "hmac-sha256:" + hashlib.sha256(b"k" + data).hexdigest()


def test_moves_forgets_owners_and_unmanaged_survive_the_saved_plan():
    actual = {"old": owned(account("old"), "g"), "x": owned(account("x"), "g"),
              "theirs": owned(account("theirs"), "other")}
    desired = {"new": account("new", display_name="N"), "fresh": account("fresh")}
    plan = build_plan(PlanInput(desired, actual, "lin", 3, fingerprints=fps("new", "fresh"),
                                ownership="g", moves=[("m", "old", "new")],
                                removals=[("r", "x")]))
    body = to_file_dict(plan, _signer)
    again = from_file_dict(body, _signer, "lin")
    assert to_file_dict(again, _signer) == body
    assert [(rc.name, rc.action, rc.previous) for rc in again.resource_changes] == \
        [("fresh", Action.CREATE, None), ("new", Action.MOVE, "old"),
         ("x", Action.FORGET, None)]
    assert again.resource_changes[0].payload.owner == "g" and again.unmanaged == 1
    assert again.summary == plan.summary


def test_forced_guards_are_passed_not_blocked():
    actual = {f"a{i}": stored(account(f"a{i}")) for i in range(10)}
    plan = build_plan(PlanInput({}, actual, "l", 1))
    assert plan.blocked_guards
    forced = plan.forced()
    assert not forced.blocked_guards and plan.blocked_guards      # a copy
    guard = {g.name: g for g in forced.guards}["delete_threshold"]
    assert guard.forced and guard.to_dict() == {"name": "delete_threshold", "blocked": False,
                                                "detail": "10 of 10 (100%), limit 30%",
                                                "forced": True}
    assert "forced" not in plan.guards[0].to_dict()
