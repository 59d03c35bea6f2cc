"""Plan inputs built in memory: desired accounts and registry records, no I/O."""
from __future__ import annotations

from reconciler.diff import record_of
from reconciler.model import EmailAccount
from reconciler.planner import PlanInput, build_plan
from reconciler.registry.base import StoredAccount


def account(name, type_="smtp", **spec):
    body = {"type": type_, "email": f"{name}@example.com", "display_name": name.title(),
            "shared": True}
    if type_ == "smtp":
        body["smtp"] = {"host": "smtp.example.com", "port": 587, "security": "starttls",
                        "password": {"env": f"{name.upper().replace('-', '_')}_PW"}}
    body.update(spec)
    return EmailAccount.model_validate({"apiVersion": "mailform/v1", "kind": "EmailAccount",
                                        "metadata": {"name": name}, "spec": body})


def fp(value: str) -> str:
    return "hmac-sha256:" + value


def stored(acc: EmailAccount, fps=None, status=None, live=None) -> StoredAccount:
    record = record_of(acc)
    fps = dict(fps if fps is not None else ({"smtp.password": fp("same")} if acc.spec.smtp else {}))
    return StoredAccount(acc.name, acc.spec.type, live if live is not None else record, record,
                         fps, dict(fps), status or {})


def every_action_plan(contact_count=1500, targets=None):
    """A plan holding create, update, delete, replace, drift, a sensitive change,
    a blocked guard and an activation note."""
    desired = {
        "newsletter": account("newsletter", "marketing"),
        "support": account("support", display_name="Support Desk"),
        "sales": account("sales"),
        "events": account("events", "marketing"),
    }
    old_support = account("support")
    drifted = dict(record_of(old_support), display_name="Help")
    actual = {
        "support": stored(old_support, live=drifted),
        "sales": stored(account("sales")),
        "events": stored(account("events", "smtp", lifecycle={"prevent_destroy": True})),
        "legacy": stored(account("legacy")),
    }
    for i in range(6):
        acc = account(f"keep-{i}")
        desired[acc.name] = acc
        actual[acc.name] = stored(acc, fps={"smtp.password": fp("same")})
    fps = {n: {"smtp.password": fp("same")} for n in desired if desired[n].spec.smtp}
    fps["sales"] = {"smtp.password": fp("new")}
    refs = {n: {"smtp.password": {"env": f"{n.upper().replace('-', '_')}_PW"}} for n in fps}
    return build_plan(PlanInput(accounts=desired, actual=actual, lineage="00000000-lineage",
                                serial=7, manifest_digest="sha256:digest", fingerprints=fps,
                                secret_refs=refs, contact_count=contact_count, targets=targets))
