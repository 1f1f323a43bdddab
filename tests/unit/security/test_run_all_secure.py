"""`ADLEDGER_KAFKA_SECURITY=sasl make run`: every service runs as its own Kafka principal on the secure
broker of `deploy/local/stack --secure`, the simulator as the ad server (nothing is started here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("adledger_run_all", ROOT / "deploy" / "local" / "run_all.py")
assert _spec is not None and _spec.loader is not None
run_all = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_all)


def test_on_the_secure_broker_each_service_is_its_own_principal_with_its_password_file(tmp_path: Path) -> None:
    environ = {"ADLEDGER_KAFKA_SECURITY": "sasl", "ADLEDGER_HOME": str(tmp_path)}
    children = {child.name: child for child in run_all.children(environ)}
    assert set(children) == set(run_all.SERVICES), "every service has its principal (the alerts worker has none yet)"
    assert set(run_all.served(environ)) == set(children), "make run waits only for what it started"
    for name, child in children.items():
        assert child.env["ADLEDGER_KAFKA_SASL_USERNAME"] == name
        assert child.env["ADLEDGER_KAFKA_SASL_PASSWORD_FILE"] == f"{tmp_path}/kafka-secrets/{name}.password"
        assert child.env["ADLEDGER_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert child.env["ADLEDGER_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:29092"
        assert child.env["ADLEDGER_KAFKA_CREATE_TOPICS"] == "false"
    assert run_all.kafka_settings("adserver", environ)["ADLEDGER_KAFKA_SASL_USERNAME"] == "adserver"


def test_the_default_make_run_is_unchanged() -> None:
    children = run_all.children({})
    assert {child.name for child in children} == {*run_all.SERVICES, *run_all.WORKERS}
    assert "console" in run_all.SERVICES and run_all.SERVICES["console"] == 8088, "make run serves the console"
    assert all(not any(key.startswith("ADLEDGER_KAFKA") for key in child.env) for child in children)
