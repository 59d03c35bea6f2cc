"""Machine-readable reports: RFC 3464 DSNs, RFC 5965 feedback reports, RFC 8098 MDNs."""
from __future__ import annotations

import re
import threading

from .mime import Part, last_made, parse_headers
from .patterns import ENHANCED, parse_code
from .reasons import judge
from .verdict import Recipient, Verdict, clean_address, dedupe, one_line

DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
ARF_TYPES = ("message/feedback-report",)
MDN_TYPES = ("message/disposition-notification", "message/global-disposition-notification")
HEADER_TYPES = ("text/rfc822-headers", "message/rfc822-headers", "message/global-headers")
ORIGINAL_TYPES = ("message/rfc822", "message/global") + HEADER_TYPES

_FIELD = re.compile(r"^([A-Za-z][\w-]*)[ \t]*:[ \t]*(.*)$")
_DSN_SHAPE = re.compile(r"^(?:final|original)-recipient\s*:", re.I | re.M)
_DIAG_TYPE = re.compile(r"^\s*(?:smtp|x-[\w-]+|unknown)\s*;\s*", re.I)
# Linear: an address starts only where a run of its characters starts (the look-behind).
_LIST_ADDRESS = re.compile(r"(?<![^\s<>,;:\"()\[\]])[^\s<>,;:\"()\[\]]+@[^\s<>,;:\"()\[\]]+")
_NOT_COMPLAINTS = {"auth-failure", "not-spam", "dkim", "spf"}


_recent = threading.local()     # this thread's last (text, blocks): a report is read twice


def field_blocks(text: str) -> list[dict[str, str]]:
    """``Name: value`` groups of a report body, split at blank lines (folding undone).

    A new block also starts where a recipient field repeats without a blank
    line between, so that sloppy reports still yield one block per recipient.
    The classifier and the bounce-trust checks read the same report one after the
    other: the last result this thread made is handed out again for the same text
    object (read-only: callers never change the blocks).
    """
    return last_made(_recent, text, _field_blocks)


def _field_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, list[str]]] = []
    current: dict[str, list[str]] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current, last = {}, None
        elif line[:1] in (" ", "\t") and last:
            current[last].append(line.strip())   # joined once at the end: linear
        else:
            match = _FIELD.match(line)
            if not match:
                continue
            name = match.group(1).lower()
            if name in current and name in ("final-recipient", "original-recipient"):
                blocks.append(current)
                current = {}
            current.setdefault(name, [match.group(2).strip()])
            last = name
    if current:
        blocks.append(current)
    return [{name: " ".join(parts) for name, parts in block.items()} for block in blocks]


def _recipient_blocks(text: str) -> list[dict[str, str]]:
    return [b for b in field_blocks(text) if "final-recipient" in b or "original-recipient" in b]


def report_part(root: Part, types: tuple[str, ...]) -> Part | None:
    for part, _ in root.walk(into_messages=False):
        if part.ctype in types:
            return part
    return None


def looks_like_dsn_text(text: str) -> bool:
    return bool(_DSN_SHAPE.search(text)) and "action" in text.lower()


def read_dsn(text: str, fallback: list[str]) -> Verdict | None:
    """A delivery-status body → verdict; None when it names no recipient we can use."""
    failed, actions, nameless = [], set(), None
    for block in _recipient_blocks(text):
        action = _action(block)
        actions.add(action)
        if action != "failed":
            continue
        address = clean_address(block.get("original-recipient")) or clean_address(
            block.get("final-recipient"))
        if address is None and len(fallback) == 1:
            address = fallback[0]
        if address:
            failed.append(_failed_recipient(address, block))
        nameless = nameless or block
    if failed:
        return Verdict(True, dedupe(failed), "dsn")
    if "failed" in actions:
        return Verdict(True, tuple(_failed_recipient(a, nameless) for a in fallback), "dsn",
                       "failed recipients without a usable address")
    if "delayed" in actions:
        return Verdict(False, (), "delayed")
    if actions & {"delivered", "relayed", "expanded"}:
        return Verdict(False, (), "delivered")
    return None


def _action(block: dict[str, str]) -> str:
    action = block.get("action", "").strip().lower().split(" ")[0].strip("();")
    if action:
        return action
    status = parse_code(block.get("status"))
    if status:
        return {"5": "failed", "4": "delayed", "2": "delivered"}[status[0]]
    return "unknown"


