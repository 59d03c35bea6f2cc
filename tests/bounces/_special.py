"""Reports whose words are the sending system's own (local delivery, DNS, queue expiry,
Domino, Japanese carriers), feedback reports, and messages that are not failures.

Each builder returns (file name, message, expected entry); labels are by hand.
"""
from __future__ import annotations

from email.header import Header

from _formats import (SENDER, SENDER_HOST, Ctx, folded, head, original, parts, report,
                      returned_headers, returned_message, wrapped)


def _ctx(n: int, addr: str, subject: str = "Spring newsletter") -> Ctx:
    return Ctx(500 + n, addr, "550", None, "", "mx.example.net", "198.51.100.7", subject)


def _entry(source: str, addr: str | None = None, kind: str = "", reason: str = "", status=None,
           bounce: bool = True, why: str | None = None) -> dict:
    recipients = [(addr, kind, reason, status)] if addr else []
    return {"bounce": bounce, "source": source, "recipients": recipients, "reason": why}


def _postfix_dsn(ctx: Ctx, said: str, status: str, diagnostic: str, action: str = "failed",
                 subject: str = "Undelivered Mail Returned to Sender", intro: str | None = None) -> str:
    b = f"{ctx.n:04X}.1741{ctx.n:06d}/{SENDER_HOST}"
    intro = intro or ("I'm sorry to have to inform you that your message could not\nbe delivered to one or "
                      "more recipients. It's attached below.\n\nFor further assistance, please send mail to "
                      "postmaster.\n\nIf you do so, please include this problem report. You can\ndelete your "
                      "own text from the attached returned message.")
    text = (f"Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\nThis is the "
            f"mail system at host {SENDER_HOST}.\n\n{intro}\n\n                   The mail system\n\n"
            f"{wrapped(said)}\n")
    extra = f"X-Postfix-Queue-ID: 4Q{ctx.n:04X}Z\nX-Postfix-Sender: rfc822; {SENDER}\nArrival-Date: {ctx.date(-2)}\n"
    dsn = (f"Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
           f"Reporting-MTA: dns; {SENDER_HOST}\n{extra}\nFinal-Recipient: rfc822; {ctx.addr}\n"
           f"Original-Recipient: rfc822;{ctx.addr}\nAction: {action}\nStatus: {status}\n"
           + (folded("Diagnostic-Code", diagnostic) + "\n" if diagnostic else ""))
    msg = head(ctx, "MAILER-DAEMON@mail.example.com (Mail Delivery System)", subject, SENDER_HOST, report(b),
               "Auto-Submitted: auto-replied\n")
    return msg + "\nThis is a MIME-encapsulated message.\n\n" + parts(b, text, dsn, returned_headers(ctx))


def postfix_local() -> list:
    src = "Postfix local(8)/pipe(8)/smtp(8) DSN (X-Postfix and x-unix diagnostics)"
    cases = [
        ("postfix_local_unknown_user", "aiko.local@mail.example.org", "5.1.1",
         'X-Postfix; unknown user: "aiko.local"', "user-unknown", "hard"),
        ("postfix_local_disk_quota", "bruno.local@mail.example.org", "5.2.2",
         "x-unix; cannot update mailbox /var/mail/bruno.local for user bruno.local. error writing message: "
         "Disk quota exceeded", "mailbox-full", "soft"),
        ("postfix_local_procmail", "chen.local@mail.example.org", "5.3.0",
         'x-unix; Command died with status 1: "/usr/bin/procmail". Command output: procmail: Couldn\'t create '
         '"/var/mail/chen.local"', "mailer-error", "soft"),
        ("postfix_host_not_found", "dalia@nowhere.example", "5.4.4",
         "X-Postfix; Host or domain name not found. Name service error for name=nowhere.example type=MX: Host "
         "not found", "host-unknown", "hard"),
        ("postfix_timeout_given_up", "emeka@slow.example", "4.4.1",
         "X-Postfix; connect to mx.slow.example[198.51.100.7]:25: Connection timed out", "expired", "soft"),
        ("postfix_nullmx", "fiona@nullmx.example", "5.1.0",
         "X-Postfix; Domain nullmx.example does not accept mail (nullMX)", "not-accept", "hard"),
        ("postfix_loops_back", "goran@loop.example", "5.4.6",
         "X-Postfix; mail for loop.example loops back to myself", "network-error", "soft"),
        ("postfix_dns_temporary_given_up", "hana@flaky.example", "4.4.3",
         "X-Postfix; Host or domain name not found. Name service error for name=flaky.example type=MX: Host "
         "not found, try again", "expired", "soft"),
    ]
    out = []
    for i, (name, addr, status, diag, reason, kind) in enumerate(cases):
        ctx = _ctx(i, addr)
        said = f"<{addr}>: {diag.split('; ', 1)[1]}"
        out.append((f"gen_{name}.eml", _postfix_dsn(ctx, said, status, diag), _entry(src, addr, kind, reason, status)))
    return out


