"""Property: the cache never changes a plan. Random edits — manifest files, template
variables, the environment, registry writes and contact imports by others, applies —
and after each, the cached plan and the uncached plan are the same, byte for byte."""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clihelpers import Cli, dump, marketing_account, smtp_account

NAMES = ("alpha", "beta", "gamma", "delta")
ENV = {f"{n.upper()}_SMTP_PASSWORD": f"pw-{n}" for n in NAMES}
ENV["OTHER_PASSWORD"] = "other"


@st.composite
def document(draw, name: str) -> dict:
    title = draw(st.sampled_from(["News", "{{ var.team }}", "{{ environment }} desk", "Ops"]))
    if draw(st.booleans()):
        return marketing_account(name, display_name=title)
    password = draw(st.sampled_from([f"{name.upper()}_SMTP_PASSWORD", "OTHER_PASSWORD"]))
    return smtp_account(name, password_env=password, display_name=title,
                        smtp={"host": draw(st.sampled_from(["a.example.com", "b.example.com"])),
                              "port": 587, "security": "starttls",
                              "password": {"env": password}})


EDITS = st.one_of(
    st.tuples(st.just("file"), st.sampled_from(["one.yaml", "two.yaml"]),
              st.lists(st.sampled_from(NAMES), unique=True, max_size=3)),
    st.tuples(st.just("var"), st.sampled_from(["red", "blue"])),
    st.tuples(st.just("environment"), st.sampled_from(["default", "staging"])),
    st.tuples(st.just("registry set"), st.sampled_from(NAMES), st.sampled_from(["x", "y"])),
    st.tuples(st.just("contacts"), st.integers(min_value=0, max_value=1200)),
    st.tuples(st.just("apply")),
)


class World:
    def __init__(self, root: Path) -> None:
        self.cli = Cli(root, env=ENV)
        self.files: dict[str, list[str]] = {"one.yaml": ["alpha"], "two.yaml": ["beta"]}
        self.team, self.environment = "red", "default"

    def args(self) -> tuple[str, ...]:
        return ("--var", f"team={self.team}", "--environment", self.environment)

    def write(self, draw) -> None:
        taken: set = set()
        for filename, names in self.files.items():
            names = [n for n in names if n not in taken]    # one file per name
            taken.update(names)
            self.cli.write(f"manifests/{filename}",
                           dump([draw(document(n)) for n in names]) if names else "")

    def edit(self, edit: tuple, draw) -> None:
        kind = edit[0]
        if kind == "file":
            self.files[edit[1]] = list(edit[2])
            self.write(draw)
        elif kind == "var":
            self.team = edit[1]
        elif kind == "environment":
            self.environment = edit[1]
        elif kind == "registry set":
            self.cli.run("registry", "set", edit[1], f"display_name=Out of band {edit[2]}")
        elif kind == "contacts":
            rows = "".join(f"c{i}@example.com,{i}\n" for i in range(edit[1]))
            self.cli.write("contacts.csv", "email,n\n" + rows)
            self.cli.run("contacts", "import", "contacts.csv")
        else:
            self.cli.apply(*self.args())

    def plans_agree(self) -> None:
        cached = self.cli.plan("--format", "json", *self.args())
        uncached = self.cli.plan("--format", "json", "--no-cache", *self.args())
        again = self.cli.plan("--format", "json", *self.args())
        assert (cached.code, cached.out, cached.err) == (uncached.code, uncached.out, uncached.err)
        assert (again.code, again.out, again.err) == (uncached.code, uncached.out, uncached.err)
        assert (self.cli.dir / ".mailform" / "cache" / "docs").is_dir()   # it was used
        return cached


@settings(max_examples=16, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), edits=st.lists(EDITS, min_size=2, max_size=6),
       rows=st.booleans())
def test_cached_and_uncached_plans_are_the_same(data, edits, rows, monkeypatch):
    monkeypatch.setattr("reconciler.workflow.cache.LOCAL_ROWS", rows)   # the rows cache too
    with tempfile.TemporaryDirectory() as root:
        world = World(Path(root))
        world.write(data.draw)
        world.cli.apply(*world.args())
        world.plans_agree()
        for edit in edits:
            world.edit(edit, data.draw)
            world.plans_agree()
