"""deploy/k8s, validated offline: the kustomize tree is rendered (deploy/k8s/render.py; compared with
kustomize itself where kubectl is installed), core resources are checked with kubernetes-validate, the
operators' resources against the JSON Schemas of deploy/k8s/schemas, and the manifests against the code:
the catalogue's topics, the services' settings and ports, the spend topic's partitions."""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from adledger_contracts.topics import CATALOGUE, topic
from pydantic_settings import BaseSettings

from ..deploy_modules import load

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
OVERLAYS = sorted(path.parent for path in (K8S / "overlays").glob("*/kustomization.yaml"))
#: The oldest Kubernetes the manifests are checked against, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.31", "1.37")
#: The HTTP services: the Deployment's name and the service's package.
SERVICES = {
    "identity": "identity",
    "wallet": "wallet",
    "campaign": "campaign",
    "invoicing": "invoicing",
    "order-escrow": "order_escrow",
    "spend-consumer": "spend_consumer",
    "sends": "sends",
}
#: The HTTP services with no database of their own: the finance console.
FRONTENDS = {"console": "console"}
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "DATABASE_URL")

Resource = dict[str, Any]


def _rendered(directory: Path) -> list[Resource]:
    return list(load("render").build(directory))


@pytest.fixture(scope="module", params=OVERLAYS, ids=lambda path: path.name)
def rendered(request: pytest.FixtureRequest) -> list[Resource]:
    return _rendered(request.param)


def _one(resources: list[Resource], kind: str, name: str) -> Resource:
    found = [resource for resource in resources if resource["kind"] == kind and resource["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in SCHEMAS.rglob("*.json"):
        schema = json.loads(path.read_text())
        schemas[(schema["properties"]["apiVersion"]["enum"][0], schema["properties"]["kind"]["enum"][0])] = schema
    return schemas


def _containers(resource: Resource) -> Iterator[dict[str, Any]]:
    yield from resource["spec"]["template"]["spec"]["containers"]


# ------------------------------------------------------------------------------------------------------
# Rendering and validation
# ------------------------------------------------------------------------------------------------------


def test_there_is_a_base_and_at_least_a_production_overlay() -> None:
    assert (K8S / "base" / "kustomization.yaml").is_file()
    assert K8S / "overlays" / "production" in OVERLAYS


def test_the_generated_strimzi_resources_match_the_catalogue_and_the_kafka_pin() -> None:
    assert load("generate").drifted() == [], "run `make k8s` and commit the result"


def test_every_core_resource_is_valid_for_kubernetes(rendered: list[Resource]) -> None:
    core = [resource for resource in rendered if (resource["apiVersion"], resource["kind"]) not in _schemas()]
    assert {resource["kind"] for resource in core} >= {"Deployment", "Service", "PodDisruptionBudget", "ConfigMap"}
    for version in KUBERNETES_VERSIONS:
        for resource in core:
            # strict: a field Kubernetes does not know is an error, not silently dropped.
            kubernetes_validate.validate(resource, version, strict=True)


def test_every_operator_resource_validates_against_its_operators_schema(rendered: list[Resource]) -> None:
    schemas = _schemas()
    custom = [resource for resource in rendered if "." in resource["apiVersion"].split("/")[0]]
    kinds = {(resource["apiVersion"], resource["kind"]) for resource in custom}
    assert kinds == set(schemas), f"custom resources without a schema, or schemas unused: {kinds ^ set(schemas)}"
    for resource in custom:
        schema = schemas[(resource["apiVersion"], resource["kind"])]
        errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(resource), key=str)
        assert not errors, f"{resource['kind']} {resource['metadata']['name']}: " + "; ".join(
            f"{list(error.absolute_path)}: {error.message}" for error in errors[:5]
        )


def test_a_misspelt_field_fails_the_validation() -> None:
    """The checks can fail: an unknown field is refused by both validators (the API server would drop it)."""
    topic_schema = _schemas()[("kafka.strimzi.io/v1", "KafkaTopic")]
    misspelt = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "t"},
        "spec": {"partition": 3},
    }
    assert list(jsonschema.Draft4Validator(topic_schema).iter_errors(misspelt))
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_every_schema_is_listed_with_the_operator_release_and_the_crd_it_came_from() -> None:
    sources = yaml.safe_load((SCHEMAS / "sources.yaml").read_text())["operators"]
    listed = {name: entry for operator in sources.values() for name, entry in operator["schemas"].items()}
    present = {str(path.relative_to(SCHEMAS)) for path in SCHEMAS.rglob("*.json")}
    assert set(listed) == present
    for operator in sources.values():
        assert operator["version"] and operator["origin"]
    for entry in listed.values():
        assert entry["file"].endswith(".yaml") and len(entry["sha256"]) == 64


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its kustomize) is not installed here")
@pytest.mark.parametrize("directory", [K8S / "base", *OVERLAYS], ids=lambda path: path.name)
def test_the_python_renderer_renders_what_kustomize_renders(directory: Path) -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=True
    )

    def keyed(resources: list[Resource]) -> dict[tuple[str, str, str, str], Resource]:
        return {
            (item["apiVersion"], item["kind"], item["metadata"].get("namespace", ""), item["metadata"]["name"]): item
            for item in resources
        }

    assert keyed(_rendered(directory)) == keyed(list(yaml.safe_load_all(built.stdout)))


