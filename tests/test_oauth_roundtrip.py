"""OAuth2 secrets through plan, apply, rotation, import and `registry set` (issue 15):
fingerprints as for passwords, never a value."""
from tests.clihelpers import Cli

DOC = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata: {name: office}
spec:
  type: smtp
  email: office@example.com
  display_name: Office
  shared: true
  proxy: true
  proxy_password: {env: PP}
  smtp:
    host: smtp.office365.com
    port: 587
    security: starttls
    oauth2:
      token_url: https://login.microsoftonline.com/common/oauth2/v2.0/token
      client_id: app
      client_secret: {env: CS}
      refresh_token: {env: RT}
  inbox: {protocol: imap, host: outlook.office365.com, port: 993, security: ssl}
"""

def test_oauth2_secrets_plan_apply_rotate_import(tmp_path):
    cli = Cli(tmp_path, env={"RT": "rt-Secret-value", "CS": "cs-Secret-value", "PP": "pp-Secret-value"})
    cli.write("manifests/a.yaml", DOC)
    p = cli.plan("--format", "json")
    assert p.code == 0, p.text
    assert "rt-Secret-value" not in p.text
    a = cli.apply()
    assert a.code == 0, a.text
    again = cli.plan("--detailed-exitcode")
    assert again.code == 0, again.text
    from reconciler.proxy.auth import AccountDirectory
    from reconciler.registry import open_registry
    directory = AccountDirectory(lambda: open_registry(cli.url))
    try:   # clients log in to the proxy with proxy_password (the upstream uses OAuth2)
        assert directory.authenticate("office@example.com", "pp-Secret-value").name == "office"
        assert directory.authenticate("office@example.com", "rt-Secret-value") is None
    finally:
        directory.close()
    cli.env["RT"] = "rotated"
    rot = cli.plan("--detailed-exitcode")
    assert rot.code == 2 and "smtp.oauth2.refresh_token" in rot.text and "rotated" not in rot.text, rot.text
    imp = cli.run("import")
    assert imp.code == 0 and "MAILFORM_OFFICE_SMTP_OAUTH2_REFRESH_TOKEN" in imp.out, imp.text
    s = cli.run("registry", "set", "office", "smtp.oauth2.refresh_token=x-new-Value")
    assert s.code == 0 and "x-new-Value" not in s.text, s.text
