"""The README's scrape config and alert rules loaded into a real Prometheus server
(Debian's package) scraping a real worker: the target is up, every rule evaluates
without error, and the alerts fire for what they are about. The rules are the README's
own, with their durations shortened (3 intervals of 2 s, no ``for:``) so that a test
can wait for them: a worker whose scans never succeed (its account's password was
changed on the server) trips the "no successful scan" alert even though no process
ever recorded a success, and its account not logging in trips "not Verified"."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest

import fleetkit
from test_metrics import _readme_block
from test_verify_smtp import free_port

pytestmark = [pytest.mark.mailstack,
              pytest.mark.skipif(shutil.which("prometheus") is None,
                                 reason="prometheus is not installed")]
PASSWORD = "prom-Secret-1"


def _shortened(rules: str) -> str:
    """The README's rules, their waits cut to seconds."""
    rules = rules.replace("> 3 * 300", "> 3 * 2")
    return re.sub(r"for: \d+[smh]", "for: 0s", rules)


def _config(worker_port: int) -> str:
    config = _readme_block("prometheus.yml")
    config = config.replace("scrape_interval: 30s", "scrape_interval: 1s")
    config = config.replace("evaluation_interval: 30s", "evaluation_interval: 1s")
    config = re.sub(r"targets: \[worker-1[^\]]*\]", f"targets: ['127.0.0.1:{worker_port}']",
                    config)
    assert f"127.0.0.1:{worker_port}" in config, config
    return config


def _api(port: int, path: str, **params) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def test_a_real_prometheus_scrapes_a_worker_and_the_readmes_alerts_fire(
        mailstack, tmp_path, monkeypatch):
    url, key = fleetkit.new_database("mf_prom"), fleetkit.master_key()
    monkeypatch.setenv("MAILFORM_MASTER_KEY", key)
    procs: list = []
    try:
        env = fleetkit.env_for(mailstack, url, key, PASSWORD)
        manifests, failed = fleetkit.make_accounts(mailstack, tmp_path, 1, 1, PASSWORD)
        fleetkit.apply_with_contacts(env, manifests, failed, tmp_path)
        (name,) = fleetkit._locals(manifests.joinpath("accounts.yaml").read_text()
                                   .split("---\n")[1:])
        mailstack.add_user(name, "changed-" + PASSWORD)   # the stored password fails now
        worker_port, prom_port = free_port(), free_port()
        procs.append(fleetkit.start_worker(
            env, "--scan-interval", "2s", "--verify-interval", "2s", "--timeout", "10",
            "--metrics-listen", f"127.0.0.1:{worker_port}", log=tmp_path / "worker.log"))
        (tmp_path / "alerts.yml").write_text(_shortened(_readme_block("alerts.yml")))
        (tmp_path / "prometheus.yml").write_text(_config(worker_port))
        with open(tmp_path / "prometheus.log", "wb") as log:
            procs.append(subprocess.Popen(
                ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path))

        def target_up():
            try:
                targets = _api(prom_port, "targets")["activeTargets"]
            except OSError:
                return None
            return [t for t in targets if t["scrapeUrl"].startswith(
                f"http://127.0.0.1:{worker_port}/") and t["health"] == "up"]
        fleetkit.wait_for(target_up, 90, poll=1)

        def firing():
            alerts = _api(prom_port, "alerts")["alerts"]
            return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
        fired = fleetkit.wait_for(
            lambda: {"MailformNoSuccessfulScan", "MailformAccountsNotVerified"} <= firing()
            and firing(), 120, poll=1)
        assert "MailformNoSuccessfulReconcilePass" not in fired     # this worker runs none
        rules = [rule for group in _api(prom_port, "rules")["groups"]
                 for rule in group["rules"]]
        assert len(rules) == 4 and all(r["health"] == "ok" for r in rules), rules
        scanned = _api(prom_port, "query",
                       query='mailform_last_success_timestamp_seconds{kind="scan"}')
        assert len(scanned["result"]) == 1                  # the worker's start, so far
        assert procs[0].poll() is None
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        fleetkit.drop_database(url)