def test_the_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(load("render").UnsupportedKustomization):
        _rendered(tmp_path)


# ------------------------------------------------------------------------------------------------------
# The manifests agree with the code
# ------------------------------------------------------------------------------------------------------


def test_every_topic_of_the_catalogue_is_a_kafka_topic_with_its_partitions_and_configs(
    rendered: list[Resource],
) -> None:
    topics = {
        resource["spec"]["topicName"]: resource["spec"] for resource in rendered if resource["kind"] == "KafkaTopic"
    }
    assert set(topics) == {spec.name for spec in CATALOGUE}
    for spec in CATALOGUE:
        assert topics[spec.name]["partitions"] == spec.partitions
        assert topics[spec.name]["config"]["cleanup.policy"] == spec.cleanup_policy
        assert {name: topics[spec.name]["config"][name] for name in spec.configs} == spec.configs
        assert int(topics[spec.name]["config"]["min.insync.replicas"]) < topics[spec.name]["replicas"]


def _settings_classes(package: str) -> list[type[BaseSettings]]:
    if package == "alerts":
        return [importlib.import_module("adledger_invoicing.alerts.settings").AlertSettings]
    classes = [importlib.import_module(f"adledger_{package}.config").Settings]
    if package == "invoicing":
        classes.append(importlib.import_module("adledger_invoicing.email.settings").EmailSettings)
    return classes


def _field_of(variable: str, classes: list[type[BaseSettings]]) -> tuple[type[BaseSettings], str] | None:
    for settings_class in classes:
        prefix = str(settings_class.model_config.get("env_prefix", ""))
        field = variable.removeprefix(prefix).lower()
        if variable.startswith(prefix) and field in settings_class.model_fields:
            return settings_class, field
    return None


