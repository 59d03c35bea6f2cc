"""Run many checks concurrently; results come back in input order.

One bad password must not fail its neighbours: servers slow every login from an
address after a failed one (Dovecot's auth penalty doubles up to 15 s), so a good
account checked beside a bad one on the same server can time out while logging in.
Such a check — a timeout during auth on a server that other logins of the run share —
is re-checked after the first pass, one at a time per server, with a deadline of its
own that covers the server's login delay, and its hint says the delay was seen.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Callable, Iterable

from ..servers import ServerSettings
from . import results as r
from .check import check

DEFAULT_CONCURRENCY = 16
LOGIN_DELAY_ALLOWANCE = 15.0   # the longest login delay of a server (Dovecot's auth penalty)
DELAY_SEEN = ("the server delayed this login after another login from here failed (its "
              "login delay): re-checked on its own")


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
    _recheck_delayed(todo, out, timeout, transcript)  # type: ignore[arg-type]
    return out  # type: ignore[return-value]


def delayed_logins(todo: list[CheckItem], out: list[r.CheckResult]) -> list[list[int]]:
    """Per server shared by several logins of the run, the checks that timed out while
    logging in (indexes, in input order)."""
    logins: dict[str, list[int]] = {}
    for index, item in enumerate(todo):
        if item.mode != "probe":
            logins.setdefault(item.endpoint.host.rstrip(".").lower(), []).append(index)
    groups = [[i for i in indexes if out[i].code == r.TIMEOUT and out[i].stage == "auth"]
              for indexes in logins.values() if len(indexes) > 1]
    return [group for group in groups if group]


def _recheck_delayed(todo: list[CheckItem], out: list[r.CheckResult], timeout: float,
                     transcript: bool) -> None:
    groups = delayed_logins(todo, out)
    if not groups:
        return
    def recheck(group: list[int]) -> None:
        for index in group:
            again = _one(todo[index], timeout + LOGIN_DELAY_ALLOWANCE, transcript)
            out[index] = _noted(again, out[index])
            if again.code == r.TIMEOUT and again.stage == "auth":
                return          # slow whatever the others do: the rest keep their results

    with ThreadPoolExecutor(max_workers=len(groups), thread_name_prefix="recheck") as pool:
        list(pool.map(recheck, groups))


def _noted(again: r.CheckResult, first: r.CheckResult) -> r.CheckResult:
    hint = DELAY_SEEN + (f"; {again.hint}" if again.hint else "")
    return replace(again, hint=hint, attempts=first.attempts + again.attempts)


def _one(item: CheckItem, timeout: float, transcript: bool) -> r.CheckResult:
    try:
        return check(item.endpoint, timeout, item.send_test_to, item.account,
                     mode=item.mode, transcript=transcript, message_id=item.message_id)
    except Exception as exc:  # noqa: BLE001 - one broken check must not sink the run
        ep = item.endpoint
        return r.CheckResult(code=r.PROTOCOL_ERROR, stage="internal", kind=ep.kind, host=ep.host,
                             port=ep.port, security=ep.security, account=item.account,
                             reply_text=f"internal error: {type(exc).__name__}")
