"""docker-compose.yml matches the CLI and SPEC 3: commands that exist, names that are read;
the Dockerfile installs from the lock in a cached layer and runs as a non-root user on 0.0.0.0."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from services.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
STAGES = re.split(r"^(?=FROM )", DOCKERFILE, flags=re.MULTILINE)[1:]  # builder, final
# SPEC 3, plus the rate limit of the Public API (see the README's configuration table).
KNOWN_VARIABLES = {
    "TENZO_DATABASE_URL",
    "TENZO_BROKER_URL",
    "TENZO_OPERATOR_TOKEN",
    "TENZO_ENCRYPTION_KEY",
    "TENZO_HTTP_HOST",
    "TENZO_HTTP_PORT",
    "TENZO_WEBHOOK_TIMEOUT",
    "TENZO_WEBHOOK_RETRY_DELAYS",
    "TENZO_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
    "TENZO_WEBHOOK_CA_BUNDLE",
    "TENZO_RATE_LIMIT_PER_SECOND",
    "TENZO_RATE_LIMIT_BURST",
    "TENZO_METRICS_PORT",
    "TENZO_DISPATCHER_WORKERS",
    "TENZO_DISPATCHER_PREFETCH",
    "TENZO_DISPATCHER_PER_ORG_CONCURRENCY",
    "TENZO_DISPATCHER_CPU",
}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def tenzo_services() -> list[str]:
    return [name for name, service in SERVICES.items() if command_of(service)[:1] == ["tenzo"]]


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def test_the_production_shape_has_rabbitmq_postgres_and_the_api():
    assert {"rabbitmq", "postgres", "api"} <= set(SERVICES)
    assert re.fullmatch(r"rabbitmq:[\w.]+-management(-alpine)?", SERVICES["rabbitmq"]["image"])
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert command_of(SERVICES["api"])[:2] == ["tenzo", "api"]
    assert "api" in tenzo_services()


@pytest.mark.parametrize("name", tenzo_services())
def test_every_tenzo_command_exists_in_the_cli_with_its_options(name):
    args = command_of(SERVICES[name])[1:]
    command: click.Command = main
    path = ["tenzo"]
    while isinstance(command, click.Group) and args and args[0] in command.commands:
        path.append(args[0])
        command = command.commands[args.pop(0)]
    assert not isinstance(command, click.Group), f"{name}: {' '.join(path)} needs a subcommand"
    # Parsing the options (without running anything) refuses unknown ones.
    command.make_context(" ".join(path), list(args))


@pytest.mark.parametrize("name", tenzo_services())
def test_tenzo_services_are_configured_as_spec_3_says(name):
    service = SERVICES[name]
    environment = environment_of(service)
    unknown = {key for key in environment if key.startswith("TENZO_")} - KNOWN_VARIABLES
    assert not unknown
    settings_source = (ROOT / "services" / "settings.py").read_text()
    for key in environment:
        if key.startswith("TENZO_"):
            assert f'"{key}"' in settings_source, f"{key} is not read by Settings.from_env"

    assert environment["TENZO_ENCRYPTION_KEY"].startswith("${TENZO_ENCRYPTION_KEY:?")
    database = environment["TENZO_DATABASE_URL"]
    assert re.match(r"postgresql://[^@]+@postgres:5432/\w+$", database)
    assert re.match(r"amqp://[^@]+@rabbitmq:5672/", environment["TENZO_BROKER_URL"])
    depends = service.get("depends_on") or {}
    assert {"postgres", "rabbitmq"} <= set(depends)
    assert service.get("build") or service.get("image", "").startswith("tenzo")


def test_the_api_listens_on_all_interfaces_at_its_published_port():
    api = SERVICES["api"]
    environment = environment_of(api)
    assert environment["TENZO_HTTP_HOST"] == "0.0.0.0"
    port = environment["TENZO_HTTP_PORT"]
    published = [str(mapping).rsplit(":", 1)[-1] for mapping in api["ports"]]
    assert port in published


def test_the_image_is_built_in_two_stages_from_python_3_11_slim():
    assert len(STAGES) >= 2
    for stage in STAGES:
        assert re.match(r"FROM python:3\.11-slim\b", stage)
    assert re.search(r"^COPY --from=\w+ ", STAGES[-1], re.MULTILINE)


def test_the_dependencies_are_installed_from_the_lock_in_a_layer_before_the_sources():
    builder = STAGES[0]
    lock_copied = re.search(r"^COPY requirements\.lock\b", builder, re.MULTILINE)
    lock_installed = re.search(
        r"^RUN pip install --require-hashes -r \S*requirements\.lock$", builder, re.MULTILINE
    )
    sources_copied = re.search(
        r"^COPY (domain|contracts|services|pyproject\.toml)\b", builder, re.M
    )
    assert lock_copied and lock_installed and sources_copied
    assert lock_copied.start() < lock_installed.start() < sources_copied.start()
    # Tenzo itself, with nothing the lock does not name (its build tools are locked too).
    assert re.search(r"^RUN pip install --no-deps --no-build-isolation \.$", builder, re.M)


def test_the_final_image_runs_as_a_user_other_than_root():
    users = re.findall(r"^USER (\S+)", STAGES[-1], re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}


def test_the_final_image_listens_on_all_interfaces_at_the_exposed_port():
    final = STAGES[-1]
    settings_source = (ROOT / "services" / "settings.py").read_text()
    assert '"TENZO_HTTP_HOST"' in settings_source and '"TENZO_HTTP_PORT"' in settings_source
    assert re.search(r"\bTENZO_HTTP_HOST=0\.0\.0\.0\b", final)
    port = re.search(r"\bTENZO_HTTP_PORT=(\d+)\b", final)
    exposed = re.findall(r"^EXPOSE (\d+)", final, re.MULTILINE)
    assert port and exposed == [port.group(1)]
    assert environment_of(SERVICES["api"])["TENZO_HTTP_PORT"] == port.group(1)


def test_dispatcher_replicas_share_the_directory_where_they_claim_cpus():
    from services.infrastructure.cpu_affinity import CLAIMS_DIRECTORY_NAME

    claims = f"/tmp/{CLAIMS_DIRECTORY_NAME}"  # noqa: S108 - the image's temporary directory
    dispatcher = SERVICES["dispatcher"]
    assert environment_of(dispatcher)["TENZO_DISPATCHER_CPU"] == "auto"
    mounts = {volume.split(":", 1)[1]: volume.split(":", 1)[0] for volume in dispatcher["volumes"]}
    assert mounts[claims] in COMPOSE["volumes"]  # a named volume: every replica sees it
    assert re.search(rf"install -d -o tenzo -g tenzo {re.escape(claims)}$", STAGES[-1], re.M)
