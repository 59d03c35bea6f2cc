"""The project file: finding and reading it, and what it decides with the flags and the
environment variables (precedence), without the CLI."""
from __future__ import annotations

import os

import pytest

from reconciler.errors import MailformError, ManifestError
from reconciler.manifest import find_files
from reconciler.project import (Limits, Project, ProjectError, RegistryChoice,
                                choose_environment, choose_limits, choose_registry)
from reconciler.workflow.inputs import Inputs, load_desired
from reconciler.workflow.settings import (find_project_file, open_project, read_project,
                                          registry_for, settings_for)

PROJECT = """\
apiVersion: mailform/v1
kind: Project
metadata: {name: growth}
spec:
  manifests: [manifests]
  default_environment: staging
  environments:
    staging:
      registry: sqlite:///.mailform/staging.db
      var_files: [environments/staging.yaml]
      guards: {max_destroy_percent: 50}
    production:
      registry: {env: PROD_REGISTRY}
      var_files: [environments/production.yaml]
  ownership: {name: growth}
"""


def project(**spec) -> Project:
    return Project.model_validate({"apiVersion": "mailform/v1", "kind": "Project",
                                   "metadata": {"name": "p"}, "spec": spec})


TWO = project(default_environment="staging",
              environments={"staging": {"registry": "sqlite:///s.db"},
                            "production": {"registry": {"env": "PROD_URL"},
                                           "guards": {"max_change_percent": 5}}})


def test_environment_precedence():
    assert choose_environment("production", {"MAILFORM_ENVIRONMENT": "staging"}, TWO) == \
        "production"
    assert choose_environment(None, {"MAILFORM_ENVIRONMENT": "production"}, TWO) == "production"
    assert choose_environment(None, {}, TWO) == "staging"
    assert choose_environment(None, {}, None) == "default"
    assert choose_environment("anything", {}, project()) == "anything"   # none declared


def test_an_undeclared_environment_is_an_error_naming_the_declared_ones():
    with pytest.raises(ProjectError, match="production, staging: 'prod' is not one of them"):
        choose_environment("prod", {}, TWO)
    no_default = project(environments={"a": {}, "b": {}})
    with pytest.raises(ProjectError, match="choose one with --environment"):
        choose_environment(None, {}, no_default)


def test_registry_precedence():
    env = {"MAILFORM_REGISTRY": "sqlite:///from-env.db", "PROD_URL": "postgresql://h/db"}
    assert choose_registry("sqlite:///flag.db", env, TWO, "production").url == \
        "sqlite:///flag.db"
    assert choose_registry(None, env, TWO, "production").url == "sqlite:///from-env.db"
    by_variable = choose_registry(None, {"PROD_URL": "postgresql://h/db"}, TWO, "production")
    assert by_variable.url == "postgresql://h/db" and "$PROD_URL" in by_variable.source
    assert by_variable.runner_chose                   # the runner set the variable
    written = choose_registry(None, {}, TWO, "staging")
    assert written.url == "sqlite:///s.db" and not written.runner_chose   # the repository's
    assert choose_registry(None, {}, None, "default") == RegistryChoice(None, "the default")
    with pytest.raises(ProjectError, match="variable PROD_URL, which is not set"):
        choose_registry(None, {}, TWO, "production")


def test_guard_limits_precedence():
    assert choose_limits(None, None, None, "default") == Limits(30.0, 30.0)
    assert choose_limits(None, None, TWO, "production") == Limits(30.0, 5.0)
    assert choose_limits(80, None, TWO, "production") == Limits(80.0, 5.0)
    assert choose_limits(None, 0, TWO, "production") == Limits(30.0, 0.0)


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "mailform.yaml").write_text(PROJECT)
    (tmp_path / "environments").mkdir()
    (tmp_path / "environments" / "staging.yaml").write_text("host: smtp.staging.example.com\n")
    (tmp_path / "environments" / "production.yaml").write_text("host: smtp.example.com\n")
    (tmp_path / "manifests" / "deep").mkdir(parents=True)
    return tmp_path