def test_every_service_runs_from_the_image_with_probes_resources_and_no_root(rendered: list[Resource]) -> None:
    for name, package in [*SERVICES.items(), *FRONTENDS.items(), ("alerts", "alerts")]:
        deployment = _one(rendered, "Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        (container,) = _containers(deployment)
        module = "adledger_invoicing.alerts" if package == "alerts" else f"adledger_{package}"
        assert container["command"][:3] == ["python", "-m", module]
        assert importlib.util.find_spec(module) is not None
        assert container["image"].split("/")[-1].split(":")[0] == "adledger"
        assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        budget = _one(rendered, "PodDisruptionBudget", name)
        assert (
            budget["spec"]["selector"]["matchLabels"].items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items()
        )
        if package == "alerts":
            continue
        port = _settings_classes(package)[0].model_fields["http_port"].default
        assert container["ports"] == [{"name": "http", "containerPort": port}]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, f"{name} {probe}"
        service = _one(rendered, "Service", name)
        assert service["spec"]["ports"][0]["port"] == port
        assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_every_setting_a_workload_names_is_read_by_it_and_secrets_come_from_secret_objects(
    rendered: list[Resource],
) -> None:
    config_maps = {
        resource["metadata"]["name"]: resource["data"] for resource in rendered if resource["kind"] == "ConfigMap"
    }
    for name, package in [*SERVICES.items(), *FRONTENDS.items(), ("alerts", "alerts")]:
        (container,) = _containers(_one(rendered, "Deployment", name))
        classes = _settings_classes(package)
        variables: dict[str, dict[str, Any]] = {}
        for source in container.get("envFrom", []):
            variables.update(
                {key: {"value": value} for key, value in config_maps[source["configMapRef"]["name"]].items()}
            )
        variables.update({entry["name"]: entry for entry in container.get("env", [])})
        for variable, entry in variables.items():
            # The alerts worker reads the broker like every service does, from the environment directly.
            if package == "alerts" and variable == "ADLEDGER_KAFKA_BOOTSTRAP_SERVERS":
                continue
            found = _field_of(variable, classes)
            assert found is not None, f"{name}: {variable} is not a setting of {package}"
            settings_class, field = found
            if any(word in variable for word in SECRET_WORDS) and not variable.endswith("_DIR"):
                assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], (
                    f"{name}: {variable} must come from a Secret"
                )
            elif "value" in entry:
                settings_class.model_validate({field: entry["value"]})  # the value parses as that setting's type
        if name in FRONTENDS:
            assert {"ADLEDGER_HTTP_PORT", "ADLEDGER_KAFKA_BOOTSTRAP_SERVERS"} <= set(variables)
            assert "ADLEDGER_DATABASE_URL" not in variables, f"{name} has no database"
        elif package != "alerts":
            assert {"ADLEDGER_DATABASE_URL", "ADLEDGER_HTTP_PORT", "ADLEDGER_KAFKA_BOOTSTRAP_SERVERS"} <= set(variables)
        # Every secret a service's settings declare (`secret_settings`) comes from a Secret object.
        for settings_class in classes:
            for field_name in _declared_secret_fields(settings_class):
                assert f"ADLEDGER_{field_name.upper()}" in variables, f"{name} would run without its {field_name}"
    invoicing = {entry["name"]: entry for entry in next(_containers(_one(rendered, "Deployment", "invoicing")))["env"]}
    assert invoicing["ADLEDGER_LOCAL_PROVIDER_ENABLED"]["value"] == "false"
    assert "ADLEDGER_PAYMENT_WEBHOOK_SECRET" in invoicing
    for resource in rendered:
        assert resource["kind"] != "Secret", "Secrets are made per environment, never kept in the repository"


def test_the_services_find_kafka_and_postgres_where_the_operators_put_them(rendered: list[Resource]) -> None:
    generate = load("generate")
    (config,) = [resource["data"] for resource in rendered if resource["kind"] == "ConfigMap"]
    assert config["ADLEDGER_KAFKA_BOOTSTRAP_SERVERS"] == generate.BOOTSTRAP_SERVERS
    assert config["ADLEDGER_KAFKA_CREATE_TOPICS"] == "false"
    (kafka,) = [resource for resource in rendered if resource["kind"] == "Kafka"]
    assert f"{kafka['metadata']['name']}-kafka-bootstrap:9092" == generate.BOOTSTRAP_SERVERS
    (database,) = [resource for resource in rendered if resource["kind"] == "Cluster"]
    for name in SERVICES:
        (container,) = _containers(_one(rendered, "Deployment", name))
        url = next(entry for entry in container["env"] if entry["name"] == "ADLEDGER_DATABASE_URL")
        # CloudNativePG's Secret of the application user: <cluster>-app, key uri.
        assert url["valueFrom"]["secretKeyRef"] == {"name": f"{database['metadata']['name']}-app", "key": "uri"}


