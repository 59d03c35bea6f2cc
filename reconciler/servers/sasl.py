"""One SASL client (PLAIN, LOGIN, CRAM-MD5 with a password; OAUTHBEARER and XOAUTH2
with an OAuth2 access token; credentials in UTF-8) and thin adapters for smtplib,
imaplib and poplib. Verify, debug, the inbox scanner and the proxy's relay all log in
through here."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Callable, Generator, Iterable, Mapping, Optional

from .oauth import TokenError, access_token, forget
from .settings import ServerSettings


class SaslError(ValueError):
    """The SASL exchange cannot go on. Never holds a credential."""


class NoCommonMechanism(SaslError):
    """The server offers no mechanism this client speaks."""

    def __init__(self, offered: Iterable[str]):
        self.offered = tuple(offered)
        shown = " ".join(self.offered) or "none"
        super().__init__(f"no supported AUTH mechanism (server offers {shown})")


class TokenFailure(SaslError):
    """The OAuth2 token endpoint refused (or could not be reached): no login was tried.
    ``error`` / ``description`` are the endpoint's; never a token."""

    def __init__(self, error: str, description: Optional[str], transient: bool = False):
        self.error, self.description, self.transient = error, description, transient
        shown = f"{error}: {description}" if description else error
        super().__init__(f"the token endpoint refused: {shown}")


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


def _xoauth2(username: str, token: str) -> Steps:
    """Google's and Microsoft's XOAUTH2; a refusal comes as a challenge (JSON) that is
    answered with an empty response, then the final failure."""
    yield _utf8(f"user={username}\x01auth=Bearer {token}\x01\x01")
    yield b""


def _oauthbearer(username: str, token: str) -> Steps:
    """RFC 7628: a GS2 header naming the user, then the bearer token; a refusal comes as
    a challenge (JSON) that is answered with a lone ^A."""
    name = username.replace("=", "=3D").replace(",", "=2C")
    yield _utf8(f"n,a={name},\x01auth=Bearer {token}\x01\x01")
    yield b"\x01"


# The mechanism table: name -> steps(username, secret). Each yields its initial
# response first (None when it has none), then one response per challenge sent in.
# The "secret" of OAUTHBEARER and XOAUTH2 is an access token.
MECHANISMS: dict[str, Callable[[str, str], Steps]] = {
    "PLAIN": _plain, "LOGIN": _login, "CRAM-MD5": _cram_md5,
    "OAUTHBEARER": _oauthbearer, "XOAUTH2": _xoauth2,
}
PREFERENCE = ("PLAIN", "LOGIN", "CRAM-MD5")          # with a password
TOKEN_PREFERENCE = ("OAUTHBEARER", "XOAUTH2")        # with an OAuth2 credential


def choose_mechanism(offered: Iterable[str],
                     settings: Optional[ServerSettings] = None) -> Optional[str]:
    """The first mechanism the server offers of PREFERENCE (TOKEN_PREFERENCE when
    ``settings`` logs in with OAuth2), or None."""
    names = {str(m).upper() for m in offered}
    order = TOKEN_PREFERENCE if settings is not None and settings.uses_oauth2 else PREFERENCE
    return next((m for m in order if m in names), None)


def login_secret(settings: ServerSettings) -> Optional[str]:
    """What the login sends: the password, or an access token (cached, else fetched with
    the refresh-token grant; TokenFailure when the endpoint refuses)."""
    if settings.oauth2 is None:
        return settings.secret
    try:
        return access_token(settings.oauth2, settings.timeout, settings.ca_file)
    except TokenError as exc:
        raise TokenFailure(exc.error, exc.description, exc.transient) from None


def refused(settings: ServerSettings) -> None:
    """The server refused the login: a cached access token is not used again."""
    if settings.oauth2 is not None:
        forget(settings.oauth2)


class SaslSession:
    """One client side of a SASL exchange, independent of the protocol carrying it."""

    def __init__(self, mechanism: str, username: Optional[str], secret: Optional[str]):
        self.mechanism = mechanism.upper()
        self._steps = MECHANISMS[self.mechanism](username or "", secret or "")
        self._pending = next(self._steps)

    @classmethod
    def for_offer(cls, offered: Iterable[str], settings: ServerSettings) -> "SaslSession":
        """The session for the best mechanism offered; raises NoCommonMechanism, and
        TokenFailure when an OAuth2 login gets no token."""
        offered = list(offered)
        mechanism = choose_mechanism(offered, settings)
        if mechanism is None:
            raise NoCommonMechanism(offered)
        return cls(mechanism, settings.username, login_secret(settings))

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
    Raises NoCommonMechanism when nothing usable is offered, TokenFailure when an
    OAuth2 login gets no token."""
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
    if code != 235:
        refused(settings)
    return code, reply


def imap_authenticate(client, settings: ServerSettings):
    """AUTHENTICATE on an imaplib client (LOGIN when no SASL mechanism is offered and the
    account has a password);
    imaplib's (typ, data), or its error on NO / BAD."""
    offered = [c[5:] for c in client.capabilities if c.upper().startswith("AUTH=")]
    if choose_mechanism(offered, settings) is None and not settings.uses_oauth2:
        return _imap_login(client, settings)
    session = SaslSession.for_offer(offered, settings)
    try:
        return client.authenticate(session.mechanism, session.respond)
    except Exception:
        refused(settings)
        raise


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
    if choose_mechanism(offered, settings) is None and not settings.uses_oauth2:
        client.user(settings.username or "")
        return client.pass_(settings.secret or "")
    session = SaslSession.for_offer(offered, settings)
    command = f"AUTH {session.mechanism}"
    initial = session.initial(POP3_MAX_LINE - len(command) - 1)
    if initial is not None:
        command += f" {encode(initial) or '='}"
    try:
        return _pop3_exchange(client, session, command)
    except Exception:
        refused(settings)
        raise


def _pop3_exchange(client, session: SaslSession, command: str) -> bytes:
    reply = client._shortcmd(command)  # noqa: SLF001 - poplib's own raw command call
    while reply.startswith(b"+") and not reply.startswith(b"+OK"):
        reply = client._shortcmd(encode(session.respond(decode(reply[1:]))))  # noqa: SLF001
    return reply

