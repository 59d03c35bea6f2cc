"""What mail systems write for each reason (reasons.py's words; lower-cased text in).

``STRONG`` phrases name their reason whatever the status code says (a "5.1.1 user over
quota" is a full mailbox); they are tried in order, first match wins, so the more
specific reasons come first: authentication before policy, rate limits and block lists
before spam, the sender's problems before "not found" (a "sender address rejected:
domain not found" is not the recipient's domain), temporary DNS failures before
"host not found". ``WEAK`` phrases only decide when no specific status code does.

Learnt from RFC 3463/5321/7505 and the providers' published error lists (Gmail,
Microsoft 365, Yahoo/AOL, Amazon SES, Zoho) and the MTAs' documented texts (Postfix,
Exim, Sendmail, qmail, Courier, OpenSMTPD, Domino, James, Oracle Messaging Server).
Every branch starts with a literal character and uses only bounded repetition: each
search is linear in the text (tests/security/test_linear_time.py).
"""
from __future__ import annotations

import re

# Up to three words between two parts of a phrase ("account <name> is disabled").
_W = r"(?:[^ \n]{1,40} ){0,3}"


def alternatives(*branches: str) -> re.Pattern:
    """One regex of lower-case alternatives, each starting with a literal character.

    Texts are lower-cased once and searched without re.IGNORECASE. The branches are
    merged into a trie on their literal beginnings (``user…|unknown…`` →
    ``u(?:ser…|nknown…)``): at each position the engine tests a few literal characters
    instead of every branch — the same matches, many times faster on long lists.
    """
    pattern = re.compile(trie(branches))
    _SOURCES[pattern] = branches
    return pattern


_SOURCES: dict[re.Pattern, tuple[str, ...]] = {}
# One literal character of a branch (an escaped symbol counts), unless a quantifier follows.
_PLAIN = re.compile(r"(?:\\[^A-Za-z0-9]|[^\\.^$*+?{}\[\]()|])(?![*+?{])")
_PLAIN_RUN = re.compile(f"(?:{_PLAIN.pattern})*+")


def _branches(pattern: re.Pattern) -> tuple[str, ...]:
    return _SOURCES[pattern]


def _units(branch: str) -> tuple[list[str], str]:
    """A branch's leading literal characters (one per unit, escapes kept) and the rest."""
    if _has_top_level_bar(branch):
        return [], f"(?:{branch})"
    prefix = _PLAIN_RUN.match(branch).group(0)
    return _PLAIN.findall(prefix), branch[len(prefix):]


def _has_top_level_bar(branch: str) -> bool:
    depth, escaped, in_class = 0, False, False
    for char in branch:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "|" and depth == 0:
            return True
    return False


def trie(branches) -> str:
    """The alternation of ``branches`` with their common literal beginnings merged."""
    root: dict = {}
    for branch in branches:
        units, rest = _units(branch)
        node = root
        for unit in units:
            node = node.setdefault(unit, {})
        node.setdefault("", []).append(rest)
    return _emit(root)


def _emit(node: dict) -> str:
    options = [unit + _emit(child) for unit, child in node.items() if unit]
    options += [f"(?:{rest})" if "|" in rest else rest for rest in node.get("", [])]
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def each(words: str, suffix: str) -> list[str]:
    return [word + suffix for word in words.split()]


AUTH_FAILURE = alternatives(
    r"spf\b", r"dkim", r"dmarc", r"domainkeys", r"sender policy framework", r"arc validation",
    r"unauthenticated (?:e-?)?mail", r"sender is unauthenticated", r"authentication checks",
    r"pass authentication", r"fails? to authenticate", r"sender authentication", r"not pass dmarc",
    r"required authentication level", r"authentication-results")

GREYLISTED = alternatives(
    r"gr[ae]y ?-?list", r"postgrey", r"not yet authorized to deliver mail from",
    r"please come back later", r"temporarily rejected by sqlgrey")