def _exim(ctx: Ctx, listing: str, failed: str) -> str:
    host = "mx1.example.com"
    body = ("This message was created automatically by mail delivery software.\n\nA message that you sent "
            "could not be delivered to one or more of its\nrecipients. This is a permanent error. The "
            f"following address(es) failed:\n\n{listing}\n\n"
            "------ This is a copy of the message, including all the headers. ------\n\n"
            f"{original(ctx)}\nHello,\n\nour spring issue is out.\n")
    msg = head(ctx, f"Mail Delivery System <Mailer-Daemon@{host}>",
               "Mail delivery failed: returning message to sender", host, "text/plain; charset=us-ascii",
               f"X-Failed-Recipients: {failed}\nAuto-Submitted: auto-replied\n")
    return msg + "\n" + body


def exim_local() -> list:
    src = "Exim 4 bounce text: appendfile quota, router and retry-rule messages"
    cases = [
        ("exim_appendfile_quota", "ivan@mail.example.org", "  {a}\n    mailbox is full (MTA-imposed quota "
         "exceeded while writing to file /var/mail/ivan)", "mailbox-full", "soft"),
        ("exim_unrouteable", "jules@nowhere.example", "  {a}\n    Unrouteable address", "host-unknown", "hard"),
        ("exim_retry_timeout", "kofi@slow.example", "  {a}\n    host mx.slow.example [198.51.100.9]: Connection "
         "timed out\n    retry timeout exceeded", "expired", "soft"),
        ("exim_mx_nonexistent", "lucia@badmx.example", "  {a}\n    all relevant MX records point to non-existent "
         "hosts", "host-unknown", "hard"),
        ("exim_pipe_failed", "mateo@mail.example.org", "  pipe to |/usr/local/bin/ticket-import\n    generated by "
         "{a}\n    local delivery failed\n    Child process of address_pipe transport returned 69 (could mean "
         "service or program unavailable) from command:\n    /usr/local/bin/ticket-import", "mailer-error", "soft"),
        ("exim_no_such_user", "nadia@mail.example.org", "  {a}\n    No Such User Here", "user-unknown", "hard"),
    ]
    out = []
    for i, (name, addr, listing, reason, kind) in enumerate(cases):
        ctx = _ctx(20 + i, addr)
        out.append((f"gen_{name}.eml", _exim(ctx, listing.format(a=addr), addr),
                    _entry(src, addr, kind, reason, None)))
    return out


def _qmail(ctx: Ctx, said: str) -> str:
    host = "qmail.example.com"
    body = (f"Hi. This is the qmail-send program at {host}.\nI'm afraid I wasn't able to deliver your message "
            "to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n"
            f"<{ctx.addr}>:\n{said}\n\n--- Below this line is a copy of the message.\n\n{original(ctx)}\n"
            "Hello,\n\nour spring issue is out.\n")
    return head(ctx, f"MAILER-DAEMON@{host}", "failure notice", host, "text/plain") + "\n" + body


def qmail_local() -> list:
    src = "qmail-send / vpopmail bounce texts (QSBMF)"
    cases = [
        ("qmail_vpopmail_no_mailbox", "oskar@mail.example.org", "Sorry, no mailbox here by that name. vpopmail "
         "(#5.1.1)", "user-unknown", "hard", "5.1.1"),
        ("qmail_vpopmail_over_quota", "priya@mail.example.org", "user is over quota", "mailbox-full", "soft", None),
        ("qmail_no_host", "quentin@nowhere.example", "Sorry, I couldn't find any host named nowhere.example. "
         "(#5.1.2)", "host-unknown", "hard", "5.1.2"),
        ("qmail_queue_too_long", "rosa@slow.example", "Sorry, I wasn't able to establish an SMTP connection. "
         "(#4.4.1)\nI'm not going to try again; this message has been in the queue too long.", "expired", "soft",
         "4.4.1"),
        ("qmail_bouncesaying", "sven@mail.example.org", "This address no longer accepts mail.", "user-unknown",
         "hard", None),
    ]
    return [(f"gen_{name}.eml", _qmail(_ctx(40 + i, addr), said), _entry(src, addr, kind, reason, status))
            for i, (name, addr, said, reason, kind, status) in enumerate(cases)]


