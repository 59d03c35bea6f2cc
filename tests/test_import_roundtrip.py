"""Property: for any registry, `mailform import` then `mailform plan` says "No changes".

Registries are built as users build them: random manifests (the strategies of
test_apply_property: smtp and marketing accounts, reply_to, from_override, inboxes,
labels, ignore_changes, a BouncePolicy or not) applied over a few rounds, with
operator edits through `mailform registry set` between them (those the registry
refuses are simply not made). Then the imported manifests are planned against the
same registry, with the secrets in the variables the import names — read from the
registry, as an operator restoring them would.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clihelpers import dump, mailform
from reconciler.apply import apply_plan
from reconciler.manifest import load
from reconciler.manifest.export import env_name
from reconciler.registry import open_registry
from reconciler.workflow.inputs import Loaded, resolve_all
from reconciler.workflow.run import make_plan
from test_apply_property import SAFE_TEXT, edit, secrets_for

EDITABLE = ["display_name", "email", "shared", "labels.team", "reply_to.name", "reply_to.email",
            "from_override.email_detail", "owner"]
SMTP_EDITABLE = ["smtp.port", "smtp.host", "smtp.security", "smtp.password", "proxy"]
POLICY = {"apiVersion": "mailform/v1", "kind": "BouncePolicy", "metadata": {"name": "default"}}


@st.composite
def operator_edits(draw, accounts: dict[str, dict]) -> list[tuple[str, str, str]]:
    """`registry set NAME PATH=VALUE` commands, valid or not."""
    out = []
    for name in sorted(accounts):
        if draw(st.integers(0, 2)):
            continue
        smtp = accounts[name]["spec"]["type"] == "smtp"
        path = draw(st.sampled_from(EDITABLE + (SMTP_EDITABLE if smtp else [])))
        value = draw(st.sampled_from([
            "true", "false", "465", "2525", "ssl", "starttls", "x@example.org",
            "mx.example.net", "null"]) | SAFE_TEXT)
        out.append((name, path, value))
    return out


def _apply(workdir: Path, url: str, docs: list[dict], env: dict[str, str]) -> None:
    manifests = workdir / "manifests"
    manifests.mkdir(exist_ok=True)
    (manifests / "all.yaml").write_text(dump(docs))
    with mock.patch.dict(os.environ, env):
        desired = load([str(manifests)], {}, "default")
        loaded = Loaded(desired, resolve_all(desired.accounts.values()))
        with open_registry(url) as registry, registry.lock(holder="property"):
            apply_plan(registry, make_plan(registry, loaded), loaded.secrets.values)


def _imported_secrets(url: str) -> dict[str, str]:
    """The variables `import` names, holding the registry's (live) secrets."""
    with open_registry(url) as registry:
        return {env_name(name, path): value for name in registry.accounts()
                for path, value in registry.secrets(name).items()}


def _env(url: str, extra: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILFORM_")}
    return {**base, "MAILFORM_REGISTRY": url, "NO_COLOR": "1", "MAILFORM_ACTOR": "t", **extra}


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_import_then_plan_gives_no_changes(data):
    os.environ.pop("MAILFORM_MASTER_KEY", None)
    accounts: dict = {}
    secrets: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir, url = Path(tmp), f"sqlite:///{tmp}/.mailform/reg.db"
        for round_no in range(data.draw(st.integers(1, 3), label="rounds")):
            accounts = data.draw(edit(accounts).filter(bool), label=f"round {round_no}")
            secrets = data.draw(secrets_for(accounts, secrets), label="secrets")
            policy = data.draw(st.none() | st.fixed_dictionaries(
                {"soft_bounce_limit": st.integers(1, 20)}), label="policy")
            docs = [accounts[n] for n in sorted(accounts)]
            _apply(workdir, url, docs + ([{**POLICY, "spec": policy}] if policy else []), secrets)
            for name, path, value in data.draw(operator_edits(accounts), label="edits"):
                mailform("registry", "set", name, f"{path}={value}", env=_env(url, {}), cwd=tmp)
        _check_round_trip(workdir, url)


def _check_round_trip(workdir: Path, url: str) -> None:
    env = _env(url, {})
    imported = mailform("import", env=env, cwd=workdir)
    assert imported.code == 0, imported
    target = workdir / "imported"
    target.mkdir()
    (target / "imported.yaml").write_text(imported.out)
    plan = mailform("plan", "imported", "--detailed-exitcode", cwd=workdir,
                    env=_env(url, _imported_secrets(url)))
    assert plan.code == 0 and "No changes." in plan.out, (imported.out, plan)


def test_an_empty_registry_round_trips(tmp_path):
    env = _env(f"sqlite:///{tmp_path}/reg.db", {})
    assert mailform("registry", "init", env=env, cwd=tmp_path).code == 0
    _check_round_trip(tmp_path, env["MAILFORM_REGISTRY"])