TOO_MANY_CONNECTIONS = alternatives(
    r"too many (?:smtp |open |concurrent |simultaneous |parallel )?(?:connections|sessions)",
    r"too many concurrent", r"too many (?:recipients|rcpt)", r"connection limit",
    r"concurrent connections", r"max(?:imum)? (?:number of )?connections", r"more than \d{1,4} recipients",
    r"max message per connection", r"too many hosts")

RATE_LIMITED = alternatives(
    r"rate ?-?limit", r"ratelimit", r"receiving (?:e-?)?mail (?:too quickly|too fast|at a rate)",
    r"unusual rate", r"unexpected volume", r"sending rate", r"too many (?:messages|e-?mails|mails) (?:sent|from|in|per|this)",
    r"throttl", r"sending (?:quota|limit)", r"submission quota", r"message quota",
    *each("daily hourly", r" (?:user )?(?:sending |message |recipient |relay )?(?:limit|quota)"),
    r"receive limit", r"mail flood", r"too much mail from", r"sending too fast", r"too fast", r"slow down",
    r"temporarily deferred", r"ts0[12]\b", r"tss04\b", r"exceeded (?:the )?(?:rate|threshold)",
    r"traffic (?:from your|pattern)", r"peak smtp relay limit", r"limit on the number of",
    r"excessive (?:amount|volume|number) of (?:mail|e-?mail|messages)")

IP_BLOCKED = alternatives(
    r"black ?-?list", r"block ?-?list", r"dnsbl", r"rbl\b", r"spamhaus", r"spamcop", r"sorbs",
    r"barracuda", r"uceprotect", r"blocked using", r"listed(?<!not listed) (?:at|in|on|by)\b",
    r"reputation", r"banned sending ip", *each("sending client your source connecting", r" ip\b"),
    r"ip (?:address )?(?:\S{1,40} )?(?:is |has been |was )?(?:blocked|banned|blacklisted|listed|rejected)",
    r"client host", r"reverse dns", r"reverse lookup", r"ptr record", r"ptr lookup", r"rdns",
    r"cannot find your hostname", r"cannot resolve your", r"dynamic ip", r"dial-?up", r"residential",
    r"open proxy", r"open relay", r"from your ip", r"your network", r"part of their network",
    r"s31(?:40|50)\b", r"as31(?:40|50)\b", r"permanently deferred", r"tss09",
    r"not accepted from (?:this|your|the sending) ip",
    r"\[(?:bl|rl|hvu|rly|dyn|cnt)[:0-9]", *each("rly hvu dyn cnt", r":[a-z]\d"), r"ip not in (?:the )?whitelist", r"helo (?:command )?rejected",
    *each("bad invalid illegal forged", r" (?:helo|ehlo)"), r"helo name",
    r"not currently accepting mail from", r"bad outbound sender", r"network is on our", r"dns ptr",
    r"invalid ptr", r"ipcheck", r"found on one or more")

SPAM_DETECTED = alternatives(
    r"spam", r"unsolicited", r"junk", r"bulk (?:e-?)?mail", r"suspicious", r"content (?:filter|rejected)",
    r"phish", r"message (?:was )?identified as", r"user complaints", r"scored as", r"objectionable")

SECURITY_ERROR = alternatives(
    r"virus", r"malware", r"infected", r"trojan", r"security (?:issue|policy violation|threat)",
    r"tls (?:is )?required", r"starttls", r"requiretls", r"encryption (?:is )?(?:required|needed)",
    r"must (?:use|issue) (?:a )?(?:tls|starttls)", r"authentication (?:is )?required",
    r"must (?:first )?authenticate", r"smtp auth", r"anonymous mail", r"certificate",
    r"authentication (?:unsuccessful|failed|credentials)", r"client not authenticated", r"not authenticated to send",
    r"credentials", r"insecure", r"dangerous attachment", r"executable")