def sendmail_local() -> list:
    out = []
    ctx = _ctx(60, "tariq@nowhere.example")
    b = "0060.1741000060/relay.example.com"
    text = ("Content-Type: text/plain\n\nThe original message was received at " + ctx.date(-3) + "\nfrom "
            "app.example.com [192.0.2.10]\n\n   ----- The following addresses had permanent fatal errors -----\n"
            f"<{ctx.addr}>\n\n   ----- Transcript of session follows -----\n550 5.1.2 <{ctx.addr}>... Host "
            "unknown (Name server: nowhere.example: host not found)\n")
    dsn = ("Content-Type: message/delivery-status\n\nReporting-MTA: dns; relay.example.com\nArrival-Date: "
           f"{ctx.date(-3)}\n\nFinal-Recipient: RFC822; {ctx.addr}\nAction: failed\nStatus: 5.1.2\n"
           f"Last-Attempt-Date: {ctx.date()}\n")
    msg = head(ctx, "Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>",
               "Returned mail: see transcript for details", "relay.example.com", report(b))
    out.append(("gen_sendmail_host_unknown.eml", msg + "\n" + parts(b, text, dsn, returned_message(ctx)),
                _entry("Sendmail 8 DSN: Host unknown (Name server)", ctx.addr, "hard", "host-unknown", "5.1.2")))
    ctx = _ctx(61, "ursula@slow.example")
    text = ("Content-Type: text/plain\n\nThe original message was received at " + ctx.date(-3) + "\nfrom "
            "app.example.com [192.0.2.10]\n\n   ----- The following addresses had permanent fatal errors -----\n"
            f"<{ctx.addr}>\n    (reason: Deferred: Connection timed out with mx.slow.example.)\n\n"
            "   ----- Transcript of session follows -----\n<" + ctx.addr + ">... Deferred: Connection timed out "
            "with mx.slow.example.\nMessage could not be delivered for 5 days\nMessage will be deleted from queue\n")
    dsn = ("Content-Type: message/delivery-status\n\nReporting-MTA: dns; relay.example.com\nArrival-Date: "
           f"{ctx.date(-3)}\n\nFinal-Recipient: RFC822; {ctx.addr}\nAction: failed\nStatus: 4.4.7\n"
           f"Last-Attempt-Date: {ctx.date()}\n")
    msg = head(ctx, "Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>",
               "Returned mail: see transcript for details", "relay.example.com", report(b))
    out.append(("gen_sendmail_expired_5_days.eml", msg + "\n" + parts(b, text, dsn, returned_message(ctx)),
                _entry("Sendmail 8 DSN: queue timeout ('could not be delivered for 5 days')", ctx.addr, "soft",
                       "expired", "4.4.7")))
    return out


def exchange_and_gmail_local() -> list:
    out = []
    ctx = _ctx(70, "viktor@slow.example")
    b = "_000_0070EX1601_"
    text = ("Content-Type: text/plain; charset=\"us-ascii\"\n\nDelivery has failed to these recipients or groups:"
            f"\n\n{ctx.addr} ({ctx.addr})\nThe message couldn't be delivered because the recipient's email system "
            "didn't respond in time.\n\nDiagnostic information for administrators:\n\nGenerating server: "
            f"EX16-01.corp.example.com\n\n{ctx.addr}\n#550 4.4.7 QUEUE.Expired; message expired ##\n\n"
            f"Original message headers:\n\n{original(ctx)}")
    dsn = ("Content-Type: message/delivery-status\n\nReporting-MTA: dns;EX16-01.corp.example.com\n\n"
           f"Final-recipient: RFC822; {ctx.addr}\nAction: failed\nStatus: 4.4.7\n"
           "Diagnostic-code: smtp;550 4.4.7 QUEUE.Expired; message expired\n")
    msg = head(ctx, "Microsoft Outlook <postmaster@corp.example.com>", f"Undeliverable: {ctx.subject}",
               "EX16-01.corp.example.com", report(b), "X-MS-Exchange-Message-Is-Ndr:\n")
    out.append(("gen_exchange_queue_expired.eml", msg + "\n" + parts(b, text, dsn, returned_headers(ctx)),
                _entry(f"Exchange Server NDR; {MS}", ctx.addr, "soft", "expired", "4.4.7")))
    for i, (name, addr, heading, said, status, diag, reason, kind) in enumerate([
        ("gmail_dns_nxdomain", "wen@nowhere.example", "Address not found",
         "Your message wasn't delivered to {a} because the domain nowhere.example couldn't be found. Check for "
         "typos or unnecessary spaces and try again.", "5.1.2",
         "smtp; DNS Error: DNS type 'mx' lookup of nowhere.example responded with code NXDOMAIN Domain name not "
         "found: nowhere.example", "host-unknown", "hard"),
        ("gmail_connect_given_up", "ximena@slow.example", "Message not delivered",
         "There was a problem delivering your message to {a}. See the technical details below.", "4.4.1",
         "smtp; The recipient server did not accept our requests to connect. For more information, go to "
         "https://support.google.com/mail/answer/7720 [mx.slow.example. 198.51.100.7: timed out]",
         "expired", "soft"),
    ]):
        ctx = _ctx(71 + i, addr)
        b = f"0000000000000071{i}deadbeef"
        text = (f"Content-Type: text/plain; charset=\"UTF-8\"\n\n\n** {heading} **\n\n{said.format(a=addr)}\n\n"
                f"The response was:\n\n{diag.split('; ', 1)[1]}\n")
        dsn = ("Content-Type: message/delivery-status\n\nReporting-MTA: dns; googlemail.com\n"
               f"Arrival-Date: {ctx.date(-1)}\n\nFinal-Recipient: rfc822; {addr}\nAction: failed\n"
               f"Status: {status}\n{folded('Diagnostic-Code', diag)}\nLast-Attempt-Date: {ctx.date()}\n")
        msg = head(ctx, "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                   "Delivery Status Notification (Failure)", "mail-sor-f69.google.com", report(b),
                   f"X-Failed-Recipients: {addr}\n")
        out.append((f"gen_{name}.eml", msg + "\n" + parts(b, text, dsn, returned_message(ctx)),
                    _entry(f"Gmail outbound DSN; {GM}", addr, kind, reason, status)))
    return out


