"""reconciler.metrics: /metrics, /healthz and /readyz over real HTTP; the alert rules."""
from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from reconciler import metrics

ROOT = Path(__file__).resolve().parent.parent


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_health_and_readiness_over_http():
    state = {"ready": False}
    stop = metrics.start("127.0.0.1:0", lambda: state["ready"])
    try:
        metrics.job_done("scan", "ok", 0.2)
        metrics.MESSAGES.labels(verdict="hard").inc(3)
        metrics.FAULTY.inc(2)
        status, body = _get(stop.port, "/metrics")
        assert status == 200
        assert 'mailform_jobs_total{kind="scan",outcome="ok"}' in body
        assert 'mailform_job_duration_seconds_bucket{kind="scan",le="0.25"}' in body
        assert 'mailform_messages_scanned_total{verdict="hard"}' in body
        assert "mailform_contacts_marked_faulty_total" in body
        assert _get(stop.port, "/healthz") == (200, "ok\n")
        assert _get(stop.port, "/readyz")[0] == 503
        state["ready"] = True
        assert _get(stop.port, "/readyz")[0] == 200
        assert _get(stop.port, "/nothing")[0] == 404
    finally:
        stop()


def test_a_readiness_probe_that_raises_is_not_ready():
    def broken() -> bool:
        raise OSError("database down")
    stop = metrics.start("127.0.0.1:0", broken)
    try:
        assert _get(stop.port, "/readyz")[0] == 503
        assert _get(stop.port, "/healthz")[0] == 200
    finally:
        stop()


@pytest.mark.parametrize("listen, expected", [
    ("127.0.0.1:9108", ("127.0.0.1", 9108)), (":9108", ("0.0.0.0", 9108)),
    ("[::1]:9108", ("::1", 9108))])
def test_parse_listen(listen, expected):
    assert metrics.parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9108", "host:", "host:99999", "host:port"])
def test_parse_listen_refuses(listen):
    with pytest.raises(ValueError, match="HOST:PORT"):
        metrics.parse_listen(listen)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_alert_rules_pass_promtool():
    rules = ROOT / "docs" / "prometheus" / "alerts.yml"
    done = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_scrape_config_passes_promtool(tmp_path):
    config = (ROOT / "docs" / "prometheus" / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(ROOT / "docs" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    done = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_reconcile_serves_metrics_and_stops_on_sigterm(tmp_path):
    import os
    import signal
    import socket
    import sys
    import time
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.yaml").write_text(
        "apiVersion: mailform/v1\nkind: EmailAccount\nmetadata: {name: news}\n"
        "spec: {type: marketing, email: news@example.com, display_name: News, shared: true}\n")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/r.db", NO_COLOR="1")
    env.pop("MAILFORM_MASTER_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "reconcile", str(tmp_path / "m"),
                             "--auto-apply", "--interval", "0.5", "--metrics-listen",
                             f"127.0.0.1:{port}", "--log-format", "json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, body = time.monotonic() + 60, ""
        while time.monotonic() < deadline and 'type="Applied"} 1.0' not in body:
            time.sleep(0.3)
            try:
                body = _get(port, "/metrics")[1]
            except OSError:
                continue
        assert 'mailform_accounts_condition{status="True",type="Applied"} 1.0' in body
        assert "mailform_registry_serial 1.0" in body
        assert 'mailform_last_success_timestamp_seconds{kind="reconcile"}' in body
        assert _get(port, "/readyz")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    import json
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert events and all(e["event"] == "reconcile_pass" for e in events)
    assert events[0]["result"] == "applied"


def _readme_block(name: str) -> str:
    """The ```yaml block of README.md whose first line is ``# name``."""
    import re
    text = (ROOT / "README.md").read_text()
    found = re.search(r"```yaml\n(# " + re.escape(name) + r"\n.*?)```", text, re.S)
    assert found, f"README.md has no yaml block starting with '# {name}'"
    return found.group(1)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_readmes_scrape_config_and_alert_rules_pass_promtool(tmp_path):
    """What a reader copies from the README (not only the files in docs/) is valid."""
    (tmp_path / "alerts.yml").write_text(_readme_block("alerts.yml"))
    (tmp_path / "prometheus.yml").write_text(_readme_block("prometheus.yml"))
    rules = subprocess.run(["promtool", "check", "rules", str(tmp_path / "alerts.yml")],
                           capture_output=True, text=True, timeout=60)
    assert rules.returncode == 0 and "SUCCESS: 4 rules found" in rules.stdout, \
        rules.stdout + rules.stderr
    config = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert config.returncode == 0, config.stdout + config.stderr
