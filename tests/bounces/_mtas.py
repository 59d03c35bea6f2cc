"""The sending side's report formats (see _formats.py): one function per mail system.

Each takes a Ctx (recipient and the receiving server's reply) and returns (message,
expected status, source of the format).
"""
from __future__ import annotations

from _formats import (SENDER, SENDER_HOST, Ctx, dsn_fields, folded, head, original, parts, report,
                      returned_headers, returned_message, wrapped)


def postfix(ctx: Ctx):
    b = f"{ctx.n:04X}.1741{ctx.n:06d}/{SENDER_HOST}"
    said = wrapped(f"<{ctx.addr}>: host {ctx.mx}[{ctx.ip}] said: {ctx.reply} (in reply to RCPT TO command)")
    text = (f"Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n"
            f"This is the mail system at host {SENDER_HOST}.\n\nI'm sorry to have to inform you that your "
            "message could not\nbe delivered to one or more recipients. It's attached below.\n\nFor further "
            "assistance, please send mail to postmaster.\n\nIf you do so, please include this problem report. "
            "You can\ndelete your own text from the attached returned message.\n\n"
            f"                   The mail system\n\n{said}\n")
    extra = (f"X-Postfix-Queue-ID: 4Q{ctx.n:04X}Z\nX-Postfix-Sender: rfc822; {SENDER}\n"
             f"Arrival-Date: {ctx.date(-2)}\n")
    dsn = dsn_fields(f"dns; {SENDER_HOST}", ctx, ctx.dsn_status, f"smtp; {ctx.reply}", extra)
    body = parts(b, text, dsn, returned_headers(ctx))
    msg = head(ctx, "MAILER-DAEMON@mail.example.com (Mail Delivery System)",
               "Undelivered Mail Returned to Sender", SENDER_HOST, report(b),
               "Auto-Submitted: auto-replied\n") + "\nThis is a MIME-encapsulated message.\n\n" + body
    return msg, ctx.dsn_status, "Postfix bounce(5) DSN (RFC 3464) with X-Postfix fields"


def exim_text(ctx: Ctx):
    host = "mx1.example.com"
    body = ("This message was created automatically by mail delivery software.\n\nA message that you sent "
            "could not be delivered to one or more of its\nrecipients. This is a permanent error. The "
            f"following address(es) failed:\n\n  {ctx.addr}\n    host {ctx.mx} [{ctx.ip}]\n"
            f"    SMTP error from remote mail server after RCPT TO:<{ctx.addr}>:\n    {ctx.reply}\n\n"
            "------ This is a copy of the message, including all the headers. ------\n\n"
            f"{original(ctx)}\nHello,\n\nour spring issue is out.\n")
    msg = head(ctx, f"Mail Delivery System <Mailer-Daemon@{host}>",
               "Mail delivery failed: returning message to sender", host,
               "text/plain; charset=us-ascii", f"X-Failed-Recipients: {ctx.addr}\nAuto-Submitted: auto-replied\n")
    return msg + "\n" + body, ctx.status, "Exim 4 bounce text (X-Failed-Recipients)"


def exim_dsn(ctx: Ctx):
    host, b = "smtp.example.com", f"{ctx.n}-eximdsn-{ctx.n * 31}"
    text = ("Content-type: text/plain; charset=us-ascii\n\nThis message was created automatically by mail "
            "delivery software.\n\nA message that you sent could not be delivered to one or more of its\n"
            "recipients. This is a permanent error. The following address(es) failed:\n\n"
            f"  {ctx.addr}\n    host {ctx.mx} [{ctx.ip}]\n    SMTP error from remote mail server after "
            f"pipelined RCPT TO:<{ctx.addr}>:\n    {ctx.reply}\n")
    dsn = ("Content-type: message/delivery-status\n\n"
           f"Reporting-MTA: dns; {host}\n\nAction: failed\nFinal-Recipient: rfc822;{ctx.addr}\n"
           f"Status: 5.0.0\nRemote-MTA: dns; {ctx.mx}\n{folded('Diagnostic-Code', 'smtp; ' + ctx.reply)}\n")
    msg = head(ctx, f"Mail Delivery System <Mailer-Daemon@{host}>",
               "Mail delivery failed: returning message to sender", host, report(b),
               f"X-Failed-Recipients: {ctx.addr}\nAuto-Submitted: auto-replied\n")
    status = ctx.status if ctx.status and ctx.status[0] == "5" else "5.0.0"
    return msg + "\n" + parts(b, text, dsn, returned_headers(ctx)), status, \
        "Exim 4.9x multipart/report bounce (Status 5.0.0, reply in Diagnostic-Code)"


