"""An account's servers as ``ServerSettings``, derived once from the model."""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Mapping, Optional

from pydantic import ValidationError

from ..errors import MailformError
from ..model import API_VERSION, EmailAccount
from ..trust import client_context, trust_file
from .oauth import OAuth2Credential, cached_token
from .redaction import redact

ROLES = ("smtp", "inbox")
KINDS = ("smtp", "imap", "pop3")
SECURITIES = ("none", "starttls", "ssl")
DEFAULT_TIMEOUT = 30.0  # seconds per network operation
OAUTH2_PLAIN = ("token_url", "client_id", "scope")


class ServerSettingsError(MailformError):
    """An account's stored settings cannot describe a server (names fields, never values)."""


@dataclass(frozen=True)
class ServerSettings:
    """One server an account talks to, with everything needed to log in.

    ``secret`` (the password) and ``oauth2`` (the refresh-token grant's credential, when
    the account logs in with OAuth2 instead) are kept out of repr() and comparisons.
    ``ca_file`` is an extra trust anchor; when None, MAILFORM_CA_FILE is read at use time.
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
    oauth2: Optional[OAuth2Credential] = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.security not in SECURITIES:
            raise ValueError(f"security must be one of {SECURITIES}, not {self.security!r}")

    @property
    def protocol(self) -> str:
        return self.kind

    @property
    def uses_oauth2(self) -> bool:
        return self.oauth2 is not None

    def trust_file(self) -> Optional[str]:
        return trust_file(self.ca_file)

    def tls_context(self) -> ssl.SSLContext:
        return client_context(self.verify_certificate, self.trust_file())

    def label(self) -> str:
        return f"{self.kind} {self.host}:{self.port} ({self.security})"

    def secrets(self) -> tuple[str, ...]:
        """Every secret this login may use or a server may echo: the password, the
        OAuth2 client secret and refresh token, the cached access token."""
        out = [self.secret] if self.secret else []
        if self.oauth2 is not None:
            out += list(self.oauth2.secrets())
            token = cached_token(self.oauth2)
            out += [token] if token else []
        return tuple(out)

    def redact(self, text):
        return redact(text, *self.secrets())


# The model says which secret each section logs in with (the inbox falls back to
# the SMTP login): a marker reference per stored secret lets it tell us.
_MARKERS = {role: {"env": role} for role in ROLES}


def servers_of(spec: Mapping, secrets: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT,
               ca_file: Optional[str] = None) -> dict[str, ServerSettings]:
    """role ("smtp" / "inbox") -> ServerSettings, from an account's spec as plain data:
    the registry's record (no secrets in it) or a manifest's ``spec.model_dump()``.
    ``secrets`` maps secret paths ("smtp.password", "inbox.password",
    "smtp.oauth2.refresh_token", "smtp.oauth2.client_secret", …) to their values."""
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


def _login_fields(role: str, section: Mapping, secrets: Mapping[str, str]) -> dict:
    """A section without its secrets, markers in their place (model_dump()'s references
    and a registry record's absent secrets alike)."""
    out = {k: v for k, v in dict(section).items() if k not in ("password", "oauth2")}
    if secrets.get(f"{role}.password"):
        out["password"] = _MARKERS[role]
    oauth2 = section.get("oauth2")
    if isinstance(oauth2, Mapping):
        plain = {k: oauth2[k] for k in OAUTH2_PLAIN if oauth2.get(k) is not None}
        plain["refresh_token"] = _MARKERS[role]
        if secrets.get(f"{role}.oauth2.client_secret"):
            plain["client_secret"] = _MARKERS[role]
        out["oauth2"] = plain
    return out


def _validated(email, sections: dict, secrets: Mapping[str, str]) -> EmailAccount:
    """Validate just what reaches a server into the model, so that its defaults apply."""
    spec: dict = {"type": "smtp", "email": email, "display_name": "servers"}
    for role, section in sections.items():
        spec[role] = _login_fields(role, section, secrets)
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


def _credential(section, secrets: Mapping[str, str]) -> Optional[OAuth2Credential]:
    """The OAuth2 credential a section logs in with (its own or the inherited SMTP one)."""
    oauth2 = section.oauth2
    if oauth2 is None:
        return None
    source = oauth2.refresh_token.env
    client_secret = (secrets.get(f"{oauth2.client_secret.env}.oauth2.client_secret")
                     if oauth2.client_secret is not None else None)
    return OAuth2Credential(
        token_url=oauth2.token_url, client_id=oauth2.client_id, scope=oauth2.scope,
        refresh_token=secrets.get(f"{source}.oauth2.refresh_token") or "",
        client_secret=client_secret)


def _smtp(account: EmailAccount, secrets, timeout, ca_file) -> ServerSettings:
    smtp = account.spec.smtp
    return ServerSettings(
        kind="smtp", host=smtp.host, port=smtp.port, security=smtp.security,
        authenticate=smtp.authenticate, username=smtp.username,
        secret=_secret_of(smtp, secrets), verify_certificate=smtp.verify_certificate,
        ca_file=ca_file, timeout=timeout, mail_from=account.spec.email,
        oauth2=_credential(smtp, secrets))


def _inbox(account: EmailAccount, secrets, timeout, ca_file) -> ServerSettings:
    inbox = account.spec.inbox
    extra = {"folder": inbox.folder} if inbox.folder is not None else {}
    return ServerSettings(
        kind=inbox.protocol, host=inbox.host, port=inbox.port, security=inbox.security,
        authenticate=True,  # every inbox logs in: the model requires its password or oauth2
        username=inbox.username, secret=_secret_of(inbox, secrets),
        verify_certificate=inbox.verify_certificate, ca_file=ca_file, timeout=timeout,
        oauth2=_credential(inbox, secrets), **extra)
