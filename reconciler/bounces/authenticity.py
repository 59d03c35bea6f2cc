"""Which bounces to believe (SECURITY.md, "Bounces that can be trusted"). Pure: no I/O.

Anyone can mail a bounce inbox, so a report naming a contact is evidence only when:

* it carries a **tag** of a message mailform sent — ``mf1.<id>.<mac>``, where ``id`` is
  random (26 base32 characters) and ``mac`` is the first 32 hex digits of the registry's
  keyed HMAC of the id for the purpose ``"bounce tag"`` — in the returned message's
  Message-ID or ``X-Mailform-Tag`` header, or anywhere else in the report (References,
  quoted text, a base64 or quoted-printable part). Then it counts for the recipients it
  names that were recipients of that message (the scanner looks them up by the id);
* or, untagged, it comes from a mail system — a null envelope sender (the first
  ``Return-Path``, the one the final delivery wrote, is ``<>``), or a postmaster /
  MAILER-DAEMON envelope sender (the ``From`` when no ``Return-Path`` was written) with a
  ``Reporting-MTA`` — **and** quotes the original message's headers with this account's
  address as From, Sender or Return-Path (``inbox.trust_untagged: false``: never).

Everything else is unverified. The registry's signing function and the sent records are
passed in; nothing here reads a key, a file or the network. Every search is linear in
the (bounded) message: ``str.find`` for the tag's prefix, then a fixed-length match.
"""
from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence

from ..policy import TAG_MAC_LENGTH, tag_mac as policy_tag_mac
from .dsn import field_blocks, original_headers, split_list
from .mime import MAX_BYTES, Part, read_message
from .verdict import clean_address

TAG_PREFIX = "mf1."
TAG_HEADER = "X-Mailform-Tag"
ID_LENGTH = 26                # base32 of 16 random bytes, lower case, no padding
MAX_CANDIDATES = 64           # tag-shaped strings verified per message
_TAG = re.compile(rf"mf1\.([a-z2-7]{{{ID_LENGTH}}})\.([0-9a-f]{{{TAG_MAC_LENGTH}}})")  # .match() only
_NULL_PATHS = ("", "<>", "<#@[]>", "<mailer-daemon>")
_DAEMONS = ("mailer-daemon", "postmaster")
_REPORT_TYPES = ("message/delivery-status", "message/global-delivery-status",
                 "message/feedback-report")
_SENDER_FIELDS = ("from", "sender", "return-path")
_QUOTED_FIELDS = tuple(name + ":" for name in _SENDER_FIELDS)

Signer = Callable[[str, bytes], str]   # registry.sign(purpose, data) -> "hmac-sha256:<hex>"


@dataclass(frozen=True)
class Tag:
    id: str
    mac: str

    def __str__(self) -> str:
        return f"{TAG_PREFIX}{self.id}.{self.mac}"


def tag_mac(tag_id: str, sign: Signer) -> str:
    return policy_tag_mac(tag_id, sign)


def make_tag(tag_id: str, sign: Signer) -> Tag:
    """The tag of a new message whose id the caller drew at random."""
    return Tag(tag_id, tag_mac(tag_id, sign))


def message_id(tag: Tag, domain: str) -> str:
    return f"<{tag}@{domain or 'mailform.invalid'}>"


def find_tags(raw: bytes) -> list[Tag]:
    """Tag-shaped strings in the message (raw, then inside encoded parts), unverified."""
    found: dict[str, Tag] = {}
    head = raw[:MAX_BYTES]
    if TAG_PREFIX.encode() in head.lower():      # (most reports carry none: no decoding)
        _scan(head.decode("latin-1").lower(), found)
    if len(found) < MAX_CANDIDATES:
        for part, _ in read_message(raw).walk():
            if part.header("content-transfer-encoding").strip().lower() in (
                    "base64", "quoted-printable"):
                _scan(part.payload().decode("latin-1").lower(), found)
    return list(found.values())[:MAX_CANDIDATES]


def _scan(text: str, found: dict[str, Tag]) -> None:
    pos = text.find(TAG_PREFIX)
    while pos >= 0 and len(found) < MAX_CANDIDATES:
        match = _TAG.match(text, pos)
        if match:
            found.setdefault(match.group(0), Tag(match.group(1), match.group(2)))
        pos = text.find(TAG_PREFIX, pos + len(TAG_PREFIX))