def sendmail(ctx: Ctx):
    host, b = "relay.example.com", f"{ctx.n:04d}.17410{ctx.n:05d}/{'relay.example.com'}"
    text = (f"Content-Type: text/plain\n\nThe original message was received at {ctx.date(-3)}\n"
            f"from app.example.com [192.0.2.10]\n\n   ----- The following addresses had permanent fatal errors "
            f"-----\n<{ctx.addr}>\n    (reason: {ctx.reply})\n\n   ----- Transcript of session follows -----\n"
            f"... while talking to {ctx.mx}.:\n>>> RCPT To:<{ctx.addr}>\n<<< {ctx.reply}\n"
            f"{ctx.code} {ctx.dsn_status} <{ctx.addr}>... {ctx.text}\n")
    extra = f"Received-From-MTA: DNS; app.example.com\nArrival-Date: {ctx.date(-3)}\n"
    dsn = dsn_fields(f"dns; {host}", ctx, ctx.dsn_status, f"SMTP; {ctx.reply}", extra,
                     remote=f"DNS; {ctx.mx}")
    msg = head(ctx, f"Mail Delivery Subsystem <MAILER-DAEMON@{host}>",
               "Returned mail: see transcript for details", host, report(b), "Auto-Submitted: auto-generated (failure)\n")
    return msg + "\nThis is a MIME-encapsulated message\n\n" + parts(b, text, dsn, returned_message(ctx)), \
        ctx.dsn_status, "Sendmail 8 DSN (RFC 3464) with session transcript"


def qmail(ctx: Ctx):
    host = "qmail.example.com"
    body = (f"Hi. This is the qmail-send program at {host}.\nI'm afraid I wasn't able to deliver your message "
            "to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n"
            f"<{ctx.addr}>:\n{ctx.ip} does not like recipient.\nRemote host said: {ctx.reply}\n"
            f"Giving up on {ctx.ip}.\n\n--- Below this line is a copy of the message.\n\n{original(ctx)}\n"
            "Hello,\n\nour spring issue is out.\n")
    msg = head(ctx, f"MAILER-DAEMON@{host}", "failure notice", host, "text/plain")
    return msg + "\n" + body, ctx.status, "qmail-send bounce (qmail-send(8), QSBMF)"


def exchange(ctx: Ctx):
    host, b = "EX16-01.corp.example.com", f"_000_{ctx.n:04d}EX1601corpexamplecom_"
    text = ("Content-Type: text/plain; charset=\"us-ascii\"\n\nDelivery has failed to these recipients or "
            f"groups:\n\n{ctx.addr} ({ctx.addr})\nYour message couldn't be delivered. The recipient's email "
            "system rejected it.\n\n\n\n\n\nDiagnostic information for administrators:\n\n"
            f"Generating server: {host}\n\n{ctx.addr}\n{ctx.mx}\nRemote Server returned '{ctx.reply}'\n\n"
            f"Original message headers:\n\n{original(ctx)}")
    dsn = ("Content-Type: message/delivery-status\n\n"
           f"Reporting-MTA: dns;{host}\nReceived-From-MTA: dns;EX16-02.corp.example.com\n"
           f"Arrival-Date: {ctx.date(-1)}\n\nFinal-recipient: RFC822; {ctx.addr}\nAction: failed\n"
           f"Status: {ctx.dsn_status}\nRemote-MTA: dns;{ctx.mx}\n"
           f"{folded('Diagnostic-code', 'smtp;' + ctx.reply)}\nX-Display-Name: {ctx.local}\n")
    msg = head(ctx, f"Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@corp.example.com>",
               f"Undeliverable: {ctx.subject}", host, report(b),
               "Auto-Submitted: auto-replied\nX-MS-Exchange-Message-Is-Ndr:\nContent-Language: en-US\n")
    return msg + "\n" + parts(b, text, dsn, returned_headers(ctx)), ctx.dsn_status, \
        "Exchange Server 2016 NDR (multipart/report, 'Remote Server returned')"


