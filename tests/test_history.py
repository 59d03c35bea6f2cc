"""The history of a large apply: a bounded row for `history`, every change kept apart
for `history show SERIAL` (registry.history_log.entry)."""
from __future__ import annotations

from clihelpers import Cli, dump, marketing_account
from reconciler.registry.history import INLINE_CHANGES


def _apply(cli: Cli, count: int, title: str = "News", *options: str):
    cli.write("manifests/a.yaml", dump([marketing_account(f"m{i:04d}", display_name=title)
                                        for i in range(count)]))
    result = cli.apply(*options)
    assert result.code == 0, result
    return result


def test_a_large_apply_keeps_its_history_row_small(tmp_path):
    cli = Cli(tmp_path)
    count = INLINE_CHANGES * 3
    _apply(cli, count)
    registry = cli.registry()
    with registry:
        (entry,) = registry.history()
        assert entry["changes"] == [] and entry["changes_stored"] == count
        assert entry["counts"]["add"] == count
        (size,) = registry.store.read("SELECT length(changes) + length(extra) FROM history")[0]
        assert size < 2000
        full = registry.history_log.entry(entry["serial"])
    assert [c["address"] for c in full["changes"]] == [f"account.m{i:04d}"
                                                       for i in range(count)]
    assert full["changes"][0]["action"] == "create"
    assert {"path": "display_name", "before": None, "after": "News",
            "sensitive": False} in full["changes"][0]["changes"]


def test_a_small_apply_keeps_its_changes_inline(tmp_path):
    cli = Cli(tmp_path)
    _apply(cli, 2)
    _apply(cli, 2, title="Other")
    with cli.registry() as registry:
        first, second = registry.history()
        assert "changes_stored" not in second and len(second["changes"]) == 2
        assert second["changes"][0]["action"] == "update"
        assert registry.history_log.entry(second["serial"])["changes"] == second["changes"]
        assert registry.history_log.entry(99) is None
        assert registry.store.read("SELECT count(*) FROM history_changes")[0][0] == 0


def test_history_lists_a_large_apply_as_one_line(tmp_path):
    cli = Cli(tmp_path)
    _apply(cli, INLINE_CHANGES + 1)
    result = cli.run("history")
    assert result.code == 0 and f"apply +{INLINE_CHANGES + 1} ~0 -0" in result.out


def test_history_show_lists_every_change_of_a_large_apply(tmp_path):
    """`history show SERIAL` (human and JSON) reads the changes stored apart; an unknown
    serial is an error that says where to look."""
    import json

    cli = Cli(tmp_path)
    count = INLINE_CHANGES * 2
    _apply(cli, count)
    _apply(cli, count, "Other", "--force")            # past the update guard
    shown = cli.run("history", "show", "2")
    assert shown.code == 0, shown
    assert shown.out.count(": update") == count
    assert 'display_name: "News" -> "Other"' in shown.out
    data = json.loads(cli.run("history", "show", "1", "--format", "json").out)
    assert len(data["changes"]) == count and data["counts"]["add"] == count
    missing = cli.run("history", "show", "7")
    assert missing.code == 1 and "no history entry with serial 7" in missing.err
    listed = cli.run("history")
    assert listed.code == 0 and "apply +0 ~%d -0" % count in listed.out