def test_the_spend_consumer_scales_on_its_lag_up_to_the_partitions_of_the_spend_topic(rendered: list[Resource]) -> None:
    settings = importlib.import_module("adledger_spend_consumer.config").Settings()
    scaled = _one(rendered, "ScaledObject", "spend-consumer")
    deployment = _one(rendered, "Deployment", "spend-consumer")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert "replicas" not in deployment["spec"], "KEDA's autoscaler owns the replicas"
    # An instance beyond the partition count would get no partition of the spend topic.
    assert scaled["spec"]["maxReplicaCount"] == topic(settings.spend_topic).partitions == 12
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]  # a CEL rule of the CRD
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["topic"] == settings.spend_topic
    assert trigger["metadata"]["consumerGroup"] == settings.consumer_group
    assert int(trigger["metadata"]["lagThreshold"]) > 0
    # KEDA's operator runs in its own namespace: the bootstrap Service is named with ours.
    host, port = load("generate").BOOTSTRAP_SERVERS.split(":")
    assert trigger["metadata"]["bootstrapServers"] == f"{host}.{deployment['metadata']['namespace']}.svc:{port}"


def test_postgres_has_a_replica_and_continuous_backups(rendered: list[Resource]) -> None:
    (database,) = [resource for resource in rendered if resource["kind"] == "Cluster"]
    assert database["spec"]["instances"] >= 2
    assert database["spec"]["bootstrap"]["initdb"]["database"] == "adledger"
    (plugin,) = database["spec"]["plugins"]
    assert plugin["name"] == "barman-cloud.cloudnative-pg.io" and plugin["isWALArchiver"] is True
    _one(rendered, "ObjectStore", plugin["parameters"]["barmanObjectName"])
    (backup,) = [resource for resource in rendered if resource["kind"] == "ScheduledBackup"]
    assert backup["spec"]["cluster"]["name"] == database["metadata"]["name"]
    assert backup["spec"]["method"] == "plugin" and backup["spec"]["pluginConfiguration"]["name"] == plugin["name"]
    assert len(backup["spec"]["schedule"].split()) == 6, "CloudNativePG's cron has a seconds field first"


def test_an_overlay_deploys_a_released_image_in_its_own_namespace(rendered: list[Resource]) -> None:
    namespaces = {resource["metadata"].get("namespace") for resource in rendered if resource["kind"] != "Namespace"}
    assert len(namespaces) == 1 and None not in namespaces
    for resource in rendered:
        if resource["kind"] == "Deployment":
            pod = resource["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                name, _, tag = container["image"].rpartition(":")
                assert "/" in name and tag and tag != "latest", container["image"]


def test_the_crd_conversion_keeps_what_kubernetes_accepts_and_refuses_unknown_fields() -> None:
    """import_crds.py on a small CRD of our own: int-or-string, nullable and preserved free-form objects
    validate as the API server would take them; a misspelt field is refused; descriptions are gone."""
    spec = importlib.util.spec_from_file_location("adledger_import_crds", SCHEMAS / "import_crds.py")
    assert spec is not None and spec.loader is not None
    importer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(importer)
    crd = {
        "kind": "CustomResourceDefinition",
        "spec": {
            "group": "example.org",
            "names": {"kind": "Thing"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "description": "dropped",
                                    "properties": {
                                        "size": {"x-kubernetes-int-or-string": True},
                                        "note": {"type": "string", "nullable": True},
                                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                    },
                                },
                            },
                        }
                    },
                }
            ],
        },
    }
    (schema,) = importer.schemas_of(crd).values()
    validator = jsonschema.Draft4Validator(schema)
    good = {
        "apiVersion": "example.org/v1",
        "kind": "Thing",
        "metadata": {"name": "a"},
        "spec": {"size": "10Gi", "note": None, "free": {"anything": 1}},
    }
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors({**good, "spec": {"sise": 1}})), "an unknown field is refused"
    assert "description" not in json.dumps(schema)


