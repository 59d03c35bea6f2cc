"""Non-standard bounces: the texts of Exim, qmail, Postfix, Sendmail, Exchange, Gmail,
Yahoo, Lotus Domino, GroupWise, Courier, MDaemon and friends, and the signs of the
messages that only look like them (delay warnings, auto-replies, challenges).
"""
from __future__ import annotations

import re
from typing import Iterator

from .mime import Part
from .patterns import ENHANCED, FAILURE_CODE, TEMPORARY, basic_code
from .reasons import given_up, judge, kind_of, pseudo_status, reason_for
from .verdict import Recipient, clean_address, one_line

_IM = re.I | re.M

# Phrases only bounce generators write: seeing one is enough to call a message a bounce.
SIGNATURES = re.compile(
    r"this is the qmail-send program|this message was created automatically by mail delivery software"
    r"|this is the (?:mail system|postfix program) at host|following addresses? had permanent fatal errors"
    r"|delivery has failed to these recipients|your message did not reach some or all of the intended"
    r"|the following recipient\(s\) cannot be reached|the following recipient\(s\) could not be reached|remote server returned '[45]"
    r"|resolver\.adr\.|delivery to the following recipients? failed permanently"
    r"|technical details of permanent failure|your message wasn't delivered to"
    r"|we were unable to deliver your message to the following address|was not delivered to:"
    r"|not listed in (?:the )?(?:domino|public name & address book)"
    r"|the message that you sent was undeliverable to the following|running the courier mail server"
    r"|your message to the following recipients cannot be delivered|permanent fatal delivery errors"
    r"|i'm sorry to have to inform you that your message could not"
    r"|unable to deliver (?:your )?message to the following (?:recipient|address)"
    r"|could not be delivered to (?:one or more|the following) (?:recipient|user|address)|message could not be delivered to"
    r"|(?<!-)-{2,}+ ?(?:failed recipients|non-delivery report) ?--|failed addresses follow"
    r"|message not delivered to the following"
    r"|an error occurred while trying to deliver the mail to the following"
    r"|this is a permanent error\.? the following address"
    r"|mail delivery (?:to the following recipients? )?failed(?: permanently)?:"
    r"|message delivery (?:to the following recipients? )?failed(?: permanently)?:"
    r"|a message that you sent could not be delivered|unzustellbar an folgende"
    r"|konnte nicht (?:an (?:einen|alle) )?(?:der )?(?:empf[aä]nger )?zugestellt werden"
    r"|n'a pas pu (?:être|etre) remis|no se ha podido entregar|non è stato possibile recapitare"
    r"|smtp error from remote (?:mail server|mailer) after|undeliverable to the following"
    r"|sorry\. your message could not be delivered|your mail to the following recipients could not be"
    r"|following addresses? had delivery (?:problems|errors)|unable to deliver message to:"
    r"|delivery failed for the following reason|this has been a permanent failure"
    r"|your message could not be sent\.|message non-deliverable|unable to deliver your message to the following"
    r"|su mensaje no pudo ser entregado|this is the machine generated message from mail service"
    r"|this is the mail delivery agent at|unfortunately, your mail was not delivered to the following"
    r"|your mail message to the following address|your message to the following addresses"
    r"|this is the mailer-daemon, please do not reply|an error has occurred while attempting to deliver"
    r"|does not like recipient\.|------- failure reasons|the following message to <"
    r"|delivery to the following recipients? failed"
    r"|以下のメールアドレスへの送信に失敗しました|送信できませんでした"
    r"|could not be delivered to one or more of its recipients|rejected by the local scanning code"
    r"|recipient addresses that were incorrectly constructed|router encountered the following error")

DELAY = re.compile(
    r"warning (?:message )?only|do not need to resend|will (?:be )?retr(?:y|ied)|still (?:trying|undelivered)"
    r"|has not (?:yet )?been delivered|have not yet been delivered|delivery attempts will continue"
    r"|will (?:continue|keep) (?:trying|to try)|delivery (?:status notification )?\(delay\)"
    r"|delivery (?:is )?delayed|delayed mail|temporary problem delivering|delivery incomplete"
    r"|message (?:is |was )?delayed|not yet delivered|delivery has been delayed|no action is required"
    r"|a message is delayed for more than|only a temporary failure report")