SENDER_POLICY = alternatives(
    *each("sender mail-from", r" (?:e-?mail )?(?:address )?(?:is )?"
           r"(?:rejected|refused|denied|blocked|banned|invalid|unknown|not allowed|not permitted)"),
    r"sender (?:e-?mail )?(?:address |domain )?(?:does not|doesn't) exist",
    r"sender (?:domain|verif|address verif|check|not (?:allowed|authori[sz]ed|permitted))",
    r"sender's (?:domain|address)", r"domain of sender", r"from address", r"envelope sender",
    r"mail from:? ?<?[^ \n>]{0,64}>?:? (?:rejected|refused|denied)", r"bad sender", r"sender (?:has been )?blocked",
    r"not accepting mail from", r"rejecting mail from", r"not allowed to send", r"not authori[sz]ed to send",
    r"not permitted to send", r"may not send", r"cannot send (?:e-?)?mail", r"null sender",
    r"refused to accept mail from", r"resolver.rst.(?!recipsizelimit)", r"invalid sender")

EXCEED_LIMIT = alternatives(
    r"recipsizelimit", r"too large for this recipient", r"exceeds (?:the )?recipient'?s? ",
    *each("recipient mailbox", r"'?s? (?:maximum )?(?:message )?size limit"), r"message length exceeds (?:administrative|the) limit",
    r"per-(?:recipient|mailbox) (?:message )?size")

MESSAGE_TOO_BIG = alternatives(
    r"message (?:is )?too (?:large|big)", r"mesg too big", r"message size", r"message (?:\w{1,20} )?exceed(?:s|ed) ",
    r"exceeds? (?:the )?(?:maximum|fixed|allowed|message|max) (?:\w{1,12} )?size", r"size exceeds",
    r"message length exceeds", r"exceeded the maximum (?:incoming |allowed )?(?:message )?size",
    r"message file too big", r"too big for")

MAILBOX_FULL = alternatives(
    r"mail ?box (?:is |was |has )?(?:full|over|exceeded|at capacity)", r"full mail ?box", r"over ?quota",
    r"quota", r"mailfolder is full", r"enough space", r"space has been used up", r"too much mail data",
    r"exceeding receiving limits", r"mail file size exceeds", r"boite du destinataire pleine",
    r"would exceed (?:the )?(?:maximum )?(?:allowed )?storage", r"inbox is full", r"out of storage",
    r"exceed(?:ed|s)? (?:the |his |her |its |their |your )?(?:storage|mailbox|disk|allowed)",
    r"storage (?:space )?(?:is )?full", r"disk (?:space )?(?:is )?full", r"storage allocation",
    r"mail ?box (?:size )?limit", r"user (?:size )?limit", r"too many messages in",
    r"has too many messages", r"full (?:inbox|mailbox)", r"is full", r"postfach (?:ist )?voll",
    r"bo[iî]te (?:aux lettres )?pleine", r"buz[oó]n lleno", r"casella (?:di posta )?piena",
    r"caixa (?:postal |de correio )?(?:cheia|lotada)", *each("mailbox postbus", r" (?:is )?vol\b"), r"容量", r"邮箱已满",
    r"空间不足")

HAS_MOVED = alternatives(
    r"has moved", r"user not local; please try", r"moved (?:permanently|to another)", r"new address is",
    r"mailbox owner has changed", r"domain owner has changed")

NOT_ACCEPT = alternatives(
    r"null ?mx", r"accepts no (?:e-?)?mail", r"does not receive (?:any )?(?:e-?)?mail",
    *each("domain host", r" (?:[^ \n]{1,80} )?does not accept (?:any )?(?:e-?)?mail(?! (?:from|over|via))"),
    r"not accept(?:ing)? any (?:e-?)?mail", r"does not accept mail(?! from)")

SUSPENDED = alternatives(
    *each("account mailbox user address recipient",
           rf" {_W}(?:is |has been |was |currently |temporarily )*+"
           r"(?:disabled|inactive|deactivated|suspended|locked|frozen|on hold|expired|not active)"),
    r"disabled (?:mail ?box|account|user|recipient)", r"inactive (?:mail ?box|account|user|recipient)",
    r"deactivated (?:mail ?box|account|user)", r"suspended (?:mail ?box|account|user)",
    r"is (?:currently )?(?:disabled|suspended|deactivated|inactive)\b",
    r"has been (?:temporarily )?(?:disabled|suspended|deactivated|locked|frozen)\b", r"administrati(?:ve|vely|vley) (?:disabled|prohibited)",
    r"user suspended", r"discontinued", r"not (?:been )?activated", r"account (?:is )?unavailable",
    r"delivery to this (?:mail ?box|account) has been (?:disabled|suspended)")