def office365(ctx: Ctx):
    host, b = "AM9PR04MB8124.eurprd04.prod.outlook.com", f"_000_{ctx.n:04d}AM9PR04MB8124_"
    text = ("Content-Type: text/plain; charset=\"us-ascii\"\n\n"
            f"Your message to {ctx.addr} couldn't be delivered.\n\n{ctx.local}\nOffice 365\n{ctx.domain}\n"
            "Action Required\t\t\tRecipient\n\nThe recipient's email system rejected the message\n\n"
            "How to Fix It\nContact the recipient by some other means and ask them to look into the problem.\n\n"
            "More Info for Email Admins\n"
            f"Status code: {ctx.code} {ctx.dsn_status}\n\nOriginal Message Details\nCreated Date:\t{ctx.date(-1)}\n"
            f"Sender Address:\t{SENDER}\nRecipient Address:\t{ctx.addr}\nSubject:\t{ctx.subject}\n\n"
            f"Error Details\nError:\t{ctx.reply}\nMessage rejected by:\t{ctx.mx}\n\n"
            f"Message Hops\nHOP\tTIME (UTC)\tFROM\tTO\tWITH\tRELAY TIME\n1\t{ctx.date(-1)}\t{SENDER_HOST}\t"
            f"{host}\tMicrosoft SMTP Server\t*\n")
    dsn = ("Content-Type: message/delivery-status\n\n"
           f"Reporting-MTA: dns;{host}\nReceived-From-MTA: dns;{SENDER_HOST}\nArrival-Date: {ctx.date(-1)}\n\n"
           f"Original-Recipient: rfc822;{ctx.addr}\nFinal-Recipient: rfc822;{ctx.addr}\nAction: failed\n"
           f"Status: {ctx.dsn_status}\nRemote-MTA: dns;{ctx.mx}\n"
           f"{folded('Diagnostic-Code', 'smtp;' + ctx.reply)}\n")
    msg = head(ctx, "Microsoft Outlook <postmaster@example.com>", f"Undeliverable: {ctx.subject}", host,
               report(b), "Auto-Submitted: auto-replied\nX-MS-Exchange-Message-Is-Ndr:\n")
    return msg + "\n" + parts(b, text, dsn, returned_headers(ctx)), ctx.dsn_status, \
        "Microsoft 365 NDR (Exchange Online, 'More Info for Email Admins')"


def gmail(ctx: Ctx):
    b = f"000000000000{ctx.n:06x}a1b2c3"
    heading = "Address not found" if ctx.dsn_status.startswith("5.1") else "Message not delivered"
    text = (f"Content-Type: text/plain; charset=\"UTF-8\"\n\n\n** {heading} **\n\n"
            f"There was a problem delivering your message to {ctx.addr}. See the technical details below.\n\n"
            f"The response from the remote server was:\n{ctx.reply}\n")
    extra = (f"Received-From-MTA: dns; {SENDER}\nArrival-Date: {ctx.date(-1)}\n"
             f"X-Original-Message-ID: {ctx.msgid('example.com', 'n')}\n")
    dsn = dsn_fields("dns; googlemail.com", ctx, ctx.dsn_status,
                     f"smtp; {ctx.code}-{ctx.dsn_status} {ctx.text}", extra,
                     remote=f"dns; {ctx.mx}. ({ctx.ip}, the server for the domain {ctx.domain}.)")
    msg = head(ctx, "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
               "Delivery Status Notification (Failure)", "mail-sor-f69.google.com", report(b),
               "X-Failed-Recipients: " + ctx.addr + "\nAuto-Submitted: auto-replied\n")
    return msg + "\n" + parts(b, text, dsn, returned_message(ctx)), ctx.dsn_status, \
        "Gmail / Google Workspace outbound DSN ('The response from the remote server was')"


def yahoo(ctx: Ctx):
    host = "mta1023.mail.ne1.yahoo.example.net"
    body = ("Sorry, we were unable to deliver your message to the following address.\n\n"
            f"<{ctx.addr}>:\nRemote host said: {ctx.reply} [RCPT_TO]\n\n--- Below this line is a copy of the "
            f"message.\n\n{original(ctx)}\nHello,\n\nour spring issue is out.\n")
    msg = head(ctx, f"MAILER-DAEMON@{host}", "Failure Notice", host, "text/plain; charset=us-ascii")
    return msg + "\n" + body, ctx.status, "Yahoo Mail outbound failure notice (qmail-style 'Remote host said')"


