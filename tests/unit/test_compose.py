"""docker-compose.yml can't run here (no Docker engine), so this test reads it and checks that it is a
production-like deployment (issue 12): every service of the Makefile, each with the production profile,
its secrets from files that the one-time init makes (none in the file), its own Kafka principal over
SASL/SCRAM, the ACL set-up job, the local payment provider off, and every module, file, port and setting
it names existing and agreeing with the code."""

from __future__ import annotations

import importlib
import importlib.util
import re
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from adledger_libs.kafka_security import principals
from adledger_libs.settings import KNOWN_DEFAULT_SECRETS, UnsafeSettingsError

ROOT = Path(__file__).resolve().parents[2]
SECRETS = "./deploy/compose/secrets/"


def _makefile_services() -> list[str]:
    match = re.search(r"^SERVICES := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match
    return match.group(1).split()


SERVICES = _makefile_services()


def _makefile_frontends() -> list[str]:
    match = re.search(r"^FRONTENDS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match
    return match.group(1).split()


FRONTENDS = _makefile_frontends()


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)
    elif node is not None:
        yield str(node)


def _settings_class(name: str) -> Any:
    return importlib.import_module(f"adledger_{name}.config").Settings


def test_compose_runs_kafka_its_acl_setup_postgres_the_init_and_every_service_of_the_makefile() -> None:
    services = _compose()["services"]
    assert set(services) == {"init", "kafka", "kafka-setup", "postgres", *SERVICES, *FRONTENDS}
    assert "identity" in services
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["init"]["profiles"] == ["init"], "the init runs only when asked for"


def test_every_service_runs_in_production_with_its_own_kafka_principal_over_sasl() -> None:
    compose = _compose()
    for name in SERVICES:
        spec = compose["services"][name]
        assert (ROOT / spec["build"]["context"] / spec["build"]["dockerfile"]).is_file()
        module = spec["command"][-1]
        assert spec["command"][:2] == ["python", "-m"] and module == f"adledger_{name}"
        assert importlib.util.find_spec(module) is not None
        settings_class = _settings_class(name)
        fields = set(settings_class.model_fields)
        environment = spec["environment"]
        for variable, value in environment.items():
            assert variable.startswith("ADLEDGER_"), variable
            field = variable.removeprefix("ADLEDGER_").lower()
            assert field in fields, f"{name}: {variable} is not a setting of {module}"
            settings_class.model_validate({field: value})  # the value parses as that setting's type
        assert environment["ADLEDGER_PROFILE"] == "production"
        assert environment["ADLEDGER_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert environment["ADLEDGER_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert environment["ADLEDGER_KAFKA_CREATE_TOPICS"] == "false", "services may not create topics"
        assert "ADLEDGER_DATABASE_URL" not in environment, "the URL holds a password: it comes from a secret"
        targets = {secret["target"]: secret["source"] for secret in spec["secrets"]}
        for target in targets:
            assert target.removeprefix("adledger_") in fields, f"{name}: the secret {target} is no setting"
        assert targets["adledger_kafka_sasl_password"] == f"kafka-{name}"
        assert compose["secrets"][f"kafka-{name}"]["file"] == f"{SECRETS}kafka/{name}.password"
        assert targets["adledger_database_url"] == "database-url"
        port = int(environment["ADLEDGER_HTTP_PORT"])
        assert port == settings_class.model_fields["http_port"].default
        assert spec["ports"] == [f"127.0.0.1:{port}:{port}"]
        assert spec["volumes"] == [f"{SECRETS}keys/{name}:/etc/adledger/keys"]
        assert environment["ADLEDGER_SECRETS_DIR"] == "/etc/adledger/keys"
        assert spec["depends_on"] == {
            "kafka-setup": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
        }
    assert compose["services"]["kafka-setup"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert "healthcheck" in compose["services"]["kafka"] and "healthcheck" in compose["services"]["postgres"]


def test_each_services_settings_are_safe_with_the_inits_files_and_refused_without_them(tmp_path: Path) -> None:
    """The compose environment plus the files the init makes is a configuration production accepts;
    the environment alone is refused (no default secret is left to fall back on)."""
    made = tmp_path / "secrets"
    runpy.run_path(str(ROOT / "deploy" / "compose" / "init_secrets.py"))["main"](made)
    compose = _compose()
    for name in SERVICES:
        spec = compose["services"][name]
        settings_class = _settings_class(name)
        environment = {key.removeprefix("ADLEDGER_").lower(): value for key, value in spec["environment"].items()}
        environment["secrets_dir"] = str(made / "keys" / name)
        files = {
            secret["target"].removeprefix("adledger_"): (made / compose["secrets"][secret["source"]]["file"].removeprefix(SECRETS))
            .read_text().strip()
            for secret in spec["secrets"]
        }
        settings_class(**environment, **files).check_safe()
        if name in ("campaign", "order_escrow", "invoicing"):
            assert (made / "keys" / name / "services" / f"{name}.key").is_file()
        try:
            settings_class(**environment).check_safe()
        except UnsafeSettingsError:
            pass
        else:
            raise AssertionError(f"{name} would start in production without its secret files")
    assert any((made / "keys" / "identity" / "identity").glob("*.pem"))


def test_every_secret_is_a_file_the_init_makes_and_the_file_holds_no_secret(tmp_path: Path) -> None:
    compose = _compose()
    made = tmp_path / "secrets"
    runpy.run_path(str(ROOT / "deploy" / "compose" / "init_secrets.py"))["main"](made)
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, name
        assert secret["file"].startswith(SECRETS), name
        assert (made / secret["file"].removeprefix(SECRETS)).is_file(), f"the init does not make {name}"
    for principal in principals():
        assert (made / "kafka" / f"{principal}.password").is_file()
    assert "deploy/compose/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    text = (ROOT / "docker-compose.yml").read_text()
    for value in _strings(compose):
        assert value not in KNOWN_DEFAULT_SECRETS, value
    assert "adledger:adledger@" not in text and "POSTGRES_PASSWORD:" not in text
    assert "local-platform-token" not in text and "local-webhook-secret" not in text


def test_the_console_runs_in_production_its_secret_from_the_init_its_port_local_its_principal_a_viewer(
    tmp_path: Path,
) -> None:
    """The finance console: production profile, its own Kafka principal over SASL, its session secret
    a file the init makes (refused without it), port 8088 on 127.0.0.1 only, no database, every service
    URL it calls a service of the compose file; the ACLs let its principal read delivery.state.v1 (no
    group, no writes) and nothing else."""
    from adledger_console.config import Settings as ConsoleSettings
    from adledger_libs.kafka_security import acl_bindings

    compose = _compose()
    spec = compose["services"]["console"]
    assert spec["command"] == ["python", "-m", "adledger_console"]
    assert (ROOT / spec["build"]["context"] / spec["build"]["dockerfile"]).is_file()
    assert spec["depends_on"] == {"kafka-setup": {"condition": "service_completed_successfully"}}
    environment = spec["environment"]
    fields = set(ConsoleSettings.model_fields)
    for variable in environment:
        assert variable.removeprefix("ADLEDGER_").lower() in fields, variable
    assert environment["ADLEDGER_PROFILE"] == "production"
    assert environment["ADLEDGER_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert spec["ports"] == ["127.0.0.1:8088:8088"] and environment["ADLEDGER_HTTP_PORT"] == "8088"
    for variable, url in environment.items():
        if variable.endswith("_URL"):
            host, port = url.removeprefix("http://").split(":")
            assert compose["services"][host]["environment"]["ADLEDGER_HTTP_PORT"] == port, variable
    targets = {secret["target"]: secret["source"] for secret in spec["secrets"]}
    assert targets == {"adledger_kafka_sasl_password": "kafka-console",
                       "adledger_console_session_secret": "console-session-secret"}
    made = tmp_path / "secrets"
    runpy.run_path(str(ROOT / "deploy" / "compose" / "init_secrets.py"))["main"](made)
    settings = {key.removeprefix("ADLEDGER_").lower(): value for key, value in environment.items()}
    files = {
        target.removeprefix("adledger_"): (made / compose["secrets"][source]["file"].removeprefix(SECRETS))
        .read_text().strip()
        for target, source in targets.items()
    }
    ConsoleSettings(**settings, **files).check_safe()
    for missing in files:
        try:
            ConsoleSettings(**settings, **{k: v for k, v in files.items() if k != missing}).check_safe()
        except UnsafeSettingsError:
            pass
        else:
            raise AssertionError(f"the console would start in production without {missing}")
    granted = {(rule.resource_type, rule.resource_name, rule.operation)
               for rule in acl_bindings() if rule.principal == "console"}
    assert granted == {("topic", "delivery.state.v1", "Read"), ("topic", "delivery.state.v1", "Describe")}
    assert ConsoleSettings().delivery_state_topic == "delivery.state.v1"


def test_the_local_payment_provider_is_off() -> None:
    spec = _compose()["services"]["invoicing"]
    environment = {key.removeprefix("ADLEDGER_").lower(): value for key, value in spec["environment"].items()}
    assert environment["local_provider_enabled"] == "false"
    assert not _settings_class("invoicing")(**environment).local_provider_on


def test_the_broker_authenticates_every_listener_and_denies_what_no_acl_allows() -> None:
    compose = _compose()
    kafka = compose["services"]["kafka"]
    script = (ROOT / "deploy" / "compose" / "kafka-broker.sh").read_text()
    assert "./deploy/compose/kafka-broker.sh:/opt/adledger/kafka-broker.sh:ro" in kafka["volumes"]
    protocol_map = re.search(r"^listener\.security\.protocol\.map=(.+)$", script, re.M)
    assert protocol_map and all(entry.split(":")[1] == "SASL_PLAINTEXT" for entry in protocol_map.group(1).split(","))
    for line in ("authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                 "allow.everyone.if.no.acl.found=false", "super.users=User:admin", "auto.create.topics.enable=false",
                 "process.roles=broker,controller", "offsets.topic.replication.factor=1",
                 "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
                 "group.initial.rebalance.delay.ms=0"):
        assert re.search(rf"^{re.escape(line)}$", script, re.M), line
    assert kafka["ports"] == ["127.0.0.1:19092:19092"]
    setup = compose["services"]["kafka-setup"]["command"]
    assert setup[:4] == ["python", "-m", "adledger_libs.kafka_security", "apply"]
    assert importlib.util.find_spec("adledger_libs.kafka_security") is not None


def test_the_dockerfile_installs_what_exists() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for name in SERVICES:
        assert f"./services/{name}" in dockerfile
        assert (ROOT / "services" / name / "pyproject.toml").is_file()
    assert "requirements.lock" in dockerfile and (ROOT / "requirements.lock").is_file()
