"""One way to reach an account's servers: settings, login, redaction.

Verify, debug, the inbox scanner and the proxy's relay all talk to the same
servers with the same credentials, so they share three things from here:

* ``ServerSettings``, derived once from an account (``servers_of``). The
  defaults (user name = the account's email, certificate checks on, folder
  INBOX, the inbox using the SMTP password when it has none) are the model's:
  the account is validated into ``EmailAccount``, never re-implemented here.
* one SASL client (PLAIN, LOGIN, CRAM-MD5; credentials in UTF-8) with thin
  adapters for smtplib, imaplib and poplib. The relay once failed on a
  non-ASCII password that verify accepted because each had its own login.
* one redaction helper for anything a server might echo back.

Imports only model, errors and trust: no click, no registry.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
from dataclasses import dataclass, field
from typing import Callable, Generator, Iterable, Mapping, Optional

from pydantic import ValidationError

from .errors import MailformError
from .model import API_VERSION, EmailAccount
from .trust import client_context, trust_file

ROLES = ("smtp", "inbox")
KINDS = ("smtp", "imap", "pop3")
SECURITIES = ("none", "starttls", "ssl")
DEFAULT_TIMEOUT = 30.0  # seconds per network operation
REDACTED = "(sensitive value)"
MIN_REDACTED_LENGTH = 3  # shorter secrets would garble every message; see redact()


class ServerSettingsError(MailformError):
    """An account's stored settings cannot describe a server (names fields, never values)."""


class SaslError(ValueError):
    """The SASL exchange cannot go on. Never holds a credential."""


class NoCommonMechanism(SaslError):
    """The server offers no mechanism this client speaks."""

    def __init__(self, offered: Iterable[str]):
        self.offered = tuple(offered)
        shown = " ".join(self.offered) or "none"
        super().__init__(f"no supported AUTH mechanism (server offers {shown})")


# --------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class ServerSettings:
    """One server an account talks to, with everything needed to log in.

    ``secret`` (the password) is kept out of repr() and comparisons. ``ca_file``
    is an extra trust anchor; when None, MAILFORM_CA_FILE is read at use time.
    """

    kind: str  # smtp | imap | pop3
    host: str
    port: int
    security: str = "starttls"  # none | starttls | ssl
    authenticate: bool = True
    username: Optional[str] = None
    secret: Optional[str] = field(default=None, repr=False, compare=False)
    verify_certificate: bool = True
    ca_file: Optional[str] = None
    timeout: float = DEFAULT_TIMEOUT
    folder: str = "INBOX"  # imap only; servers_of() takes the account's from the model
    mail_from: Optional[str] = None  # smtp: envelope sender (the account's email)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.security not in SECURITIES:
            raise ValueError(f"security must be one of {SECURITIES}, not {self.security!r}")

    @property
    def protocol(self) -> str:
        return self.kind

    def trust_file(self) -> Optional[str]:
        return trust_file(self.ca_file)

    def tls_context(self) -> ssl.SSLContext:
        return client_context(self.verify_certificate, self.trust_file())

    def label(self) -> str:
        return f"{self.kind} {self.host}:{self.port} ({self.security})"

    def redact(self, text):
        return redact(text, self.secret)


# The model says which secret each section logs in with (the inbox falls back to
# the SMTP password): a marker reference per stored secret lets it tell us.
_MARKERS = {role: {"env": role} for role in ROLES}


def servers_of(spec: Mapping, secrets: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT,
               ca_file: Optional[str] = None) -> dict[str, ServerSettings]:
    """role ("smtp" / "inbox") -> ServerSettings, from an account's spec as plain data:
    the registry's record (no secrets in it) or a manifest's ``spec.model_dump()``.
    ``secrets`` maps "smtp.password" / "inbox.password" to their values."""
    sections = {role: spec[role] for role in ROLES if spec.get(role)}
    if not sections:
        return {}
    account = _validated(spec.get("email"), sections, secrets)
    out = {}
    if account.spec.smtp is not None:
        out["smtp"] = _smtp(account, secrets, timeout, ca_file)
    if account.spec.inbox is not None:
        out["inbox"] = _inbox(account, secrets, timeout, ca_file)
    return out


def servers_for(account: EmailAccount, secrets: Mapping[str, str],
                **options) -> dict[str, ServerSettings]:
    """``servers_of`` for a desired account (options: timeout, ca_file)."""
    return servers_of(account.spec.model_dump(), secrets, **options)