def test_found_by_walking_up_and_paths_relative_to_the_working_directory(repo):
    deep = repo / "manifests" / "deep"
    assert find_project_file(str(deep)) == str(repo / "mailform.yaml")
    found = open_project(cwd=str(deep))
    assert found.path == os.path.join("..", "..", "mailform.yaml")
    assert found.manifests == ("..",)          # manifests/, seen from manifests/deep
    assert found.ownership == "growth"
    settings = settings_for(found, None, {})
    assert settings.environment == "staging" and settings.limits == Limits(50.0, 30.0)
    assert settings.var_files == (os.path.join("..", "..", "environments", "staging.yaml"),)
    url = registry_for(found, None, None, {}).url
    assert url == "sqlite:///" + os.path.join("..", "..", ".mailform", "staging.db")


def test_without_a_project_file_everything_is_as_before(tmp_path):
    found = open_project(cwd=str(tmp_path))
    assert found.path is None and found.manifests == () and found.ownership is None
    assert registry_for(found, None, None, {}).url == "sqlite:///.mailform/registry.db"
    settings = settings_for(found, None, {})
    assert settings.environment == "default" and settings.limits == Limits()
    inputs = settings.inputs()
    assert inputs == Inputs(environment="default")


def test_the_default_registry_sits_beside_the_project_file(repo):
    (repo / "mailform.yaml").write_text("apiVersion: mailform/v1\nkind: Project\n"
                                        "metadata: {name: p}\n")
    found = open_project(cwd=str(repo / "manifests"))
    assert registry_for(found, None, None, {}).url == \
        "sqlite:///" + os.path.join("..", ".mailform", "registry.db")


def test_config_names_the_file(repo, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    found = open_project(str(repo / "mailform.yaml"), cwd=str(elsewhere))
    assert found.ownership == "growth"
    with pytest.raises(MailformError, match="no such project file"):
        open_project(str(repo / "nope.yaml"), cwd=str(elsewhere))


@pytest.mark.parametrize("text,where", [
    ("apiVersion: mailform/v1\nkind: Project\nmetadata: {name: p}\nspec:\n  colour: red\n",
     "mailform.yaml:5:3: spec.colour: unknown field 'colour'"),
    ("apiVersion: mailform/v1\nkind: Project\nmetadata: {name: p}\nspec:\n  environments:\n"
     "    staging:\n      guards: {max_destroy_percent: 300}\n",
     "mailform.yaml:7:37: spec.environments.staging.guards.max_destroy_percent:"),
    ("apiVersion: mailform/v1\nkind: Project\n", "metadata: required field is missing"),
    ("apiVersion: mailform/v1\nkind: Project\nmetadata: {name: p}\n---\nkind: Project\n",
     "exactly one document"),
    ("apiVersion: mailform/v1\nkind: Project\nmetadata: {name: p\n", "YAML syntax error"),
])
def test_a_broken_project_file_names_file_line_and_field(repo, text, where):
    (repo / "mailform.yaml").write_text(text)
    with pytest.raises(ManifestError) as caught:
        read_project(str(repo / "mailform.yaml"))
    assert where in str(caught.value).replace(str(repo) + os.sep, "")


def test_var_files_and_the_project_file_are_never_manifests(repo, monkeypatch):
    monkeypatch.chdir(repo)
    (repo / "manifests" / "vars.yaml").write_text("host: x\n")
    (repo / "manifests" / "mailform.yaml").write_text(PROJECT)
    (repo / "manifests" / "a.yaml").write_text(
        "apiVersion: mailform/v1\nkind: EmailAccount\nmetadata: {name: a}\nspec:\n"
        "  type: marketing\n  email: a@example.com\n  display_name: '{{ var.host }}'\n"
        "  shared: true\n")
    found = find_files(["manifests"], skip=["manifests/vars.yaml"])
    assert found == [os.path.join("manifests", "a.yaml")]
    settings = settings_for(open_project(cwd=str(repo)), None, {})
    inputs = settings.inputs(var_files=["manifests/vars.yaml"])
    assert inputs.var_files == ("environments/staging.yaml", "manifests/vars.yaml")
    assert inputs.skip == ("mailform.yaml", "environments/staging.yaml",
                           "environments/production.yaml") and inputs.paths == ("manifests",)
    desired = load_desired(inputs)
    assert list(desired.accounts) == ["a"] and desired.accounts["a"].spec.display_name == "x"