TEMPORARY_DNS = alternatives(
    r"host not found, try again", r"temporary (?:dns |lookup )?failure", r"try again later .{0,40}dns",
    r"name server (?:timeout|failure)", r"dns (?:lookup )?(?:timed out|timeout|failure|servfail|error: (?:timed|temporary))",
    r"servfail", r"temporary failure in name resolution", r"unable to look up")

HOST_UNKNOWN = alternatives(
    r"host(?: or domain)?(?: name)? (?:not found|unknown|lookup failed)", r"domain(?: name)? not found",
    *each("unknown invalid nonexistent non-existent unresolvable", r" (?:host|domain|mail domain)"),
    r"nxdomain", r"no such (?:domain|host)", r"domain (?:name )?(?:does not exist|doesn't exist|is not valid|unknown)",
    r"unrout(?:e)?able", r"unknown host", r"name or service not known", r"domain must exist",
    r"all host address lookups failed permanently", r"non-existent host", r"indicated no smtp service",
    r"couldn't find any host", r"could not find any host", r"no mx (?:or a )?record", r"no (?:valid )?mx",
    r"illegal host", r"bad destination system", r"mx records point to", r"no route to domain",
    r"domain is not (?:configured|hosted|local)", r"unable to route", r"mail domain mentioned")

USER_UNKNOWN = alternatives(
    r"user(?:name)? (?:is )?unknown", r"unknown (?:user|recipient|local[- ]?part|mail ?box|address|alias|addressee|e-?mail)",
    r"no such (?:user|recipient|mail ?box|person|address|account|local user|e-?mail)",
    r"not exist", r"n't exist", r"does not have an? (?:[^ \n]{1,30} ){0,2}account", r"doesn't have an? (?:[^ \n]{1,30} ){0,2}account",
    *each("user recipient mailbox address account addressee", r"s? (?:was |is )?not found"),
    r"not found (?:in|by) (?:the )?(?:directory|smtp|address|recipient)", r"recip(?:ient)?notfound",
    r"mail ?box (?:is |was |has been )?(?:unknown|not found|removed|deleted|closed)",
    *each("no invalid bad", r" (?:destination )?(?:mail ?box|recipient|address|user|e-?mail address|account)"),
    *each("recipient address mailbox", r" (?:is )?(?:invalid|unknown)"),
    r"account (?:has been |is |was )?(?:closed|terminated|deleted|removed)",
    r"not (?:a )?(?:valid|known) (?:user|recipient|mail ?box|address|e-?mail|account)",
    r"isn't a valid", r"undeliverable address", r"not listed in",
    r"no longer (?:available|valid|active|in use|exists?|accepts? (?:e-?)?mail|with|employed|works?)",
    *each("couldn't could can't cannot", r"(?: not)? be found"), r"addressee unknown", r"not our customer",
    r"recipient address rejected: access denied", r"address (?:is )?(?:no longer|not) (?:valid|in use|active)",
    r"bad address syntax", r"syntax error in (?:the )?(?:recipient )?address", r"not a mailbox",
    r"unknown or illegal alias", r"benutzer unbekannt", r"unbekannte[rn]? (?:empf|benutzer)",
    r"existiert nicht", r"n'existe pas", r"utilisateur inconnu", r"destinataire inconnu",
    r"usuario desconocido", r"no existe", r"utente sconosciuto", r"nessun utente",
    r"empf(?:ä|ae|a)nger (?:ist )?unbekannt", r"adresse (?:e-?mail )?(?:unbekannt|inconnue)",
    r"indirizzo inesistente", r"usu[aá]rio (?:desconhecido|inexistente)", r"onbekende gebruiker",
    r"用户不存在", r"收件人不存在", r"地址不存在",
    r"address invalid", r"address not present", r"address unknown", r"can't accept user",
    r"destination addresses were unknown", r"destination server rejected recipients",
    r"not an active address", r"mailbox not present", r"mailbox unavaiable", r"no account by that name",
    r"no mail box available", r"no valid recipients", r"not a local address", r"recipient is not accepted",
    r"recipient is not local", r"recipient not ok", r"badrcptto", r"badrecipientto", r"validrcptto",
    r"envelope recipient has been denied", r"allowed rcpthosts", r"email name is not found",
    r"there is no one at this address", r"user missing home directory", r"user not known",
    r"unknown virtual user", r"> not found", r"in name directory", r"nonexistent user", r"non-existent user",
    r"was not found in", r"no mailbox here", r"mailbox unavailable or access denied",
    r"suppression list", r"invalid address", r"invalid (?:final delivery )?userid", r"宛先不明", r"存在しない")

