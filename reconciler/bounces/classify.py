"""Message bytes → bounce verdict. Pure: no I/O, never raises on any input.

Order of evidence (SPEC §6):

1. structure — an RFC 3464 delivery-status part (also when mislabelled as
   text), an RFC 5965 feedback report, an RFC 8098 disposition notification;
2. bounce texts that only mail systems write (Exim's X-Failed-Recipients,
   qmail, Postfix, Sendmail, Exchange, Gmail, Yahoo, Domino, GroupWise,
   Courier, MDaemon…), after ruling out delay warnings;
3. auto-replies and challenge-response notices (not bounces) — only now,
   because real bounces carry ``Auto-Submitted: auto-replied`` too;
4. weaker signs together: a mail-daemon sender, a failure subject, failure
   words and reply codes in the text.
"""
from __future__ import annotations

import re

from . import dsn, text
from .mime import Part, decode_words, read_message
from .patterns import ENHANCED, basic_code
from .reasons import given_up, judge, kind_of, reason_for
from .verdict import Recipient, Verdict, clean_address, dedupe

__all__ = ["Recipient", "Verdict", "classify"]

_AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-autoreply-from",
                      "x-mail-autoreply", "x-vacation", "x-ms-exchange-inbox-rules-loop")
_CHALLENGE_HEADERS = ("x-challenge", "x-boxbe-challenge", "x-spamarrest-noauth")
_MAX_SUBJECT = 16384  # characters of the decoded Subject searched: real ones are far shorter


def classify(raw: bytes) -> Verdict:
    """The verdict on one raw RFC 5322 message (only its first 256 KiB are read)."""
    try:
        return _classify(raw)
    except Exception as exc:  # the contract is "never raises": a bug must not stop a scan
        return Verdict(False, (), "ordinary", note=f"unreadable: {type(exc).__name__}")


def _classify(raw: bytes) -> Verdict:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError("classify() takes the raw message as bytes")
    root = read_message(bytes(raw))
    report = _from_structure(root)
    if report is not None:
        return report
    return _from_text(root)


def _from_structure(root: Part) -> Verdict | None:
    report_type = root.params.get("report-type", "").lower() if root.ctype == "multipart/report" else ""
    part = dsn.report_part(root, dsn.DSN_TYPES)
    if part is None and report_type == "delivery-status":
        part = _mislabelled_dsn(root)
    if part is None:
        wrapped = _wrapped_report(root)
        if wrapped is not None:
            root, part = wrapped
    if part is not None:
        verdict = dsn.read_dsn(part.text(), _failed_headers(root))
        if verdict is not None and verdict.recipients:
            return _explained(root, verdict)
        if verdict is not None and not verdict.bounce:
            return verdict
        if verdict is not None:  # failed, but the report names nobody: read the text
            found = _text_bounce(root, text.readable_text(root), "dsn")
            return found if found.recipients else verdict
    arf = dsn.report_part(root, dsn.ARF_TYPES)
    if arf is not None or report_type == "feedback-report":
        return dsn.read_arf(root, arf or root)
    mdn = dsn.report_part(root, dsn.MDN_TYPES)
    if mdn is not None or report_type == "disposition-notification":
        return _rejection_notice(root, mdn) or Verdict(False, (), "mdn")
    return None


_REJECTED = re.compile(r"\b(?:automatically )?(?:rejected|refused)\b|could not be delivered|quota", re.I)


def _rejection_notice(root: Part, mdn: Part | None) -> Verdict | None:
    """A delivery agent's refusal sent as an MDN (Sieve ``reject``, a mailbox over quota:
    ``automatic-action…; deleted`` with a text saying the message was rejected) is a
    bounce; a reader's "deleted without being read" receipt is not."""
    if mdn is None:
        return None
    fields: dict[str, str] = {}
    for block in dsn.field_blocks(mdn.text()):
        for key, value in block.items():
            fields.setdefault(key, value)
    disposition = fields.get("disposition", "").lower()
    if "automatic-action" not in disposition or not re.search(r"\b(?:deleted|denied|failed|error)\b",
                                                               disposition):
        return None
    body = text.readable_text(root)
    if not _REJECTED.search(body) or re.search(r"without being (?:read|displayed)", body, re.I):
        return None
    address = clean_address(fields.get("original-recipient")) or clean_address(fields.get("final-recipient"))
    if address is None:
        return None
    told = text.cut_original(body)
    status = next((m.group(0) for m in ENHANCED.finditer(told) if m.group(1) in "45"), None)
    reason, kind = judge(status, told)
    return Verdict(True, (Recipient(address, kind, status, text.one_line_reason(told), reason),),
                   "heuristic")


