"""Status codes and diagnostic texts → the kind of a failure (SPEC §6).

``hard``    permanent failure of the address (5.1.x, 5.2.1, 5.4.4, "user unknown"…)
``soft``    transient or mailbox-state failure (4.x.x, 5.2.2, 5.3.x, 5.4.7, "mailbox full"…)
``blocked`` the receiver refused the sender (5.7.x, spam, block lists, SPF/DKIM/DMARC…)

Specific evidence beats generic evidence: a detailed enhanced code (5.1.1,
5.2.2, 5.7.1) decides by itself except where the standard leaves room
(5.7.x "no such user" is hard); a generic one (5.0.0, x.y.0) or a bare SMTP
code defers to the text, and only when the text says nothing does the bare
code decide.
"""
from __future__ import annotations

import re

_I = re.I

ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
FAILURE_CODE = re.compile(r"(?<![\d.])([45])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
BASIC = re.compile(r"(?:^|(?<=[\s:;'\"(\[#<=]))([45][0-5]\d)(?=[\s\-]|$)", re.M)

MAILBOX_FULL = re.compile(
    r"mail ?box (?:is |was )?(?:full|over|exceeded|at capacity)|full mail ?box"
    r"|over ?quota|quota (?:exceeded|full|limit)|exceed(?:ed|s)? (?:the |his |her |its |their |your )?"
    r"(?:storage|quota|mailbox|disk|allowed)|insufficient (?:system )?storage"
    r"|(?:storage|disk) (?:space )?(?:is )?full|out of (?:storage|disk space)|no space left"
    r"|not enough (?:disk |storage )?space|(?:mail ?box|user) (?:size )?limit|too many messages"
    r"|message (?:is )?too (?:large|big)|message size exceeds|exceeds? (?:the )?(?:maximum|message) size"
    r"|size limit|postfach (?:ist )?voll|bo[iî]te (?:aux lettres )?pleine|buz[oó]n lleno", _I)

BLOCKED = re.compile(
    r"spam|black ?list|block ?list|\bblocked\b|(?<!not )\blisted (?:at|in|on|by)\b|spamhaus|spamcop|sorbs"
    r"|barracuda|\brbl\b|dnsbl|reputation|polic(?:y|ies)|\bspf\b|dkim|dmarc|not authori[sz]ed"
    r"|unauthori[sz]ed|unauthenticated|authentication (?:check|fail|required)|\bbanned\b|virus"
    r"|malware|phish|unsolicited|junk|bulk (?:e-?)?mail|content (?:rejected|filter)"
    r"|(?:message|mail|email) (?:was )?(?:rejected|refused) (?:due|because|as)"
    r"|sender (?:address )?(?:rejected|denied|blocked|not allowed)|client host rejected"
    r"|(?:ip|host|domain|sender|network) (?:address )?(?:\S+ )?(?:is |has been |was )?"
    r"(?:blocked|blacklisted|banned|listed)|reverse dns|\bptr\b|rdns|helo command rejected"
    r"|access denied, banned|denied by policy|refused by (?:the )?(?:recipient|policy|filter)"
    r"|suspicious|envelope blocked", _I)

HARD = re.compile(
    r"user(?:name)? (?:is )?unknown|unknown (?:user|recipient|local[- ]?part|mailbox|address|alias|addressee)"
    r"|no such (?:user|recipient|mailbox|person|address|account|local user|domain|e-?mail)"
    r"|(?:does ?n[o']?t|doesn't|did not) exist|not exist|(?:user|recipient|mailbox|address|account"
    r"|addressee)s? (?:was |is )?not found|not found (?:in|by) (?:the )?(?:directory|smtp|address|recipient)"
    r"|mail ?box (?:is |was |has been )?(?:unavailable|not available|disabled|inactive|deactivated"
    r"|closed|suspended|removed|deleted|unknown|not found)|(?:no|invalid|bad) (?:destination )?"
    r"(?:mail ?box|recipient|address|user|e-?mail address|account)|(?:recipient|address|mailbox)"
    r" (?:is )?(?:invalid|unknown)|account (?:has been |is |was )?(?:disabled|closed|deactivated"
    r"|inactive|terminated|deleted|removed|expired|suspended|locked|unavailable)"
    r"|not (?:a )?(?:valid|known) (?:user|recipient|mail ?box|address|e-?mail|account)"
    r"|isn't a valid|recipientnotfound|recipient not found|unrout(?:e)?able|undeliverable address"
    r"|not listed in|no longer (?:available|valid|active|in use|accepts?|exists?|with|employed|works?)"
    r"|(?:host|domain)(?: or domain)?(?: name)? not found|(?:unknown|invalid|non-?existent) domain"
    r"|nxdomain|domain (?:name )?(?:does not exist|not found|is not valid)"
    r"|relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)|unable to relay"
    r"|(?:not permitted|not allowed) to relay|we do not relay|user not found|user not exist"
    r"|(?:couldn't|could not|can't|cannot) be found|addressee unknown|not our customer"
    r"|(?:doesn't|does not) have an? (?:\S+ ){0,2}account|recipient address rejected: access denied"
    r"|address (?:is )?(?:no longer|not) (?:valid|in use|active)|bad address syntax"
    r"|syntax error in (?:the )?(?:recipient )?address|not a mailbox|unknown or illegal alias"
    r"|benutzer unbekannt|unbekannte[rn]? (?:empf|benutzer)|existiert nicht|n'existe pas"
    r"|utilisateur inconnu|destinataire inconnu|usuario desconocido|no existe|utente sconosciuto", _I)

TEMPORARY = re.compile(
    r"temporar(?:y|ily)|try (?:again )?later|please retry|deferr?ed|gr[ea]ylist"
    r"|timed? ?out|time(?:out)? expired|retry (?:timeout|time) (?:exceeded|not reached)|expired"
    r"|too many (?:connections|recipients|concurrent|sessions)|rate limit|throttl"
    r"|connection (?:refused|reset|lost|closed)|could not connect|no route to host"
    r"|network is unreachable|(?:resources?|server|system) (?:temporarily )?(?:unavailable|busy)"
    r"|local error|out of memory|not accepting (?:network )?messages|host (?:is )?unreachable"
    r"|lost connection|gave up|giving up|too long in queue|delivery time", _I)


def parse_code(text: str | None, failures_only: bool = False) -> str | None:
    """The first enhanced status code (class.subject.detail) in a text."""
    if not text:
        return None
    match = (FAILURE_CODE if failures_only else ENHANCED).search(text)
    return match.group(0) if match else None


def basic_code(text: str | None) -> str | None:
    """The first three-digit SMTP failure reply code in a text."""
    match = BASIC.search(text) if text else None
    return match.group(1) if match else None


def text_kind(text: str | None) -> str | None:
    """What the words say, most specific first; None when they say nothing we know."""
    if not text:
        return None
    if MAILBOX_FULL.search(text):
        return "soft"
    if BLOCKED.search(text):
        return "blocked"
    if HARD.search(text):
        return "hard"
    if TEMPORARY.search(text):
        return "soft"
    return None


def kind_for(status: str | None, text: str | None, default: str | None = "hard") -> str | None:
    """The kind of one recipient's failure from its status code and diagnostic text."""
    code = status or parse_code(text, failures_only=True)
    if code:
        klass, subject, detail = (int(x) for x in code.split("."))
        if klass == 4:
            return "soft"
        if klass == 5:
            kind = _enhanced_kind(subject, detail, text)
            if kind:
                return kind
    return _text_or_basic(text, default)


def _enhanced_kind(subject: int, detail: int, text: str | None) -> str | None:
    """Kind from a 5.x.x code; None when the code is too generic and the text must decide."""
    if detail == 0 or subject in (0, 5, 6):
        return None
    if subject == 1:
        return "blocked" if detail in (7, 8) else "hard"
    if subject == 2:
        if detail == 1:
            return "soft" if text and MAILBOX_FULL.search(text) else "hard"
        return "soft" if detail in (2, 3) else None
    if subject == 3:
        return "soft"
    if subject == 4:
        return {4: "hard", 7: "soft"}.get(detail) or text_kind(text) or "soft"
    if subject == 7:
        return _policy_kind(text)
    return None


def _policy_kind(text: str | None) -> str:
    """5.7.x: blocked unless the words clearly name the recipient as the problem."""
    if text and not BLOCKED.search(text):
        if HARD.search(text):
            return "hard"
        if MAILBOX_FULL.search(text):
            return "soft"
    return "blocked"


def _text_or_basic(text: str | None, default: str | None) -> str | None:
    kind = text_kind(text)
    if kind:
        return kind
    code = basic_code(text)
    if code:
        if code[0] == "4" or code == "552":
            return "soft"
        return "hard"
    return default
