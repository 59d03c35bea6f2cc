"""Terraform habits on mailform's command line (issue 10, problem 1): single-dash long
options work as aliases, or stop with exit 64 naming the double-dash spelling — never
a silent misparse such as `-out=x.plan` read as `-o ut=x.plan`."""
from __future__ import annotations

import json

import pytest

from clihelpers import Cli, marketing_account, smtp_account

SECRETS = {"SUPPORT_SMTP_PASSWORD": "pw-support-1"}


@pytest.fixture
def cli(tmp_path):
    c = Cli(tmp_path, env=SECRETS)
    c.write_accounts([smtp_account("support"), marketing_account("news")])
    assert c.run("registry", "init").code == 0
    return c


def test_out_is_the_plan_file_not_o_ut(cli):
    planned = cli.plan("-out=x.plan")
    assert planned.code == 0, planned
    assert (cli.dir / "x.plan").is_file() and not (cli.dir / "ut=x.plan").exists()
    assert "Saved the plan to x.plan" in planned.out
    spaced = cli.plan("-out", "y.plan")
    assert spaced.code == 0 and (cli.dir / "y.plan").is_file(), spaced
    applied = cli.run("apply", "-auto-approve", "--skip-verify", "x.plan")
    assert applied.code == 0 and "2 added" in applied.out, applied


def test_the_terraform_spellings_of_plan_and_apply(cli):
    cli.write("vars.yaml", "team: growth\n")
    planned = cli.plan("-detailed-exitcode", "-target=account.news", "-var-file=vars.yaml",
                       "-var", "x=1", "-no-color")
    assert planned.code == 2, planned
    assert "Plan: 1 to add" in planned.out
    applied = cli.run("apply", "-auto-approve", "-skip-verify", "-lock-timeout=1",
                      "-target", "support")
    assert applied.code == 0 and "1 added" in applied.out, applied
    listed = cli.run("state", "list", "-format=json")
    assert listed.code == 0 and {a["name"] for a in json.loads(listed.out)} == {"support"}


@pytest.mark.parametrize("args, named", [
    (("apply", "-out=x.plan"), "--out=x.plan"),                      # apply takes no --out
    (("plan", "-lock-timeout=5"), "--lock-timeout=5"),               # plan takes no lock
    (("plan", "-auto-approve"), "--auto-approve"),
    (("plan", "-outfile=x.plan"), "would be read as -o utfile=x.plan"),
    (("validate", "-json"), "--json"),
    (("plan", "-json"), "which `plan` does not take; for JSON output use --format json"),
    (("state", "list", "-json"), "which `state list` does not take; for JSON output use "
                                 "--format json"),
    (("registry", "init", "-json"), "which `registry init` does not take"),
])
def test_what_cannot_be_an_alias_is_a_usage_error_naming_the_spelling(cli, args, named):
    result = cli.run(*args)
    assert result.code == 64, result
    assert named in result.err and "two dashes" in result.err, result
    assert not list(cli.dir.glob("*.plan")) and not list(cli.dir.glob("ut*"))


def test_short_options_values_and_double_dash_are_left_alone(cli):
    assert cli.plan("-o", "-odd.plan").code == 0 and (cli.dir / "-odd.plan").is_file()
    assert cli.plan("-oplain.plan").code == 0 and (cli.dir / "plain.plan").is_file()
    assert cli.run("plan", "-h").code == 0
    version = cli.run("-version")
    assert version.code == 0 and version.out.startswith("mailform, version"), version
    # after `--` every word is a PATH, even one that looks like an option
    missing = cli.plan("--", "-target=x")
    assert missing.code == 1 and "-target=x: no such file or directory" in missing.err, missing


def test_terraforms_init_and_show_name_mailforms_commands(cli):
    for word, ours in (("init", "`mailform registry init`"), ("show", "`mailform state show NAME`")):
        result = cli.run(word)
        assert result.code == 64 and f"No such command '{word}': mailform's is {ours}" \
            in result.err, result
