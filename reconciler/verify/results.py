"""The result taxonomy of a connectivity check (SPEC §6); the endpoint it checks is
``servers.ServerSettings`` (``Endpoint`` is its name here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from ..servers import ServerSettings

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

# The server a check talks to: an account's settings, as every other caller sees them.
Endpoint = ServerSettings


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

    def stamped(self) -> dict:
        """The form stored as an account's status: to_dict() plus when, and a summary line."""
        body = self.to_dict()
        body["time"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body["summary"] = self.summary()
        return body

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
