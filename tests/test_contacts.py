"""Contacts: parsing CSV / JSON Lines, and the contacts commands on a real registry."""
import json
import os
from pathlib import Path

from clihelpers import mailform
from reconciler.contacts import parse_contacts

ROOT = Path(__file__).resolve().parent.parent


def test_csv_rows_and_bad_rows_by_line():
    text = ("email,first_name,manager_email\n"
            "Ann@Example.com,Ann,boss@example.com\n"
            "not-an-email,X,\n"
            "\n"
            "bo@example.com,Bo\n"
            "cy@example.com,Cy,m@example.com,extra\n")
    rows, problems = parse_contacts(text, "c.csv")
    assert rows == [("Ann@Example.com", {"first_name": "Ann", "manager_email": "boss@example.com"}),
                    ("bo@example.com", {"first_name": "Bo"})]
    assert [(p.line, p.message.split(" ")[0]) for p in problems] == [(3, "'not-an-email'"),
                                                                      (6, "4")]


def test_csv_needs_email_header():
    rows, problems = parse_contacts("name,email\nx,a@example.com\n", "c.csv")
    assert rows == [] and problems[0].line == 1


def test_jsonl_rows():
    text = ('{"email": "a@example.com", "details": {"n": "A"}}\n'
            'not json\n'
            '{"email": "b@example.com"}\n'
            '["list"]\n'
            '{"email": "c@example.com", "details": "oops"}\n')
    rows, problems = parse_contacts(text, "c.jsonl")
    assert rows == [("a@example.com", {"n": "A"}), ("b@example.com", {})]
    assert [p.line for p in problems] == [2, 4, 5]


def run(tmp_path, *args):
    """`mailform ARGS` in-process (clihelpers.mailform), as a fresh process would run it."""
    env = dict(os.environ, MAILFORM_REGISTRY=f"sqlite:///{tmp_path}/reg.db")
    env.pop("MAILFORM_MASTER_KEY", None)
    return mailform(*args, env=env, cwd=ROOT)


def test_import_upserts_case_insensitively(tmp_path):
    first = tmp_path / "a.csv"
    first.write_text("email,first_name\nAnn@Example.com,Ann\nbad,row\n")
    proc = run(tmp_path, "contacts", "import", str(first))
    assert proc.returncode == 0
    assert "1 contacts added, 0 updated, 1 rows skipped" in proc.stdout
    assert f"{first}:3:" in proc.stderr
    second = tmp_path / "b.jsonl"
    second.write_text('{"email": "ann@example.com", "details": {"city": "Oslo"}}\n'
                      '{"email": "zed@example.com", "details": {}}\n')
    proc = run(tmp_path, "contacts", "import", str(second))
    assert "1 contacts added, 1 updated" in proc.stdout
    shown = json.loads(run(tmp_path, "contacts", "show", "ANN@example.com").stdout)
    assert shown["details"] == {"first_name": "Ann", "city": "Oslo"}
    assert shown["status"] == "active"
    listed = json.loads(run(tmp_path, "contacts", "list", "--format", "json").stdout)
    assert [c["email"] for c in listed] == ["ann@example.com", "zed@example.com"]
    assert run(tmp_path, "contacts", "list", "--status", "faulty", "--format", "json").stdout.strip() == "[]"
    csv_out = run(tmp_path, "contacts", "list", "--format", "csv").stdout.splitlines()
    assert csv_out[0] == "email,status,soft_bounces,last_bounce_kind" and len(csv_out) == 3


def test_show_unknown_contact_exits_1(tmp_path):
    proc = run(tmp_path, "contacts", "show", "nobody@example.com")
    assert proc.returncode == 1 and "no contact" in proc.stderr and "Traceback" not in proc.stderr


def test_unreadable_file(tmp_path):
    proc = run(tmp_path, "contacts", "import", str(tmp_path / "missing.csv"))
    assert proc.returncode == 1 and "cannot read" in proc.stderr


def test_show_gives_the_reason_and_the_unverified_bounces(tmp_path):
    from reconciler.registry import open_registry
    path = tmp_path / "c.csv"
    path.write_text("email\nann@example.com\n")
    assert run(tmp_path, "contacts", "import", str(path)).returncode == 0
    with open_registry(f"sqlite:///{tmp_path}/reg.db") as registry:
        registry.record_message("news", "imap:INBOX:1", 1, [
            ("ann@example.com", "soft", "4.2.2", "mailbox full")])
        registry.record_message("news", "imap:INBOX:1", 2, [], unverified=[
            ("ann@example.com", "hard", "5.1.1", None, "untagged, and not from a mail system")])
    shown = json.loads(run(tmp_path, "contacts", "show", "ann@example.com").stdout)
    assert shown["status"] == "active" and shown["last_bounce"]["reason"] == "mailbox full"
    assert shown["soft_bounces"][0]["reason"] == "mailbox full"
    assert shown["unverified_count"] == 1
    (doubt,) = shown["unverified_bounces"]
    assert (doubt["kind"], doubt["status"], doubt["account"]) == ("hard", "5.1.1", "news")
    assert doubt["why"].startswith("untagged") and "reason" not in doubt
