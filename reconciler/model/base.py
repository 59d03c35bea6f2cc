"""Field types shared by the manifest kinds: addresses, hosts, ports, secret references,
token URLs, metadata. Pure data, no I/O."""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Optional

import email_validator
from email_validator.rfc_constants import DOT_ATOM_TEXT, EMAIL_MAX_LENGTH
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
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



# A token endpoint receives the client secret and the refresh token: https only, plain
# http only on the loopback interface (a test endpoint, a local proxy). The same pattern
# is in the JSON Schema.
TOKEN_URL_PATTERN = (r"^(https://[^\s/?#@]+|http://(localhost|127\.[0-9]{1,3}\.[0-9]{1,3}"
                     r"\.[0-9]{1,3}|\[::1\])(:[0-9]{1,5})?)([/?#][^\s]*)?$")


def _check_token_url(value: str) -> str:
    if re.fullmatch(TOKEN_URL_PATTERN, value) is None:
        raise PydanticCustomError(
            "token_url", "token_url must be an https:// URL (plain http:// only for "
            "localhost, 127.x.x.x or [::1])")
    return value


TokenUrl = Annotated[str, AfterValidator(_check_token_url),
                     Field(max_length=2048, json_schema_extra={"pattern": TOKEN_URL_PATTERN})]