MS = "Microsoft Learn: Exchange NDR 4.4.7 QUEUE.Expired"
GM = "Gmail SMTP errors and codes (DNS Error, 4.4.1 connection)"


def domino_local() -> list:
    out = []
    for i, (name, addr, because, reason, kind) in enumerate([
        ("domino_not_listed", "yusuf@notes.example.org",
         "User yusuf (yusuf@notes.example.org) not listed in Domino Directory", "user-unknown", "hard"),
        ("domino_quota", "zelda@notes.example.org",
         "Unable to deliver message: zelda's mail file has exceeded its quota", "mailbox-full", "soft"),
    ]):
        ctx = _ctx(80 + i, addr)
        body = (f"Your message\n\n  Subject: {ctx.subject}\n\nwas not delivered to:\n\n  {addr}\n\nbecause:\n\n"
                f"  {because}\n")
        msg = head(ctx, "Mail Router <postmaster@notes01.example.com>", f"DELIVERY FAILURE: {because}",
                   "notes01.example.com", "text/plain; charset=US-ASCII")
        out.append((f"gen_{name}.eml", msg + "\n" + body,
                    _entry("HCL/Lotus Domino Delivery Failure Report (router)", addr, kind, reason, None)))
    return out


def _jp(text: str) -> bytes:
    return text.encode("iso-2022-jp")


def japanese_carriers() -> list:
    out = []
    ctx = _ctx(90, "aiko.sato@ezweb.example")
    body = (f"Your mail sent on: {ctx.date(-1)}\n   could not be delivered to the following address:\n\n"
            f"<{ctx.addr}>\n        The user(s) account is disabled.\n\n--- original message header ---\n"
            f"{original(ctx)}")
    msg = head(ctx, "MAILER-DAEMON@ezweb.example", "Mail Delivery Failure", "lsean.ezweb.example",
               "text/plain; charset=us-ascii")
    out.append(("gen_au_account_disabled.eml", msg + "\n" + body,
                _entry("au (KDDI) ezweb returned mail; wording from Japanese ISPs' FAQs", ctx.addr, "soft",
                       "suspended", None)))
    ctx = _ctx(91, "bunta.ito@ezweb.example")
    body = (f"Your mail sent on: {ctx.date(-1)}\n   could not be delivered to the following address:\n\n"
            f"<{ctx.addr}>: User unknown\n\n--- original message header ---\n{original(ctx)}")
    msg = head(ctx, "MAILER-DAEMON@ezweb.example", "Mail Delivery Failure", "lsean.ezweb.example",
               "text/plain; charset=us-ascii")
    out.append(("gen_au_user_unknown.eml", msg + "\n" + body,
                _entry("au (KDDI) ezweb returned mail", ctx.addr, "hard", "user-unknown", None)))
    for i, (name, addr, line, reason, kind, status) in enumerate([
        ("au_japanese_unknown", "chika.abe@au.example", "宛先のメールアドレスが存在しません (550 User unknown)",
         "user-unknown", "hard", None),
        ("softbank_japanese_quota", "daiki.mori@softbank.example",
         "受信者のメールボックスの容量を超えているため配信できませんでした (552 5.2.2 Mailbox full)",
         "mailbox-full", "soft", "5.2.2"),
    ]):
        ctx = _ctx(92 + i, addr)
        text = (f"以下のメールアドレスへの送信に失敗しました。\n\n<{addr}>\n    {line}\n\n"
                "送信されたメールのヘッダーは以下のとおりです。\n\n")
        subject = Header("メール送信エラー (Mail Delivery Failure)", "iso-2022-jp").encode()
        msg = head(ctx, "MAILER-DAEMON@mx.softbank.example", subject, "mx.softbank.example",
                   "text/plain; charset=ISO-2022-JP", "Content-Transfer-Encoding: 7bit\n")
        raw = (msg + "\n").replace("\n", "\r\n").encode() + _jp(text + original(ctx)).replace(b"\n", b"\r\n")
        out.append((f"gen_{name}.eml", raw, _entry("Japanese carriers' returned mail in ISO-2022-JP "
                                                   "(docomo/au/SoftBank FAQs)", addr, kind, reason, status)))
    return out


def _arf(n: int, addr: str, feedback: str, extra: str = "", original_to: bool = True) -> str:
    ctx = _ctx(n, addr)
    b = f"arf_{n}_boundary"
    human = ("Content-Type: text/plain; charset=us-ascii\n\nThis is an email abuse report for an email message "
             f"received from IP 198.51.100.{n % 200} on {ctx.date(-60)}.\nFor more information about this "
             "format please see http://www.mipassoc.org/arf/.\n")
    fields = (f"Content-Type: message/feedback-report\n\nFeedback-Type: {feedback}\nUser-Agent: "
              f"ExampleFBL/1.0\nVersion: 1\nOriginal-Mail-From: <{SENDER}>\n{extra}Arrival-Date: {ctx.date(-60)}\n"
              f"Reporting-MTA: dns; feedback.example.net\nSource-IP: 198.51.100.{n % 200}\n")
    orig = original(ctx) if original_to else original(ctx).replace(f"To: <{addr}>\n", "To: undisclosed-recipients:;\n")
    ctype = f'multipart/report; report-type=feedback-report;\n\tboundary="{b}"'
    msg = head(ctx, "Feedback Loop <fbl@feedback.example.net>", "Abuse Report", "feedback.example.net", ctype)
    return msg + "\n" + parts(b, human, fields, f"Content-Type: message/rfc822\n\n{orig}\nHello\n")


