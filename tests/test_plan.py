"""Pure plan building: actions, drift, guards, activation, ignore_changes, targets."""
from reconciler.diff import compare, flatten, merge_ignored, record_of, unflatten
import pytest

from reconciler.errors import MailformError, StalePlanError
from reconciler.plan import (AccountPayload, Action, Activation, Resource, from_file_dict,
                             to_file_dict)
from reconciler.planner import PlanInput, build_plan

from planfixtures import account, every_action_plan, fp, stored


def by_name(plan):
    return {rc.name: rc for rc in plan.resource_changes}


def test_every_action_is_found():
    plan = every_action_plan()
    actions = {n: rc.action for n, rc in by_name(plan).items()}
    assert actions == {"newsletter": "create", "support": "update", "sales": "update",
                       "events": "replace", "legacy": "delete"}
    assert plan.summary == {"add": 2, "change": 2, "destroy": 2}
    assert [rc.name for rc in plan.resource_changes] == sorted(actions)


def test_drift_is_reported_and_corrected():
    plan = every_action_plan()
    assert [d.address for d in plan.drift] == ["account.support"]
    change = plan.drift[0].changes[0]
    assert (change.path, change.before, change.after) == ("display_name", "Support", "Help")
    support = by_name(plan)["support"]
    assert [(c.path, c.before, c.after) for c in support.changes] == \
        [("display_name", "Help", "Support Desk")]


def test_sensitive_change_never_shows_fingerprints():
    plan = every_action_plan()
    sales = by_name(plan)["sales"]
    (change,) = sales.changes
    assert change.sensitive and change.path == "smtp.password"
    assert change.to_dict() == {"path": "smtp.password", "before": "(sensitive)",
                                "after": "(sensitive)", "sensitive": True}


def test_guards_prevent_destroy_and_thresholds():
    plan = every_action_plan()
    guards = {g.name: g for g in plan.guards}
    assert guards["prevent_destroy"].blocked and "account.events" in guards["prevent_destroy"].detail
    assert not guards["delete_threshold"].blocked          # 2 of 10
    assert guards["delete_threshold"].detail == "2 of 10 (20%), limit 30%"
    assert not guards["update_threshold"].blocked


def test_update_threshold_blocks_over_30_percent():
    desired, actual = {}, {}
    for i in range(10):
        acc = account(f"a{i}")
        desired[acc.name] = account(f"a{i}", display_name="Changed") if i < 4 else acc
        actual[acc.name] = stored(acc)
    fps = {n: {"smtp.password": fp("same")} for n in desired}
    plan = build_plan(PlanInput(desired, actual, "l", 1, fingerprints=fps))
    guard = {g.name: g for g in plan.guards}["update_threshold"]
    assert guard.blocked and guard.detail == "4 of 10 (40%), limit 30%"


def test_thresholds_need_ten_accounts():
    actual = {f"a{i}": stored(account(f"a{i}")) for i in range(9)}
    plan = build_plan(PlanInput({}, actual, "l", 1))
    assert plan.summary["destroy"] == 9
    assert not any(g.blocked for g in plan.guards)


def test_activation_note_and_payload():
    plan = every_action_plan(contact_count=1500)
    newsletter = by_name(plan)["newsletter"]
    assert newsletter.notes and "pending_activation" in newsletter.notes[0]
    assert newsletter.payload.activation is Activation.PENDING
    small = every_action_plan(contact_count=1000)
    assert not by_name(small)["newsletter"].notes
    assert by_name(small)["newsletter"].payload.activation is Activation.ACTIVE
    assert by_name(small)["support"].payload.activation is None     # not created


def test_no_changes_when_equal():
    acc = account("same")
    plan = build_plan(PlanInput({"same": acc}, {"same": stored(acc)}, "l", 1,
                                fingerprints={"same": {"smtp.password": fp("same")}}))
    assert not plan.has_changes and plan.summary == {"add": 0, "change": 0, "destroy": 0}


def test_ignore_changes_hides_the_field_and_keeps_live_value():
    old = account("x", reply_to={"email": "r@example.com", "name": "Old"})
    new = account("x", reply_to={"email": "r@example.com", "name": "New"},
                  lifecycle={"ignore_changes": ["reply_to.name"]})
    plan = build_plan(PlanInput({"x": new}, {"x": stored(old)}, "l", 1,
                                fingerprints={"x": {"smtp.password": fp("same")}}))
    paths = [c.path for c in plan.resource_changes[0].changes]
    assert paths == ["lifecycle.ignore_changes"]
    assert plan.resource_changes[0].payload.record["reply_to"]["name"] == "Old"


def test_targets_limit_the_plan():
    plan = every_action_plan(targets=["sales"])
    assert [rc.name for rc in plan.resource_changes] == ["sales"]
    assert plan.drift == []


def _signer(key: bytes):
    import hashlib
    import hmac
    return lambda data: "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()


def test_plan_file_round_trip_is_signed():
    plan = every_action_plan()
    sign = _signer(b"registry key")
    body = to_file_dict(plan, sign)
    assert body["format_version"] == "2" and body["checksum"].startswith("hmac-sha256:")
    again = from_file_dict(body, sign, "00000000-lineage")
    assert to_file_dict(again, sign) == body
    assert [(rc.name, rc.action, rc.resource, rc.account_type) for rc in again.resource_changes] \
        == [(rc.name, rc.action, rc.resource, rc.account_type) for rc in plan.resource_changes]
    assert isinstance(again.resource_changes[0].payload, AccountPayload)


