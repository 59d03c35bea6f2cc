"""A message's DATA read in chunks instead of line by line (issue 12's benchmark).

aiosmtpd reads DATA one ``readuntil(b"\\r\\n")`` per line: a 100 KB marketing message is
some 1,500 awaits. ``read_data`` takes what the connection has in large chunks and finds
the end (a line that is exactly ``.`` — ``\\r\\n.\\r\\n``, nothing else, as aiosmtpd: no
SMTP smuggling through bare LF or CR) with ``bytes.find``, and gives the same result
aiosmtpd's loop would (tests/test_proxy_smtp.py compares the two on random input):

* lines are what CRLF delimits; a line (with its CRLF) longer than ``line_limit`` makes
  the message "too long" (500), more than ``size_limit`` bytes before the end "too much"
  (552) — whichever comes first, in aiosmtpd's order;
* the leading dot of a line is removed (RFC 5321 §4.5.2);
* what the client sent after the end (pipelined commands) stays in the reader.

A message over the size limit is not kept: the rest is read and thrown away up to the end.
"""
from __future__ import annotations

import asyncio
from typing import Optional

NOMINAL, TOO_LONG, TOO_MUCH = "nominal", "too-long", "too-much"
_END = b"\r\n.\r\n"
CHUNK = 1 << 16


def judge(data: bytes, line_limit: int, size_limit: Optional[int]) -> str:
    """aiosmtpd's verdict on the lines of ``data`` (everything before the end line, every
    line CRLF-terminated), in its order: per line, a line longer than the reader's limit
    (more than ``line_limit`` bytes before its CRLF) is "too long" at once, then the byte
    count is checked, then the line's length with its CRLF."""
    lines = data.split(b"\r\n")[:-1]
    if not lines:
        return NOMINAL
    longest = max(map(len, lines)) + 2
    if longest <= line_limit and not (size_limit and len(data) > size_limit):
        return NOMINAL
    total = 0
    for line in lines:
        length = len(line) + 2
        if length - 2 > line_limit:
            return TOO_LONG
        total += length
        if size_limit and total > size_limit:
            return TOO_MUCH
        if length > line_limit:
            return TOO_LONG
    return NOMINAL


def unstuff(data: bytes) -> bytes:
    """Each line's leading dot removed (the lines are CRLF-terminated)."""
    if data.startswith(b"."):
        data = data[1:]
    return data.replace(b"\r\n.", b"\r\n")


async def read_data(reader: asyncio.StreamReader, line_limit: int,
                    size_limit: Optional[int]) -> tuple[str, Optional[bytes]]:
    """(verdict, the message unstuffed when NOMINAL, else None), reading up to and
    including the end line; EOF raises ConnectionResetError (the client is gone)."""
    held = bytearray()
    scanned = 0            # held[:scanned] holds no end
    dropped = 0            # bytes of an oversized message thrown away
    verdict = NOMINAL
    while True:
        chunk = await reader.read(CHUNK)
        if not chunk:
            raise ConnectionResetError("the client closed the connection during DATA")
        held += chunk
        if not dropped and held.startswith(b".\r\n"):
            end, body = 0, 3
        else:
            found = held.find(_END, max(0, scanned - 4))
            end, body = (found + 2, found + 5) if found >= 0 else (-1, -1)
        if end >= 0:
            rest = bytes(held[body:])
            if rest:
                reader._buffer[0:0] = rest          # type: ignore[attr-defined]
            data = bytes(held[:end])
            if dropped:
                return verdict, None
            verdict = judge(data, line_limit, size_limit)
            return (verdict, unstuff(data)) if verdict == NOMINAL else (verdict, None)
        scanned = len(held)
        if size_limit and dropped + len(held) > size_limit + 2 * line_limit + 8:
            if not dropped:
                last = held.rfind(b"\r\n")
                whole = last + 2 if last >= 0 else 0     # the complete lines so far
                verdict = judge(bytes(held[:whole]), line_limit, size_limit)
                if verdict == NOMINAL:                 # the unfinished line decides
                    verdict = TOO_LONG if len(held) - whole > line_limit else TOO_MUCH
            keep = held[-4:]                           # an end may straddle the chunks
            dropped += len(held) - len(keep)
            held[:] = keep
            scanned = 0