def genuine(tags: Iterable[Tag], sign: Signer) -> list[Tag]:
    """The tags made with this registry's current key (one signed before `registry rekey`
    is checked against its sent record's earlier MACs instead: ``signed_before``)."""
    return [t for t in tags if hmac.compare_digest(t.mac, tag_mac(t.id, sign))]


def signed_before(tag: Tag, record: Optional[Mapping]) -> bool:
    """A tag made under an earlier key: its MAC is one the re-key kept on its record."""
    return record is not None and any(hmac.compare_digest(tag.mac, str(mac))
                                      for mac in record.get("prior_macs") or ())


@dataclass(frozen=True)
class Origin:
    """What a report says about where it came from and what it returns."""

    null_sender: bool
    daemon_sender: bool
    reporting_mta: bool
    quoted_senders: frozenset[str]

    @property
    def mail_system(self) -> bool:
        return self.null_sender or (self.daemon_sender and self.reporting_mta)


def origin_of(raw: bytes) -> Origin:
    root = read_message(raw)
    path = _return_path(root)
    sender = (clean_address(root.header("from")) if path is None else clean_address(path))
    return Origin(null_sender=path is not None and "".join(path.split()).lower() in _NULL_PATHS,
                  daemon_sender=(sender or "").partition("@")[0] in _DAEMONS,
                  reporting_mta=_has_reporting_mta(root),
                  quoted_senders=frozenset(_quoted_senders(root)))


def _return_path(root: Part) -> Optional[str]:
    """The envelope sender: the first Return-Path, the one the final delivery wrote."""
    values = root.headers.get("return-path")
    return values[0] if values else None


def _has_reporting_mta(root: Part) -> bool:
    for part, _ in root.walk(into_messages=False):
        if part.ctype in _REPORT_TYPES and any(
                "reporting-mta" in block for block in field_blocks(part.text())):
            return True
    return False


def _quoted_senders(root: Part) -> set[str]:
    """From, Sender, Return-Path of the returned headers; without a returned-message
    part, header lines quoted in the report's text (Exim, qmail)."""
    headers = original_headers(root)
    if headers is not None:
        return {a for name in _SENDER_FIELDS for value in headers.get(name, [])
                for a in _addresses(value)}
    found: set[str] = set()
    for part, _ in root.walk(into_messages=False):
        if part.maintype == "text":
            for line in part.text().splitlines():
                if line.lstrip(" \t>").lower().startswith(_QUOTED_FIELDS):
                    found.update(_addresses(line.partition(":")[2]))
    return found


def _addresses(value: str) -> list[str]:
    return [a for a in (clean_address(item) for item in split_list(value[:998])) if a]


def untagged_doubt(origin: Origin, account_email: str) -> Optional[str]:
    """None when an untagged report is to be believed; otherwise why it is not."""
    if not origin.mail_system:
        return ("untagged, and not from a mail system (no null sender, nor a postmaster/"
                "MAILER-DAEMON sender with a Reporting-MTA)")
    if (account_email or "").strip().lower() not in origin.quoted_senders:
        return f"untagged, and it quotes no message sent by {account_email or 'this account'}"
    return None


@dataclass(frozen=True)
class Trust:
    """The decision on one report: ``basis`` "tag", "mail system" or "" (unverified)."""

    basis: str
    why: str = ""                                     # why not believed
    recipients: Optional[frozenset[str]] = None       # tag: who the message went to

    def counts(self, address: str) -> bool:
        if not self.basis:
            return False
        return self.recipients is None or address.strip().lower() in self.recipients

    def doubt(self) -> str:
        return self.why or "not a recipient of the tagged message it returns"


def decide(sent: Sequence[Iterable[str]], origin: Optional[Origin], account_email: str,
           trust_untagged: bool = True, tags_found: int = 0) -> Trust:
    """``sent``: the recipients of each genuine, recorded tag the report carries;
    ``origin`` is needed only when there is none."""
    if sent:
        return Trust("tag", recipients=frozenset(r.strip().lower() for rs in sent for r in rs))
    note = ("its tag does not verify or its message is no longer on record; "
            if tags_found else "")
    if not trust_untagged:
        return Trust("", note + "untagged, and inbox.trust_untagged is false")
    why = untagged_doubt(origin, account_email) if origin is not None else "untagged"
    return Trust("mail system") if why is None else Trust("", note + why)