def _validated(email, sections: dict, secrets: Mapping[str, str]) -> EmailAccount:
    """Validate just what reaches a server into the model, so that its defaults apply."""
    spec: dict = {"type": "smtp", "email": email, "display_name": "servers"}
    for role, section in sections.items():
        section = {k: v for k, v in dict(section).items() if k != "password"}
        if secrets.get(f"{role}.password"):
            section["password"] = _MARKERS[role]
        spec[role] = section
    doc = {"apiVersion": API_VERSION, "kind": "EmailAccount",
           "metadata": {"name": "servers"}, "spec": spec}
    try:
        return EmailAccount.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(".".join(str(p) for p in e["loc"]) + ": " + e["msg"]
                             for e in exc.errors(include_input=False))
        raise ServerSettingsError(f"server settings: {problems}") from None


def _secret_of(section, secrets: Mapping[str, str]) -> Optional[str]:
    ref = section.password
    return secrets.get(f"{ref.env}.password") if ref is not None else None


def _smtp(account: EmailAccount, secrets, timeout, ca_file) -> ServerSettings:
    smtp = account.spec.smtp
    return ServerSettings(
        kind="smtp", host=smtp.host, port=smtp.port, security=smtp.security,
        authenticate=smtp.authenticate, username=smtp.username,
        secret=_secret_of(smtp, secrets), verify_certificate=smtp.verify_certificate,
        ca_file=ca_file, timeout=timeout, mail_from=account.spec.email)


def _inbox(account: EmailAccount, secrets, timeout, ca_file) -> ServerSettings:
    inbox = account.spec.inbox
    extra = {"folder": inbox.folder} if inbox.folder is not None else {}
    return ServerSettings(
        kind=inbox.protocol, host=inbox.host, port=inbox.port, security=inbox.security,
        authenticate=True,  # every inbox logs in: the model requires its password
        username=inbox.username, secret=_secret_of(inbox, secrets),
        verify_certificate=inbox.verify_certificate, ca_file=ca_file, timeout=timeout, **extra)


# --------------------------------------------------------------------------- SASL

Steps = Generator[Optional[bytes], bytes, None]


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _plain(username: str, secret: str) -> Steps:
    """RFC 4616: one initial response."""
    yield _utf8(f"\0{username}\0{secret}")


def _login(username: str, secret: str) -> Steps:
    """The de facto LOGIN: user name, then password, one per challenge."""
    yield None
    yield _utf8(username)
    yield _utf8(secret)


def _cram_md5(username: str, secret: str) -> Steps:
    """RFC 2195: HMAC-MD5 of the server's challenge, keyed with the password."""
    challenge = yield None
    digest = hmac.new(_utf8(secret), challenge, hashlib.md5).hexdigest()
    yield _utf8(f"{username} {digest}")


# The mechanism table: name -> steps(username, secret). Each yields its initial
# response first (None when it has none), then one response per challenge sent
# in. XOAUTH2 and OAUTHBEARER go here (their "secret" is a token) together with
# a place in PREFERENCE once an account can carry a token.
MECHANISMS: dict[str, Callable[[str, str], Steps]] = {
    "PLAIN": _plain, "LOGIN": _login, "CRAM-MD5": _cram_md5,
}
PREFERENCE = ("PLAIN", "LOGIN", "CRAM-MD5")


def choose_mechanism(offered: Iterable[str]) -> Optional[str]:
    """The first mechanism of PREFERENCE that the server offers, or None."""
    names = {str(m).upper() for m in offered}
    return next((m for m in PREFERENCE if m in names), None)


