"""The ``token`` stage of an OAuth2 login: the access token is fetched before AUTH, so
that a refusal by the token endpoint is told apart from one by the mail server
(``auth_failed`` at stage ``token``, with the endpoint's error code and description,
never a token)."""

from __future__ import annotations

from dataclasses import replace

from ..servers import ServerSettings, TokenFailure, login_secret
from . import results as r
from .net import Attempt, ProbeFailure

TOKEN_HINTS = {
    "invalid_grant": "the refresh token was revoked, expired or issued to another client: "
                     "sign in again to get a new one",
    "invalid_client": "check oauth2.client_id and oauth2.client_secret against the app "
                      "registration",
    "unauthorized_client": "the app registration may not use the refresh-token grant",
    "invalid_scope": "check oauth2.scope: the app registration must hold those permissions",
    "unreachable": "the token endpoint could not be reached: check oauth2.token_url",
    "no_refresh_token": "the account's refresh token did not resolve (is it in the registry?)",
}


def fetch_token(ep: ServerSettings, att: Attempt) -> None:
    """Stage ``token``: get the access token (cached per process) within the deadline."""
    if not ep.uses_oauth2:
        return
    att.stage = "token"
    try:
        login_secret(replace(ep, timeout=att.timeout_for()))
    except TokenFailure as exc:
        raise token_failure(exc) from None
    att.stage = "auth"


def token_failure(exc: TokenFailure) -> ProbeFailure:
    text = f"token endpoint: {exc.error}" + (f": {exc.description}" if exc.description else "")
    return ProbeFailure(r.AUTH_FAILED, text, hint=TOKEN_HINTS.get(exc.error),
                        transient=exc.transient)
