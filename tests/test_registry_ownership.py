"""The registry's side of ownership and moves, on SQLite and PostgreSQL: the owner column
(migration 4), moving an account with everything it has, letting it go, adopting it."""
from __future__ import annotations

import pytest

from reconciler.apply import apply_plan
from reconciler.errors import MailformError, NotFoundError, RegistryError
from reconciler.plan import Action, Plan, ResourceChange
from reconciler.policy import RELEASED
from reconciler.registry import open_registry
from reconciler.registry.schema import MIGRATIONS
from reconciler.registry.sqlite import SQLiteRegistry
from reconciler.workflow.moves import adopt, state_move, state_remove
from test_registry_support import (account, apply, backend, reg_url, registry,  # noqa: F401
                                   snapshot)


def owned(name: str, owner):
    write = account(name)
    write.owner = owner
    return write


def test_the_owner_is_recorded_on_create_and_kept_when_none_is_given(registry):
    apply(registry, owned("a", "growth"), account("b"))
    assert registry.account("a").owner == "growth" and registry.account("b").owner is None
    apply(registry, account("a", display_name="Changed"))        # no owner given: kept
    assert registry.account("a").owner == "growth"
    assert registry.accounts()["a"].spec["display_name"] == "Changed"


def test_a_move_keeps_status_secrets_owner_and_processed_messages(registry):
    write = owned("promo", "growth")
    write.status = {"activation": "pending_activation"}
    apply(registry, write)
    registry.set_status("promo", {"verification": {"smtp": {"code": "ok"}}})
    registry.mark_processed("promo", "INBOX", ["7"])
    with registry.transaction() as tx:
        tx.move_account("promo", "promotions")
        tx.add_history({"actor": "t"})
    assert registry.account("promo") is None
    moved = registry.account("promotions")
    assert moved.owner == "growth" and moved.status["activation"] == "pending_activation"
    assert moved.status["verification"] == {"smtp": {"code": "ok"}}
    assert registry.secrets("promotions") == {"smtp.password": "pw-1"}
    assert registry.is_processed("promotions", "INBOX", "7")
    assert not registry.is_processed("promo", "INBOX", "7")


def test_a_move_onto_an_existing_account_or_of_a_missing_one_writes_nothing(registry):
    apply(registry, account("a"), account("b"))
    before = snapshot(registry)
    for old, new, error in (("a", "b", RegistryError), ("nobody", "c", NotFoundError)):
        with pytest.raises(error):
            with registry.transaction() as tx:
                tx.move_account(old, new)
    assert snapshot(registry) == before


def test_let_go_and_adopted(registry):
    apply(registry, owned("a", "growth"))
    with registry.transaction() as tx:
        tx.set_owner("a", RELEASED)
        tx.add_history({"actor": "t"})
    assert registry.account("a").released
    done = adopt(registry, ["a"], "billing", "tester")
    assert done.taken == {"a": RELEASED} and registry.account("a").owner == "billing"
    entry = registry.history()[-1]
    assert entry["action"] == "adopt" and entry["account"] == "a" and entry["owner"] == "billing"
    again = adopt(registry, ["a"], "billing", "tester")
    assert again.taken == {} and again.already == ["a"] and again.serial == done.serial
    with pytest.raises(NotFoundError, match="nobody"):
        adopt(registry, ["a", "nobody"], "growth", "tester")
    assert registry.account("a").owner == "billing"


def test_without_ownership_adopting_only_takes_back_what_was_let_go(registry):
    apply(registry, owned("theirs", "billing"), owned("loose", RELEASED))
    done = adopt(registry, ["theirs", "loose"], None, "tester")
    assert done.taken == {"loose": RELEASED} and done.already == ["theirs"]
    assert registry.account("loose").owner is None
    assert registry.account("theirs").owner == "billing"


def test_state_mv_and_rm_are_one_change_applies_in_the_history(registry):
    apply(registry, owned("a", "growth"), owned("b", "growth"), owned("c", "billing"))
    serial = registry.meta().serial
    moved = state_move(registry, "a", "renamed", "growth", "tester")
    assert moved.serial == serial + 1 and moved.moved == 1
    assert registry.account("renamed").owner == "growth"
    entry = registry.history()[-1]
    assert entry["action"] == "state mv" and entry["account"] == "a -> renamed"
    assert entry["counts"] == {"add": 0, "change": 0, "destroy": 0, "move": 1}
    removed = state_remove(registry, "b", "growth", "tester")
    assert removed.serial == serial + 2 and registry.account("b").released
    assert registry.history()[-1]["action"] == "state rm"
    with pytest.raises(MailformError, match="managed by project 'billing'"):
        state_move(registry, "c", "d", "growth", "tester")
    with pytest.raises(MailformError, match="managed by no project"):
        state_remove(registry, "b", "growth", "tester")
    with pytest.raises(MailformError, match="already exists"):
        state_move(registry, "renamed", "c", "growth", "tester")
    with pytest.raises(MailformError, match="not a valid account name"):
        state_move(registry, "renamed", "Bad Name", "growth", "tester")
    assert registry.meta().serial == serial + 2


def test_apply_moves_then_writes_the_changes(registry):
    apply(registry, owned("old", "growth"))
    meta = registry.meta()
    plan = Plan(meta.lineage, meta.serial, "", [], [
        ResourceChange("new", Action.MOVE, [], previous="old"),
    ], [])
    result = apply_plan(registry, plan, {})
    assert result.moved == 1 and "1 moved" in result.summary_line()
    assert set(registry.accounts()) == {"new"}


def test_an_older_registry_is_migrated_and_its_accounts_have_no_owner(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    url = f"sqlite:///{tmp_path}/r.db"
    step = next(m for m in MIGRATIONS if any("ADD COLUMN owner" in s for s in m.statements))
    before_owner = tuple(m for m in MIGRATIONS if m.version < step.version)
    with SQLiteRegistry(url, migrations=before_owner) as old:
        cur = old.store.raw_cursor()
        cur.execute("SELECT * FROM accounts")
        assert "owner" not in [c[0] for c in cur.description]
        apply(old, account("legacy"))
    with open_registry(url) as reg:
        assert reg.account("legacy").owner is None and not reg.account("legacy").released