class SaslSession:
    """One client side of a SASL exchange, independent of the protocol carrying it."""

    def __init__(self, mechanism: str, username: Optional[str], secret: Optional[str]):
        self.mechanism = mechanism.upper()
        self._steps = MECHANISMS[self.mechanism](username or "", secret or "")
        self._pending = next(self._steps)

    @classmethod
    def for_offer(cls, offered: Iterable[str], settings: ServerSettings) -> "SaslSession":
        offered = list(offered)
        mechanism = choose_mechanism(offered)
        if mechanism is None:
            raise NoCommonMechanism(offered)
        return cls(mechanism, settings.username, settings.secret)

    def initial(self, max_encoded: Optional[int] = None) -> Optional[bytes]:
        """The initial response to send with the command, or None: then the first
        challenge gets it. ``max_encoded`` caps its base64 length (POP3's 255)."""
        pending = self._pending
        if pending is None or (max_encoded is not None and len(encode(pending)) > max_encoded):
            return None
        self._pending = None
        return pending

    def respond(self, challenge: bytes) -> bytes:
        """The response to one (decoded) server challenge."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        try:
            return self._steps.send(challenge) or b""
        except StopIteration:
            raise SaslError(f"the server asked for more than {self.mechanism} has") from None


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(text) -> bytes:
    if isinstance(text, str):
        text = text.encode("ascii", "replace")
    try:
        return base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError):
        raise SaslError("the server's challenge is not base64") from None


def smtp_authenticate(client, settings: ServerSettings) -> tuple[int, bytes]:
    """AUTH on an smtplib client after EHLO; the server's final (code, text).
    Raises NoCommonMechanism when nothing usable is offered."""
    session = SaslSession.for_offer(client.esmtp_features.get("auth", "").split(), settings)
    initial = session.initial()
    argument = session.mechanism if initial is None else \
        f"{session.mechanism} {encode(initial) or '='}"
    code, reply = client.docmd("AUTH", argument)
    try:
        while code == 334:
            code, reply = client.docmd(encode(session.respond(decode(reply))))
    except SaslError:
        client.docmd("*")  # RFC 4954: cancel the exchange, the session stays usable
        raise
    return code, reply


def imap_authenticate(client, settings: ServerSettings):
    """AUTHENTICATE on an imaplib client (LOGIN when no SASL mechanism is offered);
    imaplib's (typ, data), or its error on NO / BAD."""
    offered = [c[5:] for c in client.capabilities if c.upper().startswith("AUTH=")]
    if choose_mechanism(offered) is None:
        return _imap_login(client, settings)
    session = SaslSession.for_offer(offered, settings)
    return client.authenticate(session.mechanism, session.respond)


def _imap_login(client, settings: ServerSettings):
    username, secret = settings.username or "", settings.secret or ""
    if not (username + secret).isascii():
        raise SaslError("the server offers no SASL mechanism, and IMAP LOGIN cannot carry "
                        "a non-ASCII user name or password")
    return client.login(username, secret)


POP3_MAX_LINE = 255  # RFC 5034 §4: an AUTH command line longer than this has no initial response


def pop3_authenticate(client, settings: ServerSettings, capabilities: Mapping) -> bytes:
    """RFC 5034 AUTH on a poplib client when CAPA lists SASL mechanisms we speak,
    else USER / PASS (UTF-8); the final +OK line, or poplib.error_proto."""
    offered = capabilities.get("SASL") or ()
    if choose_mechanism(offered) is None:
        client.user(settings.username or "")
        return client.pass_(settings.secret or "")
    session = SaslSession.for_offer(offered, settings)
    command = f"AUTH {session.mechanism}"
    initial = session.initial(POP3_MAX_LINE - len(command) - 1)
    if initial is not None:
        command += f" {encode(initial) or '='}"
    reply = client._shortcmd(command)  # noqa: SLF001 - poplib's own raw command call
    while reply.startswith(b"+") and not reply.startswith(b"+OK"):
        reply = client._shortcmd(encode(session.respond(decode(reply[1:]))))  # noqa: SLF001
    return reply


# --------------------------------------------------------------------------- redaction

def redact(text, *secrets: Optional[str]):
    """``text`` with every secret replaced by REDACTED. None, empty and very short
    secrets (under MIN_REDACTED_LENGTH characters) redact nothing; a None text stays None."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= MIN_REDACTED_LENGTH:
            text = text.replace(secret, REDACTED)
    return text


_AUTH_VERBS = ("AUTH", "AUTHENTICATE", "LOGIN", "PASS", "APOP")
_HARMLESS_VERBS = ("USER", "EHLO", "QUIT", "CAPABILITY", "CAPA", "STARTTLS", "STLS")


def redact_auth_line(line: str) -> str:
    """A line the client sent while logging in, as a transcript may show it: the
    command verb (and an IMAP tag, a SASL mechanism) kept, the rest dropped."""
    words = line.split()
    keep: list[str] = []
    for index, word in enumerate(words[:3]):
        upper = word.upper()
        if upper in _AUTH_VERBS:
            keep = words[:index + 1]
            if upper in ("AUTH", "AUTHENTICATE") and len(words) > index + 1:
                keep.append(words[index + 1])  # the mechanism name
            break
        if upper in _HARMLESS_VERBS:
            return line
    if len(keep) == len(words):
        return line
    return " ".join(keep + ["(redacted)"])


__all__ = [
    "DEFAULT_TIMEOUT", "KINDS", "MECHANISMS", "PREFERENCE", "REDACTED", "ROLES", "SECURITIES",
    "NoCommonMechanism", "SaslError", "SaslSession", "ServerSettings", "ServerSettingsError",
    "choose_mechanism", "imap_authenticate", "pop3_authenticate", "redact", "redact_auth_line",
    "servers_for", "servers_of", "smtp_authenticate",
]
