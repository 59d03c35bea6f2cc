"""One way to reach an account's servers: settings, login, redaction.

Verify, debug, the inbox scanner and the proxy's relay all talk to the same
servers with the same credentials, so they share four things from here:

* ``ServerSettings``, derived once from an account (``servers_of``; settings.py). The
  defaults (user name = the account's email, certificate checks on, folder
  INBOX, the inbox using the SMTP password or OAuth2 login when it has none) are the
  model's: the account is validated into ``EmailAccount``, never re-implemented here.
* one SASL client (PLAIN, LOGIN, CRAM-MD5, OAUTHBEARER, XOAUTH2; credentials in
  UTF-8) with thin adapters for smtplib, imaplib and poplib (sasl.py). The relay once
  failed on a non-ASCII password that verify accepted because each had its own login.
* OAuth2 access tokens from the refresh-token grant, cached per process (oauth.py).
* one redaction helper for anything a server might echo back (redaction.py).

Imports only model, errors and trust: no click, no registry.
"""
from __future__ import annotations

from .oauth import OAuth2Credential, TokenError, access_token, endpoint_refusal
from .redaction import MIN_REDACTED_LENGTH, REDACTED, redact, redact_auth_line
from .sasl import (MECHANISMS, POP3_MAX_LINE, PREFERENCE, TOKEN_PREFERENCE, NoCommonMechanism,
                   SaslError, SaslSession, TokenFailure, choose_mechanism, decode, encode,
                   imap_authenticate, login_secret, pop3_authenticate, refused,
                   smtp_authenticate)
from .settings import (DEFAULT_TIMEOUT, KINDS, ROLES, SECURITIES, ServerSettings,
                       ServerSettingsError, servers_for, servers_of)

__all__ = [
    "DEFAULT_TIMEOUT", "KINDS", "MECHANISMS", "MIN_REDACTED_LENGTH", "POP3_MAX_LINE",
    "PREFERENCE", "REDACTED", "ROLES", "SECURITIES", "TOKEN_PREFERENCE", "NoCommonMechanism",
    "OAuth2Credential", "SaslError", "SaslSession", "ServerSettings", "ServerSettingsError",
    "TokenError", "TokenFailure", "access_token", "choose_mechanism", "decode", "encode",
    "endpoint_refusal", "imap_authenticate", "login_secret", "pop3_authenticate", "redact",
    "redact_auth_line", "refused", "servers_for", "servers_of", "smtp_authenticate",
]
