"""Run many checks concurrently; results come back in input order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Callable, Iterable

from ..servers import ServerSettings
from . import results as r
from .check import check

DEFAULT_CONCURRENCY = 16


@dataclass(frozen=True)
class CheckItem:
    """One check to run: the endpoint, the account it belongs to, its role."""

    endpoint: ServerSettings
    account: str | None = None
    send_test_to: str | None = None
    role: str = ""  # free label for callers, e.g. "smtp" or "inbox"
    mode: str = "login"  # check.MODES: "probe" sends no credentials
    message_id: str | None = None  # the test message's (tagged) Message-ID, SMTP only


Progress = Callable[[int, int, r.CheckResult], None]


def run_checks(items: Iterable[CheckItem | ServerSettings], concurrency: int = DEFAULT_CONCURRENCY,
               timeout: float = 10.0, progress: Progress | None = None,
               transcript: bool = False) -> list[r.CheckResult]:
    """Check every item with at most `concurrency` checks in flight.

    `progress(done, total, result)` is called from the calling thread as each
    check finishes.  The whole run takes about ceil(n / concurrency) × timeout
    at worst, since every check is bounded by `timeout`.
    """
    todo = [it if isinstance(it, CheckItem) else CheckItem(it) for it in items]
    out: list[r.CheckResult | None] = [None] * len(todo)
    if not todo:
        return []
    workers = max(1, min(int(concurrency), len(todo)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        futures = {pool.submit(_one, item, timeout, transcript): index for index, item in enumerate(todo)}
        for done, future in enumerate(as_completed(futures), start=1):
            index = futures[future]
            out[index] = future.result()
            if progress is not None:
                progress(done, len(todo), out[index])
    return out  # type: ignore[return-value]


def _one(item: CheckItem, timeout: float, transcript: bool) -> r.CheckResult:
    try:
        return check(item.endpoint, timeout, item.send_test_to, item.account,
                     mode=item.mode, transcript=transcript, message_id=item.message_id)
    except Exception as exc:  # noqa: BLE001 - one broken check must not sink the run
        ep = item.endpoint
        return r.CheckResult(code=r.PROTOCOL_ERROR, stage="internal", kind=ep.kind, host=ep.host,
                             port=ep.port, security=ep.security, account=item.account,
                             reply_text=f"internal error: {type(exc).__name__}")