def ses(ctx: Ctx):
    host, b = f"a27-{30 + ctx.n % 40}.smtp-out.us-west-2.amazonses.com", f"{ctx.n:04d}ses{ctx.n * 17}"
    text = ("Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 7bit\n\n"
            f"An error occurred while trying to deliver the mail to the following recipients:\n{ctx.addr}\n")
    dsn = ("Content-Type: message/delivery-status\n\n"
           f"Reporting-MTA: dns; {host}\n\nAction: failed\nFinal-Recipient: rfc822; {ctx.addr}\n"
           f"{folded('Diagnostic-Code', 'smtp; ' + ctx.reply)}\nStatus: {ctx.dsn_status}\n"
           f"Remote-MTA: dns; {ctx.mx}\n")
    msg = head(ctx, "MAILER-DAEMON@amazonses.com", "Delivery Status Notification (Failure)", host, report(b),
               "X-Original-To: news@example.com\n")
    return msg + "\n" + parts(b, text, dsn, returned_message(ctx)), ctx.dsn_status, \
        "Amazon SES email bounce (multipart/report from MAILER-DAEMON@amazonses.com)"


def opensmtpd(ctx: Ctx):
    host, b = "smtpd.example.com", f"{ctx.n:016x}/{'smtpd.example.com'}"
    text = ("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            f"Hi!\n\nThis is the MAILER-DAEMON, please DO NOT REPLY to this email.\n\nAn error has occurred "
            "while attempting to deliver a message for\nthe following list of recipients:\n\n"
            f"{ctx.addr}: {ctx.reply}\n\nBelow is a copy of the original message:\n")
    dsn = ("Content-Type: message/delivery-status\nContent-Description: Delivery Report\n\n"
           f"Reporting-MTA: dns; {host}\nArrival-Date: {ctx.date(-1)}\n\nFinal-Recipient: rfc822; {ctx.addr}\n"
           f"Action: failed\nStatus: {ctx.dsn_status}\n")
    msg = head(ctx, f"Mailer Daemon <MAILER-DAEMON@{host}>", "Delivery status notification: error", host,
               report(b))
    return msg + "\nThis is a MIME-encapsulated message.\n\n" + parts(b, text, dsn, returned_headers(ctx)), \
        ctx.dsn_status, "OpenSMTPD bounce (smtpd/bounce.c: MAILER-DAEMON notice with a DSN part)"


def courier(ctx: Ctx):
    host, b = "courier.example.com", f"=_courier-{ctx.n:05d}-{ctx.n * 3}-0001"
    text = (f"Content-Type: text/plain; charset=us-ascii\n\nThis is a delivery status notification from {host},\n"
            "running the Courier mail server, version 1.3.12.\n\nThe original message was received on "
            f"{ctx.date(-2)}\nfrom app.example.com [192.0.2.10]\n\n{'-' * 75}\n\n"
            f"                           UNDELIVERABLE MAIL\n\nYour message to the following recipients "
            f"cannot be delivered:\n\n<{ctx.addr}>:\n    {ctx.mx} [{ctx.ip}]:\n>>> RCPT TO:<{ctx.addr}>\n"
            f"<<< {ctx.reply}\n\n{'-' * 75}\n\nIf your message was also sent to additional recipients, their "
            "delivery\nstatus is not included in this report.\n")
    dsn = dsn_fields(f"dns; {host}", ctx, ctx.dsn_status, f"smtp; {ctx.reply}",
                     f"Arrival-Date: {ctx.date(-2)}\n")
    msg = head(ctx, f"Courier mail server at {host} <@>", "NOTICE: mail delivery status.", host, report(b))
    return msg + "\n" + parts(b, text, dsn, returned_headers(ctx)), ctx.dsn_status, \
        "Courier MTA DSN ('running the Courier mail server', UNDELIVERABLE MAIL)"


def james(ctx: Ctx):
    host, b = "james.example.com", f"----=_Part_{ctx.n}_{ctx.n * 101}.1741000000000"
    text = (f"Content-Type: text/plain; charset=us-ascii\n\nHi. This is the James mail server at {host}.\n"
            "I'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a "
            "permanent error; I've given up. Sorry it didn't work out. Below\nI include the list of "
            "recipients and the reason why I was unable to deliver\nyour message.\n\n"
            f"Failed recipient(s):\n{ctx.addr}\n\nError message:\n{ctx.reply}\n\nMessage details:\n"
            f"  Subject: {ctx.subject}\n  Sent date: {ctx.date(-1)}\n  MAIL FROM: {SENDER}\n"
            f"  RCPT TO: {ctx.addr}\n  From: Example News <{SENDER}>\n  To: {ctx.addr}\n"
            "  Size (in bytes): 2412\n  Number of lines: 38\n")
    dsn = ("Content-Type: message/delivery-status\n\n"
           f"Reporting-MTA: dns; {host}\nReceived-From-MTA: dns; {SENDER_HOST}\n\n"
           f"Final-Recipient: rfc822; {ctx.addr}\nAction: failed\nStatus: {ctx.dsn_status}\n"
           f"{folded('Diagnostic-Code', 'smtp; ' + ctx.reply)}\nLast-Attempt-Date: {ctx.date()}\n")
    msg = head(ctx, f"postmaster@{host}", f"[BOUNCE] {ctx.subject}", host, report(b))
    return msg + "\n" + parts(b, text, dsn, returned_message(ctx)), ctx.dsn_status, \
        "Apache James DSNBounce mailet (text part and message/delivery-status)"


