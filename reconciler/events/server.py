"""`mailform webhooks serve`: one HTTP path per provider, each verifying what the provider
offers before anything is read into the ledger.

* ``POST /ses``: an SNS message; its signature verified with the signing certificate
  (URL allow-listed, see ``sns``). A subscription confirmation is verified and its
  SubscribeURL logged for the operator to open (nothing is fetched from a URL a request
  names);
* ``POST /sendgrid``: ECDSA over the timestamp header and the raw body;
* ``POST /mailgun``: HMAC-SHA256 over timestamp and token, stale ones refused;
* ``POST /postmark``: HTTP basic auth (Postmark signs nothing).

A provider whose key or credentials were not given is not served (404). Answers: 200
with the counts (duplicates included: a retry is fine), 400 for a payload not in the
provider's format, 401/403 for a signature that does not verify, 413 for a body over
``MAX_BODY``, 503 when the registry cannot be written (the provider retries).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

from ..errors import MailformError
from . import mailgun, postmark, sendgrid, sns
from .ingest import ingest, parse
from .provider import PayloadError, SignatureError

MAX_BODY = 5 * 1024 * 1024
REQUEST_TIMEOUT = 30.0   # seconds a client may stay silent (a trickled or missing body)


@dataclass
class ServeConfig:
    certificates: Optional[sns.CertificateCache] = None     # None: /ses not served
    sendgrid_key: Any = None
    mailgun_key: Optional[str] = None
    postmark_auth: Optional[tuple[str, str]] = None
    log: Callable[[str], None] = lambda line: None

    def enabled(self) -> list[str]:
        names = {"ses": self.certificates, "sendgrid": self.sendgrid_key,
                 "mailgun": self.mailgun_key, "postmark": self.postmark_auth}
        return [name for name, value in names.items() if value is not None]


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise _Refused(400, "the body is not JSON") from None


def _verified(provider: str, config: ServeConfig, body: bytes, headers: Any) -> Any:
    """The request's payload once what the provider signs verifies."""
    if provider == "sendgrid":
        sendgrid.verify(config.sendgrid_key, body, headers)
        return _json(body)
    if provider == "postmark":
        postmark.verify(config.postmark_auth, headers.get("Authorization", ""))
        return _json(body)
    payload = _json(body)
    if provider == "mailgun":
        mailgun.verify(config.mailgun_key, payload)
    else:
        sns.verify(payload, config.certificates)
        if payload.get("Type") == "SubscriptionConfirmation":
            config.log(f"SNS subscription to {payload.get('TopicArn')}: confirm it by "
                       f"opening {payload.get('SubscribeURL')}")
    return payload


def handle(registry: Any, config: ServeConfig, provider: str, body: bytes,
           headers: Any) -> tuple[int, dict]:
    """One request: (HTTP status, JSON answer)."""
    try:
        payload = _verified(provider, config, body, headers)
        found = parse(provider, payload, provider)
        with _LOCK:
            report = ingest(registry, found)
    except _Refused as exc:
        return exc.code, {"error": str(exc)}
    except SignatureError as exc:
        return (401 if provider == "postmark" else 403), {"error": str(exc)}
    except PayloadError as exc:
        return 400, {"error": str(exc)}
    except MailformError as exc:
        config.log(f"{provider}: cannot record: {exc}")
        return 503, {"error": "the registry cannot be written now; retry later"}
    return 200, report.to_dict()


_LOCK = threading.Lock()    # one registry connection: one ingest at a time


def _length(value: Optional[str]) -> Optional[int]:
    try:
        length = int(value or "")
    except ValueError:
        return None
    return length if length >= 0 else None


def make_server(registry: Any, config: ServeConfig, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "mailform-webhooks/1"
        timeout = REQUEST_TIMEOUT          # on the connection's socket: no thread held for ever

        def do_POST(self) -> None:   # noqa: N802 (http.server's name)
            provider = self.path.split("?", 1)[0].strip("/")
            if provider not in config.enabled():
                return self._answer(404, {"error": f"no provider at {self.path}; served: "
                                                   f"{', '.join(config.enabled())}"})
            length = _length(self.headers.get("Content-Length"))
            if length is None:
                return self._answer(411, {"error": "a Content-Length is required"})
            if length > MAX_BODY:
                return self._answer(413, {"error": "the body is too large"})
            code, answer = handle(registry, config, provider, self.rfile.read(length),
                                  self.headers)
            config.log(f"{self.client_address[0]} POST /{provider} {code} "
                       f"{json.dumps(answer, sort_keys=True)}")
            self._answer(code, answer)

        def _answer(self, code: int, answer: dict) -> None:
            body = json.dumps(answer).encode()
            self.send_response(code)
            if code == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="mailform"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass    # one line per request is logged above, without the headers

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