EXPIRED = alternatives(
    r"expired", r"retry timeout exceeded", r"retry time not reached", r"too long in (?:the )?queue",
    r"in the queue too long", r"been in the queue", r"have been failing for a long time", r"time limit",
    r"maximum (?:delivery|retry|queue) time", r"could not be delivered (?:with)?in \d", r"for \d{1,3} days",
    r"queue lifetime", r"delivery time", r"not delivered within")

NETWORK_ERROR = alternatives(
    r"timed? ?out", r"connection (?:refused|reset|lost|closed|dropped|was dropped|failed)",
    r"could not connect", r"unable to connect", r"couldn't connect", r"no route to host", r"network (?:is )?unreachable",
    r"host (?:is )?unreachable", r"lost connection", r"requests to connect", r"smtp conversation",
    r"loop", r"too many hops", r"hop count", r"bad connection", r"no answer from host",
    r"establish an smtp connection", r"broken pipe", r"read error", r"tls handshake")

SYSTEM_ERROR = alternatives(
    r"relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed)", r"unable to relay",
    r"not permitted to relay", r"not allowed to relay", r"we do not relay", r"relay not permitted",
    r"system error", r"internal (?:server )?error", r"local error", r"server error", r"system (?:is )?(?:busy|unavailable|overloaded|full)",
    r"server (?:is )?(?:busy|unavailable|overloaded)", r"resources? (?:temporarily )?unavailable",
    r"out of memory", r"insufficient (?:system )?(?:storage|resources)", r"no space left", r"not accepting (?:network )?messages",
    r"configuration (?:error|problem)", r"misconfigur", r"write error", r"temporary (?:local |system )?problem", r"i/o error",
    r"system not accepting", r"storedrv", r"temp_failure", r"temporar(?:y|ily) (?:unavailable|rejected)")

MAILER_ERROR = alternatives(
    r"mailer error", r"unknown mailer", r"command (?:died|failed|output|returned)", r"procmail", r"maildrop",
    r"exit (?:code|status)", r"returned (?:exit|status) ", r"child process", r"pipe to", r"delivery to (?:a )?(?:pipe|program|file)",
    r"local delivery failed", r"mail transport unavailable")

CONTENT_ERROR = alternatives(
    r"header (?:error|is missing|missing|invalid|syntax|line|field|too|size)", r"invalid header",
    r"missing (?:a )?(?:valid )?(?:[a-z-]{1,16} )?header", r"headers? (?:is |are )?(?:malformed|invalid|missing|too)",
    r"duplicate header", r"lone (?:cr|lf)", *each("from to date subject message-id", r": header"), r"malformed", r"mime (?:error|part|type|structure|boundary)",
    r"8-?bit (?:data|characters|content|mime)", r"bare (?:lf|linefeed|cr)", r"barelinefeeds", r"line too long",
    r"rfc ?(?:2822|5322) (?:compliant|compliance|standard)", r"rfc 822 (?:compliant|compliance|standard)", r"not (?:rfc )?compliant",
    r"does not comply", r"invalid (?:character|encoding|content)", r"encoding error", r"conversion",
    r"attachment (?:type|not allowed|is not|blocked|rejected)", r"file (?:type|extension|name) ",
    r"content (?:error|not allowed)", r"non-ascii", r"smtputf8")

