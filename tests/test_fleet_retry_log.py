"""A job that fails for now says so in the worker's log (text and JSON), with its kind,
account and error, before the queue retries it; nothing else changes (it is retried,
counted as "retried")."""
from __future__ import annotations

import json
import logging

import pytest

from reconciler import metrics
from reconciler.cli.logfmt import JsonFormatter, TextFormatter
from reconciler.errors import RegistryError
from reconciler.fleet import jobs


def _retried(kind: str) -> float:
    return metrics.JOBS.labels(kind=kind, outcome="retried")._value.get()


@pytest.mark.parametrize("error, text", [
    (jobs.Transient("imap 127.0.0.1:993: timeout: no answer within 5s (during SELECT)"),
     "imap 127.0.0.1:993: timeout: no answer within 5s (during SELECT)"),
    (RegistryError("registry unreachable: connection refused\nmore detail"),
     "registry unreachable: connection refused")])
def test_a_transient_failure_is_logged_and_retried(caplog, error, text):
    def work(config, account, force):
        raise error
    before = _retried("scan")
    with caplog.at_level(logging.WARNING, logger="mailform.fleet"):
        with pytest.raises(jobs.Transient):
            jobs.timed("scan", ("news", jobs.SCANNED), work, None, "news", True)
    assert _retried("scan") == before + 1
    (record,) = [r for r in caplog.records if getattr(r, "event", "") == "job_retried"]
    assert record.levelno == logging.WARNING and record.account == "news"
    assert record.kind == "scan" and record.error == text
    line = TextFormatter().format(record)
    assert f"scan job failed, to be retried: {text}" in line and "account=news" in line
    body = json.loads(JsonFormatter().format(record))
    assert body["event"] == "job_retried" and body["account"] == "news"


def test_a_job_that_succeeds_logs_nothing(caplog):
    with caplog.at_level(logging.WARNING, logger="mailform.fleet"):
        assert jobs.timed("verify", ("news", jobs.VERIFIED), lambda *a: "ok", None) == "ok"
    assert not caplog.records
