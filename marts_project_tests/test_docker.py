"""The docker stack, checked without a Docker engine: files parse, references resolve, no
secret is committed, and the image installs the project the way the README does."""

from __future__ import annotations

import json
import re
import shlex
import tomllib

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from marts_project.governance.preflight import weak_secrets
from marts_project.instance.config import render
from marts_project.settings import REPO_ROOT

pytestmark = pytest.mark.quick  # the unit tier: `pytest -m quick`

DOCKER = REPO_ROOT / "docker"
COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (DOCKER / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)


def test_compose_has_the_whole_stack():
    assert set(COMPOSE["services"]) == {
        "preflight",
        "postgres",
        "minio",
        "create-bucket",
        "code-server",
        "webserver",
        "daemon",
    }
    assert "mc mb --ignore-existing" in COMPOSE["services"]["create-bucket"]["entrypoint"]


def test_every_compose_variable_is_documented_and_no_secret_is_committed():
    text = (DOCKER / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)(?::[?-][^}]*)?\}", text))
    documented = set(ENV_EXAMPLE) | {"MARTS_BIND_ADDRESS"}
    assert used and used <= documented, used - documented
    for name in SECRETS:
        assert ENV_EXAMPLE[name] == "", f"{name}: the example must not carry a usable value"
        assert f"${{{name}:?" in text, f"{name}: compose must refuse to start without it"
    assert "docker/.env" in (REPO_ROOT / ".gitignore").read_text()


SECRETS = ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MARTS_S3_SECRET_KEY", "MARTS_PII_KEY")


def test_published_ports_bind_to_localhost_by_default():
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${MARTS_BIND_ADDRESS:-127.0.0.1}:"), (name, port)


def test_images_are_pinned_and_the_app_runs_as_its_own_s3_user_not_root():
    for name, service in COMPOSE["services"].items():
        image = service.get("image", "")
        assert image and not image.endswith(":latest") and ":" in image, (name, image)
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11\.\d+-slim", dockerfile, re.M)
    assert "\nUSER marts\n" in dockerfile
    env = COMPOSE["services"]["code-server"]["environment"]
    assert (
        env["AWS_ACCESS_KEY_ID"] != COMPOSE["services"]["minio"]["environment"]["MINIO_ROOT_USER"]
    )
    assert "MARTS_S3_ACCESS_KEY" in env["AWS_ACCESS_KEY_ID"]
    policy = json.loads((DOCKER / "policies" / "marts-pipeline.json").read_text())
    resources = {r for st in policy["Statement"] for r in st["Resource"]}
    assert all(
        r == "arn:aws:s3:::BUCKET" or r.startswith("arn:aws:s3:::BUCKET/") for r in resources
    )


@pytest.mark.parametrize("service", ["webserver", "daemon"])
def test_only_the_code_server_gets_s3_secrets_and_the_pii_key(service):
    """The webserver and the daemon read Dagster's storage only: the daemon asks the code
    server to evaluate sensors and to start runs (DefaultRunLauncher over gRPC), so run
    workers live in the code server's container."""
    env = COMPOSE["services"][service]["environment"]
    assert not {"AWS_SECRET_ACCESS_KEY", "MARTS_PII_KEY", "AWS_ACCESS_KEY_ID"} & set(env)
    assert "MARTS_DAGSTER_PG_URL" in env
    assert not COMPOSE["services"][service].get("volumes")
    instance = yaml.safe_load((DOCKER / "dagster.yaml").read_text())
    assert "run_launcher" not in instance  # Dagster's default: runs start on the code server


def test_the_image_installs_the_locked_versions_the_suite_ran_with():
    from importlib.metadata import version

    locked = dict(
        line.split("==")
        for line in (DOCKER / "requirements.lock").read_text().splitlines()
        if line and not line.startswith("#")
    )
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.split(r"[\[=<>~! ;]", requirement, maxsplit=1)[0]
        assert any(n.lower().replace("_", "-") == name.lower() for n in locked), name
    assert {n: v for n, v in locked.items() if version(n) != v} == {}
    assert "-c docker/requirements.lock" in (REPO_ROOT / "setup.sh").read_text()


@pytest.mark.parametrize(
    ("value", "problem"),
    [("change-me", "shorter"), ("change-me-please-now-1", "placeholder"), ("x" * 15, "shorter")],
)
def test_preflight_refuses_empty_short_or_placeholder_secrets(value, problem):
    assert problem in weak_secrets({"POSTGRES_PASSWORD": value})[0]
    assert weak_secrets({"POSTGRES_PASSWORD": "Zq8-v1Rk2_mT9wLp4sYh"}) == []


def test_every_service_waits_for_preflight():
    services = COMPOSE["services"]
    for name in ("postgres", "minio"):
        assert services[name]["depends_on"]["preflight"]["condition"] == (
            "service_completed_successfully"
        )


def test_code_services_get_every_setting_the_code_reads():
    needed = {
        "MARTS_WAREHOUSE",
        "MARTS_LANDING",
        "MARTS_S3_ENDPOINT",
        "MARTS_CATALOG_URI",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MARTS_PII_KEY",
        "MARTS_PARTITIONS_START",
        "MARTS_DAGSTER_PG_URL",
    }
    settings_source = (REPO_ROOT / "marts_project" / "settings.py").read_text()
    assert {"MARTS_WAREHOUSE", "MARTS_LANDING", "MARTS_CATALOG_URI"} <= set(
        re.findall(r'"(MARTS_[A-Z_]+)"', settings_source)
    )
    assert needed <= set(COMPOSE["services"]["code-server"]["environment"])


def test_every_file_the_image_and_stack_reference_exists():
    build = COMPOSE["services"]["preflight"]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, _ = shlex.split(line)[1:]
            for source in sources:
                assert (context / source).exists(), source
    workspace = yaml.safe_load((DOCKER / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["host"] == "code-server"


def test_the_image_installs_with_the_readme_command():
    readme = (REPO_ROOT / "README.md").read_text()
    readme_first = re.search(r"```bash[^\n]*\n(.*)", readme)[1]
    install = readme_first.split("&&")[0].strip()
    assert install == "./setup.sh"
    assert f"RUN MARTS_PRODUCTION=1 {install}" in (DOCKER / "Dockerfile").read_text()


def test_the_instance_config_is_valid_dagster_config_rendered_from_the_one_source(monkeypatch):
    assert (DOCKER / "dagster.yaml").read_text() == render("docker")
    monkeypatch.setenv("MARTS_DAGSTER_PG_URL", "postgresql://u:p@h:5432/d")
    config, _ = dagster_instance_config(str(DOCKER), "dagster.yaml")
    assert config["run_storage"]["class"] == "PostgresRunStorage"
    assert config["event_log_storage"]["class"] == "TableAwarePostgresEventLogStorage"
    assert config["schedule_storage"]["class"] == "PostgresScheduleStorage"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["instance_class"]["class"] == "MartsInstance"
