"""`deploy/local/stack --secure` never touches the shared default stack (issue 12): it refuses the
default ADLEDGER_HOME, runs Kafka only, and has its own ports. Nothing is started by these tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
STACK = ROOT / "deploy" / "local" / "stack"


def _stack(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ADLEDGER_")}
    return subprocess.run([str(STACK), *args], env={**environment, **env}, capture_output=True, text=True, timeout=60)


def test_the_secure_mode_refuses_the_default_stacks_home() -> None:
    for args, env in ((("--secure", "status"), {}), (("status",), {"ADLEDGER_KAFKA_SECURITY": "sasl"})):
        refused = _stack(*args, ADLEDGER_HOME=str(Path.home() / ".cache" / "adledger"), **env)
        assert refused.returncode == 1 and "needs its own ADLEDGER_HOME" in refused.stderr


def test_the_secure_mode_runs_kafka_only_on_its_own_ports(tmp_path: Path) -> None:
    refused = _stack("--secure", "start", "postgres", ADLEDGER_HOME=str(tmp_path))
    assert refused.returncode == 1 and "Kafka only" in refused.stderr
    env = _stack("env", "--secure", ADLEDGER_HOME=str(tmp_path)).stdout
    assert "ADLEDGER_KAFKA_BOOTSTRAP_SERVERS='127.0.0.1:29092'" in env
    assert "ADLEDGER_KAFKA_SECURITY_PROTOCOL='SASL_PLAINTEXT'" in env
    assert f"ADLEDGER_KAFKA_SASL_PASSWORD_FILE='{tmp_path}/kafka-secrets/operator.password'" in env


def test_an_unknown_security_mode_is_refused() -> None:
    refused = _stack("status", ADLEDGER_KAFKA_SECURITY="tls-maybe")
    assert refused.returncode == 1 and "must be sasl or plaintext" in refused.stderr
