"""Fixtures and helpers shared by the registry tests (imported by test_registry*.py).

``backend`` runs a test once per registry backend. PostgreSQL runs when a server
answers at MAILFORM_TEST_POSTGRES (default postgresql://root@127.0.0.1:5432/test);
each test gets its own schema, dropped afterwards.
"""
from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from reconciler.registry import AccountWrite, open_registry
from reconciler.registry.crypto import generate_key

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("MAILFORM_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")


def _postgres_available() -> bool:
    try:
        import psycopg
        from reconciler.registry.postgres import PostgresRegistry  # noqa: F401
        with psycopg.connect(PG_URL, connect_timeout=2):
            return True
    except Exception:
        return False


def _backends() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    marks = [] if _postgres_available() else [pytest.mark.skip(reason="no PostgreSQL server")]
    params.append(pytest.param("postgres", id="postgres", marks=marks))
    return params


@pytest.fixture(params=_backends())
def backend(request) -> str:
    return request.param


@pytest.fixture
def reg_url(backend, tmp_path, monkeypatch) -> str:
    """A fresh, empty registry location for this test."""
    monkeypatch.delenv("MAILFORM_MASTER_KEY", raising=False)
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/state/registry.db"
        return
    import psycopg
    monkeypatch.setenv("MAILFORM_MASTER_KEY", generate_key())
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG_URL}?schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def registry(reg_url):
    reg = open_registry(reg_url)
    yield reg
    reg.close()


def account(name: str = "newsletter", secret: str | None = "pw-1", **spec) -> AccountWrite:
    body = {"type": "smtp", "email": f"{name}@example.com", "display_name": name.title(),
            "smtp": {"host": "smtp.example.com", "port": 587, "security": "starttls"},
            "labels": {"team": "growth"}}
    body.update(spec)
    secrets = {"smtp.password": secret} if secret is not None else {}
    return AccountWrite(name=name, type=body["type"], spec=body, secrets=secrets,
                        fingerprints={}, status={"activation": "active"})


def apply(reg, *writes: AccountWrite, delete: tuple = ()) -> int:
    """A minimal apply: lock, one transaction, history."""
    with reg.lock("tests") as _lock, reg.transaction() as txn:
        for write in writes:
            txn.put_account(write)
        for name in delete:
            txn.delete_account(name)
        return txn.add_history({"actor": "tests", "counts": {"add": len(writes)},
                                "changes": [w.name for w in writes]})


def snapshot(reg) -> dict:
    """Everything observable about a registry, for before/after comparisons."""
    return {"meta": reg.meta(), "accounts": reg.accounts(), "history": reg.history(),
            "secrets": {name: reg.secrets(name) for name in reg.accounts()},
            "contacts": reg.contacts()}


def spawn(code: str, *args: str) -> subprocess.Popen:
    """A Python child running ``code`` (dedented) with this repo importable."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, expected: str, timeout: float = 30) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else "(nothing before the timeout)"
    if expected not in line:
        proc.kill()
        raise AssertionError(f"child said {line!r}; stderr: {proc.stderr.read()}")
    return line
