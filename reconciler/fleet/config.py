"""What a worker runs with: the registry, the queue's schema, intervals, manifests."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..errors import MailformError
from ..workflow.inputs import Inputs

DEFAULT_SCAN = 300.0
DEFAULT_VERIFY = 3600.0
DEFAULT_RECONCILE = 300.0
QUEUE_SCHEMA = "mailform_queue"
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class FleetError(MailformError):
    """The fleet cannot run as asked (a SQLite registry, a bad interval)."""


def parse_duration(text: object, what: str = "interval") -> float:
    """'90', '90s', '5m', '1h', '1d' (or a number) -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        found = _DURATION.match(str(text))
        if not found:
            raise FleetError(f"{what}: {text!r} is not a duration (e.g. 90s, 5m, 1h)")
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if seconds <= 0:
        raise FleetError(f"{what}: must be more than 0")
    return seconds


def queue_schema(name: str) -> str:
    if not _SCHEMA.match(name):
        raise FleetError(f"--queue-schema {name!r}: lower-case letters, digits and _ only")
    return name


@dataclass(frozen=True)
class FleetConfig:
    registry_url: str
    queue_schema: str = QUEUE_SCHEMA
    scan_interval: float = DEFAULT_SCAN
    verify_interval: float = DEFAULT_VERIFY
    reconcile_interval: float = DEFAULT_RECONCILE
    reconcile: Optional[Inputs] = None       # None: this worker runs no reconcile passes
    auto_apply: bool = False
    timeout: float = 30.0                    # each network step of a scan / a probe
    concurrency: int = 4
    heartbeat_seconds: float = 10.0
    stalled_seconds: float = 30.0            # a worker silent this long is gone
    name: str = "worker"
    schedule: bool = True                    # False: run queued jobs only (rounds, recovery)
    webhooks: tuple = ()                     # events.config.WebhookTarget: deliver events
    retention_days: Optional[int] = None     # events and delivery log kept this long

    @property
    def tick_seconds(self) -> int:
        """How often the schedule looks for due jobs: a divisor of 60, at most 30 s."""
        shortest = min(self.scan_interval, self.verify_interval, self.reconcile_interval,
                       self.stalled_seconds)
        return max([t for t in (1, 2, 5, 10, 15, 30) if t <= shortest / 3] or [1])


def require_postgres(url: str) -> None:
    if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        raise FleetError(
            "`mailform worker` needs a PostgreSQL registry (the task queue lives in its "
            "database); with a SQLite registry scan on one machine with "
            "`mailform inbox scan --all --concurrency N` and keep the manifests applied "
            "with `mailform reconcile`")