def arf_reports() -> list:
    src = "RFC 5965 ARF feedback report (mailbox providers' feedback loops)"
    return [
        ("gen_arf_abuse_original_to.eml", _arf(100, "ellie.berg@isp.example", "abuse"),
         _entry(src, "ellie.berg@isp.example", "complaint", "complaint", None)),
        ("gen_arf_fraud.eml", _arf(101, "farid.costa@isp.example", "fraud"),
         _entry(src, "farid.costa@isp.example", "complaint", "complaint", None)),
        ("gen_arf_removal_recipient.eml", _arf(102, "gina.novak@isp.example", "abuse",
                                               "Removal-Recipient: gina.novak@isp.example\n", False),
         _entry(src + " (Removal-Recipient)", "gina.novak@isp.example", "complaint", "complaint", None)),
        ("gen_arf_original_rcpt_to.eml", _arf(103, "hugo.rossi@isp.example", "other",
                                              "Original-Rcpt-To: <hugo.rossi@isp.example>\n", False),
         _entry(src + " (Original-Rcpt-To)", "hugo.rossi@isp.example", "complaint", "complaint", None)),
        ("gen_arf_not_spam.eml", _arf(104, "iris.moreau@isp.example", "not-spam"),
         _entry(src + " (not-spam: not a complaint)", bounce=False, why="not-a-report")),
        ("gen_arf_auth_failure.eml", _arf(105, "jonas.petrov@isp.example", "auth-failure",
                                          "Auth-Failure: dkim\nReported-Domain: example.com\n"),
         _entry("RFC 6591 authentication failure report (not a complaint)", bounce=False, why="not-a-report")),
    ]


def _dsn_report(ctx: Ctx, sender: str, subject: str, host: str, text: str, fields: str, extra: str = "") -> str:
    b = f"{ctx.n:04d}.{host}"
    dsn = f"Content-Type: message/delivery-status\n\nReporting-MTA: dns; {host}\n\n{fields}"
    msg = head(ctx, sender, subject, host, report(b), extra)
    return msg + "\n" + parts(b, f"Content-Type: text/plain; charset=us-ascii\n\n{text}", dsn, returned_headers(ctx))


