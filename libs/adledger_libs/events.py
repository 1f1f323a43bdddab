"""Events and commands as frozen pydantic v2 models, and their envelope on Kafka.

The value of a Kafka record is the event's JSON. Its metadata travels in headers, as the
external contract asks (`event-type`, `schema-version`, `trace-id`), plus `event-id`, so a
consumer can route and deduplicate without parsing the value. The `event_id` is also a field of
every event we publish: adding fields is allowed by the contract, and it makes a record
self-describing when it is read from a file or a dead-letter topic.

Events are named in the past tense (`BalanceChanged`), commands in the imperative
(`AllocateFunds`). Unknown fields are ignored on input, as the contract asks of consumers.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

#: The ids of events and commands hold no control character (as `adledger_contracts.types.Identifier`).
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"

HEADER_EVENT_TYPE = "event-type"
HEADER_SCHEMA_VERSION = "schema-version"
HEADER_TRACE_ID = "trace-id"
HEADER_EVENT_ID = "event-id"
HEADER_CONTENT_TYPE = "content-type"
CONTENT_TYPE_JSON = "application/json"


def new_event_id() -> str:
    return str(uuid.uuid4())


class Message(BaseModel):
    """Base of every event and command: immutable, validated, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=False)

    #: The name a consumer routes on (header `event-type`).
    MESSAGE_TYPE: ClassVar[str] = ""
    #: Bumped on a breaking change, which the contract forbids for published versions.
    SCHEMA_VERSION: ClassVar[int] = 1
    #: The services that may send this message to another service: when not empty, a record of it
    #: must be signed by one of them (`adledger_auth.signatures`), or it is dead-lettered unread.
    SIGNED_BY: ClassVar[frozenset[str]] = frozenset()


class Event(Message):
    """Something that happened. Past tense."""

    event_id: str = Field(
        default_factory=new_event_id,
        min_length=1,
        max_length=128,
        pattern=_NO_CONTROL,
        description="Unique id of this event; a re-sent event keeps its id, so consumers deduplicate on it.",
    )


class Command(Message):
    """Something a service is asked to do. Imperative. The idempotency key makes it safe to repeat (M5)."""

    idempotency_key: str = Field(
        min_length=1,
        max_length=128,
        pattern=_NO_CONTROL,
        description="Caller-supplied key: the same key twice applies once and returns the first result (rule M5).",
    )


M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Envelope:
    """What goes on the wire for one message: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    event_id: str


def encode(message: Message, *, key: str | None, trace_id: str, event_id: str | None = None) -> Envelope:
    if not message.MESSAGE_TYPE:
        raise TypeError(f"{type(message).__name__} has no MESSAGE_TYPE")
    if event_id is None:
        event_id = message.event_id if isinstance(message, Event) else new_event_id()
    headers = (
        (HEADER_EVENT_TYPE, message.MESSAGE_TYPE.encode()),
        (HEADER_SCHEMA_VERSION, str(message.SCHEMA_VERSION).encode()),
        (HEADER_TRACE_ID, trace_id.encode()),
        (HEADER_EVENT_ID, event_id.encode()),
        (HEADER_CONTENT_TYPE, CONTENT_TYPE_JSON.encode()),
    )
    return Envelope(
        key=key.encode() if key is not None else None,
        value=message.model_dump_json().encode(),
        headers=headers,
        event_id=event_id,
    )


def headers_to_dict(headers: Any) -> dict[str, str]:
    """Kafka headers (a sequence of (str, bytes)) as text; undecodable values are replaced, not fatal."""
    result: dict[str, str] = {}
    for name, value in headers or ():
        result[name] = value.decode("utf-8", errors="replace") if value is not None else ""
    return result


class DecodeError(ValueError):
    """A record that cannot become the expected message: it belongs on the dead-letter topic."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode(model: type[M], value: bytes | None) -> M:
    """The record's value as `model`, or a `DecodeError` with the reason: decoding has no side
    effect, so whatever goes wrong in it is the record's fault (a deeply nested document, a time a
    validator cannot convert), never a reason to stop the stream."""
    if value is None:
        raise DecodeError("empty value (tombstone) where an event was expected")
    try:
        return model.model_validate_json(value)
    except ValidationError as error:
        details = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or '(root)'}: {issue['msg']}"
            for issue in error.errors(include_url=False)
        )
        raise DecodeError(f"invalid {model.MESSAGE_TYPE or model.__name__}: {details}"[:1000]) from None
    except (ValueError, ArithmeticError, RecursionError, MemoryError) as error:
        raise DecodeError(f"invalid {model.MESSAGE_TYPE or model.__name__}: {type(error).__name__}: {error}"[:1000]) from None


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def is_identifier(value: str) -> bool:
    """Whether a text taken from a header can serve as an id: 1 to 128 characters, no control
    characters (the same bounds as `adledger_contracts.types.Identifier`)."""
    return 0 < len(value) <= 128 and _CONTROL_CHARACTER.search(value) is None