def _wrapped_report(root: Part) -> tuple[Part, Part] | None:
    """A DSN that a gateway forwarded whole as the first attachment of its own notice
    (e.g. multipart/mixed; report-type=delivery-status around a message/rfc822 holding
    the multipart/report). Not the returned copy inside an ordinary bounce: the wrapper
    must say it is a report or come from a mail system and lead with the message."""
    children = root.children if root.maintype == "multipart" else []
    if not children or children[0].ctype not in ("message/rfc822", "message/global"):
        return None
    if root.params.get("report-type", "").lower() != "delivery-status" and not text.is_daemon_sender(root):
        return None
    inner = children[0].children[0] if children[0].children else None
    if inner is None or inner.ctype != "multipart/report":
        return None
    part = dsn.report_part(inner, dsn.DSN_TYPES)
    return (inner, part) if part is not None else None


def _explained(root: Part, verdict: Verdict) -> Verdict:
    """Recipients whose report gives no diagnostic take the words the human-readable part
    gives next to their address (the status stays the report's, unless it has none)."""
    vague = [r for r in verdict.recipients if not r.diagnostic]
    if not vague:
        return verdict
    body = text.readable_text(root)
    told = {r.address: r for r in text.recipients_from_text(
        body, set(), [r.address for r in vague], [], "")}
    better = []
    for recipient in verdict.recipients:
        found = told.get(recipient.address)
        if recipient in vague and found is not None and found.diagnostic:
            status = recipient.status or found.status
            reason = given_up(reason_for(status, found.diagnostic) or recipient.reason, status)
            recipient = Recipient(recipient.address, kind_of(reason, status), status,
                                  found.diagnostic, reason)
        better.append(recipient)
    return Verdict(verdict.bounce, tuple(better), verdict.kind_of_message, verdict.note)


def _mislabelled_dsn(root: Part) -> Part | None:
    """A report-type=delivery-status whose status part is typed text/plain or similar."""
    for part in root.children[1:]:
        if part.maintype in ("text", "message", "application") and part.ctype not in dsn.ORIGINAL_TYPES:
            if dsn.looks_like_dsn_text(part.text()[:8192]):
                return part
    return None


def _failed_headers(root: Part) -> list[str]:
    """Exim's (and others') X-Failed-Recipients, cleaned."""
    found = []
    for value in root.headers.get("x-failed-recipients", []):
        found.extend(a for a in (clean_address(x) for x in value.split(",")) if a)
    return list(dict.fromkeys(found))


def _from_text(root: Part) -> Verdict:
    subject = decode_words(root.header("subject")).lower()[:_MAX_SUBJECT]
    body = text.readable_text(root)
    low = body.lower()
    failed = _failed_headers(root)
    signature = text.SIGNATURES.search(low)
    if text.DELAY.search(subject) or (text.DELAY.search(low) and not failed and not
                                      (text.PERMANENT.search(subject) or text.FINAL.search(low))):
        if signature or failed or text.is_daemon_sender(root) or text.BOUNCE_SUBJECT.search(subject):
            return Verdict(False, (), "delayed")
    if failed or signature:
        return _text_bounce(root, body, "heuristic")
    daemon = text.is_daemon_sender(root)
    if _is_success(subject, low, daemon):
        return Verdict(False, (), "delivered")
    if _is_challenge(root, subject, low):
        return Verdict(False, (), "challenge")
    bounce_subject = bool(text.BOUNCE_SUBJECT.search(subject))
    if _is_autoreply(root, subject) and not (daemon or bounce_subject):
        return Verdict(False, (), "autoreply")
    if _weak_evidence(root, daemon, bounce_subject, low):
        return _text_bounce(root, body, "heuristic")
    return Verdict(False, (), "ordinary")


