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


def test_a_change_stored_apart_is_the_json_of_its_dict_byte_for_byte():
    """ResourceChange.to_json (what history_changes holds): exactly the compact JSON of
    to_dict(), however the values look, and a shared change encoded once is reused."""
    from reconciler.diff import Change, _created
    from reconciler.plan import Action, Resource, ResourceChange
    from reconciler.registry.history import _BODY, _body
    values = [None, True, False, 0, -7, 10**20, 1.5, "plain", "é \u2028\"\\\n\t", ["a", 1, None],
              {"k": [1, {"z": "ü"}]}]
    shared = _created("smtp.port", 587)
    changes = [Change(f"p{i}", values[i], values[-1 - i], sensitive=i % 4 == 0)
               for i in range(len(values))] + [shared]
    memo: dict = {}
    for action in Action:
        for previous in (None, "old-name"):
            rc = ResourceChange("n-ü", action, changes, resource=Resource.ACCOUNT,
                                verification={"smtp": {"code": "ok", "t": [1.25]}},
                                notes=["a note ü"], previous=previous)
            assert _body(rc, memo) == _BODY.encode(rc.to_dict())
            assert _body(rc, memo) == _BODY.encode(rc.to_dict())     # from the memo
    assert memo[id(shared)] == _BODY.encode(dict(zip(Change._fields, shared)))


def test_rows_read_for_a_plan_keep_only_the_digest_of_specs_vouched_for(tmp_path):
    """registry.rows.unread_specs: a row unchanged since the last apply whose spec the plan
    vouches for keeps the digest, not the text; others are whole; a whole row still
    pickles (the rows cache keeps only whole rows)."""
    import pickle

    import pytest

    from reconciler.errors import RegistryError
    from reconciler.registry.rows import unread_specs
    cli = Cli(tmp_path)
    _apply(cli, 3)
    seen = []

    def match(name, type_, text, fingerprints):
        seen.append(name)
        return b"digest" if name == "m0001" else None
    with cli.registry() as registry:
        whole = registry.accounts()
        with unread_specs(match):
            rows = registry.accounts()
        after = registry.accounts()
    assert seen == ["m0000", "m0001", "m0002"]
    assert rows["m0001"].spec_digest == b"digest" and rows["m0001"].spec_text is None
    with pytest.raises(RegistryError, match="m0001"):
        rows["m0001"].spec
    assert rows["m0001"].unchanged_since_apply and rows["m0001"].owner == whole["m0001"].owner
    assert rows["m0000"] == whole["m0000"] and rows["m0000"].spec_digest is None
    assert after["m0001"] == whole["m0001"]          # only inside unread_specs
    assert pickle.loads(pickle.dumps(whole["m0002"])) == whole["m0002"]


def test_rows_are_read_as_the_stored_row_constructor_makes_them():
    """registry.rows.stored_rows (the loop a plan reads 100,000 rows with) against
    StoredRow's constructor given the decoded columns, slot by slot, with and without
    unread_specs."""
    import json
    from reconciler.registry.rows import SAME_AS_LIVE, StoredRow, stored_rows, unread_specs
    spec, other = '{"email":"a@example.com"}', '{"email":"b@example.com"}'
    fps, other_fps = '{"smtp.password":"f1"}', '{"smtp.password":"f2"}'
    rows = [("same", "smtp", spec, SAME_AS_LIVE, fps, SAME_AS_LIVE, '{"state":"ok"}', "team"),
            ("equal-text", "smtp", spec, spec, fps, fps, '{"state":"ok"}', None),
            ("drifted", "marketing", spec, other, fps, fps, "null", "team"),
            ("rekeyed", "smtp", spec, SAME_AS_LIVE, fps, other_fps, '{}', None),
            ("vouched", "smtp", other, SAME_AS_LIVE, other_fps, SAME_AS_LIVE, '{}', "x")]

    def match(name, type_, text, row_fps):
        return b"digest" if name in ("same", "vouched", "drifted") else None

    for matcher in (None, match):
        with unread_specs(matcher):
            fast = stored_rows(rows, {})
            slow = []
            for name, type_, text, applied, fps_, applied_fps, status, owner in rows:
                value = json.loads(fps_)     # (the same object when the texts are equal)
                applied_value = value if applied_fps in (SAME_AS_LIVE, fps_) \
                    else json.loads(applied_fps)
                slow.append(StoredRow(name, type_, text, applied, value, applied_value,
                                      json.loads(status), owner))
        for a, b in zip(fast, slow):
            assert {s: getattr(a, s) for s in StoredRow.__slots__} == \
                {s: getattr(b, s) for s in StoredRow.__slots__}
    assert [r.spec_digest for r in fast] == [b"digest", None, None, None, b"digest"]
    shared = stored_rows(rows, {})
    assert shared[0].fingerprints is shared[1].fingerprints is shared[2].fingerprints
    assert shared[0].applied_fingerprints is shared[0].fingerprints
