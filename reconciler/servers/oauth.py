"""OAuth2 access tokens for SASL XOAUTH2 / OAUTHBEARER: the refresh-token grant.

The grant goes through authlib's client (over requests, with mailform's own trust:
``trust.client_context``, so MAILFORM_CA_FILE adds a CA as it does for the mail
servers). A token is cached per process, per credential, until shortly before it
expires. Nothing here ever stores, logs or shows a token, a refresh token or a client
secret: errors carry the endpoint's error code and description only, with the
credential's own values redacted from them.

The token endpoint receives the client secret and the refresh token, so it must be
https (plain http only on the loopback interface) and redirects are not followed.
"""
from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlsplit


EARLY_REFRESH = 60.0          # seconds before expiry at which a cached token is renewed
DEFAULT_LIFETIME = 300.0      # a response without expires_in: cache it this long
MIN_FETCH_TIMEOUT = 1.0


class TokenError(Exception):
    """The token endpoint refused, or could not be reached. ``error`` is the endpoint's
    error code (RFC 6749 §5.2: invalid_grant, invalid_client, …) or one of ours
    (unreachable, bad_response, insecure_endpoint, no_refresh_token); never a token."""

    def __init__(self, error: str, description: Optional[str] = None,
                 transient: bool = False):
        self.error = error
        self.description = description
        self.transient = transient
        super().__init__(f"{error}: {description}" if description else error)


@dataclass(frozen=True)
class OAuth2Credential:
    """What the refresh-token grant needs. The two secrets stay out of repr()."""

    token_url: str
    client_id: str
    refresh_token: str = field(repr=False)
    client_secret: Optional[str] = field(default=None, repr=False)
    scope: Optional[str] = None

    def cache_key(self) -> tuple:
        digest = hashlib.sha256(f"{self.refresh_token}\0{self.client_secret or ''}"
                                .encode("utf-8")).hexdigest()
        return (self.token_url, self.client_id, self.scope, digest)

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.refresh_token, self.client_secret) if s)

    def endpoint_host(self) -> str:
        return (urlsplit(self.token_url).hostname or "").lower()


_CACHE: dict[tuple, tuple[str, float]] = {}
_FETCHING: dict[tuple, threading.Lock] = {}
_LOCK = threading.Lock()


def cached_token(credential: OAuth2Credential) -> Optional[str]:
    """The cached access token of this credential, while it is fresh enough."""
    with _LOCK:
        entry = _CACHE.get(credential.cache_key())
    if entry and entry[1] - EARLY_REFRESH > time.monotonic():
        return entry[0]
    return None


def access_token(credential: OAuth2Credential, timeout: float = 30.0,
                 ca_file: Optional[str] = None) -> str:
    """A valid access token: from the cache, else from the refresh-token grant.
    Raises TokenError."""
    token = cached_token(credential)
    if token is not None:
        return token
    with _fetch_lock(credential):      # one grant at a time per credential: others wait
        token = cached_token(credential)
        if token is None:
            token, lifetime = _fetch(credential, max(timeout, MIN_FETCH_TIMEOUT), ca_file)
            with _LOCK:
                _CACHE[credential.cache_key()] = (token, time.monotonic() + lifetime)
    return token


def _fetch_lock(credential: OAuth2Credential) -> threading.Lock:
    with _LOCK:
        return _FETCHING.setdefault(credential.cache_key(), threading.Lock())


def forget(credential: Optional[OAuth2Credential] = None) -> None:
    """Drop one credential's cached token (the server refused it), or all of them."""
    with _LOCK:
        if credential is None:
            _CACHE.clear()
        else:
            _CACHE.pop(credential.cache_key(), None)


def endpoint_refusal(url: str) -> Optional[str]:
    """Why a token URL may not receive credentials, or None: https, or http on loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname and not parts.username:
        return None
    if parts.scheme == "http" and _loopback(parts.hostname or ""):
        return None
    return "the token endpoint must be https (plain http only on the loopback interface)"


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _methods(credential: OAuth2Credential) -> tuple[str, ...]:
    """How the client authenticates: the secret in the body (what Microsoft's and Google's
    documentation and mail clients use), then HTTP Basic (RFC 6749 §2.3.1) for a server
    that refused it as invalid_client; none for a public client."""
    return ("client_secret_post", "client_secret_basic") if credential.client_secret \
        else ("none",)


def _fetch(credential: OAuth2Credential, timeout: float,
           ca_file: Optional[str]) -> tuple[str, float]:
    refusal = endpoint_refusal(credential.token_url)
    if refusal:
        raise TokenError("insecure_endpoint", refusal)
    if not credential.refresh_token:
        raise TokenError("no_refresh_token", "no refresh token was given for this account")
    from .oauth_grant import grant     # (authlib and requests: only for a token to fetch)
    methods = _methods(credential)
    for method in methods:
        try:
            return _parsed(grant(credential, timeout, ca_file, method), credential)
        except TokenError as exc:
            if exc.error != "invalid_client" or method == methods[-1]:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _parsed(token: dict, credential: OAuth2Credential) -> tuple[str, float]:
    value = token.get("access_token")
    if not isinstance(value, str) or not value:
        raise TokenError("bad_response", "the token endpoint returned no access_token")
    try:
        lifetime = float(token.get("expires_in") or DEFAULT_LIFETIME)
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    return value, max(0.0, lifetime)


def _reason(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _clean(text: Optional[str], credential: OAuth2Credential) -> Optional[str]:
    """An endpoint's text without the credential's secrets, on one short line."""
    if not text:
        return text
    for secret in credential.secrets():
        if len(secret) >= 3:
            text = text.replace(secret, "(sensitive value)")
    return " ".join(text.split())[:300]
