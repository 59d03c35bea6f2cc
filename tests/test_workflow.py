"""The core workflow, called directly: plan, apply with injected approval, verification and
progress; saved plans signed with the registry's key; the reconcile loop's timing with an
injected clock."""
from __future__ import annotations

import json

import pytest

from clihelpers import dump, marketing_account, smtp_account
from reconciler.errors import LockedError, MailformError, StalePlanError
from reconciler.registry import open_registry
from reconciler.render.json_out import render_plan_file
from reconciler.workflow.inputs import Inputs, load
from reconciler.workflow.reconcile import Loop, PassOptions, PassResult, run_pass
from reconciler.workflow.run import (ApplyRequest, AutoApprove, Status, apply, make_plan,
                                     plan_signer, read_saved_plan)


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    monkeypatch.setenv("SUPPORT_SMTP_PASSWORD", "pässwörd")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(dump([smtp_account("support"),
                                                 marketing_account("news")]))
    return tmp_path


def _inputs(project) -> Inputs:
    return Inputs((str(project / "m"),))


def _registry(project):
    return open_registry(f"sqlite:///{project}/reg.db")


class Refuse:
    def __init__(self, ready=True):
        self.is_ready, self.asked = ready, 0

    def ready(self):
        return self.is_ready

    def confirm(self, plan):
        self.asked += 1
        return False


def _ok_checks(plan, secrets):
    return {rc.name: {"smtp": {"code": "ok", "summary": "ok"}}
            for rc in plan.accounts_to_write() if rc.account_type == "smtp"}


def test_apply_runs_verify_then_approval_then_writes(project):
    events = []
    with _registry(project) as registry:
        outcome = apply(registry, ApplyRequest(loaded=load(_inputs(project))), AutoApprove(),
                        _ok_checks, events.append)
        assert outcome.status is Status.APPLIED and outcome.result.added == 2
        assert [e.kind for e in events] == ["planned", "verified", "wrote", "wrote", "writing"]
        assert {(e.address, e.action) for e in events if e.kind == "wrote"} == {
            ("account.news", "create"), ("account.support", "create")}
        assert registry.account("support").status["verification"]["smtp"]["code"] == "ok"
        again = apply(registry, ApplyRequest(loaded=load(_inputs(project))), AutoApprove(), None)
        assert again.status is Status.NO_CHANGES


def test_a_failed_check_or_a_refusal_writes_nothing(project):
    def failing(plan, secrets):
        return {"support": {"smtp": {"code": "auth_failed", "summary": "auth_failed"}}}

    with _registry(project) as registry:
        loaded = load(_inputs(project))
        failed = apply(registry, ApplyRequest(loaded=loaded), AutoApprove(), failing)
        assert failed.status is Status.VERIFY_FAILED
        assert failed.failures == ["support (smtp: auth_failed)"]
        refuse = Refuse()
        cancelled = apply(registry, ApplyRequest(loaded=loaded), refuse, None)
        assert cancelled.status is Status.CANCELLED and refuse.asked == 1
        nobody = Refuse(ready=False)
        checked = []
        unasked = apply(registry, ApplyRequest(loaded=loaded), nobody,
                        lambda p, s: checked.append(p) or {})
        assert unasked.status is Status.NOT_APPROVABLE and not checked and nobody.asked == 0
        assert registry.accounts() == {} and registry.meta().serial == 0


def test_a_second_writer_gets_the_lock_error(project):
    with _registry(project) as registry, registry.lock("someone else"):
        with pytest.raises(LockedError, match="someone else"):
            apply(registry, ApplyRequest(loaded=load(_inputs(project))), AutoApprove(), None)


def _save(project, registry, loaded) -> str:
    path = project / "p.plan"
    path.write_text(render_plan_file(make_plan(registry, loaded), plan_signer(registry)))
    return str(path)


def test_saved_plan_applies_once_and_edits_are_refused(project):
    with _registry(project) as registry:
        path = _save(project, registry, load(_inputs(project)))
        body = json.loads(open(path).read())
        body["payload"]["account.support"]["record"]["smtp"]["host"] = "attacker.example.net"
        edited = project / "edited.plan"
        edited.write_text(json.dumps(body))
        with pytest.raises(MailformError, match="signature"):
            read_saved_plan(str(edited), registry)
        outcome = apply(registry, ApplyRequest(plan_file=path), AutoApprove(), None)
        assert outcome.status is Status.APPLIED
        assert registry.account("support").spec["smtp"]["host"] == "smtp.example.com"
        with pytest.raises(StalePlanError, match="serial"):
            apply(registry, ApplyRequest(plan_file=path), AutoApprove(), None)


