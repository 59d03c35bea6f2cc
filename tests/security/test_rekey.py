"""Key rotation: `mailform registry rekey` re-encrypts every secret and re-keys every
fingerprint in one transaction; the old key no longer opens the registry, saved plans from
before say they are stale, no key is ever printed, and a crash at any point (a SIGKILL
before the commit, or between the commit and the key file's rename) leaves a registry that
opens with its key."""
from __future__ import annotations

import base64
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

from clihelpers import Cli, smtp_account
from reconciler.errors import RegistryError, WrongKeyError
from reconciler.registry import open_registry
from reconciler.registry.crypto import generate_key
from test_registry_support import REPO, account, apply, backend, reg_url  # noqa: F401

SECRETS = {"SUPPORT_SMTP_PASSWORD": "pw-support-1", "ALICE_SMTP_PASSWORD": "pw-alice-1"}


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path, env=dict(SECRETS))
    c.write_accounts([smtp_account("support"), smtp_account("alice")])
    applied = c.apply()
    assert applied.code == 0, applied
    return c


def _key(cli: Cli, suffix: str = ".key") -> str:
    return cli.db.with_name(cli.db.name + suffix).read_text().strip()


def _raw_db(cli: Cli) -> bytes:
    conn = sqlite3.connect(cli.db)
    try:
        return "\n".join(conn.iterdump()).encode()
    finally:
        conn.close()


def _no_key_in(result, *keys: str) -> None:
    for key in keys:
        raw = base64.urlsafe_b64decode(key)
        for form in (key, key.rstrip("="), raw.hex(), base64.b64encode(raw).decode()):
            assert form not in result.text, result


