"""Kafka principals and ACLs on a real secured broker (issue 12, tenants fenced).

The module starts its OWN broker with `deploy/local/stack --secure` (a home in a temporary directory,
free ports; the shared stack is not touched) and stops it at the end: SASL_PLAINTEXT with
SCRAM-SHA-512, one principal per service, StandardAuthorizer ACLs generated from the topic catalogue.
An ad server may not write the wallet's commands or the invoices; their legitimate producers may; an
unauthenticated client or a wrong password gets nothing; a service works end to end over SASL.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ClusterAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError

from adledger_client import sasl_scram_options
from adledger_contracts.topics import topic as catalogue_topic
from adledger_contracts.wallet import BusinessCenterOpened
from adledger_identity.adapters.keys import load_signing_keys
from adledger_identity.config import Settings as IdentitySettings
from adledger_identity.inject import wire as wire_identity
from adledger_libs.clock import ManualClock
from adledger_libs.events import encode
from adledger_libs.kafka import KafkaConnection, client_options, make_producer
from adledger_libs.kafka_security import AclBinding, acl_bindings, apply, broker_acls, create_acls

from .conftest import ROOT, Stack
from .running import running
from .waits import free_port, until

pytestmark = pytest.mark.integration
STACK = ROOT / "deploy" / "local" / "stack"
PLATFORM = "secure-kafka-platform-token-long-enough-for-production"


@dataclass(frozen=True)
class SecureKafka:
    bootstrap_servers: str
    secrets: Path

    def password(self, principal: str) -> str:
        return (self.secrets / f"{principal}.password").read_text().strip()

    def connection(self, principal: str) -> KafkaConnection:
        return KafkaConnection(self.bootstrap_servers, security_protocol="SASL_PLAINTEXT", username=principal,
                               password=self.password(principal))


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    home = tmp_path_factory.mktemp("secure-kafka")
    port, controller = free_port(), free_port()
    env = {**os.environ, "ADLEDGER_HOME": str(home), "ADLEDGER_KAFKA_PORT": str(port),
           "ADLEDGER_KAFKA_CONTROLLER_PORT": str(controller), "ADLEDGER_STACK_TIMEOUT": "60",
           "ADLEDGER_KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m"}
    for name in ("ADLEDGER_KAFKA_BOOTSTRAP_SERVERS", "ADLEDGER_DATABASE_URL"):
        env.pop(name, None)
    started = subprocess.run([str(STACK), "--secure", "start"], env=env, capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield SecureKafka(f"127.0.0.1:{port}", home / "kafka-secrets")
    finally:
        subprocess.run([str(STACK), "--secure", "stop"], env=env, capture_output=True, text=True, timeout=60)


async def _send(connection: KafkaConnection, topic: str, value: bytes = b"{}") -> None:
    producer = make_producer(connection, "kafka-security-test")
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=b"k"), 20)
    finally:
        await producer.stop()


async def _end_offset(kafka: SecureKafka, name: str) -> int:
    reader = AIOKafkaConsumer(**client_options(kafka.connection("operator")), enable_auto_commit=False)
    await reader.start()
    try:
        assert name in await reader.topics()
        partitions = [TopicPartition(name, p) for p in range(catalogue_topic(name).partitions)]
        return sum((await reader.end_offsets(partitions)).values())
    finally:
        await reader.stop()


@pytest.mark.parametrize("topic", ["wallet.commands.v1", "invoicing.events.v1"])
async def test_an_ad_server_may_not_write_the_wallets_commands_or_the_invoices(secure_kafka: SecureKafka, topic: str) -> None:
    before = await _end_offset(secure_kafka, topic)
    with pytest.raises(TopicAuthorizationFailedError):
        await _send(secure_kafka.connection("adserver"), topic)
    # Nor may the wallet itself put commands to itself, nor the campaign service write invoices.
    other = "wallet" if topic == "wallet.commands.v1" else "campaign"
    with pytest.raises(TopicAuthorizationFailedError):
        await _send(secure_kafka.connection(other), topic)
    assert await _end_offset(secure_kafka, topic) == before


@pytest.mark.parametrize(
    ("principal", "topic"),
    [("campaign", "wallet.commands.v1"), ("order_escrow", "wallet.commands.v1"), ("invoicing", "invoicing.events.v1"),
     ("wallet", "wallet.events.v1"), ("adserver", "ads.spend.v1")],
)
async def test_the_legitimate_producers_may_write(secure_kafka: SecureKafka, principal: str, topic: str) -> None:
    before = await _end_offset(secure_kafka, topic)
    await _send(secure_kafka.connection(principal), topic)
    assert await _end_offset(secure_kafka, topic) == before + 1


async def test_the_ad_servers_client_sees_only_the_contracts_topics(secure_kafka: SecureKafka) -> None:
    """Topics a principal may not Describe are left out of its metadata: the ad server (through its
    own client's options) sees the four topics of CONTRACT.md and nothing of the wallet or invoices."""
    options = sasl_scram_options("adserver", secure_kafka.password("adserver"))
    reader = AIOKafkaConsumer(bootstrap_servers=secure_kafka.bootstrap_servers, enable_auto_commit=False, **options)
    await reader.start()
    try:
        assert await reader.topics() == {"ads.spend.v1", "delivery.control.v1", "delivery.state.v1", "balances.v1"}
        state = TopicPartition("delivery.state.v1", 0)
        assert (await reader.end_offsets([state]))[state] >= 0
    finally:
        await reader.stop()


async def test_no_credentials_or_a_wrong_password_gets_nothing(secure_kafka: SecureKafka) -> None:
    topic = "ads.spend.v1"
    before = await _end_offset(secure_kafka, topic)
    plaintext = AIOKafkaProducer(bootstrap_servers=secure_kafka.bootstrap_servers, request_timeout_ms=5000)
    with pytest.raises((KafkaError, OSError)):
        await asyncio.wait_for(plaintext.start(), 20)
    await plaintext.stop()
    wrong = KafkaConnection(secure_kafka.bootstrap_servers, security_protocol="SASL_PLAINTEXT", username="adserver",
                            password="not-the-password-of-the-ad-server")
    with pytest.raises((KafkaError, OSError)):
        await asyncio.wait_for(_send(wrong, topic), 30)
    assert await _end_offset(secure_kafka, topic) == before


@pytest_asyncio.fixture
async def identity_over_sasl(secure_kafka: SecureKafka, stack: Stack, tmp_path: Path) -> AsyncIterator[object]:
    """The identity service in the PRODUCTION profile (it refuses to start with a missing, default or short
    Kafka password), its Kafka password from a file, as principal `identity`."""
    schema = f"t_identity_sasl_{uuid.uuid4().hex[:10]}"
    load_signing_keys(tmp_path / "keys", make_first=True)  # production makes none itself
    settings = IdentitySettings(
        profile="production", database_url=stack.database_url, database_schema=schema, http_port=free_port(),
        platform_token=PLATFORM, signing_keys_dir=str(tmp_path / "keys"), outbox_poll_interval_ms=100,
        kafka_bootstrap_servers=secure_kafka.bootstrap_servers, kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_password_file=str(secure_kafka.secrets / "identity.password"), kafka_create_topics=False,
    )
    service = wire_identity(settings, ManualClock(datetime(2026, 12, 3, 9, tzinfo=UTC)))
    async with running(service.runtime, stack) as client:
        yield client


async def test_a_service_consumes_and_produces_over_sasl_as_its_own_principal(
    secure_kafka: SecureKafka, identity_over_sasl: object
) -> None:
    """The identity service reads the wallet's BusinessCenterOpened in its group `adledger.identity`
    and writes users and memberships to identity.events.v1, all as the principal `identity`."""
    client = identity_over_sasl
    assert hasattr(client, "post")
    user_id = f"alice-{uuid.uuid4().hex[:8]}"
    created = await client.post(  # type: ignore[attr-defined]
        "/v1/users", json={"id": user_id, "name": "Alice", "password": "correct horse battery"},
        headers={"Authorization": f"Bearer {PLATFORM}", "Idempotency-Key": f"k-{user_id}"},
    )
    assert created.status_code == 201, created.text
    session = await client.post("/v1/sessions", json={"user_id": user_id, "password": "correct horse battery"})  # type: ignore[attr-defined]
    token = session.json()["token"]
    business_center = f"bc-{uuid.uuid4().hex[:8]}"
    event = BusinessCenterOpened(business_center_id=business_center, currency="USD", credit_limit_micros=0,
                                 opened_at=datetime(2026, 12, 3, 9, tzinfo=UTC), admin_user_id=user_id)
    envelope = encode(event, key=business_center, trace_id="t")
    producer = make_producer(secure_kafka.connection("wallet"), "kafka-security-test-wallet")
    await producer.start()
    try:
        await producer.send_and_wait("wallet.events.v1", envelope.value, key=envelope.key, headers=list(envelope.headers))
    finally:
        await producer.stop()

    async def admin_of_the_business_center() -> bool:
        me = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})  # type: ignore[attr-defined]
        return business_center in (me.json().get("roles") or {})

    await until(admin_of_the_business_center, "the identity service applied BusinessCenterOpened over SASL", timeout_s=30)
    # What it wrote went out as `identity` to identity.events.v1 (the user, the membership).
    assert await _end_offset(secure_kafka, "identity.events.v1") >= 2