PERMANENT = re.compile(
    r"failed permanently|permanent (?:fatal )?errors?|permanent failure|could not be delivered"
    r"|couldn't be delivered|wasn't delivered|was not delivered|undeliverable|delivery has failed"
    r"|has been removed from the (?:mail )?queue|giving up on|cannot be delivered")

# Words that settle a failure as final even where delay words appear too.
FINAL = re.compile(
    r"permanent fatal error|failed permanently|permanent error|permanent failure|i've given up"
    r"|has been removed from the mail queue|has been removed from the queue|this is a permanent")

GENERIC_FAILURE = re.compile(
    r"could(?: not|n't) be delivered|was(?: not|n't) delivered|undeliverable|delivery (?:has )?failed"
    r"|failed permanently|permanent(?:ly)? (?:fatal )?error|unable to deliver|not be delivered"
    r"|delivery to the following|following address(?:es)? failed|user unknown|no such user"
    r"|does not exist|mailbox (?:is )?(?:full|unavailable)|returned to sender|could not deliver"
    r"|can(?:not|'t) be delivered|did not reach|delivery failure|failed to deliver"
    r"|recipient address rejected|host not found|not zugestellt|nicht zugestellt|unzustellbar"
    r"|pas pu (?:être|etre) remis|no se pudo entregar|undelivered"
    r"|(?:mail|message) (?:has been|was|is being) returned|no valid recipients"
    r"|无法发送|无法送达|发送失败|传输失败|退信")

BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|returned mail|mail delivery (?:failed|failure|system|problem)"
    r"|delivery (?:status notification|failure|failed|has failed|problem|report|error|notification)"
    r"|failure notice|non[- ]?delivery|nondeliverable|could not be delivered|not delivered"
    r"|mail system error|unable to deliver|message (?:delivery failure|failed|not delivered)"
    r"|returned to sender|delivery failure|\bbounced?\b|unzustellbar|nicht zustellbar|fehlgeschlagen"
    r"|non remis|non distribuable|no entregado|no se puede entregar|non recapitato|onbestelbaar"
    r"|error de entrega|échec de (?:la )?remise|mail could not be delivered|rejected:|mail failure"
    r"|error\(s\) in forwarding|\[bounce\]|failed mail|mail failed|returning (?:message )?to sender"
    r"|error during delivery", re.I)

DAEMON_NAME = re.compile(
    r"mailer[- ]?daemon|mail[- ]?daemon|postmaster|mail delivery|delivery (?:status|subsystem|system)"
    r"|mail administrator|system administrator|microsoft outlook|mail system|mdaemon|mailmaster"
    r"|internet mail service|mail ?router|smtp gateway|courier mail server|post office", re.I)

# ("^ auto:" takes blanks on its own line only: "\s*" rescanned every run of line breaks.)
AUTOREPLY_SUBJECT = re.compile(
    r"out of (?:the )?office|automatic(?:ally)? (?:reply|response|answer)|auto[- ]?(?:reply|response|respond)"
    r"|^[ \t\r\f\v]*+auto:|\bvacation\b|away from (?:my|the) (?:desk|office|email)|\bon (?:leave|holiday|vacation)\b"
    r"|\bout of town\b|abwesenheit|automatische antwort|nicht im b[üu]ro|\burlaub\b"
    r"|r[ée]ponse automatique|\babsen(?:ce|t)\b|\bcong[ée]s?\b|respuesta autom[áa]tica"
    r"|fuera de (?:la )?oficina|\bausente\b|\bvacaciones\b|risposta automatica|fuori (?:sede|ufficio)"
    r"|automatisch antwoord|\bafwezig\b|resposta autom[áa]tica|\bf[ée]rias\b|\bautosvar\b"
    r"|automaattinen vastaus|odpowied[źz] automatyczna|\booo\b", _IM)

CHALLENGE = re.compile(
    r"challenge[- ]response|confirm (?:that )?(?:you are|you're) (?:a )?(?:human|real|person)"
    r"|verify (?:that )?(?:you are|you're) (?:a )?(?:human|real|person)"
    r"|awaiting (?:your )?(?:verification|confirmation|authori[sz]ation)|spam ?arrest|boxbe|mailblocks"
    r"|choicemail|sender verification (?:request|required)|please (?:confirm|verify) (?:your|that)"
    r"|held (?:for|pending) (?:verification|approval|confirmation)"
    r"|quarantined (?:for|pending) (?:verification|approval|confirmation)"
    r"|click (?:on )?the (?:link|button) below to (?:verify|confirm|release|deliver)"
    r"|add you to (?:my|the) (?:approved|white ?list|allowed)|not yet (?:verified|authori[sz]ed)"
    r"|verify your (?:email|message|address)|one-time (?:verification|confirmation)")