POLICY_VIOLATION = alternatives(
    r"polic(?:y|ies)", r"violat", r"prohibited", r"not authori[sz]ed", r"unauthori[sz]ed", r"not authenticated",
    r"restricted", r"only accept(?:s|ing)? (?:e-?mail|mail|messages) from", r"prohibition", r"external senders", r"allowed senders",
    r"not allowed to receive", r"refused by (?:the )?(?:recipient|administrator|filter)", r"recipient refuses",
    r"blocked by (?:the )?(?:recipient|user|administrator|organi[sz]ation)", r"banned", r"go away",
    r"notauthorized", r"moderat", r"distribution list", r"delivery not authori[sz]ed",
    r"rejected by (?:the )?(?:recipient|filter|rule|destination)")

# Texts that name several causes at once but mean one ("the account or domain may not exist,
# they may be blacklisted…" is cPanel's wording for a recipient that is not there).
FIRST = alternatives(r"account or domain may not exist")

STRONG: tuple[tuple[str, re.Pattern], ...] = (
    ("host-unknown", FIRST), ("auth-failure", AUTH_FAILURE), ("greylisted", GREYLISTED),
    ("too-many-connections", TOO_MANY_CONNECTIONS), ("rate-limited", RATE_LIMITED),
    ("ip-blocked", IP_BLOCKED), ("spam-detected", SPAM_DETECTED), ("policy-violation", SENDER_POLICY),
    ("security-error", SECURITY_ERROR), ("exceed-limit", EXCEED_LIMIT),
    ("message-too-big", MESSAGE_TOO_BIG), ("mailbox-full", MAILBOX_FULL), ("has-moved", HAS_MOVED),
    ("not-accept", NOT_ACCEPT), ("suspended", SUSPENDED), ("network-error", TEMPORARY_DNS),
    ("host-unknown", HOST_UNKNOWN), ("user-unknown", USER_UNKNOWN), ("expired", EXPIRED),
    ("network-error", NETWORK_ERROR), ("system-error", SYSTEM_ERROR), ("mailer-error", MAILER_ERROR),
    ("content-error", CONTENT_ERROR), ("policy-violation", POLICY_VIOLATION),
)

# Words every kind of refusal uses: they name a reason only where no code does better.
WEAK_SENDER = alternatives(r"mail from command", r"after mail from", r"after pipelined mail from")
WEAK_USER = alternatives(
    r"mail ?box (?:is |was )?(?:unavailable|not available)", r"requested action not taken",
    r"recipient (?:address )?(?:rejected|refused|denied)", r"address rejected", r"does not like recipient",
    r"rcpt to", r"invalid recipient")
WEAK_POLICY = alternatives(
    r"rejected", r"refused", r"denied", r"blocked", r"not allowed", r"not permitted", r"forbidden",
    r"declined", r"not accepted", r"dropped")
WEAK_SYSTEM = alternatives(
    r"temporar", r"try (?:again )?later", r"please retry", r"deferr?ed", r"service (?:not )?(?:available|unavailable)",
    r"busy", r"unavailable")

WEAK: tuple[tuple[str, re.Pattern], ...] = (
    ("policy-violation", WEAK_SENDER), ("user-unknown", WEAK_USER), ("policy-violation", WEAK_POLICY),
    ("system-error", WEAK_SYSTEM),
)


# Every strong phrase at once: where one starts, the rules are asked which matches there.
_ANY_STRONG = re.compile(trie([b for _, p in STRONG for b in _branches(p)]))


def first_reason(low: str, rules: tuple[tuple[str, re.Pattern], ...]) -> str | None:
    """The first rule's reason whose words appear in the (lower-cased) text."""
    for reason, pattern in rules:
        if pattern.search(low):
            return reason
    return None


def strong_reason(low: str) -> str | None:
    """``first_reason(low, STRONG)`` in one pass: each place where some strong phrase
    starts is tested only against the rules that would beat the best found so far."""
    best = len(STRONG)
    match = _ANY_STRONG.search(low)
    while match is not None and best:
        at = match.start()
        best = next((i for i in range(best) if STRONG[i][1].match(low, at)), best)
        match = _ANY_STRONG.search(low, at + 1)
    return STRONG[best][0] if best < len(STRONG) else None
