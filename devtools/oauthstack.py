"""The mail stack with OAuth2 logins: a local token/introspection endpoint, Dovecot's
``oauth2`` passdb validating tokens against it (IMAP, POP3 and, through Dovecot SASL,
Postfix submission), and optionally Dovecot's default auth penalty.

    with OAuthStack(workdir) as stack:
        refresh = stack.endpoint.grant("alice")        # a refresh token for alice
        stack.endpoint.token_url                       # http://127.0.0.1:PORT/token
        stack.endpoint.revoke(refresh)                 # the next grant: invalid_grant

The endpoint speaks RFC 6749's refresh-token grant (client authentication in the body
or with HTTP Basic), RFC 7662 introspection (``POST /introspect``, what Dovecot's
``introspection_mode = post`` sends) and a Google-style ``GET /tokeninfo``. Clients:
``CLIENT_ID`` / ``CLIENT_SECRET``. Passwords keep working (the passwd-file passdb
comes first). ``auth_penalty=True`` leaves Dovecot's defaults (auth_failure_delay 2 s,
the anvil penalty doubling up to 15 s) instead of the test stack's none.
"""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus, urlsplit

from .mailstack import MailStack

CLIENT_ID = "mailform-test-client"
CLIENT_SECRET = "client-Secret-5"
TOKEN_LIFETIME = 3600
_MECHANISMS = ("auth_mechanisms = plain login\n",
               "auth_mechanisms = plain login xoauth2 oauthbearer\n")
_NO_PENALTY = """# no growing delays after failed logins (tests log in with wrong passwords)
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
"""


class TokenEndpoint:
    """A small OAuth2 authorization server's token and introspection endpoints."""

    def __init__(self, lifetime: int = TOKEN_LIFETIME):
        self.lifetime = lifetime
        self.clients = {CLIENT_ID: CLIENT_SECRET}
        self.refresh_tokens: dict[str, str] = {}         # refresh token -> user
        self.revoked: set[str] = set()
        self.access_tokens: dict[str, tuple[str, float]] = {}   # token -> (user, expiry)
        self.grants = 0                                   # refresh-token grants answered
        self.body_allowed = True                          # False: HTTP Basic only (RFC 6749)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> "TokenEndpoint":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def grant(self, user: str) -> str:
        """A new refresh token for ``user`` (a full address)."""
        token = "1//rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self.refresh_tokens[token] = user
        return token

    def revoke(self, refresh_token: str) -> None:
        with self._lock:
            self.revoked.add(refresh_token)
            self.access_tokens = {t: v for t, v in self.access_tokens.items()
                                  if v[0] != self.refresh_tokens.get(refresh_token)}

    # the endpoints
    def token(self, form: dict, basic: tuple[str, str] | None) -> tuple[int, dict]:
        if not basic and form.get("client_secret") and not self.body_allowed:
            return 401, {"error": "invalid_client", "error_description": "Use HTTP Basic."}
        client_id, client_secret = basic or (form.get("client_id"), form.get("client_secret"))
        if self.clients.get(client_id or "") != client_secret:
            return 401, {"error": "invalid_client",
                         "error_description": "Client authentication failed."}
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type"}
        refresh = form.get("refresh_token") or ""
        with self._lock:
            user = self.refresh_tokens.get(refresh)
            if user is None or refresh in self.revoked:
                return 400, {"error": "invalid_grant",
                             "error_description": "Token has been expired or revoked."}
            access = "ya29." + secrets.token_urlsafe(32)
            self.access_tokens[access] = (user, time.time() + self.lifetime)
            self.grants += 1
        return 200, {"access_token": access, "token_type": "Bearer",
                     "expires_in": self.lifetime, "scope": form.get("scope") or "mail"}

    def introspect(self, token: str) -> dict:
        with self._lock:
            user, expiry = self.access_tokens.get(token, ("", 0.0))
        if not user or expiry < time.time():
            return {"active": False}
        return {"active": True, "username": user, "client_id": CLIENT_ID,
                "exp": int(expiry), "token_type": "Bearer"}


def _handler(endpoint: TokenEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:   # quiet: tokens would be in the log
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            path = urlsplit(self.path).path
            if path == "/token":
                self._json(*endpoint.token(form, _basic(self.headers.get("Authorization"))))
            elif path == "/introspect":
                self._json(200, endpoint.introspect(form.get("token", "")))
            else:
                self._json(404, {"error": "not_found"})

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            token = (query.get("access_token") or [""])[0]
            bearer = self.headers.get("Authorization") or ""
            if bearer.lower().startswith("bearer "):
                token = bearer[7:]
            self._json(200, endpoint.introspect(token))

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return unquote_plus(user), unquote_plus(password)      # RFC 6749 §2.3.1


def oauth2_conf(endpoint: TokenEndpoint) -> str:
    base = f"http://127.0.0.1:{endpoint.port}"
    return (f"tokeninfo_url = {base}/tokeninfo?access_token=\n"
            f"introspection_url = {base}/introspect\n"
            "introspection_mode = post\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n")


class OAuthStack(MailStack):
    """MailStack plus the token endpoint and Dovecot's oauth2 passdb."""

    def __init__(self, workdir, *, auth_penalty: bool = False, **kwargs):
        super().__init__(workdir, **kwargs)
        self.auth_penalty = auth_penalty
        self.endpoint = TokenEndpoint()

    def start(self, timeout: float = 30.0) -> "OAuthStack":
        self.endpoint.start()
        try:
            super().start(timeout)
        except BaseException:
            self.endpoint.stop()
            raise
        return self

    def stop(self) -> None:
        super().stop()
        self.endpoint.stop()

    def _prepare(self) -> None:
        super()._prepare()
        conf_ext = self.workdir / "dovecot" / "dovecot-oauth2.conf.ext"
        conf_ext.write_text(oauth2_conf(self.endpoint))
        self.dovecot_conf_file.write_text(self._with_oauth2(
            self.dovecot_conf_file.read_text(), str(conf_ext)))

    def _with_oauth2(self, conf: str, conf_ext: str) -> str:
        assert _MECHANISMS[0] in conf and _NO_PENALTY in conf, "mailconf changed"
        conf = conf.replace(*_MECHANISMS)
        conf = conf.replace("userdb {", "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 "
                            f"oauthbearer\n  args = {conf_ext}\n}}\nuserdb {{", 1)
        if self.auth_penalty:
            conf = conf.replace(_NO_PENALTY, "").replace("auth_failure_delay = 0\n", "")
        return conf

    def env(self) -> dict[str, str]:
        return {**super().env(), "OAUTHSTACK_TOKEN_URL": self.endpoint.token_url,
                "OAUTHSTACK_CLIENT_ID": CLIENT_ID}
