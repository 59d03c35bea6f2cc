"""A unique secret value, hunted through every output and every byte of the registry.

validate, plan (human, json, markdown), the saved plan file, apply (from PATHS
and from the file), state list/show, history, import, a drift plan after
`registry set` (of a field and of a secret), and the error paths of a stale
plan: the value must appear in none of their stdout/stderr, nor in the SQLite
database, its -wal and -shm files, or the key file.
"""
from __future__ import annotations

import base64
import uuid

from clihelpers import Cli, marketing_account, smtp_account


def _needles(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw)[:-4], secret.encode("utf-16-le"), raw.hex().encode()]


def test_a_unique_secret_appears_nowhere(tmp_path):
    smtp_secret = f"smtp-{uuid.uuid4().hex}"
    inbox_secret = f"inbox-{uuid.uuid4().hex}"
    operator_secret = f"operator-{uuid.uuid4().hex}"
    changed_secret = f"changed-{uuid.uuid4().hex}"
    secrets = [smtp_secret, inbox_secret, operator_secret, changed_secret]
    cli = Cli(tmp_path, env={"HUNT_SMTP_PASSWORD": smtp_secret})
    cli.write("manifests/inbox.secret", inbox_secret + "\n")
    cli.write_accounts([
        smtp_account("hunt", password_env="HUNT_SMTP_PASSWORD", proxy=True,
                     inbox={"protocol": "imap", "host": "imap.example.com", "port": 993,
                            "security": "ssl", "password": {"file": "inbox.secret"}}),
        marketing_account("other"),
    ])
    outputs: list[str] = []
    db_bytes: list[bytes] = []

    def run(*args, expect=0, **kw):
        result = cli.run(*args, **kw)
        assert result.code == expect, result
        outputs.append(result.out + result.err)
        db_bytes.extend(p.read_bytes() for p in cli.db_files())
        return result

    run("validate")
    for fmt in ("human", "json", "markdown"):
        run("plan", "--format", fmt)
    run("registry", "init")                 # a saved plan is signed with the registry's key
    run("plan", "-o", "plan.json")
    outputs.append((cli.dir / "plan.json").read_text())
    # a stale plan: the secret changed since; the error names the variable, not a value
    stale = run("apply", "--auto-approve", "--skip-verify", "plan.json", expect=4,
                env={"HUNT_SMTP_PASSWORD": changed_secret})
    assert "HUNT_SMTP_PASSWORD" in stale.err
    run("apply", "--auto-approve", "--skip-verify", "plan.json")
    run("state", "list")
    run("state", "list", "--format", "json")
    run("state", "show", "hunt")
    run("state", "show", "hunt", "--format", "json")
    run("history")
    run("history", "--format", "json")
    run("import")
    run("registry", "set", "hunt", "display_name=Drifted")
    run("registry", "set", "hunt", f"smtp.password={operator_secret}")
    for fmt in ("human", "json", "markdown"):
        run("plan", "--format", fmt)
    run("plan", "--detailed-exitcode", expect=2, env={"HUNT_SMTP_PASSWORD": changed_secret})
    run("apply", "--auto-approve", "--skip-verify")
    run("plan", "--detailed-exitcode")

    for secret in secrets:
        for text in outputs:
            assert secret not in text
        for blob in db_bytes:
            for needle in _needles(secret):
                assert needle not in blob, f"{secret} found in the registry files"
    assert any(p.name.endswith("-wal") for p in cli.db_files()) or db_bytes
    assert "(sensitive value)" in "".join(outputs)
