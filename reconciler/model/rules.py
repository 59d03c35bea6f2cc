"""Rules that relate several fields of an EmailAccount (run on the raw document so that
they are reported together with field errors), warnings, and the canonical key order."""
from __future__ import annotations

import re
from typing import Any

from .account import (AccountSpec, BouncePolicySpec, DkimSettings, EmailAccount, FromOverride,
                      InboxSettings, Lifecycle, OAuth2Settings, ReplyTo, SmtpSettings)
from .base import LOOPBACK_HOSTS, NAME_PATTERN, Metadata, SecretRef

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
    "password and oauth2 are alternatives: a section has at most one of them",
    "oauth2 is not allowed when authenticate is false",
    "proxy_password is only for accounts with proxy: true",
    "a proxied account whose smtp logs in with oauth2 needs proxy_password",
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


def _login_of(section: Any) -> bool:
    return isinstance(section, dict) and (section.get("password") is not None
                                          or section.get("oauth2") is not None)


def _alternatives(section: dict, base: tuple) -> list[tuple[tuple, str]]:
    if section.get("password") is not None and section.get("oauth2") is not None:
        return [(base + ("oauth2",), "password and oauth2 are alternatives: give only one")]
    return []


def _marketing_rules(spec: dict) -> list[tuple[tuple, str]]:
    out = [(("spec", key), f"{key} is not allowed on a marketing account "
            "(the platform's own servers send it)")
           for key in ("smtp", "inbox") if spec.get(key) is not None]
    if spec.get("proxy") is True:
        out.append((("spec", "proxy"), "proxy is only for accounts of type smtp"))
    return out


def _smtp_section_rules(smtp: dict) -> list[tuple[tuple, str]]:
    base = ("spec", "smtp")
    out = _port_rule(smtp, base) + _alternatives(smtp, base)
    authenticate = smtp.get("authenticate", True)
    if authenticate is True and not _login_of(smtp):
        out.append((base + ("password",), "a password reference is required when "
                    "authenticate is true (or oauth2 settings)"))
    if authenticate is False and smtp.get("oauth2") is not None:
        out.append((base + ("oauth2",), "oauth2 is not allowed when authenticate is false"))
    return out


def _inbox_rules(inbox: dict, smtp: Any) -> list[tuple[tuple, str]]:
    base = ("spec", "inbox")
    out = _port_rule(inbox, base) + _alternatives(inbox, base)
    if inbox.get("protocol") == "pop3" and "folder" in inbox:
        out.append((base + ("folder",), "folder is for imap inboxes only"))
    if not _login_of(inbox) and not _login_of(smtp):
        out.append((base + ("password",), "a password reference is required, or oauth2 "
                    "settings (the smtp ones are used when present)"))
    return out


def _proxy_rules(spec: dict) -> list[tuple[tuple, str]]:
    smtp, proxied = spec.get("smtp"), spec.get("proxy") is True
    if spec.get("proxy_password") is not None and not proxied:
        return [(("spec", "proxy_password"), "proxy_password is only for accounts with "
                 "proxy: true")]
    if (proxied and isinstance(smtp, dict) and smtp.get("oauth2") is not None
            and spec.get("proxy_password") is None):
        return [(("spec", "proxy_password"), "a proxied account whose smtp logs in with "
                 "oauth2 needs proxy_password: mail clients log in to the proxy with it")]
    return []


def _smtp_rules(spec: dict) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    smtp, inbox = spec.get("smtp"), spec.get("inbox")
    if spec.get("type") == "smtp" and smtp is None:
        out.append((("spec", "smtp"), "smtp settings are required for an account of type smtp"))
    if spec.get("type") == "marketing":
        out += _marketing_rules(spec)
    if isinstance(smtp, dict):
        out += _smtp_section_rules(smtp)
    if isinstance(inbox, dict):
        out += _inbox_rules(inbox, smtp)
    return out + _proxy_rules(spec)


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
        "oauth2": list(OAuth2Settings.model_fields),
        "dkim": list(DkimSettings.model_fields),
    }
    order["spec:EmailAccount"] = list(AccountSpec.model_fields)
    order["spec:BouncePolicy"] = list(BouncePolicySpec.model_fields)
    order["spec:Moved"], order["spec:Removed"] = ["from", "to"], ["name"]
    return order


def is_valid_name(name: str) -> bool:
    return re.fullmatch(NAME_PATTERN, name) is not None
