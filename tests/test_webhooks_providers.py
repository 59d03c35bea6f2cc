"""Provider webhooks in (issue 14): each provider's documented payload, signed with keys
made here, good and tampered, through the real server (`webhooks serve`'s) and through
`bounces ingest`.

The signatures are computed here from the providers' documentation, not with mailform's
own helpers: SNS (the string to sign, SHA256withRSA, a signing certificate served over
HTTPS by a test CA), SendGrid (ECDSA P-256 over timestamp + body), Mailgun (HMAC-SHA256
over timestamp + token), Postmark (basic auth).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import ssl
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from clihelpers import mailform
from devtools.certs import make_certificates
from reconciler.events import sns
from reconciler.events.server import ServeConfig, make_server
from reconciler.registry import open_registry

MAILGUN_KEY = "key-test-mailgun-signing"
POSTMARK = ("hooks", "pm-Secret-9")


# -- payloads in each provider's documented format -------------------------------------
def ses_bounce(email, feedback="0100018c-feedback-1", kind="Permanent"):
    return {"notificationType": "Bounce",
            "bounce": {"bounceType": kind, "bounceSubType": "General",
                       "bouncedRecipients": [{"emailAddress": email, "action": "failed",
                                              "status": "5.1.1",
                                              "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
                       "timestamp": "2026-11-30T10:00:00.000Z", "feedbackId": feedback},
            "mail": {"timestamp": "2026-11-30T09:59:58.000Z", "source": "news@example.com",
                     "messageId": "0100018c-ses-msg", "destination": [email]}}


def ses_complaint(email):
    return {"notificationType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": email}],
                          "timestamp": "2026-11-30T11:00:00.000Z",
                          "feedbackId": "0100018c-complaint-1",
                          "complaintFeedbackType": "abuse"},
            "mail": {"source": "news@example.com", "messageId": "0100018c-ses-msg-2"}}


def sendgrid_events(email):
    return [{"email": email, "timestamp": 1764496800, "event": "bounce", "type": "bounce",
             "status": "5.1.1", "reason": "550 5.1.1 The email account does not exist",
             "sg_event_id": "sg-evt-1", "sg_message_id": "sg-msg-1.filter"},
            {"email": email, "timestamp": 1764496801, "event": "delivered",
             "sg_event_id": "sg-evt-2", "sg_message_id": "sg-msg-2"}]


def mailgun_payload(email, stamp=None, event="failed"):
    stamp = str(int(time.time() if stamp is None else stamp))
    token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    signature = hmac.new(MAILGUN_KEY.encode(), (stamp + token).encode(),
                         hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": stamp, "token": token, "signature": signature},
            "event-data": {"event": event, "id": "mg-evt-1", "timestamp": 1764496800.5,
                           "severity": "permanent", "reason": "bounce", "recipient": email,
                           "message": {"headers": {"message-id": "mg-msg@example.com"}},
                           "delivery-status": {"code": 550, "enhanced-code": "5.1.1",
                                               "message": "No such user",
                                               "description": ""}}}


def postmark_bounce(email, kind="HardBounce", record="Bounce"):
    return {"RecordType": record, "ID": 4323372036854775807, "Type": kind, "TypeCode": 1,
            "Name": "Hard bounce", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Description": "The server was unable to deliver your message",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "Email": email, "From": "news@example.com", "BouncedAt": "2026-11-30T10:00:00Z",
            "Inactive": True, "CanActivate": True, "Subject": "Hello"}


# -- an SNS signing certificate served over HTTPS by a test CA --------------------------
def _signing_cert():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test.amazonaws.com")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def cert_server(tmp_path_factory):
    certs = make_certificates(tmp_path_factory.mktemp("certs"))
    key, pem = _signing_cert()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pem if self.path.startswith("/SimpleNotificationService-") else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs["server"]))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"https://localhost:{server.server_address[1]}"
    yield {"key": key, "cert_url": f"{base}/SimpleNotificationService-0123abcd.pem",
           "pattern": rf"https://localhost:{server.server_address[1]}/"
                      r"SimpleNotificationService-[0-9a-f]+\.pem",
           "ca": str(certs["ca"])}
    server.shutdown()


def sns_envelope(message, key, cert_url, version="2"):
    """An SNS Notification, signed as the SNS documentation says."""
    env = {"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
           "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-bounces",
           "Message": json.dumps(message), "Timestamp": "2026-11-30T10:00:01.000Z",
           "SignatureVersion": version, "SigningCertURL": cert_url,
           "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe"}
    text = "".join(f"{k}\n{env[k]}\n" for k in ("Message", "MessageId", "Timestamp",
                                                 "TopicArn", "Type"))
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    env["Signature"] = base64.b64encode(key.sign(text.encode(), padding.PKCS1v15(),
                                                 algorithm)).decode()
    return env


# -- the server -----------------------------------------------------------------------
@pytest.fixture
def served(tmp_path, cert_server, monkeypatch):
    monkeypatch.setenv("MAILFORM_CA_FILE", cert_server["ca"])
    registry = open_registry(f"sqlite:///{tmp_path}/reg.db")
    registry.upsert_contacts([(f"{n}@example.com", {}) for n in ("ann", "bob", "cy", "dee")])
    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    log = []
    config = ServeConfig(certificates=sns.CertificateCache(cert_server["pattern"]),
                         sendgrid_key=sendgrid_key.public_key(), mailgun_key=MAILGUN_KEY,
                         postmark_auth=POSTMARK, log=log.append)
    server = make_server(registry, config, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "registry": registry,
           "sendgrid": sendgrid_key, "log": log, **cert_server}
    server.shutdown()
    server.server_close()
    registry.close()


def post(url, body, headers=None):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def status_of(registry, email):
    return registry.contact(email)["status"]


def test_ses_via_sns_good_and_tampered(served):
    env = sns_envelope(ses_bounce("ann@example.com"), served["key"], served["cert_url"])
    tampered = dict(env, Message=env["Message"].replace("ann@", "bob@"))
    assert post(served["url"] + "/ses", tampered)[0] == 403
    assert status_of(served["registry"], "bob@example.com") == "active"
    code, answer = post(served["url"] + "/ses", env)
    assert code == 200 and answer["newly_faulty"] == ["ann@example.com"]
    assert post(served["url"] + "/ses", env)[1]["duplicates"] == 1      # SNS retries
    last = served["registry"].contact("ann@example.com")["last_bounce"]
    assert last["source"] == "ses" and last["reason"] == "user-unknown"
    assert "550 5.1.1" in last["diagnostic"]
    v1 = sns_envelope(ses_complaint("cy@example.com"), served["key"], served["cert_url"], "1")
    assert post(served["url"] + "/ses", v1)[0] == 200
    assert served["registry"].events.since(kinds=["complaint"])[0]["email"] == "cy@example.com"


def test_sns_subscription_confirmation_is_verified_and_logged(served):
    env = {"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2",
           "Token": "2336412f37", "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses",
           "Message": "You have chosen to subscribe to the topic",
           "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
           "Timestamp": "2026-11-30T10:00:00.000Z", "SignatureVersion": "1",
           "SigningCertURL": served["cert_url"]}
    text = "".join(f"{k}\n{env[k]}\n" for k in ("Message", "MessageId", "SubscribeURL",
                                                 "Timestamp", "Token", "TopicArn", "Type"))
    env["Signature"] = base64.b64encode(served["key"].sign(
        text.encode(), padding.PKCS1v15(), hashes.SHA1())).decode()
    assert post(served["url"] + "/ses", env) == (200, {
        "counted": 0, "duplicates": 0, "unknown": [], "newly_faulty": [], "by_kind": {}})
    assert any("ConfirmSubscription" in line for line in served["log"])
    assert post(served["url"] + "/ses", dict(env, Token="forged"))[0] == 403


def test_sns_certificate_url_must_be_allowed(served):
    other = served["cert_url"].replace("SimpleNotificationService-", "Other-")
    env = sns_envelope(ses_bounce("ann@example.com"), served["key"], other)
    code, answer = post(served["url"] + "/ses", env)
    assert code == 403 and "not allowed" in answer["error"]
    foreign_key, _ = _signing_cert()
    forged = sns_envelope(ses_bounce("ann@example.com"), foreign_key, served["cert_url"])
    assert post(served["url"] + "/ses", forged)[0] == 403
    assert status_of(served["registry"], "ann@example.com") == "active"


def _sendgrid_headers(key, body, stamp="1764496802"):
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp}


def test_sendgrid_ecdsa_good_and_tampered(served):
    body = json.dumps(sendgrid_events("bob@example.com")).encode()
    headers = _sendgrid_headers(served["sendgrid"], body)
    assert post(served["url"] + "/sendgrid", body.replace(b"bob@", b"cy@"), headers)[0] == 403
    assert post(served["url"] + "/sendgrid", body, {})[0] == 403
    code, answer = post(served["url"] + "/sendgrid", body, headers)
    assert code == 200 and answer["counted"] == 1 and answer["newly_faulty"] == [
        "bob@example.com"]
    assert status_of(served["registry"], "cy@example.com") == "active"


def test_mailgun_hmac_good_tampered_and_stale(served):
    good = mailgun_payload("cy@example.com")
    tampered = json.loads(json.dumps(good))
    tampered["signature"]["token"] = "b" * 50
    assert post(served["url"] + "/mailgun", tampered)[0] == 403
    stale = mailgun_payload("cy@example.com", stamp=time.time() - 3600)
    code, answer = post(served["url"] + "/mailgun", stale)
    assert code == 403 and "stale" in answer["error"]
    assert post(served["url"] + "/mailgun", good)[1]["newly_faulty"] == ["cy@example.com"]


def test_postmark_basic_auth(served):
    body = postmark_bounce("dee@example.com")
    wrong = base64.b64encode(b"hooks:guess").decode()
    assert post(served["url"] + "/postmark", body, {"Authorization": f"Basic {wrong}"})[0] == 401
    assert post(served["url"] + "/postmark", body)[0] == 401
    right = base64.b64encode(f"{POSTMARK[0]}:{POSTMARK[1]}".encode()).decode()
    code, answer = post(served["url"] + "/postmark", body, {"Authorization": f"Basic {right}"})
    assert code == 200 and answer["newly_faulty"] == ["dee@example.com"]


def test_a_payload_not_in_the_format_is_refused(served):
    right = base64.b64encode(f"{POSTMARK[0]}:{POSTMARK[1]}".encode()).decode()
    code, answer = post(served["url"] + "/postmark", {"RecordType": "Bounce"},
                        {"Authorization": f"Basic {right}"})
    assert code == 400 and "'ID' is missing" in answer["error"]
    assert post(served["url"] + "/nope", {})[0] == 404


# -- bounces ingest -------------------------------------------------------------------
@pytest.fixture
def cli_env(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "MAILFORM_REGISTRY": f"sqlite:///{tmp_path}/reg.db",
           "NO_COLOR": "1"}
    (tmp_path / "c.csv").write_text("email\nann@example.com\nbob@example.com\n")
    assert mailform("contacts", "import", "c.csv", env=env, cwd=tmp_path).returncode == 0
    return env


@pytest.mark.parametrize("provider, payload", [
    ("ses", lambda: ses_bounce("ann@example.com")),
    ("sendgrid", lambda: sendgrid_events("ann@example.com")),
    ("mailgun", lambda: mailgun_payload("ann@example.com")),
    ("postmark", lambda: postmark_bounce("ann@example.com")),
])
def test_bounces_ingest_is_idempotent(provider, payload, cli_env, tmp_path):
    (tmp_path / "saved.json").write_text(json.dumps(payload()))
    args = ("bounces", "ingest", "--format", provider, "saved.json", "--json")
    first = mailform(*args, env=cli_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["newly_faulty"] == ["ann@example.com"]
    again = json.loads(mailform(*args, env=cli_env, cwd=tmp_path).stdout)
    assert again["counted"] == 0 and again["duplicates"] == 1
    listed = mailform("contacts", "list", "--status", "faulty", "--reason", "user-unknown",
                      "--format", "json", env=cli_env, cwd=tmp_path)
    assert [c["email"] for c in json.loads(listed.stdout)] == ["ann@example.com"]


def test_bounces_ingest_checks_the_format(cli_env, tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps([{"notificationType": "Bounce"}]))
    (tmp_path / "notjson.jsonl").write_text("{\n")
    result = mailform("bounces", "ingest", "--format", "ses", "bad.json", env=cli_env,
                      cwd=tmp_path)
    assert result.returncode == 1 and "bad.json[0]: the field 'bounce' is missing" in result.err
    result = mailform("bounces", "ingest", "--format", "mailgun", "notjson.jsonl",
                      env=cli_env, cwd=tmp_path)
    assert result.returncode == 1 and "notjson.jsonl:1: not JSON" in result.err
    assert "Traceback" not in result.text


def test_a_silent_client_is_dropped_after_the_request_timeout(tmp_path, monkeypatch):
    """A client that sends headers promising a body and then nothing (or trickles it)
    holds its connection only for REQUEST_TIMEOUT, not for ever."""
    import socket
    import time

    from reconciler.events import server as events_server

    monkeypatch.setattr(events_server, "REQUEST_TIMEOUT", 1.0)
    registry = open_registry(f"sqlite:///{tmp_path}/reg.db")
    srv = make_server(registry, ServeConfig(mailgun_key=MAILGUN_KEY), "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(srv.server_address, timeout=20) as sock:
            sock.sendall(b"POST /mailgun HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            started = time.monotonic()
            while sock.recv(4096):          # the server closes the connection
                pass
            assert time.monotonic() - started < 10
    finally:
        srv.shutdown()
        srv.server_close()
        registry.close()