# Where the returned copy of the original message begins in a bounce's text: a line that
# starts (after blanks, ">" and a rule of "-", "=" or "_") with one of these words.
_CUT_WORDS = (
    r"this is a copy of|below this line is a copy"
    r"|original message|forwarded message|returned message|unsent message|message headers? follows?"
    r"|the original message (?:headers? )?(?:is (?:attached|below|included)|follows)|headers of the original|original message headers"
    r"|undelivered message|copy of the message|returned mail follows|text of the message"
    r"|possibly truncated original message"
    r"|below is a copy of the original|included is a copy of the message|the header of the original message"
    r"|-++ ?message header|-----(?!-) ?original")
# Linear: every run is taken possessively, so a long line of blanks or rules fails at once
# instead of being split every way between the quantifiers. A rule of 7 or more dashes
# before "original" is the one case where the rule itself ends in the five dashes.
CUT = re.compile(
    rf"^[ \t>]*+(?:(?:-{{2,}}+|={{2,}}+|_{{2,}}+)[ \t]*+(?:{_CUT_WORDS})|(?:{_CUT_WORDS}|-{{7,}}+ ?original))"
    r"|^Received: from |^Return-Path: <", _IM)

# Linear: a local part starts only where a run of its characters starts (the look-behind),
# and is taken possessively, so a long run without "@" is read once, not once per letter.
# (Right after a match, which may end inside such a run, ``addresses`` also tries there.)
_ADDRESS_BODY = r"[\w.!#$%&'*+/=?^`{|}~-]++@[\w](?:[\w-]*\w)?(?:\.\w(?:[\w-]*\w)?)+"
ADDRESS = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~-])" + _ADDRESS_BODY)
_ADDRESS_HERE = re.compile(_ADDRESS_BODY)
_SENDER_CONTEXT = re.compile(
    r"(?:(?:message-id|(?<!expanded )(?<!generated )\bfrom|sender|return-path|reply-to|references|in-reply-to|errors-to|msgid"
    r"|smtp\.mailfrom|smtp\.helo|x-[\w-]+)\s*[:=]|mail from\s*:?|envelope-from|\bid|\bhelo)"
    r"\s*[<(\"\[]?\s*$", re.I)
_SERVICE_LOCAL = {"postmaster", "mailer-daemon", "mailerdaemon", "mail-daemon", "double-bounce",
                  "mdaemon", "nobody", "root"}
_WINDOW = 900
_MAX_WINDOWS = 8   # windows read per address: enough for any real report, bounded for forged ones
_DEFERRED = re.compile(r"deferred|will keep trying|still undelivered|will be retried|delayed")


def readable_text(root: Part, limit: int = 48 * 1024) -> str:
    """The human-readable text of a message, without the returned original."""
    texts, html = [], []
    for part, _ in root.walk(into_messages=False):
        if part.maintype != "text" or part.ctype in ("text/rfc822-headers",):
            continue
        if part.header("content-disposition").lower().startswith("attachment") and texts:
            continue
        (html if part.ctype == "text/html" else texts).append(part)
        if sum(len(p.body) for p in texts) > limit:
            break
    chosen = texts or html[:1]
    if not chosen:  # e.g. a multipart whose boundary never appears: read it as text
        return cut_original(root.text()[:limit]) if root.maintype in ("multipart", "text") else ""
    text = "\n".join(p.text() for p in chosen)[:limit]
    return cut_original(text)


def cut_original(text: str) -> str:
    match = CUT.search(text, 40)
    return text[: match.start()] if match else text


def is_daemon_sender(root: Part) -> bool:
    sender = root.header("from")
    if DAEMON_NAME.search(sender):
        return True
    return root.header("return-path").strip() in ("<>", "<MAILER-DAEMON>") and bool(
        re.search(r"daemon|postmaster|delivery", sender, re.I))


