"""Where `plan --verify` may send an account's credentials.

`plan --verify` runs on manifests nobody has reviewed yet (CI on a pull request).
A manifest can point an account at any host, so its credentials go only where
they already went: to the servers this same account has applied in the registry
(same role, host and port), and only a secret that account's last apply wrote; or
to hosts the runner allows — `--verify-allow-host PATTERN` or
MAILFORM_VERIFY_ALLOW_HOSTS (comma-separated shell patterns), never a file in the
repository. Every other server gets a connectivity-only check (connect, TLS,
certificate, greeting, capabilities; no AUTH). `apply` runs on reviewed manifests
and logs in everywhere.

An OAuth2 login sends credentials to two places: the refresh token and the client
secret to the token endpoint, the access token to the mail server. Both follow the
rule: the token endpoint's host and port are the ones this account's last apply wrote
for the role (and its OAuth2 secrets ones that apply wrote), or the runner allows the
endpoint's host.
"""
from __future__ import annotations

import fnmatch
import hmac
import os
from urllib.parse import urlsplit
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Optional

from ..registry.base import StoredAccount

if TYPE_CHECKING:
    from ..servers import ServerSettings

ALLOW_ENV = "MAILFORM_VERIFY_ALLOW_HOSTS"
Address = tuple[str, int]


def _address(section: Optional[Mapping]) -> Optional[Address]:
    if not section or "host" not in section or "port" not in section:
        return None
    return str(section["host"]).rstrip(".").lower(), int(section["port"])


def url_address(url: Optional[str]) -> Optional[Address]:
    """(host, port) of a token URL, as compared here; None when it has no host."""
    try:
        parts = urlsplit(str(url or ""))
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
    except ValueError:
        return None
    return ((parts.hostname or "").rstrip(".").lower(), port) if parts.hostname else None


def _token_address(section: Optional[Mapping]) -> Optional[Address]:
    oauth2 = section.get("oauth2") if isinstance(section, Mapping) else None
    return url_address(oauth2.get("token_url")) if isinstance(oauth2, Mapping) else None


@dataclass(frozen=True)
class Destinations:
    """Per account and role, the server its credentials were applied for; and the
    runner's allowed host patterns."""

    applied: Mapping[str, Mapping[str, Address]] = field(default_factory=dict)
    allow: tuple[str, ...] = ()
    # per account, the fingerprints of the secrets its last apply wrote (secret path ->
    # fingerprint), and the registry's fingerprint function to compare a value with them
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    fingerprint: Optional[Callable[[str, str], str]] = None
    # per account and role, the OAuth2 token endpoint its last apply wrote
    token_endpoints: Mapping[str, Mapping[str, Address]] = field(default_factory=dict)

    @classmethod
    def from_registry(cls, stored: Mapping[str, StoredAccount], allow: Iterable[str] = (),
                      fingerprint: Optional[Callable[[str, str], str]] = None
                      ) -> "Destinations":
        from ..servers import ROLES      # imported when a check runs, not by every plan
        applied = {name: {role: address for role in ROLES
                          for address in [_address(account.applied.get(role))] if address}
                   for name, account in stored.items()}
        secrets = {name: dict(getattr(account, "applied_fingerprints", None) or {})
                   for name, account in stored.items()}
        tokens = {name: {role: address for role in ROLES
                         for address in [_token_address(account.applied.get(role))] if address}
                  for name, account in stored.items()}
        return cls(applied, tuple(p.lower() for p in allow if p), secrets, fingerprint, tokens)

    def may_log_in(self, account: str, role: str, settings: "ServerSettings") -> bool:
        """Whether the check may send this account's credentials: to its server and, for
        an OAuth2 login, to its token endpoint."""
        host = settings.host.rstrip(".").lower()
        server = ((self.applied.get(account, {}).get(role) == (host, settings.port)
                   and self._applied_secret(account, settings.secret))
                  or self._allowed(host))
        return server and self._may_ask_for_token(account, role, settings)

    def _may_ask_for_token(self, account: str, role: str, settings: "ServerSettings") -> bool:
        credential = getattr(settings, "oauth2", None)
        if credential is None:
            return True
        address = url_address(credential.token_url)
        if address is None:
            return False
        if (self.token_endpoints.get(account, {}).get(role) == address
                and all(self._applied_secret(account, s) for s in credential.secrets())):
            return True
        return self._allowed(address[0])

    def _allowed(self, host: str) -> bool:
        return any(fnmatch.fnmatchcase(host, pattern) for pattern in self.allow)

    def _applied_secret(self, account: str, secret: Optional[str]) -> bool:
        """Whether ``secret`` is one this account's last apply wrote: an applied server gets
        only what already went there. (A pull request could otherwise give an account
        whose applied server it controls another account's password: ``{env:
        SMTP_NEWS_PASSWORD}``.) Nothing to send is nothing to compare."""
        if not secret:
            return True
        if self.fingerprint is None:
            return False
        return any(hmac.compare_digest(self.fingerprint(path, secret), applied)
                   for path, applied in self.secrets.get(account, {}).items())


def allowed_hosts(patterns: Iterable[str], environ: Mapping[str, str] = os.environ
                  ) -> tuple[str, ...]:
    """The runner's patterns: the options, plus MAILFORM_VERIFY_ALLOW_HOSTS."""
    from_env = [p.strip() for p in environ.get(ALLOW_ENV, "").split(",")]
    return tuple(p for p in [*patterns, *from_env] if p)
