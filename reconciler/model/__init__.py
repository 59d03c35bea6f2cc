"""Pydantic models of the manifest kinds (SPEC §2). Pure data, no I/O.

Field-level rules (types, ranges, patterns, unknown fields) live in the models
and therefore in the generated JSON Schema too. Rules that relate several
fields are in ``CROSS_FIELD_RULES`` / ``rule_violations``: they run on the raw
document so that they are reported together with field errors.

``base`` holds the field types, ``account`` the kinds, ``rules`` the cross-field
rules; everything is importable from ``reconciler.model``.
"""
from __future__ import annotations

from .account import (_submodel, _walk_fields, DKIM_SELECTOR, MODELS, OAUTH2_SECRETS, SECRET_FIELDS, SECRET_PATHS,
                      AccountName, AccountSpec, BouncePolicy, BouncePolicySpec, DEFAULT_BOUNCE_POLICY,
                      DkimSettings, EmailAccount, FromOverride, IgnorablePath, InboxSettings,
                      Lifecycle, Moved, MovedSpec, OAuth2Settings, Removed, RemovedSpec, ReplyTo,
                      SmtpSettings, ignorable_paths, secret_refs, without_secrets)
from .base import (_GOOD_DOMAINS, _MAX_GOOD_DOMAINS, API_VERSION, KINDS, LOOPBACK_HOSTS,
                   NAME_PATTERN, TOKEN_URL_PATTERN, Email, EnvName, Host, Metadata, Port,
                   SecretRef, Security, TokenUrl, _check_email, _Strict)
from .rules import (CROSS_FIELD_RULES, IMPLICIT_TLS_PORTS, PLAIN_FIRST_PORTS,
                    canonical_key_order, is_valid_name, rule_violations, warnings_for)

__all__ = [
    "API_VERSION", "CROSS_FIELD_RULES", "DEFAULT_BOUNCE_POLICY", "DKIM_SELECTOR",
    "IMPLICIT_TLS_PORTS", "KINDS", "LOOPBACK_HOSTS", "MODELS", "NAME_PATTERN", "OAUTH2_SECRETS",
    "PLAIN_FIRST_PORTS", "SECRET_FIELDS", "SECRET_PATHS", "TOKEN_URL_PATTERN", "AccountName",
    "AccountSpec", "BouncePolicy", "BouncePolicySpec", "DkimSettings", "Email", "EmailAccount",
    "EnvName", "FromOverride", "Host", "IgnorablePath", "InboxSettings", "Lifecycle",
    "Metadata", "Moved", "MovedSpec", "OAuth2Settings", "Port", "Removed", "RemovedSpec",
    "ReplyTo", "SecretRef", "Security", "SmtpSettings", "TokenUrl", "canonical_key_order",
    "ignorable_paths", "is_valid_name", "rule_violations", "secret_refs", "warnings_for",
    "without_secrets",
]