def delivered_and_delayed() -> list:
    out, n = [], 110
    pm = "MAILER-DAEMON@mail.example.com (Mail Delivery System)"
    cases = [
        ("gen_postfix_success_delivered.eml", pm, "Successful Mail Delivery Report",
         "This is the mail system at host mail.example.com.\n\nYour message was successfully delivered to the "
         "destination(s)\nlisted below. If the message was delivered to mailbox you will\nreceive no further "
         "notifications. Otherwise you may still receive\nnotifications of mail delivery errors from other "
         "systems.\n\n                   The mail system\n\n<{a}>: delivery via mx.example.net[198.51.100.7]:25: "
         "250 2.0.0 Ok: queued as 4XyZ9\n", "delivered", "2.0.0", "smtp; 250 2.0.0 Ok: queued as 4XyZ9",
         "delivered", "Postfix success DSN (NOTIFY=SUCCESS)"),
        ("gen_postfix_relayed_non_dsn.eml", pm, "Successful Mail Delivery Report",
         "This is the mail system at host mail.example.com.\n\nYour message was successfully delivered to the "
         "destination(s)\nlisted below. If the message was delivered to mailbox you will\nreceive no further "
         "notifications. Otherwise you may still receive\nnotifications of mail delivery errors from other "
         "systems.\n\n                   The mail system\n\n<{a}>: delivery via mx.example.net[198.51.100.7]:25: "
         "250 2.0.0 Ok (relayed to non-DSN-aware mailer)\n", "relayed", "2.0.0",
         "smtp; 250 2.0.0 Ok", "delivered", "Postfix DSN, relayed to a non-DSN-aware mailer"),
        ("gen_exchange_delivered.eml", "Microsoft Outlook <postmaster@corp.example.com>", "Delivered: {s}",
         "Your message has been delivered to the following recipients:\n\n{a} ({a})\n\nSubject: {s}\n",
         "delivered", "2.0.0", None, "delivered", "Exchange delivery receipt (DSN, Action: delivered)"),
        ("gen_exchange_relayed.eml", "Microsoft Outlook <postmaster@corp.example.com>", "Relayed: {s}",
         "Delivery to these recipients or groups is complete, but no delivery notification was sent by the "
         "destination server:\n\n{a} ({a})\n\nSubject: {s}\n", "relayed", "2.0.0", None, "delivered",
         "Exchange relay notice (DSN, Action: relayed)"),
        ("gen_sendmail_expanded.eml", "Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>",
         "Return receipt", "The original message was received at {d}\nfrom app.example.com [192.0.2.10]\n\n"
         "   ----- The following addresses had successful delivery notifications -----\n<{a}>  (expanded: to "
         "multiple recipients)\n", "expanded", "2.0.0", None, "delivered",
         "Sendmail return receipt (Action: expanded)"),
        ("gen_success_mentions_failures.eml", "Mail Delivery System <MAILER-DAEMON@relay.example.com>",
         "Delivery Status Notification (Success)", "This is an automatically generated Delivery Status "
         "Notification.\n\nDelivery to the following recipients was successful. If delivery to any other "
         "recipient failed, or a message could not be delivered, you will get a separate undeliverable "
         "notice.\n\n   {a}\n", "delivered", "2.0.0", "smtp; 250 2.0.0 OK", "delivered",
         "RFC 3464 success DSN whose text mentions failures"),
        ("gen_postfix_delayed_tss04.eml", pm, "Delayed Mail (still being retried)",
         "This is the mail system at host mail.example.com.\n\n####################################################"
         "################\n# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n#################"
         "###################################################\n\nYour message could not be delivered for more than "
         "4 hour(s).\nIt will be retried until it is 5 day(s) old.\n\n                   The mail system\n\n<{a}>: "
         "host mta7.am0.yahoodns.net[98.136.96.76] said: 421 4.7.0 [TSS04]\n    Messages from 198.51.100.20 "
         "temporarily deferred due to unexpected volume\n    or user complaints - 4.16.55.1; see\n    "
         "https://postmaster.yahooinc.com/error-codes (in reply to MAIL FROM command)\n", "delayed", "4.7.0",
         "smtp; 421 4.7.0 [TSS04] Messages from 198.51.100.20 temporarily deferred due to unexpected volume or "
         "user complaints", "delayed", "Postfix delay warning (delay_warning_time)"),
        ("gen_o365_delayed.eml", "Microsoft Outlook <postmaster@example.com>", "Delivery delayed:{s}",
         "Delivery of your message has been delayed.\n\n{a}\n\nThe server will keep trying to deliver this "
         "message for the next 1 days, 19 hours and 57 minutes. You'll be notified if the message can't be "
         "delivered by that time.\n", "delayed", "4.4.7", "smtp;400 4.4.7 Message delayed", "delayed",
         "Microsoft 365 delay DSN (400 4.4.7 Message delayed)"),
        ("gen_gmail_delayed.eml", "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
         "Delivery Status Notification (Delay)", "\n** Message delayed **\n\nThere was a temporary problem "
         "delivering your message to {a}. Gmail will retry for 45 more hours. You'll be notified if the "
         "delivery fails permanently.\n\nThe response was:\n\nThe recipient server did not accept our requests "
         "to connect. [mx.example.net. 198.51.100.7: timed out]\n", "delayed", "4.4.1",
         "smtp; The recipient server did not accept our requests to connect.", "delayed",
         "Gmail delay DSN ('Gmail will retry')"),
        ("gen_sendmail_delay_warning.eml", "Mail Delivery Subsystem <MAILER-DAEMON@relay.example.com>",
         "Warning: could not send message for past 4 hours",
         "    **********************************************\n    **      THIS IS A WARNING MESSAGE ONLY      **\n"
         "    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n    **********************************************\n\n"
         "The original message was received at {d}\nfrom app.example.com [192.0.2.10]\n\n   ----- Transcript of "
         "session follows -----\n<{a}>... Deferred: Connection timed out with mx.example.net.\nWarning: message "
         "still undelivered after 4 hours\nWill keep trying until message is 5 days old\n", "delayed", "4.4.1",
         None, "delayed", "Sendmail delay warning DSN"),
    ]
    for name, sender, subject, text, action, status, diag, why, source in cases:
        n += 1
        addr = f"kim{n}@example.net"
        ctx = _ctx(n, addr)
        fields = (f"Final-Recipient: rfc822; {addr}\nAction: {action}\nStatus: {status}\n"
                  + (folded("Diagnostic-Code", diag) + "\n" if diag else ""))
        body = text.format(a=addr, s=ctx.subject, d=ctx.date(-3))
        raw = _dsn_report(ctx, sender, subject.format(s=ctx.subject), "relay.example.com", body, fields)
        out.append((name, raw, _entry(source, bounce=False, why=why)))
    ctx = _ctx(130, "lena130@example.net")
    body = ("This message was created automatically by mail delivery software.\n\nA message that you sent has "
            "not yet been delivered to one or more of its\nrecipients after more than 24 hours on the queue on "
            "mx1.example.com.\n\nThe message identifier is:     1tAbCd-000123-Xy\nThe subject of the message "
            f"is: {ctx.subject}\nThe date of the message is:    {ctx.date(-1440)}\n\nThe address to which the "
            f"message has not yet been delivered is:\n\n  {ctx.addr}\n    host mx.example.net [198.51.100.7]: "
            "Connection timed out\n\nNo action is required on your part. Delivery attempts will continue for\n"
            "some time, and this warning may be repeated at intervals if the message\nremains undelivered. "
            "Eventually the mail delivery software will give up,\nand when that happens, the message will be "
            "returned to you.\n")
    msg = head(ctx, "Mail Delivery System <Mailer-Daemon@mx1.example.com>",
               "Warning: message 1tAbCd-000123-Xy delayed 24 hours", "mx1.example.com",
               "text/plain; charset=us-ascii", "Auto-Submitted: auto-replied\n")
    out.append(("gen_exim_delay_warning_24h.eml", msg + "\n" + body,
                _entry("Exim 4 delay warning (delay_warning)", bounce=False, why="delayed")))
    return out


