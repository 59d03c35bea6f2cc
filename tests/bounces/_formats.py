"""How each mail system writes a failure report around a receiving server's reply.

One function per format; each returns (message text, expected status, source). The
layouts follow each system's documentation and published examples of its reports:
the structure (RFC 3464 multipart/report or a plain text), the fixed sentences, the
header fields it sets. Every message is a full RFC 5322 message with the returned
original's headers.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

SENDER = "news@example.com"
SENDER_HOST = "mail.example.com"


@dataclass
class Ctx:
    n: int                 # serial number: dates, ids and hosts vary with it
    addr: str
    code: str              # basic SMTP reply code
    status: str | None     # enhanced status code in the reply, if any
    text: str              # reply text (placeholders filled)
    mx: str
    ip: str
    subject: str

    @property
    def local(self) -> str:
        return self.addr.split("@")[0]

    @property
    def domain(self) -> str:
        return self.addr.split("@")[1]

    @property
    def reply(self) -> str:
        return f"{self.code} {self.status} {self.text}" if self.status else f"{self.code} {self.text}"

    @property
    def dsn_status(self) -> str:
        return self.status or f"{self.code[0]}.0.0"

    def date(self, minutes: int = 0) -> str:
        day, minute = 3 + self.n % 24, (self.n * 7 + minutes) % 60
        return f"{['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][day % 7]}, {day:02d} Mar 2025 " \
               f"{9 + self.n % 9:02d}:{minute:02d}:{(self.n * 13) % 60:02d} +0000"

    def msgid(self, host: str, tag: str = "b") -> str:
        return f"<{tag}{self.n:04d}.{(self.n * 7919) % 100000:05x}@{host}>"


def original(ctx: Ctx) -> str:
    """Headers of the returned original message."""
    return (f"Return-Path: <{SENDER}>\nReceived: from app.example.com (app.example.com [192.0.2.10])\n"
            f"\tby {SENDER_HOST} (Postfix) with ESMTPSA id 4Q{ctx.n:04X}Z\n\tfor <{ctx.addr}>; {ctx.date(-2)}\n"
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1;\n"
            f"\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\n"
            f"\tb=dGVzdA==\nFrom: Example News <{SENDER}>\nTo: <{ctx.addr}>\nSubject: {ctx.subject}\n"
            f"Date: {ctx.date(-2)}\nMessage-ID: {ctx.msgid('example.com', 'n')}\nMIME-Version: 1.0\n"
            "List-Unsubscribe: <mailto:unsubscribe@example.com?subject=unsubscribe>\n"
            "Content-Type: text/plain; charset=utf-8\n")


def head(ctx: Ctx, sender: str, subject: str, host: str, ctype: str, extra: str = "") -> str:
    return (f"Return-Path: <>\nReceived: from {host} ({host} [198.51.100.{20 + ctx.n % 200}])\n"
            f"\tby {SENDER_HOST} (Postfix) with ESMTPS id 7R{ctx.n:04X}K\n\tfor <{SENDER}>; {ctx.date()}\n"
            f"Date: {ctx.date()}\nFrom: {sender}\nTo: {SENDER}\nSubject: {subject}\n"
            f"Message-ID: {ctx.msgid(host)}\n{extra}MIME-Version: 1.0\nContent-Type: {ctype}\n")


def report(boundary: str) -> str:
    return f'multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"'


def wrapped(text: str, width: int = 76, indent: str = "    ") -> str:
    lines = textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False,
                          break_on_hyphens=False)
    return "\n".join(lines)


def folded(name: str, value: str) -> str:
    """A header field folded like the MTAs fold long Diagnostic-Code values."""
    return wrapped(f"{name}: {value}", 78, "    ")


def parts(boundary: str, *bodies: str) -> str:
    return "".join(f"--{boundary}\n{body}\n" for body in bodies) + f"--{boundary}--\n"


def dsn_fields(reporting: str, ctx: Ctx, status: str, diagnostic: str, extra: str = "",
               action: str = "failed", remote: str | None = None) -> str:
    remote = remote or f"dns; {ctx.mx}"
    return (f"Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
            f"Reporting-MTA: {reporting}\n{extra}\nFinal-Recipient: rfc822; {ctx.addr}\n"
            f"Original-Recipient: rfc822;{ctx.addr}\nAction: {action}\nStatus: {status}\n"
            f"Remote-MTA: {remote}\n{folded('Diagnostic-Code', diagnostic)}\n")


def returned_headers(ctx: Ctx) -> str:
    return f"Content-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n\n{original(ctx)}"


def returned_message(ctx: Ctx) -> str:
    return (f"Content-Type: message/rfc822\nContent-Disposition: attachment\n\n{original(ctx)}\n"
            "Hello,\n\nour spring issue is out. Reply to this mail with any question.\n")