def test_a_write_while_the_plan_reads_makes_the_saved_plan_stale(project, monkeypatch):
    """Another apply commits after the plan read the registry's rows: the saved plan
    carries the serial from before it, so applying it is refused (it never writes over
    rows it did not see)."""
    from reconciler.workflow.inputs import Loaded
    with _registry(project) as registry:
        loaded = load(_inputs(project))
        real = Loaded.registry_rows

        def rows_then_a_write(self, reg, match=None):
            rows = real(self, reg, match)
            if reg is registry:                        # someone else's apply, just then
                with _registry(project) as other:
                    apply(other, ApplyRequest(loaded=load(_inputs(project))),
                          AutoApprove(), None)
            return rows
        monkeypatch.setattr(Loaded, "registry_rows", rows_then_a_write)
        path = _save(project, registry, loaded)
        monkeypatch.setattr(Loaded, "registry_rows", real)
        assert json.loads(open(path).read())["registry"]["serial"] == 0
        with pytest.raises(StalePlanError, match="serial"):
            apply(registry, ApplyRequest(plan_file=path), AutoApprove(), None)


def test_a_plan_from_another_registry_is_refused(project, tmp_path_factory):
    with _registry(project) as registry:
        path = _save(project, registry, load(_inputs(project)))
    other = tmp_path_factory.mktemp("other")
    with open_registry(f"sqlite:///{other}/reg.db") as registry:
        with pytest.raises(StalePlanError, match="lineage"):
            read_saved_plan(path, registry)


def test_run_pass_reports_then_applies(project):
    options = PassOptions(f"sqlite:///{project}/reg.db", detailed=True)
    pending = run_pass(_inputs(project), options, None)
    assert (pending.result, pending.exit_code, pending.counts["add"]) == ("changes", 2, 2)
    applied = run_pass(_inputs(project), PassOptions(options.registry_url, auto_apply=True), None)
    assert applied.result == "applied" and "serial 1" in applied.message
    assert run_pass(_inputs(project), options, None).result == "in_sync"


class FakeClock:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def _loop(outcomes, interval=10.0):
    clock, reported = FakeClock(), []
    queue = list(outcomes)
    loop = Loop(lambda: queue.pop(0), reported.append, interval,
                stopped=lambda: not queue, clock=clock, sleep=clock.sleep)
    return loop, clock, reported


def test_transient_failures_back_off_exponentially_and_reset():
    transient = PassResult("error", "locked", transient=True, exit_code=5)
    loop, clock, reported = _loop([transient] * 3 + [PassResult("in_sync")] + [transient])
    delays = [loop.step() for _ in range(5)]
    assert delays == [20.0, 40.0, 80.0, 10.0, 20.0]
    assert len(reported) == 5


def test_backoff_is_capped():
    transient = PassResult("error", "down", transient=True)
    loop, _, _ = _loop([transient] * 12, interval=30.0)
    assert [loop.step() for _ in range(12)][-1] == 600.0


def test_a_terminal_error_is_reported_once_until_it_changes():
    bad = PassResult("error", "2 manifest error(s)", digest="d1", exit_code=1)
    fixed_but_blocked = PassResult("blocked", "guard", digest="d2", exit_code=3)
    loop, _, reported = _loop([bad, bad, bad, fixed_but_blocked, fixed_but_blocked])
    delays = [loop.step() for _ in range(5)]
    assert reported == [bad, fixed_but_blocked]
    assert delays == [10.0] * 5                       # terminal: no backoff, no hammering


def test_forever_waits_the_delay_on_the_injected_clock():
    loop, clock, reported = _loop([PassResult("in_sync"), PassResult("in_sync")], interval=1.0)
    loop.forever()
    assert len(reported) == 2 and clock.now == pytest.approx(1.0)
    assert all(step <= 0.2 for step in clock.slept)