def test_the_image_installs_every_service_the_manifests_run(rendered: list[Resource]) -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for package in [*SERVICES.values(), *FRONTENDS.values()]:
        assert f"./services/{package}" in dockerfile, f"deploy/Dockerfile does not install {package}"
    deployments = {resource["metadata"]["name"] for resource in rendered if resource["kind"] == "Deployment"}
    assert deployments == {*SERVICES, *FRONTENDS, "alerts"}
    services_in_repo = {path.parent.name for path in (ROOT / "services").glob("*/pyproject.toml")}
    assert services_in_repo == {*SERVICES.values(), *FRONTENDS.values()}, "every service of services/ has a Deployment here"


def test_the_identity_service_reads_its_signing_keys_from_a_secret(rendered: list[Resource]) -> None:
    pod = _one(rendered, "Deployment", "identity")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    directory = next(entry["value"] for entry in container["env"] if entry["name"] == "ADLEDGER_SIGNING_KEYS_DIR")
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounted = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounted[directory]], "the keys' directory is writable (the service locks it)"
    (copy,) = pod["initContainers"]
    sources = {mount["name"] for mount in copy["volumeMounts"]}
    assert {mounted[directory], "signing-keys-secret"} == sources
    assert volumes["signing-keys-secret"]["secret"]["secretName"] == "adledger-identity-signing-keys"


def test_every_service_that_signs_or_checks_records_has_its_keys(rendered: list[Resource]) -> None:
    """From the messages' `SIGNED_BY` and the catalogue: a service that signs a message type gets its
    private key from its own Secret, and every consumer of a topic carrying a signed type gets the
    services' public keys, both copied into the writable $ADLEDGER_SECRETS_DIR/services."""
    from adledger_auth.signatures import signed_types
    from adledger_contracts import ALL_MESSAGES

    signers = signed_types(ALL_MESSAGES)
    signing = {service for allowed in signers.values() for service in allowed}
    checking = {
        consumer for spec in CATALOGUE if not spec.name.endswith(".dlq") and set(spec.message_types) & set(signers)
        for consumer in spec.consumers
    }
    deployments = {package: name for name, package in SERVICES.items()}
    for package in sorted((signing | checking) & set(deployments)):
        pod = _one(rendered, "Deployment", deployments[package])["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {entry["name"]: entry.get("value") for entry in container["env"]}
        directory = f"{env['ADLEDGER_SECRETS_DIR']}/services"
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        mounted = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounted[directory]], f"{package}: the keys' directory is writable"
        (copy,) = pod["initContainers"]
        sources = {mount["name"]: mount["mountPath"] for mount in copy["volumeMounts"]}
        assert sources[mounted[directory]] == directory
        command = " ".join(copy["command"])
        assert volumes["public-keys"]["configMap"]["name"] == "adledger-service-public-keys"
        assert f"{sources['public-keys']}/*.pub {directory}/" in command, package
        if package in signing:
            assert volumes["record-key"]["secret"]["secretName"] == f"adledger-{deployments[package]}-record-key"
            assert f"{sources['record-key']}/*.key {directory}/" in command, package
        else:
            assert "record-key" not in volumes, f"{package} signs nothing and holds no private key"


def _declared_secret_fields(settings_class: Any) -> list[str]:
    """The settings a service treats as secrets (its `secret_settings()` names them, when set)."""
    probe = {name: "x" * 40 for name, info in settings_class.model_fields.items() if info.annotation is str}
    try:
        return sorted(settings_class(**probe).secret_settings())
    except Exception:  # noqa: BLE001 - a settings class whose other fields will not take the probe has none to check
        return []
