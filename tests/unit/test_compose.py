"""docker-compose.yml can't run here (no Docker engine), so this test reads it and checks that
every service, module, file, port and setting it names exists and agrees with the code."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("wallet", "campaign", "invoicing", "order_escrow", "spend_consumer", "sends")


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def test_compose_runs_kafka_postgres_and_the_five_services() -> None:
    services = _compose()["services"]
    assert set(services) == {"kafka", "postgres", *SERVICES}
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["postgres"]["image"].startswith("postgres:")


def test_kafka_in_compose_is_single_node_kraft_with_transactions_and_groups_allowed() -> None:
    env = _compose()["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[name] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"


def test_every_service_in_compose_exists_and_every_setting_it_names_is_read_by_the_service() -> None:
    compose = _compose()
    for name in SERVICES:
        spec = compose["services"][name]
        assert (ROOT / spec["build"]["context"] / spec["build"]["dockerfile"]).is_file()
        module = spec["command"][-1]
        assert spec["command"][:2] == ["python", "-m"] and module == f"adledger_{name}"
        assert importlib.util.find_spec(module) is not None
        settings_class = importlib.import_module(f"{module}.config").Settings
        fields = set(settings_class.model_fields)
        for variable, value in spec["environment"].items():
            assert variable.startswith("ADLEDGER_"), variable
            field = variable.removeprefix("ADLEDGER_").lower()
            assert field in fields, f"{name}: {variable} is not a setting of {module}"
            settings_class.model_validate({field: value})  # the value parses as that setting's type
        port = int(spec["environment"]["ADLEDGER_HTTP_PORT"])
        assert port == settings_class.model_fields["http_port"].default
        assert spec["ports"] == [f"{port}:{port}"]
        assert set(spec["depends_on"]) == {"kafka", "postgres"}
        for dependency in spec["depends_on"]:
            assert "healthcheck" in compose["services"][dependency]


def test_the_dockerfile_installs_what_exists() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for name in SERVICES:
        assert f"./services/{name}" in dockerfile
        assert (ROOT / "services" / name / "pyproject.toml").is_file()
    assert "requirements.lock" in dockerfile and (ROOT / "requirements.lock").is_file()