def _failed_recipient(address: str, block: dict[str, str]) -> Recipient:
    diagnostic = _DIAG_TYPE.sub("", block.get("diagnostic-code", "")) or None
    status = _best_status(block.get("status"), diagnostic)
    reason, kind = judge(status, diagnostic)
    return Recipient(address, kind, status, one_line(diagnostic), reason)


def _best_status(status_field: str | None, diagnostic: str | None) -> str | None:
    """Status field's code, unless it is generic and the diagnostic gives a finer one."""
    status = parse_code(status_field)
    if diagnostic:
        finer = next((m.group(0) for m in ENHANCED.finditer(diagnostic)
                      if m.group(1) in "45"), None)
        if finer and (status is None or (_generic(status) and finer[0] == status[0])):
            return finer
    if status and status[0] == "2":
        return status  # "failed" with a success code: keep what it says
    return status


def _generic(code: str) -> bool:
    _, subject, detail = code.split(".")
    return subject == "0" or detail == "0"


def read_arf(root: Part, report: Part) -> Verdict:
    """A feedback report → complaint against the original recipient (not a bounce if it is
    an authentication-failure or not-spam report)."""
    fields: dict[str, str] = {}
    for block in field_blocks(report.text()):
        for key, value in block.items():
            fields.setdefault(key, value)
    feedback_type = fields.get("feedback-type", "abuse").strip().lower()
    if feedback_type in _NOT_COMPLAINTS:
        return Verdict(False, (), "arf", f"feedback-type {feedback_type}")
    candidates = [fields.get("original-rcpt-to"), fields.get("removal-recipient")]
    candidates += original_recipients(root, with_hotmail=True)
    for candidate in candidates:
        address = clean_address(candidate)
        if address:
            diagnostic = f"feedback-type: {feedback_type}"
            return Verdict(True, (Recipient(address, "complaint", None, diagnostic, "complaint"),), "arf")
    return Verdict(True, (), "arf", "complaint without a recipient address")


def original_headers(root: Part) -> dict[str, list[str]] | None:
    """Headers of the returned original message, if the report carries them."""
    for part, _ in root.walk():
        if part.ctype in ("message/rfc822", "message/global") and part.children:
            return part.children[0].headers
        if part.ctype in HEADER_TYPES:
            return parse_headers(part.payload().replace(b"\r\n", b"\n").split(b"\n\n")[0])
    return None


def original_recipients(root: Part, with_hotmail: bool = False) -> list[str]:
    """To/Cc addresses of the returned original message (Hotmail's own header first)."""
    headers = original_headers(root)
    if not headers:
        return []
    names = ["x-hmxmroriginalrecipient"] if with_hotmail else []
    values = []
    for name in names + ["to", "cc"]:
        for value in headers.get(name, []):
            values.extend(v for v in (clean_address(x) for x in split_list(value)) if v)
    return values


def original_senders(root: Part) -> set[str]:
    headers = original_headers(root) or {}
    found = set()
    for name in ("from", "sender", "return-path", "reply-to", "errors-to"):
        for value in headers.get(name, []):
            found.update(v for v in (clean_address(x) for x in split_list(value)) if v)
    return found


_LIST_HEADERS = ("list-post", "list-help", "list-subscribe", "list-unsubscribe", "list-owner",
                 "list-archive", "x-beenthere", "errors-to", "x-list", "mailing-list", "x-mailing-list")
_LIST_ROLE = re.compile(r"-(?:bounces?|request|owner|admin|help|subscribe|unsubscribe|join|leave)"
                        r"(?:\+[^@]*)?(?=@)", re.I)


def list_addresses(root: Part) -> set[str]:
    """Mailing-list addresses named in the List-* headers of the report or of the returned
    message: a list's own address is never the recipient that failed."""
    found = set()
    for headers in (root.headers, original_headers(root) or {}):
        for name in _LIST_HEADERS:
            for value in headers.get(name, []):
                for item in split_list(value):
                    address = clean_address(item.split("?")[0])
                    if address:
                        found.add(address)
                        found.add(_LIST_ROLE.sub("", address))
    return found


def split_list(value: str) -> list[str]:
    """The addresses in an address-list header value (display names dropped)."""
    return _LIST_ADDRESS.findall(value)
