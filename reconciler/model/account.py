"""The manifest kinds: EmailAccount (with its SMTP, inbox, OAuth2 and DKIM settings),
BouncePolicy, Moved, Removed. Pure data, no I/O."""
from __future__ import annotations

from typing import Annotated, Any, Iterator, Literal, Optional

from pydantic import AfterValidator, BaseModel, Field, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

from .base import NAME_PATTERN, Email, Host, Metadata, Port, SecretRef, Security, TokenUrl, _Strict


class OAuth2Settings(_Strict):
    """An OAuth2 login (SASL XOAUTH2 / OAUTHBEARER): access tokens come from the
    refresh-token grant at ``token_url``; the two secrets are references."""

    token_url: TokenUrl
    client_id: Annotated[str, Field(min_length=1, max_length=512)]
    client_secret: Optional[SecretRef] = None    # public clients have none
    refresh_token: SecretRef
    scope: Optional[Annotated[str, Field(min_length=1, max_length=2048)]] = None


DKIM_SELECTOR = r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*$"


class DkimSettings(_Strict):
    """The DKIM selector the account signs with (``<selector>._domainkey.<domain>``)."""

    selector: Annotated[str, Field(min_length=1, max_length=253, pattern=DKIM_SELECTOR)]


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
    oauth2: Optional[OAuth2Settings] = None
    verify_certificate: bool = True


class InboxSettings(_Strict):
    protocol: Literal["imap", "pop3"]
    host: Host
    port: Port
    security: Security
    username: Optional[Annotated[str, Field(min_length=1)]] = None
    password: Optional[SecretRef] = None
    oauth2: Optional[OAuth2Settings] = None
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
    proxy_password: Optional[SecretRef] = None   # what mail clients log in to the proxy with
    inbox: Optional[InboxSettings] = None
    dkim: Optional[DkimSettings] = None
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)


class EmailAccount(_Strict):
    apiVersion: Literal["mailform/v1"]
    kind: Literal["EmailAccount"]
    metadata: Metadata
    spec: AccountSpec
    _source: Optional[tuple[str, int, int]] = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _fill_defaults(self) -> "EmailAccount":
        """Usernames default to spec.email; the inbox login to the SMTP one."""
        spec = self.spec
        if spec.smtp is not None and spec.smtp.username is None:
            spec.smtp.username = spec.email
        if spec.inbox is not None:
            if spec.inbox.username is None:
                spec.inbox.username = spec.email
            if (spec.inbox.password is None and spec.inbox.oauth2 is None
                    and spec.smtp is not None):
                spec.inbox.password = spec.smtp.password
                spec.inbox.oauth2 = spec.smtp.oauth2
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

# Secret-bearing field paths inside spec. SECRET_PATHS are the two passwords (every
# caller that splits a path into section and key handles these); SECRET_FIELDS are all of
# them, at any depth: read and strip them with secret_refs() / without_secrets().
SECRET_PATHS = ("smtp.password", "inbox.password")
OAUTH2_SECRETS = ("client_secret", "refresh_token")
SECRET_FIELDS = SECRET_PATHS + tuple(f"{role}.oauth2.{key}" for role in ("smtp", "inbox")
                                     for key in OAUTH2_SECRETS) + ("proxy_password",)


_SECRET_PARTS = tuple((path, tuple(path.split("."))) for path in SECRET_FIELDS)


def secret_refs(spec: "AccountSpec") -> Iterator[tuple[str, SecretRef]]:
    """(path, reference) of every secret the account declares (after defaults)."""
    for path, parts in _SECRET_PARTS:
        node: Any = spec
        for part in parts:
            node = getattr(node, part, None)
            if node is None:
                break
        else:
            yield path, node


def without_secrets(spec: dict) -> dict:
    """A dumped spec (nested dicts) with every secret field removed, in place."""
    for _, (*parents, key) in _SECRET_PARTS:
        node: Any = spec
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(key, None)
    return spec


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