def _plain(n: int, sender: str, subject: str, body: str, extra: str = "", ctype: str = "text/plain; "
           "charset=utf-8") -> str:
    ctx = _ctx(n, "x@example.net")
    msg = (f"Return-Path: <{sender.split('<')[-1].rstrip('>')}>\nDate: {ctx.date()}\nFrom: {sender}\n"
           f"To: Example News <{SENDER}>\nSubject: {subject}\nMessage-ID: {ctx.msgid('example.org', 'p')}\n"
           f"{extra}MIME-Version: 1.0\nContent-Type: {ctype}\n")
    return msg + "\n" + body


def not_failures() -> list:
    auto = "RFC 3834 auto-reply"
    jp_subject = Header("不在通知: Spring newsletter", "iso-2022-jp").encode()
    fr_subject = Header("Réponse automatique : Spring newsletter", "utf-8").encode()
    cases = [
        ("gen_auto_exchange_ooo.eml", "Maria Keller <maria.keller@corp.example.org>", "Automatic reply: Spring "
         "newsletter", "I am out of the office until 14 March with limited access to email.\nFor urgent matters "
         "please contact office@corp.example.org.\n", "Auto-Submitted: auto-generated\nX-Auto-Response-Suppress: "
         "All\nX-MS-Exchange-Inbox-Rules-Loop: maria.keller@corp.example.org\n", "auto-reply",
         "Exchange/Outlook automatic reply"),
        ("gen_auto_gmail_vacation.eml", "Tom Baker <tom.baker@mail.example.org>", "Re: Weekly digest",
         "Thanks for your message. I'm on holiday until Monday and will reply when I'm back.\n",
         "Auto-Submitted: auto-replied\n", "auto-reply", "Gmail vacation responder (RFC 3834)"),
        ("gen_auto_german_abwesenheit.eml", "Jens Vogel <jens.vogel@firma.example.de>", "Abwesenheitsnotiz: "
         "Spring newsletter", "Vielen Dank für Ihre Nachricht. Ich bin bis zum 17. März nicht im Büro.\n",
         "Auto-Submitted: auto-replied\n", "auto-reply", "German out-of-office reply"),
        ("gen_auto_japanese_fuzai.eml", "Sato Haruka <haruka.sato@corp.example.jp>", jp_subject,
         "ただいま出張中のため、3月14日まで返信が遅れます。\n", "Auto-Submitted: auto-replied\n", "auto-reply",
         "Japanese out-of-office reply (ISO-2022-JP)"),
        ("gen_auto_mentions_full_mailbox.eml", "Lee Park <lee.park@mail.example.org>", "Out of Office: Spring "
         "newsletter", "I'm travelling until the 20th. My mailbox may be full, so some messages could not be "
         "delivered to me; please resend anything urgent after that date.\n", "Auto-Submitted: auto-replied\n",
         "auto-reply", auto + " whose text mentions failures"),
        ("gen_auto_french.eml", "Claire Martin <claire.martin@societe.example.fr>", fr_subject,
         "Je suis absente jusqu'au 10 mars. Merci de votre message.\n", "X-Autoreply: yes\n", "auto-reply",
         "French automatic reply (X-Autoreply)"),
        ("gen_auto_ticket.eml", "Support <support@vendor.example.com>", "[Ticket #4821] We received your "
         "request", "Your request has been received and will be reviewed by our support staff.\n",
         "Auto-Submitted: auto-replied\nPrecedence: bulk\n", "auto-reply", "help desk auto-acknowledgement"),
        ("gen_challenge_spamarrest.eml", "Ann Lowe <ann.lowe@example.org>", "Re: Spring newsletter [Verify]",
         "I apologize for this automatic reply to your email.\n\nTo control spam, I now allow incoming messages "
         "only from senders I have approved beforehand.\n\nIf you would like to be added to my list of approved "
         "senders, please fill out the short request form (see link below).\n\nhttps://www.spamarrest.example/"
         "verify?id=8842\n\nPowered by Spam Arrest\n", "", "challenge", "Spam Arrest challenge"),
        ("gen_challenge_verify_human.eml", "Ben Ward <ben.ward@example.net>", "Please verify your message",
         "Your message to ben.ward@example.net is being held.\nPlease confirm that you are a real person: click "
         "the link below to verify your message and it will be delivered.\n", "X-Challenge: pending\n",
         "challenge", "challenge-response sender verification"),
        ("gen_challenge_boxbe.eml", "Boxbe <notify@boxbe.example>", "Request to join my Guest List",
         "Hello,\n\nCarla Diaz is using Boxbe to manage her inbox. Your message has been placed in her Waiting "
         "List. Please add yourself to her Guest List so your messages are delivered.\n",
         "X-Boxbe-Challenge: 1\n", "challenge", "Boxbe guest-list challenge"),
        ("gen_ordinary_parcel_notice.eml", "Parcel Service <noreply@parcels.example>", "Your parcel update",
         "Your parcel is on its way. Undeliverable parcels are returned to sender after 14 days.\n", "",
         "not-a-report", "ordinary transactional mail with failure-like words"),
        ("gen_ordinary_person_asks.eml", "Dana Cruz <dana.cruz@example.org>", "Re: Spring newsletter",
         "Hi, I got a bounce when I replied to you last week - it said the mailbox was full. Is this the right "
         "address to write to?\n\nDana\n", "", "not-a-report", "a person writing about a bounce"),
    ]
    out = []
    for i, (name, sender, subject, body, extra, why, source) in enumerate(cases):
        if "ISO-2022-JP" in source:
            raw = _plain(140 + i, sender, subject, "", extra, "text/plain; charset=ISO-2022-JP")
            raw = raw.replace("\n", "\r\n").encode() + body.encode("iso-2022-jp").replace(b"\n", b"\r\n")
        else:
            raw = _plain(140 + i, sender, subject, body, extra)
        out.append((name, raw, _entry(source, bounce=False, why=why)))
    return out + _reports_that_are_not_failures()


