"""The token endpoint's HTTP side of ``oauth``: authlib's OAuth 2.0 client over requests,
with mailform's own trust. Imported only when a token is fetched (authlib, requests and
their dependencies cost every command about 0.15 s to import)."""
from __future__ import annotations

from typing import Optional

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from requests import RequestException
from requests.adapters import HTTPAdapter

from ..trust import client_context, trust_file
from .oauth import OAuth2Credential, TokenError, _clean, _reason


class _TrustAdapter(HTTPAdapter):
    """requests with mailform's TLS context (system CAs plus MAILFORM_CA_FILE)."""

    def __init__(self, context):
        self._context = context
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._context
        return super().init_poolmanager(*args, **kwargs)


def _session(credential: OAuth2Credential, ca_file: Optional[str],
             method: str) -> OAuth2Session:
    session = OAuth2Session(client_id=credential.client_id,
                            client_secret=credential.client_secret,
                            token_endpoint_auth_method=method, scope=credential.scope)
    session.max_redirects = 0
    session.mount("https://", _TrustAdapter(client_context(True, trust_file(ca_file))))
    return session


def grant(credential: OAuth2Credential, timeout: float, ca_file: Optional[str],
          method: str) -> dict:
    """One refresh-token grant at the token endpoint (authlib over requests); a failure
    is a TokenError without the credential's secrets."""
    with _session(credential, ca_file, method) as session:
        try:
            return session.refresh_token(credential.token_url,
                                         refresh_token=credential.refresh_token,
                                         timeout=timeout, allow_redirects=False)
        except OAuthError as exc:
            raise TokenError(str(exc.error or "invalid_request"),
                             _clean(exc.description, credential)) from None
        except RequestException as exc:
            raise TokenError("unreachable", _clean(_reason(exc), credential),
                             transient=True) from None
        except ValueError as exc:
            raise TokenError("bad_response", _clean(str(exc), credential)) from None
