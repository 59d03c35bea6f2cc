"""Property: with moves, removals and a shared registry, apply then plan gives no changes;
a moved account keeps its status, a forgotten one stays, another project's are untouched."""
from __future__ import annotations

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.apply import apply_plan
from reconciler.planner import PlanInput, build_plan
from reconciler.registry import open_registry
from reconciler.registry.base import AccountWrite

from planfixtures import account

NAMES = ["a", "b", "c", "d", "e"]


def plan_for(registry, desired, ownership, moves=(), removals=()):
    meta = registry.meta()
    return build_plan(PlanInput(desired, registry.accounts(), meta.lineage, meta.serial,
                                ownership=ownership, moves=moves, removals=removals))


@st.composite
def rounds(draw):
    first = draw(st.lists(st.sampled_from(NAMES), min_size=1, unique=True))
    renamed = {}
    for name in first:
        if draw(st.booleans()):
            renamed[name] = f"{name}-new"
    removed = [n for n in first if n not in renamed and draw(st.booleans())]
    retitled = draw(st.sets(st.sampled_from(first)))
    ownership = draw(st.sampled_from([None, "growth"]))
    return first, renamed, removed, retitled, ownership


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rounds())
def test_apply_then_plan_is_quiet_with_moves_and_removals(case):
    first, renamed, removed, retitled, ownership = case
    with tempfile.TemporaryDirectory() as folder, \
            open_registry(f"sqlite:///{folder}/r.db") as registry:
        with registry.transaction() as tx:           # another project's account
            tx.put_account(AccountWrite("theirs", "marketing", {"email": "t@example.com"}, {},
                                        {}, owner="billing"))
            tx.add_history({})
        desired = {n: account(n, "marketing") for n in first}
        apply_plan(registry, plan_for(registry, desired, ownership), {})
        for name in first:
            registry.set_status(name, {"mark": name})
        desired = {}
        for name in first:
            if name in removed:
                continue
            new = renamed.get(name, name)
            title = "Retitled" if name in retitled else name.title()
            desired[new] = account(new, "marketing", email=f"{name}@example.com",
                                   display_name=title)
        moves = [(f"m-{old}", old, new) for old, new in renamed.items()]
        removals = [(f"r-{n}", n) for n in removed]
        apply_plan(registry, plan_for(registry, desired, ownership, moves, removals), {})
        again = plan_for(registry, desired, ownership, moves, removals)
        assert not again.has_changes and again.drift == [], again.to_dict()
        stored = registry.accounts()
        for old, new in renamed.items():
            assert stored[new].status["mark"] == old and old not in stored
        for name in removed:
            assert stored[name].released
        if ownership:                                  # without one: every account is ours
            assert stored["theirs"].owner == "billing"
        else:
            assert "theirs" not in stored
