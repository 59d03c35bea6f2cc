"""Pydantic models of the manifest kinds (SPEC §2). Pure data, no I/O.

Field-level rules (types, ranges, patterns, unknown fields) live in the models
and therefore in the generated JSON Schema too. Rules that relate several
fields are in ``CROSS_FIELD_RULES`` / ``rule_violations``: they run on the raw
document so that they are reported together with field errors.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Iterator, Literal, Optional

import email_validator
from email_validator.rfc_constants import DOT_ATOM_TEXT, EMAIL_MAX_LENGTH
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

API_VERSION = "mailform/v1"
KINDS = ("EmailAccount", "BouncePolicy", "Moved", "Removed")
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


# Domains that already passed email_validator in this process. An address whose
# domain is one of them and whose local part is a plain ASCII dot-atom (the
# validator's own first check) gets the same verdict without the costly domain
# checks; anything else takes the full path.
_GOOD_DOMAINS: set[str] = set()
_MAX_GOOD_DOMAINS = 100_000


def _check_email(value: str) -> str:
    local, _, domain = value.rpartition("@")
    if (domain in _GOOD_DOMAINS and len(value) <= EMAIL_MAX_LENGTH
            and DOT_ATOM_TEXT.match(local)):
        return value
    probe = f"{local}@example.com" if domain.lower() == "localhost" else value
    try:
        email_validator.validate_email(probe, check_deliverability=False,
                                       test_environment=True, globally_deliverable=False)
    except email_validator.EmailNotValidError as exc:
        raise PydanticCustomError("email", "not a valid email address: {reason}",
                                  {"reason": str(exc)}) from None
    if len(_GOOD_DOMAINS) < _MAX_GOOD_DOMAINS:
        _GOOD_DOMAINS.add(domain)
    return value


Email = Annotated[str, AfterValidator(_check_email),
                  Field(json_schema_extra={"format": "email"})]
Host = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[^\s/@]+$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Security = Literal["none", "starttls", "ssl"]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SecretRef(_Strict):
    """A reference to a secret: exactly one of ``env`` or ``file``."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "oneOf": [{"required": ["env"]}, {"required": ["file"]}],
        "description": "A secret reference: {env: NAME} or {file: PATH} (relative to the manifest)",
    })
    env: Optional[EnvName] = None
    file: Optional[Annotated[str, Field(min_length=1)]] = None

    @model_validator(mode="before")
    @classmethod
    def _no_literals(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise PydanticCustomError(
                "literal_secret",
                "a secret must be a reference, {env: NAME} or {file: PATH}, never a literal value")
        if ("env" in data) == ("file" in data):
            raise PydanticCustomError(
                "secret_shape", "a secret reference needs exactly one of 'env' or 'file'")
        return data

    @field_validator("env", "file", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("secret_empty", "a secret reference must name something")
        return value

    def describe(self) -> str:
        return f"env {self.env}" if self.env is not None else f"file {self.file}"


class Metadata(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
    labels: dict[str, str] = Field(default_factory=dict)


class ReplyTo(_Strict):
    email: Email
    name: Optional[str] = None


class FromOverride(_Strict):
    email_detail: Annotated[str, Field(min_length=1)]
    name_detail: Optional[Annotated[str, Field(min_length=1)]] = None


class SmtpSettings(_Strict):
    host: Host
    port: Port
    security: Security
    authenticate: bool = True
    username: Optional[Annotated[str, Field(min_length=1)]] = None
    password: Optional[SecretRef] = None
    verify_certificate: bool = True


class InboxSettings(_Strict):
    protocol: Literal["imap", "pop3"]
    host: Host
    port: Port
    security: Security
    username: Optional[Annotated[str, Field(min_length=1)]] = None
    password: Optional[SecretRef] = None
    folder: Optional[Annotated[str, Field(min_length=1)]] = None
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 100
    delete_bounces: bool = False
    verify_certificate: bool = True
    # false: only bounces carrying a tag of mailform's count (SECURITY.md)
    trust_untagged: bool = True


def _real_path(entry: str) -> str:
    if entry not in ignorable_paths():
        raise PydanticCustomError(
            "ignore_path", "'{entry}' is not a field path of spec "
            "(examples: reply_to.name, smtp.port, display_name)", {"entry": entry})
    return entry


def _ignorable_enum(schema: dict) -> None:
    schema["enum"] = sorted(ignorable_paths())


IgnorablePath = Annotated[str, AfterValidator(_real_path),
                          Field(json_schema_extra=_ignorable_enum)]


class Lifecycle(_Strict):
    prevent_destroy: bool = False
    ignore_changes: list[IgnorablePath] = Field(default_factory=list)


class AccountSpec(_Strict):
    type: Literal["smtp", "marketing"]
    email: Email
    display_name: Annotated[str, Field(min_length=1)]
    reply_to: Optional[ReplyTo] = None
    from_override: Optional[FromOverride] = None
    smtp: Optional[SmtpSettings] = None
    shared: bool = False
    owner: Optional[Email] = None
    proxy: bool = False
    inbox: Optional[InboxSettings] = None
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)


class EmailAccount(_Strict):
    apiVersion: Literal["mailform/v1"]
    kind: Literal["EmailAccount"]
    metadata: Metadata
    spec: AccountSpec
    _source: Optional[tuple[str, int, int]] = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _fill_defaults(self) -> "EmailAccount":
        """Usernames default to spec.email; the inbox password to the SMTP one."""
        spec = self.spec
        if spec.smtp is not None and spec.smtp.username is None:
            spec.smtp.username = spec.email
        if spec.inbox is not None:
            if spec.inbox.username is None:
                spec.inbox.username = spec.email
            if spec.inbox.password is None and spec.smtp is not None:
                spec.inbox.password = spec.smtp.password
            if spec.inbox.protocol == "imap" and spec.inbox.folder is None:
                spec.inbox.folder = "INBOX"
        return self

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def source(self) -> Optional[tuple[str, int, int]]:
        """(file, line, column) of the document, when loaded from a manifest."""
        return self._source


class BouncePolicySpec(_Strict):
    soft_bounce_limit: Annotated[int, Field(ge=1, le=1000)] = 3
    soft_bounce_window_days: Annotated[int, Field(ge=1, le=3650)] = 30


# The policy that holds when none is declared (SPEC §2).
DEFAULT_BOUNCE_POLICY = BouncePolicySpec().model_dump()


class BouncePolicy(_Strict):
    apiVersion: Literal["mailform/v1"]
    kind: Literal["BouncePolicy"]
    metadata: Metadata
    spec: BouncePolicySpec = Field(default_factory=BouncePolicySpec)


AccountName = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]


class MovedSpec(_Strict):
    from_: AccountName = Field(alias="from")
    to: AccountName


class RemovedSpec(_Strict):
    name: AccountName


class Moved(_Strict):   # a rename: the account keeps its status, activation and history
    apiVersion: Literal["mailform/v1"]
    kind: Literal["Moved"]
    metadata: Metadata
    spec: MovedSpec


class Removed(_Strict):  # stop managing an account; it stays in the registry
    apiVersion: Literal["mailform/v1"]
    kind: Literal["Removed"]
    metadata: Metadata
    spec: RemovedSpec


MODELS: dict[str, type[BaseModel]] = {"EmailAccount": EmailAccount, "BouncePolicy": BouncePolicy,
                                      "Moved": Moved, "Removed": Removed}

# Secret-bearing field paths inside spec.
SECRET_PATHS = ("smtp.password", "inbox.password")


def _walk_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        sub = _submodel(info.annotation)
        if sub is not None and sub is not SecretRef:
            yield from _walk_fields(sub, path + ".")


def _submodel(annotation: Any) -> Optional[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


_IGNORABLE: Optional[frozenset[str]] = None


def ignorable_paths() -> frozenset[str]:
    """Field paths of spec that ``lifecycle.ignore_changes`` may name."""
    global _IGNORABLE
    if _IGNORABLE is None:
        _IGNORABLE = frozenset(p for p in _walk_fields(AccountSpec)
                               if p != "lifecycle" and not p.startswith("lifecycle."))
    return _IGNORABLE


# --- cross-field rules ---------------------------------------------------------

# Ports on which a security mode cannot work: implicit-TLS ports never speak
# plain text first, plain-text ports never start with a TLS handshake.
IMPLICIT_TLS_PORTS = {465: "smtp", 993: "imap", 995: "pop3"}
PLAIN_FIRST_PORTS = {25: "smtp", 587: "smtp", 143: "imap", 110: "pop3"}

CROSS_FIELD_RULES = (
    "smtp is required when spec.type is smtp",
    "smtp, inbox and proxy: true are not allowed when spec.type is marketing",
    "owner is required when shared is false",
    "security ssl cannot work on a plain-text port (25, 587, 143, 110)",
    "security starttls or none cannot work on an implicit-TLS port (465, 993, 995)",
    "folder is for imap inboxes only",
    "a password is required when authenticate is true (smtp) and for every inbox",
    "metadata.name is unique across all files (checked by the loader)",
)


def _port_rule(section: dict, base: tuple) -> list[tuple[tuple, str]]:
    port, security = section.get("port"), section.get("security")
    if not isinstance(port, int) or isinstance(port, bool):
        return []
    if security == "ssl" and port in PLAIN_FIRST_PORTS:
        return [(base + ("security",),
                 f"security ssl cannot work on port {port}, which starts in plain text; "
                 "use security: starttls")]
    if security in ("starttls", "none") and port in IMPLICIT_TLS_PORTS:
        return [(base + ("security",),
                 f"security {security} cannot work on port {port}, which expects TLS at once; "
                 "use security: ssl")]
    return []


def _smtp_rules(spec: dict) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    smtp, inbox = spec.get("smtp"), spec.get("inbox")
    if spec.get("type") == "smtp" and smtp is None:
        out.append((("spec", "smtp"), "smtp settings are required for an account of type smtp"))
    if spec.get("type") == "marketing":
        for key in ("smtp", "inbox"):
            if spec.get(key) is not None:
                out.append((("spec", key), f"{key} is not allowed on a marketing account "
                            "(the platform's own servers send it)"))
        if spec.get("proxy") is True:
            out.append((("spec", "proxy"), "proxy is only for accounts of type smtp"))
    if isinstance(smtp, dict):
        out += _port_rule(smtp, ("spec", "smtp"))
        if smtp.get("authenticate", True) is True and smtp.get("password") is None:
            out.append((("spec", "smtp", "password"),
                        "a password reference is required when authenticate is true"))
    if isinstance(inbox, dict):
        out += _port_rule(inbox, ("spec", "inbox"))
        if inbox.get("protocol") == "pop3" and "folder" in inbox:
            out.append((("spec", "inbox", "folder"), "folder is for imap inboxes only"))
        has_smtp_pw = isinstance(smtp, dict) and smtp.get("password") is not None
        if inbox.get("password") is None and not has_smtp_pw:
            out.append((("spec", "inbox", "password"),
                        "a password reference is required (the smtp one is used when present)"))
    return out


def rule_violations(doc: Any) -> list[tuple[tuple, str]]:
    """Cross-field rule violations of one raw EmailAccount document: (loc, message)."""
    spec = doc.get("spec") if isinstance(doc, dict) else None
    if not isinstance(spec, dict):
        return []
    out = _smtp_rules(spec)
    if spec.get("shared", False) is False and not spec.get("owner"):
        out.append((("spec", "owner"), "owner is required when shared is false "
                    "(a private account belongs to someone)"))
    return out


def warnings_for(account: EmailAccount) -> list[tuple[tuple, str]]:
    """Settings that work but deserve a second look: (loc, message)."""
    out = []
    for key in ("smtp", "inbox"):
        section = getattr(account.spec, key)
        if section is None:
            continue
        if section.verify_certificate is False:
            out.append((("spec", key, "verify_certificate"),
                        "certificate verification is off: a man in the middle can read the password"))
        authenticates = getattr(section, "authenticate", True)
        if section.security == "none" and authenticates and section.host not in LOOPBACK_HOSTS:
            out.append((("spec", key, "security"),
                        f"security none sends the password in clear to {section.host}"))
    return out


def canonical_key_order() -> dict[str, list[str]]:
    """Key order per mapping, as SPEC §2 lists the fields (used by fmt and import)."""
    order = {
        "": ["apiVersion", "kind", "metadata", "spec"],
        "metadata": list(Metadata.model_fields),
        "reply_to": list(ReplyTo.model_fields),
        "from_override": list(FromOverride.model_fields),
        "smtp": list(SmtpSettings.model_fields),
        "inbox": list(InboxSettings.model_fields),
        "lifecycle": list(Lifecycle.model_fields),
        "password": list(SecretRef.model_fields),
    }
    order["spec:EmailAccount"] = list(AccountSpec.model_fields)
    order["spec:BouncePolicy"] = list(BouncePolicySpec.model_fields)
    order["spec:Moved"], order["spec:Removed"] = ["from", "to"], ["name"]
    return order


def is_valid_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None