def oracle(ctx: Ctx):
    host, b = "mta.example.com", f"Boundary_(ID_{ctx.n:04d}oRaClEmS{ctx.n * 7})"
    text = (f"Content-type: text/plain; charset=us-ascii\nContent-language: en-US\n\n"
            "This report relates to a message you sent with the following header fields:\n\n"
            f"  Message-id: {ctx.msgid('example.com', 'n')}\n  Date: {ctx.date(-1)}\n"
            f"  From: Example News <{SENDER}>\n  To: {ctx.addr}\n  Subject: {ctx.subject}\n\n"
            "Your message cannot be delivered to the following recipients:\n\n"
            f"  Recipient address: {ctx.addr}\n  Original address: {ctx.addr}\n"
            f"  Reason: Remote SMTP server has rejected address\n  Diagnostic code: smtp;{ctx.reply}\n"
            f"  Remote system: dns;{ctx.mx} (TCP|192.0.2.25|51234|{ctx.ip}|25) ({ctx.mx} ESMTP)\n")
    dsn = ("Content-type: message/delivery-status\n\n"
           f"Reporting-MTA: dns;{host} (tcp_intranet-daemon)\n\n"
           f"Original-recipient: rfc822;{ctx.addr}\nFinal-recipient: rfc822;{ctx.addr}\nAction: failed\n"
           f"Status: {ctx.dsn_status} (Remote SMTP server has rejected address)\nRemote-MTA: dns;{ctx.mx}\n"
           f"{folded('Diagnostic-code', 'smtp;' + ctx.reply)}\n")
    msg = head(ctx, f"Internet Mail Delivery <postmaster@{host}>", f"Delivery Notification: Delivery has failed",
               host, report(b))
    return msg + "\n" + parts(b, text, dsn, returned_headers(ctx)), ctx.dsn_status, \
        "Oracle Communications Messaging Server DSN ('This report relates to a message you sent')"


def zoho(ctx: Ctx):
    host = "mx.zoho.example.net"
    body = ("This message was created automatically by mail delivery software.\n"
            "A message that you sent could not be delivered to one or more of its recipients. This is a "
            f"permanent error.\n\n{ctx.addr}, ERROR CODE :{ctx.code} - "
            f"{(ctx.status + ' ') if ctx.status else ''}{ctx.text}\n\nReceived: from app.example.com by "
            f"{host}\n\twith SMTP id 17410{ctx.n:05d}; {ctx.date(-1)}\nFrom: Example News <{SENDER}>\n"
            f"To: {ctx.addr}\nSubject: {ctx.subject}\n")
    msg = head(ctx, f"mailer-daemon@{host}", "Undelivered Mail Returned to Sender", host,
               "text/plain; charset=UTF-8")
    return msg + "\n" + body, ctx.status, "Zoho Mail outbound bounce ('ERROR CODE :')"


def domino(ctx: Ctx):
    host = "notes01.example.com"
    body = (f"Your message\n\n  Subject: {ctx.subject}\n\nwas not delivered to:\n\n  {ctx.addr}\n\nbecause:\n\n"
            f"  Error transferring to {ctx.mx}; SMTP Protocol Returned a Permanent Error {ctx.reply}\n")
    msg = head(ctx, f"Mail Router <postmaster@{host}>", f"DELIVERY FAILURE: Error transferring to {ctx.mx}; "
               "SMTP Protocol Returned a Permanent Error", host, "text/plain; charset=US-ASCII",
               "X-MIMETrack: Serialize by Router on notes01/Example(Release 12.0.2|November 03, 2022) at "
               f"{ctx.date()}\n")
    return msg + "\n" + body, ctx.status, "HCL/Lotus Domino router Delivery Failure Report"


MTAS = {"postfix": postfix, "exim": exim_text, "eximdsn": exim_dsn, "sendmail": sendmail, "qmail": qmail,
        "exchange": exchange, "o365": office365, "gmail": gmail, "yahoo": yahoo, "ses": ses,
        "opensmtpd": opensmtpd, "courier": courier, "james": james, "oracle": oracle, "zoho": zoho,
        "domino": domino}
