"""The Kafka ACLs are generated from the topic catalogue (issue 12, tenants fenced): who may write
the wallet's commands and the invoices, and that the catalogue says what the services really do."""

from __future__ import annotations

import importlib

import pytest

from adledger_contracts.topics import CATALOGUE, topic
from adledger_libs.kafka_security import ADMIN_PRINCIPAL, AclBinding, acl_bindings, principals, writers

SERVICES = ("identity", "wallet", "campaign", "invoicing", "order_escrow", "spend_consumer")


def _subscribed_topics(service: str) -> set[str]:
    inject = importlib.import_module(f"adledger_{service}.inject")
    settings = importlib.import_module(f"adledger_{service}.config").Settings(profile="local")
    runtime = inject.build(settings)
    topics = {subscription.topic for subscription in runtime.subscriptions}
    if service == "invoicing":
        # The invoicing service's alerts worker (a Faust app, its own process) reads these too.
        from adledger_invoicing.alerts.settings import AlertSettings

        alerts = AlertSettings()
        topics |= {alerts.spend_topic, alerts.balances_topic, alerts.wallet_events_topic, alerts.thresholds_topic}
    return topics


def test_only_campaign_and_order_escrow_write_the_wallets_commands() -> None:
    assert writers("wallet.commands.v1") == {"campaign", "order_escrow"}


def test_only_invoicing_writes_the_invoicing_events() -> None:
    assert writers("invoicing.events.v1") == {"invoicing"}


def test_the_ad_server_writes_spend_and_reads_delivery_and_balances_only() -> None:
    rules = {rule for rule in acl_bindings() if rule.principal == "adserver"}
    assert {rule.resource_name for rule in rules if rule.operation == "Write"} == {"ads.spend.v1"}
    assert {rule.resource_name for rule in rules if rule.operation == "Read"} == {
        "delivery.control.v1", "delivery.state.v1", "balances.v1",
    }
    assert all(rule.resource_type == "topic" for rule in rules)


def test_the_operator_reads_everything_and_writes_only_the_alert_thresholds() -> None:
    rules = [rule for rule in acl_bindings() if rule.principal == "operator"]
    assert {rule.resource_name for rule in rules if rule.operation == "Write"} == {"invoicing.alert-thresholds.v1"}
    assert AclBinding("operator", "topic", "*", "Read") in rules
    assert AclBinding("operator", "group", "*", "Describe") in rules


def test_nobody_but_the_admin_may_create_or_alter_and_no_service_gets_a_wildcard() -> None:
    for rule in acl_bindings():
        assert rule.operation in ("Read", "Write", "Describe")
        assert rule.resource_type != "cluster"
        if rule.resource_name == "*":
            assert rule.principal == "operator" and rule.operation in ("Read", "Describe")
        assert rule.principal != ADMIN_PRINCIPAL


def test_every_topic_is_written_only_by_its_catalogue_producers() -> None:
    for spec in CATALOGUE:
        expected = {"adserver" if "ad servers" in p else "operator" if "operators" in p else p for p in spec.producers}
        assert writers(spec.name) == expected, spec.name


def test_a_service_reads_in_its_own_group_only() -> None:
    groups = {(rule.principal, rule.resource_name) for rule in acl_bindings() if rule.resource_type == "group"}
    for principal, group in groups:
        if principal != "operator":
            assert group == f"adledger.{principal}"


def test_every_service_has_a_principal() -> None:
    assert set(SERVICES) | {"adserver", "operator", "admin"} <= set(principals())


@pytest.mark.parametrize("service", SERVICES)
def test_the_catalogue_names_exactly_the_topics_each_service_subscribes_to(service: str) -> None:
    """The ACLs grant Read from the catalogue's consumers: a topic the service reads but the
    catalogue does not name would be refused by the broker; one named but not read is a grant
    too many."""
    granted = {spec.name for spec in CATALOGUE if service in spec.consumers}
    assert _subscribed_topics(service) == granted


def test_a_service_may_write_the_dead_letters_of_what_it_reads() -> None:
    for spec in CATALOGUE:
        if spec.name.endswith(".dlq"):
            continue
        for consumer in spec.consumers:
            if "(external)" not in consumer:
                assert consumer in writers(topic(spec.name + ".dlq").name)
