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

# Look-behinds come after the first character so that the engine can skip to candidates.
ENHANCED = re.compile(r"([245])(?<![\d.][245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
FAILURE_CODE = re.compile(r"([45])(?<![\d.][45])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
BASIC = re.compile(r"([45][0-5]\d)(?<![^\s:;'\"(\[#<=][45][0-5]\d)(?=[\s\-]|$)", re.M)


def alternatives(*branches: str) -> re.Pattern:
    """One regex of lower-case alternatives, each starting with a literal character.

    Texts are lower-cased once and searched without re.IGNORECASE: then the
    regex engine skips every position whose character cannot start a branch,
    which makes these long alternations several times faster.
    """
    return re.compile("|".join(branches))


def _each(words: str, suffix: str) -> list[str]:
    return [word + suffix for word in words.split()]


MAILBOX_FULL = alternatives(
    r"mail ?box (?:is |was |has )?(?:full|over|exceeded|at capacity)", r"full mail ?box", r"over ?quota",
    r"quota", r"mailfolder is full", r"enough space", r"space has been used up", r"too much mail data",
    r"exceeding receiving limits", r"mail file size exceeds", r"boite du destinataire pleine",
    r"would exceed (?:the )?(?:maximum )?(?:allowed )?storage",
    r"exceed(?:ed|s)? (?:the |his |her |its |their |your )?(?:storage|quota|mailbox|disk|allowed)",
    r"insufficient (?:system )?storage", r"storage (?:space )?(?:is )?full", r"disk (?:space )?(?:is )?full",
    r"out of (?:storage|disk space)", r"no space left", r"not enough (?:disk |storage )?space",
    r"mail ?box (?:size )?limit", r"user (?:size )?limit", r"too many messages",
    r"message (?:is )?too (?:large|big)", r"message size exceeds", r"exceeds? (?:the )?(?:maximum|message) size",
    r"size limit", r"exceeded the maximum (?:incoming |allowed )?(?:message )?size", r"postfach (?:ist )?voll", r"bo[iî]te (?:aux lettres )?pleine", r"buz[oó]n lleno")

BLOCKED = alternatives(
    r"spam", r"black ?list", r"block ?list", r"blocked", r"listed(?<!not listed) (?:at|in|on|by)\b",
    r"sorbs", r"barracuda", r"rbl\b", r"dnsbl", r"reputation", r"polic(?:y|ies)", r"spf\b", r"dkim",
    r"dmarc", r"not authori[sz]ed", r"unauthori[sz]ed", r"unauthenticated",
    r"authentication (?:check|fail|required)", r"banned", r"virus", r"malware", r"phish", r"unsolicited",
    r"junk", r"bulk (?:e-?)?mail", r"content (?:rejected|filter)",
    *_each("message mail email", r" (?:was )?(?:rejected|refused) (?:due|because|as)"),
    r"sender (?:address )?(?:rejected|denied|blocked|not allowed)", r"client host rejected",
    *_each("ip host domain sender network",
           r" (?:address )?(?:\S+ )?(?:is |has been |was )?(?:blacklisted|banned|listed)"),
    r"reverse dns", r"ptr record", r"rdns", r"helo command rejected", r"refused by (?:the )?(?:recipient|filter)",
    r"suspicious", r"dynamic ip", r"open proxy", r"open relay", r"from your ip", r"your ip address",
    r"cannot resolve your", r"cannot find your hostname", r"no access from mail server", r"ip name lookup failed",
    r"mismatches client ip", r"smtp server of your isp", r"confirm this mail server", r"not allowed to send mail from",
    r"not currently accepting mail from", r"not accepting mail from", r"user complaints", r"not authenticated", r"go away")

HARD = alternatives(
    r"user(?:name)? (?:is )?unknown",
    r"unknown (?:user|recipient|local[- ]?part|mailbox|address|alias|addressee)",
    r"no such (?:user|recipient|mailbox|person|address|account|local user|domain|e-?mail)",
    r"not exist", r"n't exist",
    *_each("user recipient mailbox address account addressee", r"s? (?:was |is )?not found"),
    r"not found (?:in|by) (?:the )?(?:directory|smtp|address|recipient)",
    r"mail ?box (?:is |was |has been )?(?:unavailable|not available|disabled|inactive|deactivated"
    r"|closed|suspended|removed|deleted|unknown|not found)",
    *_each("no invalid bad", r" (?:destination )?(?:mail ?box|recipient|address|user|e-?mail address|account)"),
    *_each("recipient address mailbox", r" (?:is )?(?:invalid|unknown)"),
    r"account (?:has been |is |was )?(?:disabled|closed|deactivated|inactive|terminated|deleted|removed"
    r"|expired|suspended|locked|unavailable)",
    r"not (?:a )?(?:valid|known) (?:user|recipient|mail ?box|address|e-?mail|account)",
    r"isn't a valid", r"recipientnotfound", r"recipient not found", r"unrout(?:e)?able", r"undeliverable address",
    r"not listed in", r"no longer (?:available|valid|active|in use|accepts?|exists?|with|employed|works?)",
    r"host(?: or domain)?(?: name)? not found", r"domain(?: name)? not found",
    *_each("unknown invalid nonexistent non-existent", r" domain"), r"nxdomain",
    r"domain (?:name )?(?:does not exist|is not valid)",
    r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited)", r"unable to relay",
    r"not permitted to relay", r"not allowed to relay", r"we do not relay",
    *_each("couldn't could can't cannot", r"(?: not)? be found"),
    r"addressee unknown", r"not our customer",
    *_each("doesn't does", r"(?: not)? have an? (?:\S+ ){0,2}account"),
    r"recipient address rejected: access denied", r"address (?:is )?(?:no longer|not) (?:valid|in use|active)",
    r"bad address syntax", r"syntax error in (?:the )?(?:recipient )?address", r"not a mailbox",
    r"unknown or illegal alias", r"benutzer unbekannt", r"unbekannte[rn]? (?:empf|benutzer)",
    r"existiert nicht", r"n'existe pas", r"utilisateur inconnu", r"destinataire inconnu",
    r"usuario desconocido", r"no existe", r"utente sconosciuto", r"nessun utente",
    r"address invalid", r"address not present", r"address unknown", r"can't accept user",
    r"destination addresses were unknown", r"destination server rejected recipients",
    r"not an active address", r"mailbox not present", r"mailbox unavaiable", r"no account by that name",
    r"no mail box available", r"no valid recipients", r"not a local address", r"recipient is not accepted",
    r"recipient is not local", r"recipient not ok", r"recipient refuses to accept", r"badrcptto",
    r"badrecipientto", r"validrcptto", r"envelope recipient has been denied", r"allowed rcpthosts",
    r"email name is not found", r"there is no one at this address", r"user missing home directory",
    r"user not active", r"user not known", r"unknown virtual user", r"> not found", r"in name directory",
    r"nonexistent user", r"non-existent user", r"was not found in", r"unknown e-?mail", r"host unknown",
    r"unknown host", r"name or service not known", r"domain must exist", r"mail domain mentioned",
    r"account or domain may not exist", r"all host address lookups failed permanently",
    r"non-existent host", r"indicated no smtp service", r"reject all mails", r"does not accept mail",
    r"mailbox unavailable or access denied", r"deactivated mailbox", r"mailbox is disabled",
    r"account has been disabled", r"user suspended", r"is currently suspended", r"does not like recipient",
    r"administratively disabled", r"administrativley disabled", r"couldn't find any host")

TEMPORARY = alternatives(
    r"temporar(?:y|ily)", r"try (?:again )?later", r"please retry", r"deferr?ed", r"gr[ea]ylist",
    r"timed? ?out", r"time(?:out)? expired", r"retry (?:timeout|time) (?:exceeded|not reached)", r"expired",
    r"too many (?:connections|recipients|concurrent|sessions)", r"rate limit", r"throttl",
    r"connection (?:refused|reset|lost|closed|dropped|was dropped)", r"temp_failure", r"could not connect", r"no route to host",
    r"network is unreachable", *_each("resource resources server system", r" (?:temporarily )?(?:unavailable|busy)"),
    r"local error", r"out of memory", r"not accepting (?:network )?messages", r"host (?:is )?unreachable",
    r"lost connection", r"gave up", r"giving up", r"too long in queue", r"delivery time",
    r"have been failing for a long time", r"has been frozen", r"was frozen", r"temporarily inactive",
    r"temporary locked", r"in the queue too long")


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
    """What the words say (``text`` lower-cased), most specific first; None when they say
    nothing we know."""
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
    text = text.lower() if text else ""
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


_SUBJECT_DEFAULT = {1: "hard", 2: "soft", 3: "soft", 4: "soft", 7: "blocked"}


def _enhanced_kind(subject: int, detail: int, text: str | None) -> str | None:
    """Kind from a 5.x.x code; None when the code is too generic and the text must decide."""
    if subject in (0, 5, 6):
        return None
    if detail == 0:  # generic within its subject: the words decide, else the subject does
        return text_kind(text) or _SUBJECT_DEFAULT.get(subject)
    if subject == 1:
        if detail in (7, 8):
            return "blocked"
        return "soft" if text and MAILBOX_FULL.search(text) else "hard"
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