# A success notice without a delivery-status part (some servers send DSN SUCCESS as text).
_SUCCESS = re.compile(r"\(success\)|\bsuccessful(?:ly)? (?:mail )?deliver|successfully (?:delivered|relayed)"
                      r"|(?:has been|was) delivered to the following|^(?:delivered|relayed): "
                      r"|delivery to the following recipients? (?:was )?(?:successful|succeeded|complete)", re.M)


def _is_success(subject: str, low: str, daemon: bool) -> bool:
    """A mail system's success notice: its subject says so, or its text does and names no
    failure (a shop's "successfully delivered" parcel is ordinary mail)."""
    if not daemon:
        return False
    return bool(_SUCCESS.search(subject)) or (bool(_SUCCESS.search(low, 0, 4096))
                                              and not text.GENERIC_FAILURE.search(low))


def _weak_evidence(root: Part, daemon: bool, bounce_subject: bool, low: str) -> bool:
    failure_words = bool(text.GENERIC_FAILURE.search(low))
    if daemon and (bounce_subject or failure_words):
        return True
    if not (bounce_subject and failure_words):
        return False
    null_sender = root.header("return-path").strip() == "<>"
    has_original = dsn.original_headers(root) is not None
    return null_sender or has_original or bool(ENHANCED.search(low) or basic_code(low))


def _text_bounce(root: Part, body: str, how: str) -> Verdict:
    failed = _failed_headers(root)
    listing = dsn.list_addresses(root)
    excluded = _own_addresses(root) | dsn.original_senders(root) | listing
    preferred = [a for a in dsn.original_recipients(root) if a not in listing]
    transient = text.is_transient(body)
    found = text.recipients_from_text(body, excluded - set(failed), failed or None, preferred, transient)
    if not found and not failed:  # delivery headers of the report may name the recipient
        excluded = _own_addresses(root, _SENDER_HEADERS) | dsn.original_senders(root) | listing
        found = text.recipients_from_text(body, excluded, None, preferred, transient)
    if not found and not failed:
        found = _local_recipients(root, body, transient)
    if not found and len(preferred) == 1:
        found = [text.told(preferred[0], body, transient)]
    return Verdict(True, dedupe(found), how)


_SENDER_HEADERS = ("from", "to", "cc", "sender", "reply-to", "return-path")
_OWN_HEADERS = _SENDER_HEADERS + ("delivered-to", "x-original-to", "envelope-to")


def _local_recipients(root: Part, body: str, transient: bool) -> list[Recipient]:
    """Bare user names a mail system lists as failed, qualified with its own domain
    (only when a mailer-daemon or postmaster of that domain wrote the report)."""
    sender = clean_address(root.header("from"))
    if sender is None or sender.split("@")[0] not in ("mailer-daemon", "postmaster", "mail-daemon"):
        return []
    domain = sender.split("@")[1]
    found = []
    for local in text.listed_local_parts(body):
        address = clean_address(f"{local}@{domain}")
        if address:
            found.append(text.told(address, body, transient))
    return found


def _own_addresses(root: Part, names: tuple[str, ...] = _OWN_HEADERS) -> set[str]:
    """Addresses of the bounce's own sender and receiver: never the failed recipient."""
    own = set()
    for name in names:
        for value in root.headers.get(name, []):
            own.update(a for a in (clean_address(x) for x in dsn.split_list(value)) if a)
    return own


def _is_autoreply(root: Part, subject: str) -> bool:
    auto = root.header("auto-submitted").strip().lower()
    if auto and not auto.startswith("no"):
        return True
    if any(name in root.headers for name in _AUTOREPLY_HEADERS):
        return True
    if root.header("precedence").strip().lower() in ("auto_reply", "auto-reply"):
        return True
    return bool(text.AUTOREPLY_SUBJECT.search(subject))


def _is_challenge(root: Part, subject: str, low: str) -> bool:
    if any(name in root.headers for name in _CHALLENGE_HEADERS):
        return True
    return bool(text.CHALLENGE.search(subject) or text.CHALLENGE.search(low, 0, 4096))