def recipients_from_text(text: str, excluded: set[str], only: list[str] | None,
                         preferred: list[str], transient: bool) -> list[Recipient]:
    """Failed recipients named in a bounce text, each with the words around it.

    Addresses listed under a "the following recipients failed:" heading win over
    addresses mentioned elsewhere; addresses only on echoed ``To:``/``Cc:`` lines of
    the original message (Exchange's "Your message To: … did not reach") count only
    when nothing else is named.
    """
    occurrences = _occurrences(text, excluded, only)
    if not occurrences:
        return [told(a, text, transient) for a in (only or [])]
    listed = listed_recipients(text)
    narrowed = [(a, s) for a, s in occurrences if a in listed]
    if not narrowed:
        echoed = _echoed_lines(text, {s for _, s in occurrences})
        narrowed = [(a, s) for a, s in occurrences if s not in echoed]
    occurrences = narrowed or occurrences
    if preferred:
        narrowed = [(a, s) for a, s in occurrences if a in preferred]
        occurrences = narrowed or occurrences
    windows = _windows(text, occurrences)
    joined = {a: "\n".join(w) for a, w in windows.items()}
    deferred = {a for a, w in joined.items() if _only_deferred(w)}
    if deferred and len(deferred) < len(joined):  # a mixed report: the deferred ones did not fail
        joined = {a: w for a, w in joined.items() if a not in deferred}
    found = [_recipient(a, w, text, transient) for a, w in joined.items()]
    for address in only or []:
        if address not in windows:
            found.append(told(address, text, transient))
    return found


def _windows(text: str, occurrences: list[tuple[str, int]]) -> dict[str, list[str]]:
    """Each address's windows: from its line to the next other address (at most _WINDOW
    characters), at most _MAX_WINDOWS per address — linear in the text."""
    ends = [len(text)] * len(occurrences)
    for index in range(len(occurrences) - 2, -1, -1):   # the next *other* address's line
        following = occurrences[index + 1]
        ends[index] = following[1] if following[0] != occurrences[index][0] else ends[index + 1]
    windows: dict[str, list[str]] = {}
    for (address, start), end in zip(occurrences, ends):
        mine = windows.setdefault(address, [])
        if len(mine) < _MAX_WINDOWS:
            mine.append(text[start: min(end, start + _WINDOW)])
    return windows


def _echoed_lines(text: str, starts: set[int]) -> set[int]:
    """The line starts among ``starts`` whose line echoes a To:/Cc: header."""
    return {start for start in starts if _ECHOED_HEADER.match(text, start)}


# An echoed header line of the original message, as Exchange and others quote it.
_ECHOED_HEADER = re.compile(r"[ \t>]*+(?:to|cc|bcc|an|para|à|a|aan|kopie)[ \t]*+:", re.I)
# A heading after which a bounce lists its failed recipients, one per line (searched only
# in lines that end with a colon or a dash rule).
_LIST_HEADING = re.compile(
    r"(?:(?:the )?following|these|failed|intended|affected|unknown|invalid|bad)\b.{0,60}?"
    r"\b(?:recipients?|addressees?|addresses?|address\(es\)|recipient\(s\)|destinations?|users?)\b"
    r"|(?:delivered|deliver(?:ed)?|reach|sent) to the following\b", re.I)
_LISTED_LINE = re.compile(r"[ \t]*+[-*•>\[(<\"']*+[ \t]*+(?:(?:smtp|rfc822)[:=;]\s*+)?<?"
                          r"([\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+)", re.I)


_BARE_LOCAL = re.compile(r"[ \t]*<?([A-Za-z0-9][\w.+-]{0,63})>?[ \t]*$")


def _heading_ends(text: str, limit: int = 16384) -> list[int]:
    """End offsets of the failed-recipients heading lines in the first ``limit`` characters."""
    ends, start = [], 0
    head = text[:limit]
    for line in head.split("\n"):
        stripped = line.rstrip()
        if stripped.endswith((":", "--")) and len(stripped) < 200 and _LIST_HEADING.search(stripped):
            ends.append(start + len(line))
        start += len(line) + 1
    return ends