def _reports_that_are_not_failures() -> list:
    out = []
    b = "dmarc_agg_01"
    body = parts(b, "Content-Type: text/plain\n\nThis is an aggregate report from google.com.\n",
                 "Content-Type: application/zip; name=\"google.com!example.com!1741000000!1741086399.zip\"\n"
                 "Content-Transfer-Encoding: base64\nContent-Disposition: attachment\n\nUEsDBBQAAAAIAA==\n")
    out.append(("gen_dmarc_aggregate_report.eml",
                _plain(160, "noreply-dmarc-support@google.example", "Report domain: example.com Submitter: "
                       "google.com Report-ID: 1234567890123456789", body, "",
                       f'multipart/mixed; boundary="{b}"'),
                _entry("RFC 7489 DMARC aggregate report (not a failure)", bounce=False, why="not-a-report")))
    b = "tlsrpt_01"
    body = parts(b, "Content-Type: text/plain\n\nThis is an aggregate TLS report from mail.example.net\n",
                 "Content-Type: application/tlsrpt+gzip\nContent-Transfer-Encoding: base64\n\nH4sIAAAAAAAAAw==\n")
    out.append(("gen_tlsrpt_report.eml",
                _plain(161, "tlsrpt@mail.example.net", "Report Domain: example.com Submitter: mail.example.net "
                       "Report-ID: <2025.03.04T00.00.00Z+example.com@mail.example.net>", body,
                       "TLS-Report-Domain: example.com\nTLS-Report-Submitter: mail.example.net\n",
                       f'multipart/report; report-type=tlsrpt; boundary="{b}"'),
                _entry("RFC 8460 SMTP TLS report (not a failure)", bounce=False, why="not-a-report")))
    b = "mdn_read_01"
    body = parts(b, "Content-Type: text/plain\n\nYour message\n\n  To: Rita Gomez\n  Subject: Spring newsletter\n"
                 "\nwas read on 06/03/2025 10:14.\n", "Content-Type: message/disposition-notification\n\n"
                 "Reporting-UA: Microsoft Outlook 16.0\nFinal-Recipient: rfc822;rita.gomez@example.org\n"
                 "Disposition: manual-action/MDN-sent-manually; displayed\n")
    out.append(("gen_mdn_read_outlook.eml",
                _plain(162, "Rita Gomez <rita.gomez@example.org>", "Read: Spring newsletter", body, "",
                       f'multipart/report; report-type=disposition-notification; boundary="{b}"'),
                _entry("RFC 8098 read receipt (not a failure)", bounce=False, why="not-a-report")))
    return out


def text_success_notices() -> list:
    out = []
    for i, (name, sender, subject, body, source) in enumerate([
        ("gen_text_success_notice.eml", "Mail Delivery System <postmaster@mail.example.net>",
         "Delivery Status Notification (Success)", "This is an automatically generated Delivery Status "
         "Notification.\n\nYour message has been delivered to the following recipients:\n\n   mona{n}@example.net\n\n"
         "Subject: Spring newsletter\n", "text-only DSN SUCCESS notice (hMailServer/MDaemon style)"),
        ("gen_text_relayed_notice.eml", "MAILER-DAEMON@relay.example.net", "Relayed: Spring newsletter",
         "Your message was successfully relayed to the following recipients, but the requested delivery "
         "status notifications may not be generated by the destination.\n\n   nils{n}@example.net\n",
         "text-only relay notice (Exchange/Domino style wording)"),
    ]):
        raw = _plain(170 + i, sender, subject, body.format(n=170 + i), "Auto-Submitted: auto-replied\n")
        out.append((name, raw, _entry(source, bounce=False, why="delivered")))
    return out


def SPECIAL() -> list:  # noqa: N802 - the generator's second table
    return (postfix_local() + exim_local() + qmail_local() + sendmail_local() + exchange_and_gmail_local()
            + domino_local() + japanese_carriers() + arf_reports() + delivered_and_delayed() + not_failures()
            + text_success_notices())
