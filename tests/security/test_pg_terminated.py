"""A PostgreSQL connection terminated in the middle of an apply (`pg_terminate_backend`
from another session, as a DBA or a failover would): the apply fails with the registry
error — exit 1, a message that says the connection was lost and nothing was written — not
"internal error"; the transaction is rolled back, and the lock is released (a new
connection does it), so the next apply goes ahead at once."""
from __future__ import annotations

import time
import uuid

import pytest

from clihelpers import Cli, dump, smtp_account
from reconciler.errors import RegistryError
from reconciler.registry import open_registry
from reconciler.registry.crypto import generate_key
from reconciler.workflow.inputs import Inputs, load
from reconciler.workflow.run import ApplyRequest, AutoApprove, Status, apply
from test_registry_support import PG_URL, _postgres_available

pytestmark = pytest.mark.skipif(not _postgres_available(), reason="no PostgreSQL server")
psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def pg(monkeypatch, tmp_path):
    """A registry in a schema of its own, its URL, the manifests, and an admin session."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    app = f"mailform-test-{uuid.uuid4().hex[:8]}"      # finds our backend, not a neighbour's
    env = {"MAILFORM_MASTER_KEY": generate_key(), "PGAPPNAME": app,
           "SUPPORT_SMTP_PASSWORD": "pw-support"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(dump([smtp_account("support")]))
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        yield {"url": f"{PG_URL}?schema={schema}", "app": app, "admin": admin, "env": env,
               "manifests": str(tmp_path / "m")}
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def _terminate(admin, app: str, where: str = "") -> int:
    rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                         "application_name = %s AND pid <> pg_backend_pid()" + where,
                         (app,)).fetchall()
    return len(rows)


def _untouched(url: str) -> None:
    with open_registry(url) as reg:
        assert reg.meta().serial == 0 and reg.accounts() == {} and reg.history() == []
        assert reg.current_lock() is None


def test_terminated_inside_the_apply_transaction_is_a_registry_error(pg):
    def kill_while_writing(event):
        if event.kind == "writing":
            assert _terminate(pg["admin"], pg["app"]) == 1

    request = ApplyRequest(loaded=load(Inputs((pg["manifests"],))))
    with open_registry(pg["url"]) as reg:
        with pytest.raises(RegistryError) as err:
            apply(reg, request, AutoApprove(), None, kill_while_writing)
        assert type(err.value) is RegistryError
        message = str(err.value)
        assert "the connection to the database was lost" in message
        assert "rolled back: nothing was written" in message
        assert "terminating connection" in message
        _untouched(pg["url"])
        outcome = apply(reg, request, AutoApprove(), None)     # the same object reconnects
        assert outcome.status is Status.APPLIED and outcome.result.serial == 1


def test_the_cli_exits_1_with_the_registry_error(pg, tmp_path):
    """The real CLI in a process; the admin session holds the serial's row, so the apply
    waits inside its transaction (accounts written, serial not yet bumped) until it is
    terminated there."""
    admin = pg["admin"]          # watches and terminates (outside any transaction: fresh stats)
    with open_registry(pg["url"]):
        pass                                            # created before the row is held
    cli = Cli(tmp_path / "cli", env={**pg["env"], "MAILFORM_REGISTRY": pg["url"]})
    with psycopg.connect(PG_URL, autocommit=True) as holder, holder.transaction():
        holder.execute(f"SELECT value FROM {pg['url'].rsplit('=', 1)[1]}.meta "
                       "WHERE key = 'serial' FOR UPDATE")
        proc = cli.popen("apply", "--auto-approve", "--skip-verify", pg["manifests"])
        _wait_for_waiting_backend(admin, pg["app"], proc)
        assert _terminate(admin, pg["app"], " AND wait_event_type = 'Lock'") == 1
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, (out, err)
    assert "internal error" not in err and "OperationalError" not in err
    assert "the connection to the database was lost" in err, err
    assert "nothing was written" in err
    _untouched(pg["url"])
    again = cli.apply(pg["manifests"])
    assert again.code == 0, again


def _wait_for_waiting_backend(admin, app: str, proc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                            "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE meta%%'",
                            (app,)).fetchone()
        if row[0]:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the apply ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the apply never waited on the serial's row")


def test_terminated_between_commands_reconnects(pg):
    with open_registry(pg["url"]) as reg:
        assert _terminate(pg["admin"], pg["app"]) == 1
        with pytest.raises(RegistryError, match="connection to the database was lost"):
            reg.accounts()                              # the read that meets the dead session
        assert reg.accounts() == {}                     # the next one has a new connection


def test_when_the_server_stays_away_the_error_says_how_the_lock_ends(pg, monkeypatch):
    from reconciler.registry.postgres import PostgresBackend
    reconnect = PostgresBackend.reconnect

    def kill_while_writing(event):
        if event.kind == "writing":
            _terminate(pg["admin"], pg["app"])
            monkeypatch.setattr(PostgresBackend, "reconnect", _server_gone)

    request = ApplyRequest(loaded=load(Inputs((pg["manifests"],))))
    with open_registry(pg["url"]) as reg:
        with pytest.raises(RegistryError) as err:
            apply(reg, request, AutoApprove(), None, kill_while_writing)
    message = str(err.value)
    assert "connection to the database was lost" in message and "nothing was written" in message
    assert "the registry lock" in message and "force-unlock" in message
    monkeypatch.setattr(PostgresBackend, "reconnect", reconnect)
    with open_registry(pg["url"]) as reg:
        held = reg.current_lock()
        assert held is not None and held.id in message
        assert reg.meta().serial == 0 and reg.accounts() == {}


def _server_gone(self):
    raise RegistryError("cannot open the registry: connection refused")
