"""The result taxonomy of a connectivity check (SPEC §6) and the endpoint it checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..trust import trust_file

OK = "ok"
DNS_ERROR = "dns_error"
CONNECTION_REFUSED = "connection_refused"
TIMEOUT = "timeout"
TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
CERTIFICATE_INVALID = "certificate_invalid"
STARTTLS_UNSUPPORTED = "starttls_unsupported"
AUTH_UNSUPPORTED = "auth_unsupported"
AUTH_FAILED = "auth_failed"
SENDER_REJECTED = "sender_rejected"
RECIPIENT_REJECTED = "recipient_rejected"
PROTOCOL_ERROR = "protocol_error"

CODES = (
    OK, DNS_ERROR, CONNECTION_REFUSED, TIMEOUT, TLS_HANDSHAKE_FAILED, CERTIFICATE_INVALID,
    STARTTLS_UNSUPPORTED, AUTH_UNSUPPORTED, AUTH_FAILED, SENDER_REJECTED,
    RECIPIENT_REJECTED, PROTOCOL_ERROR,
)

# Certificate failure reasons (CheckResult.cert_reason).
CERT_HOSTNAME_MISMATCH = "hostname mismatch"
CERT_SELF_SIGNED = "self-signed"
CERT_EXPIRED = "expired"
CERT_NOT_YET_VALID = "not yet valid"
CERT_UNKNOWN_ISSUER = "unknown issuer"

KINDS = ("smtp", "imap", "pop3")
SECURITIES = ("none", "starttls", "ssl")


@dataclass(frozen=True)
class Endpoint:
    """One server an account talks to, with everything needed to check it.

    `password` is kept out of repr(); nothing in this package logs, prints or
    raises it.  `ca_file` is an extra trust anchor (PEM); when None the
    environment variable MAILFORM_CA_FILE is honoured.
    """

    kind: str  # smtp | imap | pop3
    host: str
    port: int
    security: str = "starttls"  # none | starttls | ssl
    authenticate: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False, compare=False)
    verify_certificate: bool = True
    folder: str = "INBOX"  # imap only
    ca_file: str | None = None
    mail_from: str | None = None  # smtp: envelope sender (the account email)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if self.security not in SECURITIES:
            raise ValueError(f"security must be one of {SECURITIES}, not {self.security!r}")

    def trust_file(self) -> str | None:
        return trust_file(self.ca_file)

    def label(self) -> str:
        return f"{self.kind} {self.host}:{self.port} ({self.security})"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one endpoint.  Never holds a secret."""

    code: str
    stage: str  # last stage reached: resolve, connect, tls, greeting, starttls, auth, ...
    kind: str = ""
    host: str = ""
    port: int = 0
    security: str = ""
    account: str | None = None
    reply_code: int | None = None
    reply_text: str | None = None
    elapsed: float = 0.0
    tls_version: str | None = None
    cipher: str | None = None
    cert_subject: str | None = None
    cert_reason: str | None = None
    hint: str | None = None
    message_id: str | None = None
    attempts: int = 1
    # protocol transcript ("C: ..." / "S: ..."), only when asked for; AUTH redacted
    transcript: tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown result code {self.code!r}")

    @property
    def ok(self) -> bool:
        return self.code == OK

    def to_dict(self) -> dict:
        data = asdict(self)
        data["transcript"] = list(self.transcript)
        if not self.transcript:
            del data["transcript"]
        data["elapsed"] = round(self.elapsed, 3)
        data["ok"] = self.ok
        return data

    def summary(self) -> str:
        """One line for humans: code, reply and hint."""
        parts = [self.code]
        if self.cert_reason:
            parts.append(f"({self.cert_reason})")
        if self.reply_code or self.reply_text:
            parts.append(f"- {self.reply_code or ''} {self.reply_text or ''}".rstrip())
        if self.hint:
            parts.append(f"[hint: {self.hint}]")
        return " ".join(parts)
