"""Status conditions: stored per account and type, shown by `state show` / `state list`,
written by a reconcile pass (Applied, Drifted)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import clihelpers
from reconciler.registry import open_registry
from reconciler.registry.conditions import FLEET

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {{name: {name}}}
spec:
  type: marketing
  email: {name}@example.com
  display_name: {display}
  shared: true
"""


@pytest.fixture
def url(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    return f"sqlite:///{tmp_path}/registry.db"


def test_transition_time_moves_only_when_the_status_does(url):
    with open_registry(url) as registry:
        first = registry.conditions.set("news", "Verified", "True", "LoginSucceeded")
        time.sleep(0.01)
        again = registry.conditions.set("news", "Verified", "True", "LoginSucceeded", "ok")
        assert again.last_transition == first.last_transition
        assert again.last_probe > first.last_probe
        time.sleep(0.01)
        failed = registry.conditions.set("news", "Verified", "False", "AuthFailed", "535")
        assert failed.last_transition > first.last_transition
        stored = registry.conditions.of("news")["Verified"].as_dict()
        assert stored == {"type": "Verified", "status": "False", "reason": "AuthFailed",
                          "message": "535", "lastTransitionTime": failed.last_transition,
                          "lastProbeTime": failed.last_probe}


def test_subjects_that_are_not_accounts_are_left_out(url):
    with open_registry(url) as registry:
        registry.conditions.set(FLEET, "ReconcilePass", "True", "InSync")
        registry.conditions.set("news", "Applied", "True", "InSync")
        assert set(registry.conditions.all()) == {FLEET, "news"}
        assert set(registry.conditions.for_accounts(["news", "other"])) == {"news"}


def _run(tmp_path, *args):
    env = dict(os.environ, MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/registry.db", NO_COLOR="1")
    env.pop("MAILFORM_MASTER_KEY", None)
    return clihelpers.mailform(*args, env=env, cwd=ROOT)


def test_reconcile_pass_writes_applied_and_drifted_and_state_shows_them(tmp_path):
    manifests = tmp_path / "m"
    manifests.mkdir()
    (manifests / "a.yaml").write_text(ACCOUNT.format(name="news", display="News"))
    pending = _run(tmp_path, "reconcile", str(manifests), "--once", "--format", "json")
    body = json.loads(pending.stdout)
    assert body["result"] == "changes"
    assert {c["type"]: c["status"] for c in body["conditions"]["news"]} == \
        {"Applied": "False", "Drifted": "False"}
    applied = _run(tmp_path, "reconcile", str(manifests), "--once", "--auto-apply",
                   "--log-format", "json")
    assert json.loads(applied.stdout)["event"] == "reconcile_pass"
    edited = _run(tmp_path, "registry", "set", "news", "display_name=Edited")
    assert edited.returncode == 0, edited.stderr
    drift = _run(tmp_path, "reconcile", str(manifests), "--once")
    assert "Drifted: news" in drift.stdout and "Applied: news" in drift.stdout
    shown = json.loads(_run(tmp_path, "state", "show", "news", "--format", "json").stdout)
    conds = {c["type"]: c for c in shown["conditions"]}
    assert conds["Drifted"]["status"] == "True" and conds["Drifted"]["reason"] == "LiveEdited"
    assert conds["Applied"]["reason"] == "ChangesPending"
    assert conds["Drifted"]["lastTransitionTime"] and conds["Drifted"]["lastProbeTime"]
    listed = json.loads(_run(tmp_path, "state", "list", "--format", "json").stdout)
    assert {c["type"] for c in listed[0]["conditions"]} == {"Applied", "Drifted"}
    table = _run(tmp_path, "state", "list").stdout
    assert "CONDITIONS" in table and "Drifted=True" in table


def test_state_list_on_a_missing_registry_has_no_conditions(tmp_path):
    listed = _run(tmp_path, "state", "list", "--format", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_conditions_follow_deletes_and_moves(tmp_path):
    """A deleted account leaves no conditions for a new one of the same name to inherit;
    a moved one keeps them under its new name."""
    from reconciler.registry import AccountWrite

    with open_registry(f"sqlite:///{tmp_path}/reg.db") as reg:
        with reg.transaction() as tx:
            for name in ("gone", "old"):
                tx.put_account(AccountWrite(name, "marketing", {"email": f"{name}@example.com"},
                                            {}, {}))
        reg.conditions.set("gone", "Verified", "False", "LoginRefused")
        reg.conditions.set("old", "Verified", "True", "LoginSucceeded")
        with reg.transaction() as tx:
            tx.delete_account("gone")
            tx.move_account("old", "new")
        assert reg.conditions.of("gone") == {} and reg.conditions.of("old") == {}
        assert reg.conditions.of("new")["Verified"].reason == "LoginSucceeded"
