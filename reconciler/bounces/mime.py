"""A small, forgiving MIME reader: just enough structure to classify bounces.

The standard library's parser builds a full object tree, decodes every header
and copes with defects by raising deep inside; we need far less.  This reader
splits headers from bodies, follows multipart boundaries and attached
messages, and decodes transfer encodings and charsets on demand.  It never
raises on bad input: a missing boundary makes a part a leaf, a truncated
message ends where the bytes end, an unknown charset falls back to UTF-8 with
replacement characters.
"""
from __future__ import annotations

import binascii
import codecs
import re
import threading
from email.header import decode_header, make_header
from types import MappingProxyType

MAX_BYTES = 256 * 1024   # bounded prefix of every message
MAX_PARTS = 64           # parts read per message
MAX_DEPTH = 6            # nesting of multiparts and attached messages
MAX_TEXT = 64 * 1024     # characters of one decoded text body

_HEADER_LINE = re.compile(rb"([!-9;-~]+)[ \t]*:")
# On the header block decoded once (UTF-8, undecodable bytes replaced: the ASCII bytes this
# looks at come through unchanged, so the fields are those of the bytes).
_FIELD_LINES = re.compile(r"^([!-9;-~]+)[ \t]*:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
_BLANKS = " \t\n\r\x0b\x0c"       # what bytes.strip() strips
_MESSAGE_TYPES = ("message/rfc822", "message/global")
_NOT_HEADER = re.compile(rb"\n(?![ \t]|[!-9;-~]+[ \t]*:)")
_PARAM = re.compile(r';\s*([\w\-.*]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;\s]*)')
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_BLOCK_OPEN = re.compile(r"<(script|style)\b", re.I)
_BLOCK_CLOSE = {name: re.compile(rf"</{name}\s*+>", re.I) for name in ("script", "style")}
_ENTITY = {"&nbsp;": " ", "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'"}
_ENTITY_RE = re.compile("|".join(map(re.escape, _ENTITY)))


def decode_words(value: str) -> str:
    """RFC 2047 encoded-words in a header value, decoded; the value itself on failure."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # any malformed encoded word: keep the raw text
        return value


def parse_headers(block: bytes) -> dict[str, list[str]]:
    """Header block (LF line ends) → lower-case name → values, unfolded, in order. (The
    block is decoded once rather than value by value: the same text, since decoding
    keeps every ASCII byte where it is and the fields are found by ASCII bytes alone.)"""
    headers: dict[str, list[str]] = {}
    for name, value in _FIELD_LINES.findall(block.decode("utf-8", "replace")):
        if "\n" in value:
            value = _unfold(value)
        key = name.lower()
        values = headers.get(key)
        if values is None:
            headers[key] = [value.strip(_BLANKS)]
        else:
            values.append(value.strip(_BLANKS))
    return headers


def _unfold(value):
    """Each line break with the blanks around it → one space (what ``[ \t]*\n[ \t]*``
    replaced, without the regex's rescanning of long blank runs); bytes or text."""
    newline, blanks, space = ("\n", " \t", " ") if isinstance(value, str) else (b"\n", b" \t", b" ")
    lines = value.split(newline)
    if len(lines) == 1:
        return value
    inner = [line.strip(blanks) for line in lines[1:-1]]
    return space.join([lines[0].rstrip(blanks), *inner, lines[-1].lstrip(blanks)])


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split a message into header block and body without trusting it to be well formed:
    headers end at the first blank line or at the first line that is not a header."""
    if data.startswith(b"From "):  # mbox separator line
        data = data.partition(b"\n")[2]
    if not _HEADER_LINE.match(data):
        return b"", data[1:] if data[:1] == b"\n" else data
    stray = _NOT_HEADER.search(data)
    if stray is None:
        return data, b""
    end = stray.start()
    return data[:end], data[end + 2:] if data[end + 1:end + 2] == b"\n" else data[end + 1:]


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    ctype, _, rest = value.partition(";")
    params = {}
    for key, val in _PARAM.findall(";" + rest):
        if val.startswith('"'):
            val = val[1:-1] if val.endswith('"') and len(val) > 1 else val[1:]
        params[key.lower()] = val
    ctype = ctype.strip().lower() or "text/plain"
    if "/" not in ctype:
        ctype = "text/plain"
    return ctype, params


_CONTENT_TYPES: dict[str, tuple[str, MappingProxyType]] = {}
_KNOWN_LIMIT, _KNOWN_LENGTH = 1024, 512      # values remembered, and their length


def _content_type(value: str) -> tuple[str, MappingProxyType]:
    """``parse_content_type``, its parameters read-only, remembered for the values seen
    lately: the parts of one kind of report carry the same few Content-Type values."""
    known = _CONTENT_TYPES.get(value)
    if known is None:
        ctype, params = parse_content_type(value)
        known = (ctype, MappingProxyType(params))
        if len(value) <= _KNOWN_LENGTH:        # (only short values are remembered)
            if len(_CONTENT_TYPES) >= _KNOWN_LIMIT:
                _CONTENT_TYPES.clear()
            _CONTENT_TYPES[value] = known
    return known


class _Budget:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts = 0


class Part:
    """One MIME entity: headers, raw body, content type; children on demand."""

    __slots__ = ("headers", "body", "ctype", "params", "depth", "_budget", "_children",
                 "_text")

    def __init__(self, data: bytes, depth: int = 0, budget: _Budget | None = None) -> None:
        head, self.body = _split_head(data)
        self.headers = parse_headers(head)
        self.ctype, self.params = _content_type(self.header("content-type"))
        self.depth = depth
        self._budget = budget or _Budget()
        self._children: list[Part] | None = None
        self._text: str | None = None

    def header(self, name: str, default: str = "") -> str:
        values = self.headers.get(name)
        return values[0] if values else default

    @property
    def maintype(self) -> str:
        return self.ctype.partition("/")[0]

    @property
    def children(self) -> list[Part]:
        if self._children is None:
            self._children = self._read_children()
        return self._children

    def _read_children(self) -> list[Part]:
        if self.depth >= MAX_DEPTH or self._budget.parts >= MAX_PARTS:
            return []
        if self.maintype == "multipart":
            return [self._child(chunk) for chunk in self._multipart_chunks()]
        if self.ctype in _MESSAGE_TYPES:
            return [self._child(self.payload())]
        return []

    def _child(self, data: bytes) -> Part:
        self._budget.parts += 1
        return Part(data, self.depth + 1, self._budget)

    def _multipart_chunks(self) -> list[bytes]:
        boundary = self.params.get("boundary", "").encode("utf-8", "replace").strip()
        body = b"\n" + self.body
        if not boundary or b"\n--" + boundary not in body:
            guess = re.search(rb"\n--([^\s]{1,200})[ \t]*\n", body)
            if guess is None:
                return []
            boundary = guess.group(1)
        chunks = []
        for piece in body.split(b"\n--" + boundary)[1:]:
            if piece.startswith(b"--") or self._budget.parts + len(chunks) >= MAX_PARTS:
                break
            chunks.append(piece.partition(b"\n")[2])
        return chunks

    def payload(self) -> bytes:
        """The body with its Content-Transfer-Encoding undone."""
        cte = self.header("content-transfer-encoding").strip().lower()
        if cte == "base64":
            data = _B64_JUNK.sub(b"", self.body)
            data = data[: len(data) - len(data) % 4]
            try:
                return binascii.a2b_base64(data)
            except (binascii.Error, ValueError):
                return self.body
        if cte == "quoted-printable":
            try:
                return binascii.a2b_qp(self.body)
            except (binascii.Error, ValueError):
                return self.body
        return self.body

    def text(self) -> str:
        """The decoded body as text (HTML tags stripped), bounded to MAX_TEXT characters
        (made once: the classifier and the trust checks both read a report's text)."""
        if self._text is None:
            text = _decode(self.payload()[: MAX_TEXT * 2],
                           self.params.get("charset", ""))[:MAX_TEXT]
            if self.ctype == "text/html":
                text = _ENTITY_RE.sub(lambda m: _ENTITY[m.group(0)], strip_tags(text))
            self._text = text
        return self._text

    def walk(self, inside_message: bool = False, into_messages: bool = True):
        """Depth-first (part, inside_attached_message) pairs, this part first; attached
        messages are opened only when ``into_messages``. (A part's children are read
        when the walk goes on after it, as a recursive walk would read them.)"""
        pending = [(self, inside_message)]
        while pending:
            part, inside = pending.pop()
            yield part, inside
            attached = part.ctype in _MESSAGE_TYPES
            if attached and not into_messages:
                continue
            children = part.children
            if children:
                inside = inside or attached
                pending.extend((child, inside) for child in reversed(children))


def strip_tags(html: str) -> str:
    """Tags, and script and style elements whole, replaced by a space. One pass: each tag
    ends at the next ">", each element at its closing tag; an element never closed is
    only its opening tag (a regex for this rescans the rest of the text at every "<")."""
    parts, pos, unclosed = [], 0, set()
    while (start := html.find("<", pos)) >= 0:
        end = _element_end(html, start, unclosed)
        if end < 0:
            end = html.find(">", start + 1) + 1
            if end == 0:
                break
        parts += (html[pos:start], " ")
        pos = end
    parts.append(html[pos:])
    return "".join(parts)


def _element_end(html: str, start: int, unclosed: set[str]) -> int:
    opening = _BLOCK_OPEN.match(html, start)
    name = opening.group(1).lower() if opening else None
    if name is None or name in unclosed:
        return -1
    closing = _BLOCK_CLOSE[name].search(html, opening.end())
    if closing is None:
        unclosed.add(name)   # none later either: never searched again
        return -1
    return closing.end()


_CODECS: dict[str, str] = {}


def _decode(data: bytes, charset: str) -> str:
    name = _codec_name(charset.strip().strip('"').lower())
    try:
        return data.decode(name, "replace")
    except Exception:  # codec lookups can fail in surprising ways (e.g. unsupported errors)
        return data.decode("utf-8", "replace")


def _codec_name(charset: str) -> str:
    if charset in _CODECS:
        return _CODECS[charset]
    name = "utf-8"
    if charset and charset not in ("us-ascii", "ascii", "unknown-8bit", "x-unknown"):
        try:
            name = codecs.lookup(charset).name
        except (LookupError, ValueError):
            name = "utf-8"
    if len(_CODECS) < 256:
        _CODECS[charset] = name
    return name


_recent = threading.local()     # this thread's last (raw, tree): one parse per message


def read_message(raw: bytes) -> Part:
    """Parse a bounded prefix of a raw message (any line ends) into a Part tree. The
    classifier and the bounce-trust checks read the same message one after another: the
    last tree this thread made is handed out again for the same bytes object (held
    here, so its identity cannot be reused)."""
    return last_made(_recent, raw, _parse_message)


def last_made(recent: threading.local, key, make):
    """``make(key)``, or what this thread made last time for this very object (``is``:
    the caller holds it, so its identity cannot be reused meanwhile)."""
    last = getattr(recent, "last", None)
    if last is not None and last[0] is key:
        return last[1]
    made = make(key)
    recent.last = (key, made)
    return made


def _parse_message(raw: bytes) -> Part:
    data = raw[:MAX_BYTES]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if data[:1] in (b" ", b"\t", b"\n"):  # blank or whitespace-only lines before the headers
        stripped = data.lstrip(b" \t\n")
        if _HEADER_LINE.match(stripped) or stripped.startswith(b"From "):
            data = stripped
    return Part(data)
