"""Property: apply, then plan, gives no changes.

Random valid manifests (smtp and marketing; optional reply_to, from_override,
inbox, labels, ignore_changes; random secrets), random edits between rounds
(creates, in-place updates, deletes, replaces by a type change, secret changes)
and random out-of-band edits (`registry set`) before each apply. After every
apply the next plan has no resource changes, and no drift outside paths the
manifests ignore. In-process (Python API) for speed, plus whole-CLI rounds.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest import mock

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clihelpers import Cli, dump
from reconciler.apply import apply_plan
from reconciler.workflow.inputs import Loaded, Resolved, resolve_all
from reconciler.workflow.run import make_plan
from reconciler.manifest import load
from reconciler.registry import open_registry

NAMES = ("a", "b", "c", "d", "e")
SAFE_TEXT = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABC XYZ0123456789.-_'!é"),
                    min_size=1, max_size=12).map(str.strip).filter(bool)
SECRET = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
SMTP_PORTS = [(587, "starttls"), (465, "ssl"), (25, "none"), (2525, "starttls"), (2525, "ssl")]
INBOX_PORTS = {"imap": [(993, "ssl"), (143, "starttls")], "pop3": [(995, "ssl"), (110, "none")]}
IGNORABLE = ["display_name", "reply_to.name", "smtp.port", "email", "reply_to"]


def _email(local: str) -> str:
    return f"{local}@example.com"


@st.composite
def spec_of(draw, name: str, kind: str | None = None) -> dict:
    kind = kind or draw(st.sampled_from(["smtp", "marketing"]))
    spec: dict = {"type": kind, "email": _email(draw(st.sampled_from([name, "x", "y"]))),
                  "display_name": draw(SAFE_TEXT)}
    if draw(st.booleans()):
        spec["reply_to"] = {"email": _email("reply")}
        if draw(st.booleans()):
            spec["reply_to"]["name"] = draw(SAFE_TEXT)
    if draw(st.booleans()):
        spec["from_override"] = {"email_detail": draw(st.sampled_from(["mgr", "owner_mail"]))}
        if draw(st.booleans()):
            spec["from_override"]["name_detail"] = "mgr_name"
    shared = draw(st.booleans())
    spec["shared"] = shared
    if not shared:
        spec["owner"] = _email(draw(st.sampled_from(["alice", "bob"])))
    if kind == "smtp":
        port, security = draw(st.sampled_from(SMTP_PORTS))
        spec["smtp"] = {"host": draw(st.sampled_from(["smtp.example.com", "mx.example.org"])),
                        "port": port, "security": security,
                        "password": {"env": f"PW_{name.upper()}_SMTP"}}
        spec["proxy"] = draw(st.booleans())
        if draw(st.booleans()):
            protocol = draw(st.sampled_from(["imap", "pop3"]))
            port, security = draw(st.sampled_from(INBOX_PORTS[protocol]))
            inbox = {"protocol": protocol, "host": "in.example.com", "port": port,
                     "security": security, "batch_size": draw(st.integers(1, 10000))}
            if draw(st.booleans()):
                inbox["password"] = {"env": f"PW_{name.upper()}_INBOX"}
            spec["inbox"] = inbox
    if draw(st.integers(0, 4)) == 0:
        spec["lifecycle"] = {"ignore_changes": draw(st.lists(st.sampled_from(IGNORABLE),
                                                             max_size=2, unique=True))}
    return spec


@st.composite
def account_of(draw, name: str, kind: str | None = None) -> dict:
    metadata: dict = {"name": name}
    labels = draw(st.dictionaries(st.sampled_from(["team", "env", "tier"]), SAFE_TEXT, max_size=2))
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "mailform/v1", "kind": "EmailAccount", "metadata": metadata,
            "spec": draw(spec_of(name, kind))}


@st.composite
def edit(draw, accounts: dict[str, dict]) -> dict[str, dict]:
    """The next round: each account kept, edited, retyped or deleted; new ones created."""
    out = {}
    for name in NAMES:
        current = accounts.get(name)
        if current is None:
            if draw(st.booleans()):
                out[name] = draw(account_of(name))
            continue
        action = draw(st.sampled_from(["keep", "update", "replace", "delete"]))
        if action == "keep":
            out[name] = current
        elif action == "update":
            out[name] = draw(account_of(name, current["spec"]["type"]))
        elif action == "replace":
            other = "smtp" if current["spec"]["type"] == "marketing" else "marketing"
            out[name] = draw(account_of(name, other))
    return out


@st.composite
def secrets_for(draw, accounts: dict[str, dict], previous: dict[str, str]) -> dict[str, str]:
    env = {}
    for name in accounts:
        for section in ("SMTP", "INBOX"):
            var = f"PW_{name.upper()}_{section}"
            keep = var in previous and draw(st.booleans())
            env[var] = previous[var] if keep else draw(SECRET)
    return env


@st.composite
def drift_for(draw, accounts: dict[str, dict]) -> list[tuple[str, str, object]]:
    """Out-of-band edits of accounts the registry holds."""
    ops = []
    for name in sorted(accounts):
        if not draw(st.integers(0, 2)) == 0:
            continue
        kind = accounts[name]["spec"]["type"]
        paths = ["display_name", "email", "shared", "labels.team", "reply_to.name",
                 "from_override.email_detail"]
        if kind == "smtp":
            paths += ["smtp.port", "smtp.host", "smtp.password", "proxy"]
        path = draw(st.sampled_from(paths))
        value = {"smtp.port": draw(st.integers(1, 65535)), "shared": draw(st.booleans()),
                 "proxy": draw(st.booleans()), "smtp.password": draw(SECRET)}.get(
                     path, draw(SAFE_TEXT))
        ops.append((name, path, value))
    return ops


def _ignored(path: str, ignore: list[str]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in ignore)


def _round(workdir: Path, url: str, accounts: dict[str, dict], env: dict[str, str],
           drift: list, seen: set) -> None:
    manifests = workdir / "manifests"
    for old in manifests.glob("*.yaml"):
        old.unlink()
    manifests.mkdir(exist_ok=True)
    for i, name in enumerate(sorted(accounts)):       # spread over two files
        path = manifests / f"part{i % 2}.yaml"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(dump([accounts[name]]))
    if not accounts:
        (manifests / "empty.yaml").write_text("# nothing\n")
    with mock.patch.dict(os.environ, env):
        desired = load([str(manifests)], {}, "default") if accounts else None
        registry = open_registry(url)
        try:
            for name, path, value in drift:
                registry.set_field(name, path, value)
            if desired is None:
                _apply_empty(registry, seen)
                return
            loaded = Loaded(desired, resolve_all(desired.accounts.values()))
            with registry.lock(holder="property"):
                plan = make_plan(registry, loaded)
                seen.update(rc.action for rc in plan.resource_changes)
                apply_plan(registry, plan, loaded.secrets.values)
            after = make_plan(registry, loaded)
        finally:
            registry.close()
    assert not after.has_changes, [rc.to_dict() for rc in after.resource_changes]
    for d in after.drift:
        ignore = accounts[d.name]["spec"].get("lifecycle", {}).get("ignore_changes", [])
        assert all(_ignored(c.path, ignore) for c in d.changes), d.to_dict()


def _apply_empty(registry, seen: set) -> None:
    """No manifests at all: the loader refuses an empty set, so delete via an empty desired."""
    from reconciler.manifest import Desired
    nothing = Loaded(Desired(), Resolved())
    with registry.lock(holder="property"):
        plan = make_plan(registry, nothing)
        seen.update(rc.action for rc in plan.resource_changes)
        apply_plan(registry, plan, {})
        assert not make_plan(registry, nothing).has_changes


SEEN: set = set()


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_apply_then_plan_gives_no_changes(data):
    os.environ.pop("MAILFORM_MASTER_KEY", None)
    accounts = data.draw(edit({}), label="round 0")
    env: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir}/reg.db"
        for round_no in range(data.draw(st.integers(2, 4), label="rounds")):
            if round_no:
                accounts = data.draw(edit(accounts), label=f"round {round_no}")
            env = data.draw(secrets_for(accounts, env), label="secrets")
            drift = data.draw(drift_for(_registry_names(url)), label="drift") if round_no else []
            _round(workdir, url, accounts, env, drift, SEEN)


def _registry_names(url: str) -> dict[str, dict]:
    registry = open_registry(url)
    try:
        return {n: {"spec": {"type": a.type}} for n, a in registry.accounts().items()}
    finally:
        registry.close()


def test_every_action_is_exercised():
    """A fixed sequence of rounds through the same code: all four actions and drift."""
    env = {"PW_A_SMTP": "one", "PW_B_SMTP": "two", "PW_B_INBOX": "three", "PW_C_SMTP": "x"}
    a = {"apiVersion": "mailform/v1", "kind": "EmailAccount", "metadata": {"name": "a"},
         "spec": {"type": "marketing", "email": "a@example.com", "display_name": "A",
                  "shared": True}}
    b = yaml.safe_load(yaml.safe_dump(a)) | {"metadata": {"name": "b"}}
    b["spec"] = {"type": "smtp", "email": "b@example.com", "display_name": "B", "shared": True,
                 "smtp": {"host": "h.example.com", "port": 587, "security": "starttls",
                          "password": {"env": "PW_B_SMTP"}}}
    seen: set = set()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/reg.db"
        _round(Path(tmp), url, {"a": a, "b": b}, env, [], seen)
        a2 = {**a, "spec": {**b["spec"], "email": "a@example.com"}}          # replace
        b2 = {**b, "spec": {**b["spec"], "display_name": "B2"}}              # update
        _round(Path(tmp), url, {"a": a2, "b": b2}, env,
               [("b", "smtp.password", "typed"), ("b", "reply_to.name", "R")], seen)
        _round(Path(tmp), url, {"b": b2}, env, [("a", "display_name", "Z")], seen)   # delete
        _round(Path(tmp), url, {}, env, [], seen)
    assert seen == {"create", "update", "delete", "replace"}


# --- whole CLI rounds -----------------------------------------------------------------

@settings(max_examples=1, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_apply_then_plan_gives_no_changes_through_the_cli(tmp_path_factory, data):
    cli = Cli(tmp_path_factory.mktemp("cli-round"))
    accounts: dict = {}
    env: dict[str, str] = {}
    for round_no in range(2):
        accounts = data.draw(edit(accounts).filter(bool), label=f"round {round_no}")
        env = data.draw(secrets_for(accounts, env), label="secrets")
        env = {k: v.replace("\x00", "") or "z" for k, v in env.items()}
        cli.write("manifests/all.yaml", dump([accounts[n] for n in sorted(accounts)]))
        if round_no:
            with cli.registry() as reg:
                name = sorted(reg.accounts())[0]
            assert cli.run("registry", "set", name, "display_name=Out of band").code == 0
        applied = cli.apply("--force", env=env)
        assert applied.code == 0, applied
        after = cli.plan("--detailed-exitcode", env=env)
        assert after.code == 0, after
