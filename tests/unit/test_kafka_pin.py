"""One pinned Kafka (deploy/kafka.lock): the local stack, docker-compose.yml and the Kubernetes manifests
run the same version, and the fetched jars are checked against the lock's SHA-256 sums.

The fetch checks run deploy/local/kafka-fetch on a copy of deploy/local beside a lock of small made-up
jars, with a private ADLEDGER_HOME: no network, no Maven, and the real cache is never touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ..deploy_modules import load, pinned_kafka_version

ROOT = Path(__file__).resolve().parents[2]
SHA256_LINE = re.compile(r"^sha256 [0-9a-f]{64} [A-Za-z0-9._+-]+\.jar$")


def test_the_lock_names_one_release_version_and_a_sum_for_every_jar() -> None:
    lines = [line for line in (ROOT / "deploy" / "kafka.lock").read_text().splitlines() if not line.startswith("#")]
    assert re.fullmatch(r"version \d+\.\d+\.\d+", lines[0])
    assert all(SHA256_LINE.match(line) for line in lines[1:]), "lines after the version are `sha256 <hex> <jar>`"
    jars = [line.split()[2] for line in lines[1:]]
    version = pinned_kafka_version()
    assert f"kafka_2.13-{version}.jar" in jars and f"kafka-tools-{version}.jar" in jars
    assert len(jars) == len(set(jars))


def test_the_local_stack_docker_compose_and_strimzi_run_the_one_pinned_kafka() -> None:
    version = pinned_kafka_version()
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{version}"
    rendered = load("render").build(ROOT / "deploy" / "k8s" / "overlays" / "production")
    strimzi = [resource["spec"]["kafka"]["version"] for resource in rendered if resource["kind"] == "Kafka"]
    assert strimzi == [version]
    # No other file names a Kafka image or version of its own (the test stack's testcontainers reads the lock).
    for path in [
        *ROOT.glob("*.yml"),
        *ROOT.glob("deploy/**/*.y*ml"),
        *ROOT.glob("tests/**/*.py"),
        *ROOT.glob("deploy/local/*"),
    ]:
        if path.is_file():
            for tag in re.findall(r"apache/kafka:(\d+\.\d+\.\d+)", path.read_text(errors="replace")):
                assert tag == version, f"{path} names apache/kafka:{tag}, the pin is {version}"


def test_strimzi_supports_the_pinned_kafka() -> None:
    """A Strimzi operator refuses a Kafka version outside its own list: the pin must be in the list of the
    release deploy/k8s targets (deploy/k8s/schemas/sources.yaml), or the Kubernetes manifests do not deploy."""
    sources = yaml.safe_load((ROOT / "deploy" / "k8s" / "schemas" / "sources.yaml").read_text())
    strimzi = sources["operators"]["strimzi"]
    assert pinned_kafka_version() in strimzi["kafka_versions"], (
        f"Strimzi {strimzi['version']} supports Kafka {strimzi['kafka_versions']}: bump Strimzi first"
    )


def test_the_maven_pom_names_no_kafka_version_of_its_own() -> None:
    pom = (ROOT / "deploy" / "local" / "kafka-pom.xml").read_text()
    assert "<kafka.version>" not in pom, "the version comes from deploy/kafka.lock (kafka-fetch passes it)"
    assert "<artifactId>maven-dependency-plugin</artifactId><version>" in pom, "the plugin that copies is pinned"


# ------------------------------------------------------------------------------------------------------
# kafka-fetch's checks, on a copy of deploy/local with made-up jars
# ------------------------------------------------------------------------------------------------------


def _jars(directory: Path, contents: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (directory / name).write_bytes(data)


@pytest.fixture
def fake_pin(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, bytes]]:
    """A copy of deploy/local beside a lock of two small jars, and an environment whose home is private."""
    deploy = tmp_path / "repo" / "deploy"
    shutil.copytree(ROOT / "deploy" / "local", deploy / "local")
    contents = {"kafka_2.13-9.8.7.jar": b"broker classes", "kafka-tools-9.8.7.jar": b"tool classes"}
    lock = ["# a made-up pin", "version 9.8.7"]
    lock += [f"sha256 {hashlib.sha256(data).hexdigest()} {name}" for name, data in sorted(contents.items())]
    (deploy / "kafka.lock").write_text("\n".join(lock) + "\n")
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ADLEDGER_")}
    environment["ADLEDGER_HOME"] = str(tmp_path / "home")
    return deploy / "local" / "kafka-fetch", environment, contents


def _cached(environment: dict[str, str], version: str, contents: dict[str, bytes]) -> Path:
    version_dir = Path(environment["ADLEDGER_HOME"]) / "kafka" / version
    _jars(version_dir / "libs", contents)
    (version_dir / ".complete").write_text(f"version={version}\n")
    return version_dir


def test_kafka_fetch_accepts_a_cached_set_that_matches_the_lock(
    fake_pin: tuple[Path, dict[str, str], dict[str, bytes]],
) -> None:
    fetch, environment, contents = fake_pin
    version_dir = _cached(environment, "9.8.7", contents)
    done = subprocess.run(
        [str(fetch), "--quiet", "--verify"], capture_output=True, check=False, text=True, env=environment, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(version_dir / "libs")


@pytest.mark.parametrize("damage", ["a changed byte", "an extra jar", "a missing jar"])
def test_kafka_fetch_deletes_a_cached_set_that_does_not_match_the_lock_and_fails_loudly(
    fake_pin: tuple[Path, dict[str, str], dict[str, bytes]], damage: str
) -> None:
    fetch, environment, contents = fake_pin
    if damage == "a changed byte":
        contents = {**contents, "kafka-tools-9.8.7.jar": b"tool classeS"}
    elif damage == "an extra jar":
        contents = {**contents, "evil-1.0.jar": b"anything"}
    else:
        contents = {"kafka_2.13-9.8.7.jar": contents["kafka_2.13-9.8.7.jar"]}
    version_dir = _cached(environment, "9.8.7", contents)
    done = subprocess.run(
        [str(fetch), "--quiet", "--verify"], capture_output=True, check=False, text=True, env=environment, timeout=60
    )
    assert done.returncode != 0
    assert "do not match the SHA-256 sums in deploy/kafka.lock" in done.stderr
    assert done.stdout == ""
    assert not version_dir.exists(), "the jars that failed the check are deleted"


def test_another_version_than_the_pin_is_used_only_with_a_loud_warning_that_it_is_not_verified(
    fake_pin: tuple[Path, dict[str, str], dict[str, bytes]],
) -> None:
    fetch, environment, _ = fake_pin
    version_dir = _cached(environment, "9.9.9", {"kafka_2.13-9.9.9.jar": b"unverifiable"})
    done = subprocess.run(
        [str(fetch), "--quiet", "--verify"],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env={**environment, "ADLEDGER_KAFKA_VERSION": "9.9.9"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(version_dir / "libs")
    assert "WARNING" in done.stderr and "CANNOT be verified" in done.stderr and "9.8.7" in done.stderr


def test_the_wrapper_offers_configs_from_where_each_kafka_release_keeps_it() -> None:
    """4.4 moved ConfigCommand from kafka.admin (in kafka_2.13) to org.apache.kafka.tools (kafka-tools):
    the wrapper names both, the newest first, and runs the one the jars have."""
    wrapper = (ROOT / "deploy" / "local" / "kafka").read_text()
    assert '"configs|org.apache.kafka.tools.ConfigCommand kafka.admin.ConfigCommand|' in wrapper
