"""Secrets at rest: key file, master key, wrong key, nothing in clear on disk."""
from __future__ import annotations

import os
import stat
import uuid

import pytest

from reconciler.errors import RegistryError, WrongKeyError
from reconciler.registry import open_registry
from reconciler.registry.crypto import KeyRing, MalformedKeyError, generate_key
from test_registry_support import account, apply, backend, reg_url, registry  # noqa: F401


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    return f"sqlite:///{tmp_path}/reg/registry.db"


def test_key_file_is_created_beside_the_db_with_mode_0600(db_url, tmp_path):
    os.umask(0o022)
    with open_registry(db_url) as reg:
        assert reg.key_path == tmp_path / "reg" / "registry.db.key"
    mode = stat.S_IMODE(os.stat(tmp_path / "reg" / "registry.db.key").st_mode)
    assert mode == 0o600
    key = (tmp_path / "reg" / "registry.db.key").read_text().strip()
    KeyRing.from_master(__import__("base64").urlsafe_b64decode(key), "test")
    assert not [p for p in (tmp_path / "reg").iterdir() if p.name.endswith(".tmp")]


def test_key_file_is_reused(db_url, tmp_path):
    with open_registry(db_url) as reg:
        apply(reg, account("a", secret="kept"))
    with open_registry(db_url) as reg:
        assert reg.secrets("a") == {"smtp.password": "kept"}


def test_master_key_from_environment_means_no_key_file(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("MAILFORM_MASTER_KEY", generate_key())
    with open_registry(db_url) as reg:
        apply(reg, account("a", secret="env-secret"))
    assert not (tmp_path / "reg" / "registry.db.key").exists()
    with open_registry(db_url) as reg:
        assert reg.secrets("a") == {"smtp.password": "env-secret"}


def test_wrong_master_key_fails_at_open(reg_url, monkeypatch):
    monkeypatch.setenv("MAILFORM_MASTER_KEY", generate_key())
    with open_registry(reg_url) as reg:
        apply(reg, account("a"))
    monkeypatch.setenv("MAILFORM_MASTER_KEY", generate_key())
    with pytest.raises(WrongKeyError, match="encrypted with a different key") as err:
        open_registry(reg_url)
    assert "MAILFORM_MASTER_KEY" in str(err.value)


def test_key_file_registry_opened_with_another_env_key(db_url, monkeypatch, tmp_path):
    with open_registry(db_url):
        pass
    monkeypatch.setenv("MAILFORM_MASTER_KEY", generate_key())
    with pytest.raises(WrongKeyError, match=r"different key \(MAILFORM_MASTER_KEY\)"):
        open_registry(db_url)


def test_wrong_key_file(db_url, tmp_path):
    with open_registry(db_url):
        pass
    (tmp_path / "reg" / "registry.db.key").write_text(generate_key())
    with pytest.raises(WrongKeyError, match="different key.*registry.db.key"):
        open_registry(db_url)


def test_missing_key_file_is_not_silently_recreated(db_url, tmp_path):
    with open_registry(db_url):
        pass
    (tmp_path / "reg" / "registry.db.key").unlink()
    with pytest.raises(WrongKeyError, match="key file .* is missing"):
        open_registry(db_url)
    assert not (tmp_path / "reg" / "registry.db.key").exists()


@pytest.mark.parametrize("bad", ["not base64 !!", "c2hvcnQ=", generate_key()[:-8],
                                 generate_key()[:20] + "!" + generate_key()[20:]],
                         ids=["not-base64", "too-short", "truncated", "bad-character"])
def test_malformed_master_key_is_named(db_url, monkeypatch, bad):
    monkeypatch.setenv("MAILFORM_MASTER_KEY", bad)
    with pytest.raises(MalformedKeyError, match="MAILFORM_MASTER_KEY is malformed") as err:
        open_registry(db_url)
    assert bad not in str(err.value)


def test_malformed_key_file(db_url, tmp_path):
    (tmp_path / "reg").mkdir()
    (tmp_path / "reg" / "registry.db.key").write_text("garbage")
    with pytest.raises(RegistryError, match="registry.db.key is malformed"):
        open_registry(db_url)


def test_ciphertext_is_bound_to_the_account_name(registry):
    apply(registry, account("a", secret="one"), account("b", secret="two"))
    with registry.store.write() as cur:
        cur.execute("UPDATE accounts SET secrets = (SELECT secrets FROM accounts "
                    "WHERE name = 'a') WHERE name = 'b'")
    with pytest.raises(RegistryError, match="account b: its secrets cannot be decrypted"):
        registry.secrets("b")


def test_each_write_uses_a_fresh_nonce(registry):
    apply(registry, account("a", secret="same"))
    first = registry.store.read("SELECT secrets FROM accounts")[0][0]
    apply(registry, account("a", secret="same"))
    second = registry.store.read("SELECT secrets FROM accounts")[0][0]
    assert bytes(first) != bytes(second)


def _disk_bytes(path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.iterdir()
                    if p.name.startswith(path.name) and not p.name.endswith(".key"))


def test_no_secret_in_the_database_files(db_url, tmp_path):
    db = tmp_path / "reg" / "registry.db"
    smtp_secret, inbox_secret, edited = (f"pw-{uuid.uuid4().hex}" for _ in range(3))
    reg = open_registry(db_url)
    write = account("a", secret=smtp_secret)
    write.secrets["inbox.password"] = inbox_secret
    apply(reg, write)
    reg.set_field("a", "smtp.password", edited)
    assert reg.secrets("a")["smtp.password"] == edited
    files = [p.name for p in db.parent.iterdir()]
    assert "registry.db-wal" in files            # checked while the WAL is live...
    for secret in (smtp_secret, inbox_secret, edited):
        assert secret.encode() not in _disk_bytes(db)
    reg.close()
    for secret in (smtp_secret, inbox_secret, edited):   # ...and after close
        assert secret.encode() not in _disk_bytes(db)
        assert secret.encode("utf-16-le") not in _disk_bytes(db)