def test_rekey_with_a_key_file_rotates_everything_and_plans_stay_empty(cli):
    old_key = _key(cli)
    with cli.registry() as reg:
        old_fps = {n: a.fingerprints for n, a in reg.accounts().items()}
    before = _raw_db(cli)
    result = cli.run("registry", "rekey")
    assert result.code == 0, result
    new_key = _key(cli)
    assert new_key != old_key
    _no_key_in(result, old_key, new_key)
    assert "re-keyed: 2 account(s)" in result.out and "back it up" in result.out
    assert stat.S_IMODE(os.stat(f"{cli.db}.key").st_mode) == 0o600
    assert not os.path.exists(f"{cli.db}.key.new")
    after = _raw_db(cli)
    for fps in old_fps.values():
        for fp in fps.values():
            assert fp.encode() in before and fp.encode() not in after
    with cli.registry() as reg:
        assert reg.secrets("support") == {"smtp.password": "pw-support-1"}
        assert reg.meta().serial == 2 and reg.rekeyed_serial() == 2
        assert reg.history()[-1]["action"] == "rekey"
        assert reg.account("alice").fingerprints["smtp.password"] == \
            reg.fingerprint("smtp.password", "pw-alice-1")
    plan = cli.plan("--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan
    assert "key rotated (2 account(s) re-encrypted)" in cli.run("history").out


def test_old_key_file_no_longer_opens_and_says_why(cli):
    old_key = _key(cli)
    assert cli.run("registry", "rekey").code == 0
    cli.db.with_name(cli.db.name + ".key").write_text(old_key)
    listed = cli.run("state", "list")
    assert listed.code == 1 and "different key" in listed.err, listed
    assert "registry rekey` at serial 2" in listed.err
    _no_key_in(listed, old_key)


def test_drift_on_a_secret_survives_the_rekey(cli):
    assert cli.run("registry", "set", "alice", "smtp.password=typed-by-hand").code == 0
    assert cli.run("registry", "rekey").code == 0
    with cli.registry() as reg:
        alice = reg.account("alice")
        assert reg.secrets("alice") == {"smtp.password": "typed-by-hand"}
        assert alice.fingerprints["smtp.password"] == reg.fingerprint("smtp.password",
                                                                      "typed-by-hand")
        assert alice.applied_fingerprints != alice.fingerprints
    plan = cli.plan("--format", "json")
    body = __import__("json").loads(plan.out)
    assert [d["address"] for d in body["drift"]] == ["account.alice"]
    assert body["summary"] == {"add": 0, "change": 1, "destroy": 0}
    assert cli.apply().code == 0
    assert "No changes" in cli.plan().out


def test_a_saved_plan_from_before_the_rekey_is_stale_and_says_so(cli):
    cli.write_accounts([smtp_account("support", display_name="New"), smtp_account("alice")])
    assert cli.plan("-o", "before.plan").code == 0
    assert cli.run("registry", "rekey").code == 0
    applied = cli.run("apply", "--auto-approve", "--skip-verify", "before.plan")
    assert applied.code == 4, applied
    assert "the registry was re-keyed since this plan was made; run plan again" in applied.err
    assert cli.plan("-o", "after.plan").code == 0
    again = cli.run("apply", "--auto-approve", "--skip-verify", "after.plan")
    assert again.code == 0, again


def test_an_edited_plan_claiming_an_old_serial_is_still_refused(cli):
    assert cli.run("registry", "rekey").code == 0
    cli.write_accounts([smtp_account("support", display_name="New"), smtp_account("alice")])
    assert cli.plan("-o", "p.plan").code == 0
    text = (cli.dir / "p.plan").read_text()
    (cli.dir / "p.plan").write_text(text.replace('"serial": 2', '"serial": 1'))
    applied = cli.run("apply", "--auto-approve", "--skip-verify", "p.plan")
    assert applied.code == 4 and "re-keyed" in applied.err, applied
    with cli.registry() as reg:
        assert reg.meta().serial == 2


def test_env_key_needs_a_new_key_variable_and_never_prints_it(reg_url, monkeypatch, tmp_path):
    old = generate_key()
    monkeypatch.setenv("MAILFORM_MASTER_KEY", old)
    with open_registry(reg_url) as reg:
        apply(reg, account("a", secret="s-a"), account("b", secret=None))
    env = {"MAILFORM_MASTER_KEY": old, "MAILFORM_REGISTRY": reg_url, "MAILFORM_ACTOR": "op"}
    cli = Cli(tmp_path / "op", env=env)
    refused = cli.run("registry", "rekey")
    assert refused.code == 1 and "--new-key-env" in refused.err, refused
    new = generate_key()
    done = cli.run("registry", "rekey", "--new-key-env", "NEXT_KEY", env={"NEXT_KEY": new})
    assert done.code == 0, done
    assert "set MAILFORM_MASTER_KEY to the value of NEXT_KEY" in done.out
    _no_key_in(done, old, new)
    with pytest.raises(WrongKeyError, match="registry rekey"):
        open_registry(reg_url)
    monkeypatch.setenv("MAILFORM_MASTER_KEY", new)
    with open_registry(reg_url) as reg:
        assert reg.secrets("a") == {"smtp.password": "s-a"} and reg.secrets("b") == {}
        assert reg.meta().serial == 2 and reg.history()[-1]["actor"] == "op"
        assert reg.account("a").fingerprints == {
            "smtp.password": reg.fingerprint("smtp.password", "s-a")}


@pytest.mark.parametrize("value, message", [
    (None, "not set or empty"), ("short", "the new key in NEXT_KEY is malformed"),
])
def test_a_bad_new_key_is_named_not_shown(cli, value, message):
    before = _raw_db(cli)
    result = cli.run("registry", "rekey", "--new-key-env", "NEXT_KEY", env={"NEXT_KEY": value})
    assert result.code == 1 and message in result.err, result
    assert "short" not in result.err.replace("NEXT_KEY", "")
    assert _raw_db(cli) == before


def test_the_current_key_or_the_master_variable_is_refused(cli):
    current = _key(cli)
    same = cli.run("registry", "rekey", "--new-key-env", "K", env={"K": current})
    assert same.code == 1 and "is the registry's current key" in same.err, same
    _no_key_in(same, current)
    master = cli.run("registry", "rekey", "--new-key-env", "MAILFORM_MASTER_KEY")
    assert master.code == 1 and "another variable" in master.err


def test_a_key_file_registry_may_take_the_new_key_from_a_variable(cli):
    new = generate_key()
    done = cli.run("registry", "rekey", "--new-key-env", "K", env={"K": new})
    assert done.code == 0 and new not in done.text, done
    assert _key(cli) == new


def test_rekey_waits_for_the_lock_and_exits_5(cli):
    with cli.registry() as reg, reg.lock("someone else"):
        result = cli.run("registry", "rekey")
    assert result.code == 5 and "someone else" in result.err, result
    assert not os.path.exists(f"{cli.db}.key.new")


def test_a_registry_opened_before_a_rekey_writes_nothing_after_it(cli):
    with cli.registry() as stale:
        assert cli.run("registry", "rekey").code == 0
        with pytest.raises(WrongKeyError, match="re-keyed since this command opened it"):
            stale.set_field("alice", "smtp.password", "with-the-old-key")
        with pytest.raises(WrongKeyError, match="re-keyed since"):
            apply(stale, account("c"))
    with cli.registry() as reg:
        assert set(reg.accounts()) == {"alice", "support"}
        assert reg.secrets("alice") == {"smtp.password": "pw-alice-1"}


def test_a_failed_rekey_changes_nothing(cli, monkeypatch):
    from reconciler.registry import rekey as rekey_module
    old_key, before = _key(cli), _raw_db(cli)

    def boom(*args):
        raise RegistryError("disk on fire")
    monkeypatch.setattr(rekey_module, "reencrypt", boom)
    with cli.registry() as reg, pytest.raises(RegistryError, match="disk on fire"):
        reg.rekey(None, holder="tests")
    assert _key(cli) == old_key and _raw_db(cli) == before
    assert not os.path.exists(f"{cli.db}.key.new")
    with cli.registry() as reg:
        assert reg.current_lock() is None


# -- crashes: a real SIGKILL at the two points that matter ------------------------------

_KILL_CHILD = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from reconciler.registry import keyfile, open_registry, rekey
where = sys.argv[1]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
if where == "before-commit":
    rekey.reencrypt = die
else:
    keyfile.install = die
with open_registry(os.environ["MAILFORM_REGISTRY"]) as reg:
    reg.rekey(None, holder="doomed")
"""


def _kill_rekey(cli: Cli, where: str) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILL_CHILD.format(repo=str(REPO)), where],
                          env=cli.env, cwd=cli.dir, capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_sigkill_before_the_commit_keeps_the_old_key(cli):
    old_key = _key(cli)
    _kill_rekey(cli, "before-commit")
    assert _key(cli) == old_key
    assert os.path.exists(f"{cli.db}.key.new")      # the new key, never committed to
    listed = cli.run("state", "list")
    assert listed.code == 0 and "2 account(s)" in listed.out, listed
    with cli.registry() as reg:
        assert reg.secrets("alice") == {"smtp.password": "pw-alice-1"}
        assert reg.rekeyed_serial() == 0 and reg.meta().serial == 1
    assert cli.run("registry", "rekey").code == 0  # the stale lock (dead pid) and .new replaced
    assert _key(cli) != old_key and not os.path.exists(f"{cli.db}.key.new")
    assert "No changes" in cli.plan().out


def test_sigkill_between_commit_and_rename_is_finished_on_open(cli):
    old_key = _key(cli)
    _kill_rekey(cli, "after-commit")
    new_key = _key(cli, ".key.new")
    assert _key(cli) == old_key and new_key != old_key
    listed = cli.run("state", "list")
    assert listed.code == 0 and "2 account(s)" in listed.out, listed
    assert _key(cli) == new_key and not os.path.exists(f"{cli.db}.key.new")
    assert stat.S_IMODE(os.stat(f"{cli.db}.key").st_mode) == 0o600
    with cli.registry() as reg:
        assert reg.secrets("alice") == {"smtp.password": "pw-alice-1"}
        assert reg.rekeyed_serial() == 2
    assert "No changes" in cli.plan().out


def test_a_backup_restores_with_the_key_it_was_taken_with(cli, tmp_path):
    """README's recipe: SQLite's backup of the database plus a copy of its key file."""
    backup = tmp_path / "backup"
    backup.mkdir()
    source, target = sqlite3.connect(cli.db), sqlite3.connect(backup / "reg.db")
    source.backup(target)
    source.close()
    target.close()
    (backup / "reg.db.key").write_text(_key(cli))
    assert cli.run("registry", "rekey").code == 0
    restored = cli.run("state", "list", env={"MAILFORM_REGISTRY": f"sqlite:///{backup}/reg.db"})
    assert restored.code == 0 and "2 account(s)" in restored.out, restored
    (backup / "reg.db.key").write_text(_key(cli))          # today's key, yesterday's backup
    mixed = cli.run("state", "list", env={"MAILFORM_REGISTRY": f"sqlite:///{backup}/reg.db"})
    assert mixed.code == 1 and "different key" in mixed.err, mixed


def test_a_password_in_the_postgres_url_is_not_printed(reg_url, backend, monkeypatch, tmp_path):
    if backend != "postgres":
        pytest.skip("PostgreSQL only")
    parts = urlsplit(reg_url)
    user = parts.username or "postgres"
    if parts.password:
        pytest.skip("the test server's URL has a password of its own")
    host = parts.netloc.rsplit("@", 1)[-1]
    url = urlunsplit(parts._replace(netloc=f"{user}:hunter2-secret@{host}"))
    env = {"MAILFORM_MASTER_KEY": os.environ["MAILFORM_MASTER_KEY"], "MAILFORM_REGISTRY": url,
           "NEXT_KEY": generate_key()}
    cli = Cli(tmp_path / "op", env=env)
    for args in (("registry", "init"), ("registry", "rekey", "--new-key-env", "NEXT_KEY")):
        result = cli.run(*args)
        assert result.code == 0 and "hunter2-secret" not in result.text, result
        assert f"{user}:***@" in result.out


def test_rekey_creates_no_registry(tmp_path):
    cli = Cli(tmp_path)
    result = cli.run("registry", "rekey")
    assert result.code == 1 and "nothing to re-key" in result.err, result
    assert not cli.db.parent.exists() or cli.db_files() == []
