"""The services' Kafka connection settings (issue 12): SASL/SCRAM principals, passwords from a file,
production refusing an empty or default password, and one place that turns them into aiokafka's
options (`adledger_libs.kafka.client_options`)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from adledger_client import sasl_scram_options
from adledger_libs.kafka import KafkaConnection, client_options
from adledger_libs.settings import ServiceSettings, UnsafeSettingsError
from adledger_cli.settings import CliSettings

GOOD = "a-kafka-password-that-is-long-enough-0123456789"


def test_plaintext_is_bootstrap_servers_and_protocol_only() -> None:
    assert client_options("127.0.0.1:19092") == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}


def test_sasl_scram_gives_the_mechanism_and_the_principals_credentials() -> None:
    options = client_options(KafkaConnection("k:9094", "SASL_PLAINTEXT", username="wallet", password=GOOD))
    assert options == {
        "bootstrap_servers": "k:9094", "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "wallet", "sasl_plain_password": GOOD,
    }


def test_sasl_ssl_adds_a_tls_context() -> None:
    options = client_options(KafkaConnection("k:9094", "SASL_SSL", username="wallet", password=GOOD))
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_without_a_password_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="username and a password"):
        client_options(KafkaConnection("k:9094", "SASL_PLAINTEXT", username="wallet"))


def test_the_connection_never_shows_its_password() -> None:
    connection = KafkaConnection("k:9094", "SASL_PLAINTEXT", username="wallet", password=GOOD)
    assert str(connection) == "k:9094"
    assert GOOD not in repr(connection)


def test_a_service_is_its_own_principal_with_the_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "wallet.password"
    secret.write_text(GOOD + "\n")
    settings = ServiceSettings(profile="production", service_name="wallet", kafka_security_protocol="SASL_PLAINTEXT",
                               kafka_sasl_password_file=str(secret))
    connection = settings.kafka_connection()
    assert (connection.username, connection.password, connection.sasl_mechanism) == ("wallet", GOOD, "SCRAM-SHA-512")
    settings.check_safe()  # production, and a real secret: starts


@pytest.mark.parametrize("password", ["", "changeme", "short-password"])
def test_production_refuses_an_empty_default_or_short_kafka_password(password: str) -> None:
    settings = ServiceSettings(profile="production", service_name="wallet", kafka_security_protocol="SASL_SSL",
                               kafka_sasl_password=password)
    with pytest.raises(UnsafeSettingsError, match="ADLEDGER_KAFKA_SASL_PASSWORD"):
        settings.check_safe()


def test_production_refuses_a_password_file_it_cannot_read(tmp_path: Path) -> None:
    settings = ServiceSettings(profile="production", kafka_security_protocol="SASL_PLAINTEXT",
                               kafka_sasl_password_file=str(tmp_path / "nope"))
    with pytest.raises(UnsafeSettingsError, match="cannot be read"):
        settings.check_safe()


def test_the_local_profile_and_plaintext_need_no_kafka_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADLEDGER_KAFKA_BOOTSTRAP_SERVERS", raising=False)  # the default, whatever the shell says
    ServiceSettings(profile="local", kafka_security_protocol="SASL_PLAINTEXT").check_safe()
    assert ServiceSettings().kafka_connection() == KafkaConnection("127.0.0.1:19092")


def test_the_cli_connects_as_the_operator_by_default() -> None:
    settings = CliSettings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_password=GOOD)
    assert settings.kafka_connection().username == "operator"


def test_the_ad_servers_client_builds_the_same_options() -> None:
    ours = client_options(KafkaConnection("k:9094", "SASL_PLAINTEXT", username="adserver", password=GOOD))
    theirs = sasl_scram_options("adserver", GOOD)
    assert {key: ours[key] for key in theirs} == theirs
    with pytest.raises(ValueError):
        sasl_scram_options("adserver", "")
