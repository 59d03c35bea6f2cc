"""An applied OAuth2 account end to end (issue 15; needs the registry to store the OAuth2
secrets): apply with its verification gate, then `inbox scan` logs in with a token."""
from __future__ import annotations

import json
import smtplib
import ssl
import uuid
from email.message import EmailMessage

import pytest

from tests.clihelpers import Cli
from tests.test_oauth_stack import MANIFEST, stack  # noqa: F401  (stack: the OAuth2 stack fixture)

pytestmark = pytest.mark.mailstack(own_stack=True)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_apply_then_scan_with_a_token(stack, tmp_path, protocol):  # noqa: F811
    from devtools.oauthstack import CLIENT_ID, CLIENT_SECRET
    local = "oa" + uuid.uuid4().hex[:8]
    user = stack.add_user(local, "pw-" + uuid.uuid4().hex)
    refresh = stack.endpoint.grant(user)
    cli = Cli(tmp_path, env={"MAILFORM_CA_FILE": stack.ca_file, "OFFICE_REFRESH_TOKEN": refresh,
                             "OFFICE_CLIENT_SECRET": CLIENT_SECRET})
    cli.write("manifests/office.yaml", MANIFEST.format(
        user=user, smtp=stack.ports["submission"], token_url=stack.endpoint.token_url,
        client_id=CLIENT_ID, protocol=protocol,
        port=stack.ports["imaps" if protocol == "imap" else "pop3s"]))
    applied = cli.run("apply", "--auto-approve")            # the gate logs in with a token
    assert applied.code == 0, applied.text
    gone = f"nobody-{uuid.uuid4().hex[:6]}@{stack.domain}"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = user, gone, "campaign"
    msg.set_content("hello\n")
    with smtplib.SMTP("127.0.0.1", stack.ports["submission"], timeout=20) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=stack.ca_file))
        smtp.login(user, stack.user_password(local))
        smtp.send_message(msg)
    stack.wait_for_mail(local, lambda m: m.get_content_type() == "multipart/report")
    scanned = cli.run("inbox", "scan", "office", "--format", "json")
    assert scanned.code == 0, scanned.text
    (report,) = json.loads(scanned.out)
    assert report["result"] == "ok" and report["bounces"]["hard"] == 1, report
    assert refresh not in scanned.text + applied.text