def test_the_cli_reads_as_the_operator_over_sasl(secure_kafka: SecureKafka) -> None:
    env = {**os.environ, "ADLEDGER_KAFKA_BOOTSTRAP_SERVERS": secure_kafka.bootstrap_servers,
           "ADLEDGER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}
    command = [sys.executable, "-m", "adledger_cli", "--kafka-password-file", str(secure_kafka.secrets / "operator.password"),
               "dlq", "list", "--json"]
    listed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    summaries = {item["topic"]: item for item in json.loads(listed.stdout)}
    assert summaries["wallet.commands.v1.dlq"]["records"] == 0


async def test_the_broker_holds_exactly_the_generated_acls_and_a_stray_grant_is_removed(secure_kafka: SecureKafka) -> None:
    admin = secure_kafka.connection("admin")
    wanted = {rule.raw() for rule in acl_bindings()}
    assert await broker_acls(admin) == wanted
    stray = AclBinding("adserver", "topic", "wallet.commands.v1", "Write")
    await create_acls(admin, [stray])
    assert stray.raw() in await broker_acls(admin)
    assert await apply(admin, topics=False) == [stray.raw()]
    assert await broker_acls(admin) == wanted


@pytest.mark.parametrize("service", ["wallet", "campaign", "invoicing", "order_escrow", "spend_consumer"])
async def test_every_service_starts_and_is_healthy_as_its_own_principal(
    secure_kafka: SecureKafka, stack: Stack, tmp_path: Path, service: str
) -> None:
    """Each service's producer, consumer group and subscriptions are allowed by the generated ACLs:
    it starts, joins its group `adledger.<service>` and answers /health (Kafka included) over SASL."""
    settings_class = importlib.import_module(f"adledger_{service}.config").Settings
    # The shared ledger schema of other runs is never touched: the service gets a ledger of its own.
    own_ledger = {"ledger_schema": f"t_ledger_sasl_{uuid.uuid4().hex[:8]}"} if "ledger_schema" in settings_class.model_fields else {}
    settings = settings_class(
        **own_ledger, profile="local", database_url=stack.database_url, database_schema=f"t_{service}_sasl_{uuid.uuid4().hex[:8]}",
        http_port=free_port(), secrets_dir=str(tmp_path / "secrets"), kafka_bootstrap_servers=secure_kafka.bootstrap_servers,
        kafka_security_protocol="SASL_PLAINTEXT", kafka_create_topics=False,
        kafka_sasl_password_file=str(secure_kafka.secrets / f"{service}.password"),
    )
    runtime = importlib.import_module(f"adledger_{service}.inject").build(settings)
    async with running(runtime, stack, drop_schemas=list(own_ledger.values())) as client:
        assert (await client.get("/health")).status_code == 200


async def test_the_console_views_the_delivery_states_as_its_own_principal_and_may_do_nothing_else(
    secure_kafka: SecureKafka,
) -> None:
    """The console is a viewer of delivery.state.v1 (the catalogue's `viewers`): it reads it from the
    beginning without a group, sees no other topic and writes nothing."""
    from adledger_console.delivery import DeliveryStates

    connection = secure_kafka.connection("console")
    states = DeliveryStates(connection, "delivery.state.v1")
    reading = asyncio.ensure_future(states.run())
    try:
        await asyncio.wait_for(states.caught_up.wait(), timeout=30)
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
    reader = AIOKafkaConsumer(**client_options(connection), enable_auto_commit=False)
    await reader.start()
    try:
        assert await reader.topics() == {"delivery.state.v1"}
    finally:
        await reader.stop()
    before = await _end_offset(secure_kafka, "delivery.state.v1")
    # Refused before a record is written: the idempotent producer's id (a cluster grant) or the topic's Write.
    with pytest.raises((TopicAuthorizationFailedError, ClusterAuthorizationFailedError)):
        await _send(connection, "delivery.state.v1")
    assert await _end_offset(secure_kafka, "delivery.state.v1") == before
