"""schemas/ is generated from the models; these tests fail when the checked-in files drift."""

import json
from pathlib import Path

import jsonschema

from adledger_contracts import ALL_MESSAGES, CATALOGUE
from adledger_contracts.schemagen import drifted, render
from adledger_contracts.topics import dead_letter_topic

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_checked_in_schemas_match_the_models() -> None:
    assert drifted(SCHEMAS, render()) == [], "run `make schemas` and commit the result"


def test_every_field_of_every_event_is_described() -> None:
    for model in ALL_MESSAGES:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_every_message_type_lives_on_a_catalogued_topic_and_every_consumed_topic_has_a_dead_letter_topic() -> None:
    names = {spec.name for spec in CATALOGUE}
    catalogued_types = {message_type for spec in CATALOGUE for message_type in spec.message_types}
    assert {model.MESSAGE_TYPE for model in ALL_MESSAGES} <= catalogued_types
    for spec in CATALOGUE:
        if spec.name.endswith(".dlq"):
            continue
        if any("(external)" not in consumer for consumer in spec.consumers):
            assert dead_letter_topic(spec.name) in names


def test_the_contract_example_validates_against_the_generated_schema() -> None:
    schema = json.loads((SCHEMAS / "events" / "SpendReported.v1.json").read_text())
    example = {
        "event_id": "e-1",
        "ad_account_id": "acc-1",
        "campaign_id": "cmp-1",
        "amount_micros": 250_000,
        "currency": "USD",
        "occurred_at": "2026-11-21T10:00:00Z",
        "charge_id": None,
    }
    jsonschema.validate(example, schema)
    contract_fields = {"event_id", "ad_account_id", "campaign_id", "amount_micros", "currency", "occurred_at", "charge_id"}
    assert contract_fields <= set(schema["properties"])