def test_an_edited_plan_file_is_refused():
    sign = _signer(b"registry key")
    body = to_file_dict(every_action_plan(), sign)
    body["payload"]["account.support"]["record"]["smtp"]["host"] = "evil.example.net"
    with pytest.raises(MailformError, match="edited"):
        from_file_dict(body, sign)
    body = to_file_dict(every_action_plan(), sign)
    body["checksum"] = _signer(b"")(b"recomputed without the key")
    with pytest.raises(MailformError, match="signature"):
        from_file_dict(body, sign)


def test_a_plan_of_another_registry_is_refused():
    body = to_file_dict(every_action_plan(), _signer(b"their key"))
    with pytest.raises(MailformError, match="signature"):
        from_file_dict(body, _signer(b"our key"))
    with pytest.raises(StalePlanError, match="lineage"):
        from_file_dict(body, _signer(b"their key"), "another-lineage")


def test_a_version_1_plan_file_says_plan_again():
    body = every_action_plan().to_dict()
    body["format_version"] = "1"
    with pytest.raises(StalePlanError, match="plan -o FILE"):
        from_file_dict(body, _signer(b"k"))


def test_actions_and_resources_are_typed():
    plan = every_action_plan()
    rcs = by_name(plan)
    assert rcs["events"].action is Action.REPLACE and rcs["events"].action.adds
    assert rcs["legacy"].payload is None and rcs["newsletter"].account_type == "marketing"
    assert all(rc.resource is Resource.ACCOUNT for rc in plan.resource_changes)
    assert plan.to_dict()["resource_changes"][0]["action"] == "replace"   # sorted by name


def test_flatten_unflatten_and_merge():
    record = {"a": {"b": 1, "c": None}, "d": [1, 2], "e": {}}
    assert flatten(record) == {"a.b": 1, "a.c": None, "d": [1, 2]}
    assert unflatten(flatten(record)) == {"a": {"b": 1, "c": None}, "d": [1, 2]}
    assert merge_ignored({"a": {"b": 2}}, {"a": {"b": 1}}, ["a.b"]) == {"a": {"b": 1}}
    changes, unchanged = compare({"a": 1, "b": 2}, {"a": 1, "b": 3}, {}, {})
    assert [(c.path, c.before, c.after) for c in changes] == [("b", 2, 3)] and unchanged == 1


def test_record_has_no_secret_fields():
    record = record_of(account("s", inbox={"protocol": "imap", "host": "imap.example.com",
                                           "port": 993, "security": "ssl"}))
    assert "password" not in record["smtp"] and "password" not in record["inbox"]
    assert record["inbox"]["username"] == "s@example.com"


def test_apply_refuses_to_write_after_losing_the_lock(tmp_path):
    """A lease that ran out while the user read the plan: another writer took over."""
    import pytest
    from reconciler.apply import apply_plan
    from reconciler.errors import LockedError
    from reconciler.registry import open_registry
    registry = open_registry(f"sqlite:///{tmp_path}/r.db")
    try:
        plan = build_plan(PlanInput({"a": account("a", "marketing")}, {}, "l", 0))
        with registry.lock("first", lease_seconds=300) as held:
            registry.force_unlock(held.id)
            with registry.lock("second"):
                with pytest.raises(LockedError, match="second"):
                    apply_plan(registry, plan, {}, lock_id=held.id)
        assert registry.accounts() == {} and registry.meta().serial == 0
    finally:
        registry.close()


def test_a_field_added_to_the_model_since_the_last_apply_is_not_a_change():
    """A registry written by an older mailform lacks fields added since (e.g.
    inbox.trust_untagged): at their defaults they are no change; set otherwise they are."""
    from reconciler.diff import with_defaults
    inbox = {"protocol": "imap", "host": "imap.example.com", "port": 993, "security": "ssl"}
    acc = account("old", inbox=inbox)
    old_record = record_of(acc)
    del old_record["inbox"]["trust_untagged"]
    del old_record["proxy"]
    fps = {"old": {"smtp.password": fp("same")}}
    from reconciler.registry.base import StoredAccount
    older = StoredAccount("old", "smtp", old_record, old_record, dict(fps["old"]),
                          dict(fps["old"]), {})
    plan = build_plan(PlanInput({"old": acc}, {"old": older}, "l", 1, fingerprints=fps))
    assert not plan.has_changes and not plan.drift
    assert with_defaults(record_of(acc)) == record_of(acc)
    strict = account("old", inbox=dict(inbox, trust_untagged=False))
    plan = build_plan(PlanInput({"old": strict}, {"old": older}, "l", 1, fingerprints=fps))
    (rc,) = plan.resource_changes
    assert [(c.path, c.before, c.after) for c in rc.changes] == \
        [("inbox.trust_untagged", True, False)]


def test_removing_a_section_takes_its_ignored_field_with_it():
    """Found by the import round trip: reply_to removed while reply_to.name is ignored left
    a reply_to without an email in the registry (an invalid account)."""
    assert merge_ignored({"reply_to": None}, {"reply_to": {"email": "r@x", "name": "R"}},
                         ["reply_to.name"]) == {"reply_to": None}
    assert merge_ignored({"reply_to": None}, {"reply_to": {"email": "r@x", "name": "R"}},
                         ["reply_to"]) == {"reply_to": {"email": "r@x", "name": "R"}}
    assert merge_ignored({"reply_to": {"email": "n@x", "name": None}},
                         {"reply_to": {"email": "r@x", "name": "R"}},
                         ["reply_to.name"]) == {"reply_to": {"email": "n@x", "name": "R"}}