def listed_local_parts(text: str) -> list[str]:
    """Bare local parts listed under a failed-recipients heading (AOL and other systems
    name their own users without the domain)."""
    found: list[str] = []
    for position in _heading_ends(text):
        for line in _lines_after(text, position + 1, 8):
            match = _BARE_LOCAL.match(line)
            if not match:
                break
            found.append(match.group(1).lower())
        if found:
            break
    return found


def _lines_after(text: str, position: int, count: int) -> list[str]:
    """Up to ``count`` lines from ``position`` on, blank lines at the start skipped; reads
    only those lines, not the rest of the text."""
    while text.startswith("\n", position):
        position += 1
    lines = []
    while len(lines) < count and position <= len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end
        lines.append(text[position:end])
        position = end + 1
    return lines


# Sendmail's continuation line under a listed address: the address the sender used.
_EXPANDED_LINE = re.compile(r"[ \t]*+\((?:expanded|generated) from:?[ \t]*+<?([^\s<>()@]++@[^\s<>()]+?)>?\)",
                            re.I)


def listed_recipients(text: str) -> set[str]:
    """Addresses listed one per line right under a failed-recipients heading."""
    listed: set[str] = set()
    for position in _heading_ends(text):
        for _ in range(12):
            end = text.find("\n", position + 1)
            line = text[position + 1: end if end >= 0 else len(text)]
            position = end if end >= 0 else len(text)
            if not line.strip():
                continue
            match = _LISTED_LINE.match(line) or _EXPANDED_LINE.match(line)
            address = clean_address(match.group(1)) if match else None
            if address is None:
                break
            listed.add(address)
            if end < 0:
                break
    return listed


def addresses(text: str) -> Iterator[re.Match]:
    """The address matches of a text, left to right, as the plain pattern finds them; in
    linear time (see ADDRESS)."""
    position = 0
    while True:
        match = (position and _ADDRESS_HERE.match(text, position)) or ADDRESS.search(text, position)
        if match is None:
            return
        yield match
        position = match.end()


def _occurrences(text: str, excluded: set[str], only: list[str] | None) -> list[tuple[str, int]]:
    found, line_start, scanned = [], 0, 0
    for match in addresses(text):
        line_start = text.rfind("\n", scanned, match.start()) + 1 or line_start
        scanned = match.start()
        address = clean_address(match.group(0))
        if not address or address in excluded or address.split("@")[0] in _SERVICE_LOCAL:
            continue
        if only is not None and address not in only:
            continue
        if _SENDER_CONTEXT.search(text, max(line_start, match.start() - 40), match.start()):
            continue
        found.append((address, line_start))
    return found


def _only_deferred(window: str) -> bool:
    low = window.lower()
    return bool(_DEFERRED.search(low)) and not FINAL.search(low) and not FAILURE_CODE.search(low)


def _recipient(address: str, window: str, whole: str, transient: bool) -> Recipient:
    """The failure the words around an address describe; where they name no reason, the
    words of the whole report do."""
    status = next((m.group(0) for m in ENHANCED.finditer(window) if m.group(1) in "45"), None)
    reason = reason_for(status, window)
    if reason in (None, "undefined"):
        reason = _named(reason_for(None, whole)) or reason or "undefined"
    reason = given_up(reason, status)
    code = status or pseudo_status(window) or pseudo_status(whole)
    return Recipient(address, kind_of(reason, code, transient), status,
                     one_line(_diagnostic_line(window)), reason)


def told(address: str, text: str, transient: bool) -> Recipient:
    """A recipient known to have failed, with the reason the whole text gives."""
    reason, kind = judge(None, text, transient)
    return Recipient(address, kind, None, None, reason)


def _named(reason: str | None) -> str | None:
    return None if reason == "undefined" else reason


def one_line_reason(window: str) -> str | None:
    return one_line(_diagnostic_line(window))


def _diagnostic_line(window: str) -> str:
    """The most telling line of a window: the one with a reply code, else the first few."""
    lines = [line.strip() for line in window.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if ENHANCED.search(line) or basic_code(line):
            following = lines[index + 1: index + 2]
            if len(line) < 60 and following and following[0][:1] not in "-=*#":
                return line + " " + following[0]
            return line
    return " ".join(lines[:3])


def is_transient(text: str) -> bool:
    """Whether a failure whose words name no cause says it was temporary."""
    low = text.lower()
    return bool(TEMPORARY.search(low)) and not PERMANENT.search(low)
