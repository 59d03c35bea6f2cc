"""Prometheus metrics and the health endpoints of long-running commands.

`start("HOST:PORT", ready)` serves, from a daemon thread:

* ``/metrics``  the metrics below in Prometheus' text format;
* ``/healthz``  200 while the process is alive;
* ``/readyz``   200 when ``ready()`` is true (the registry is reachable), else 503.

The metric objects are module-level, so any layer that may import this module
counts into them; this module imports nothing of ours.
"""
from __future__ import annotations

import threading
from typing import Callable, Optional
from wsgiref.simple_server import make_server

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

JOBS = Counter("mailform_jobs", "Jobs finished, by kind and outcome "
               "(ok, failed, retried, terminal).", ["kind", "outcome"])
JOB_SECONDS = Histogram("mailform_job_duration_seconds", "How long one job ran, by kind.",
                        ["kind"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
                                           300, 900))
CHECKS = Counter("mailform_checks", "Connectivity checks (verify probes), by result code.",
                 ["code"])
MESSAGES = Counter("mailform_messages_scanned", "Inbox messages scanned, by verdict.",
                   ["verdict"])
FAULTY = Counter("mailform_contacts_marked_faulty", "Contacts newly marked faulty.")
DRIFT = Gauge("mailform_drift_accounts", "Accounts whose registry entry drifted from the "
              "manifests at the last reconcile pass.")
SERIAL = Gauge("mailform_registry_serial", "The registry's serial as last seen.")
LAST_SUCCESS = Gauge("mailform_last_success_timestamp_seconds", "Unix time of the last "
                     "successful pass, by kind (scan, verify, reconcile); the process's "
                     "start until its first.", ["kind"])
_CONDITIONS_HELP = ("Accounts by status condition type and status (True, False, Unknown), "
                    "read from the registry at scrape time.")



class _Conditions:
    """``mailform_accounts_condition``: counted by ``source()`` on every scrape, so every
    worker reports the registry's current figures, not what it saw last."""

    source: Optional[Callable[[], dict]] = None

    def collect(self):
        family = GaugeMetricFamily("mailform_accounts_condition", _CONDITIONS_HELP,
                                   labels=["type", "status"])
        try:
            counts = self.source() if self.source is not None else {}
        except Exception:        # the registry unreachable: no figures rather than a 500
            counts = {}
        for (type_, status), value in sorted(counts.items()):
            family.add_metric([type_, status], value)
        yield family


_CONDITIONS = _Conditions()
REGISTRY.register(_CONDITIONS)


def conditions_source(source: Callable[[], dict], max_age: float = 15.0) -> None:
    """Where ``mailform_accounts_condition`` comes from: () -> {(type, status): count},
    asked at most every ``max_age`` seconds."""
    import time
    last: dict = {"at": -max_age, "value": {}}

    def cached() -> dict:
        if time.monotonic() - last["at"] >= max_age:
            last["value"], last["at"] = source(), time.monotonic()
        return last["value"]
    _CONDITIONS.source = cached


_TEXT = [("Content-Type", "text/plain; charset=utf-8")]


def parse_listen(listen: str) -> tuple[str, int]:
    """'HOST:PORT', ':PORT' or '[v6]:PORT' -> (host, port); ValueError when malformed."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--metrics-listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:9108")
    return host.strip("[]") or "0.0.0.0", int(port)


def _ready_status(ready: Callable[[], bool]) -> str:
    try:
        return "200 OK" if ready() else "503 Service Unavailable"
    except Exception:           # a readiness probe that raises is simply not ready
        return "503 Service Unavailable"


def app(ready: Callable[[], bool]):
    """The WSGI application behind `start` (also usable under another server)."""
    metrics_app = make_wsgi_app()

    def serve(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", _TEXT)
            return [b"ok\n"]
        if path == "/readyz":
            status = _ready_status(ready)
            start_response(status, _TEXT)
            return [b"ready\n" if status.startswith("200") else b"not ready\n"]
        if path in ("/metrics", "/"):
            return metrics_app(environ, start_response)
        start_response("404 Not Found", _TEXT)
        return [b"not found: try /metrics, /healthz or /readyz\n"]
    return serve


class Stop:
    """Stops the server when called; ``port`` is the port it bound (useful with :0)."""

    def __init__(self, server, thread: threading.Thread):
        self.server, self.thread = server, thread
        self.port = server.server_address[1]

    def __call__(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start(listen: str, ready: Callable[[], bool]) -> Stop:
    """Serve /metrics, /healthz and /readyz on ``listen`` from a daemon thread."""
    host, port = parse_listen(listen)

    class Server(ThreadingWSGIServer):
        address_family = _family(host)

    server = make_server(host, port, app(ready), Server, handler_class=_SilentHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return Stop(server, thread)


def _family(host: str) -> int:
    import socket
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def runs(*kinds: str) -> None:
    """This process runs these kinds of pass: each one's last success starts as now, so
    that a process that never succeeds is seen (an alert on the time since the last
    success fires) even where no earlier process's figure remains, e.g. after a restart."""
    for kind in kinds:
        LAST_SUCCESS.labels(kind=kind).set_to_current_time()


def job_done(kind: str, outcome: str, seconds: float) -> None:
    """Count one finished job and its duration."""
    JOBS.labels(kind=kind, outcome=outcome).inc()
    JOB_SECONDS.labels(kind=kind).observe(seconds)
