"""Hostile Kafka records for a message type (issue 12, item 5): Hypothesis strategies, no broker.

`valid_document(model)` draws a JSON document the model accepts, from the model's own JSON schema
(the subset the contracts use: strings with a pattern and a length, bounded integers, date-times,
enums, nullable fields, lists, nested objects). `hostile(model, document)` turns it into a record
the edge must refuse: a field of the wrong type, an integer at 2^63 or beyond, zero or negative
where the type forbids it, a NUL or another control character, a huge value, a required field
missing, unknown fields beside any of those, invalid UTF-8, not JSON at all. Every hostile value is
checked against the decoder here (`adledger_libs.events.decode` must refuse it), so a mutation the
model happens to accept (a zero where zero is allowed) is never sent as "hostile".
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from adledger_libs.events import DecodeError, Message, decode

_BIG = [2**63, 2**63 + 1, 2**64, 10**21, -(2**63) - 1, -1, 0]
_WRONG_TYPES: list[Any] = [None, True, [], {}, "12", 1.5, "x" * 10, -7]
_BAD_TEXT = ["a\x00b", "\x00", "tab\there", "\x7f", "line\nbreak", "é" * 300, "x" * 200_000]
#: Whole values that are not a document of any type.
_NOT_DOCUMENTS = [b"\xff\xfe\xfd", b"{\"a\": \"\xc3\x28\"}", b"not json", b"", b"[]", b"null", b"42",
                  b"[" * 50_000, b"{\"event_id\": " + b"9" * 5000 + b"}"]


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        return _resolve(root["$defs"][ref.rsplit("/", 1)[-1]], root)
    return schema


def _text(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), min(schema.get("maxLength", 40), 40)
    fmt = schema.get("format")
    if fmt == "date-time":
        return st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                            timezones=st.just(UTC)).map(lambda moment: moment.isoformat())
    if fmt == "date":
        return st.dates().map(lambda day: day.isoformat())
    pattern = schema.get("pattern")
    if pattern in (r"^[^\x00-\x1f\x7f-\x9f]*$", r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$", None):
        return st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=max(low, 1),
                       max_size=max(high, max(low, 1)))
    return st.from_regex(pattern, fullmatch=True).filter(lambda text: low <= len(text) <= schema.get("maxLength", 10**6))


def _value(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    schema = _resolve(schema, root)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema:
        return st.one_of([_value(option, root) for option in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string":
        return _text(schema)
    if kind == "integer":
        low = (schema["minimum"] if "minimum" in schema
               else schema["exclusiveMinimum"] + 1 if "exclusiveMinimum" in schema else -(2**31))
        return st.integers(low, min(schema.get("maximum", 2**31), low + 10**12))
    if kind == "number":
        return st.integers(0, 1000)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(_value(schema.get("items", {}), root), max_size=min(schema.get("maxItems", 3), 3))
    if kind == "object" or "properties" in schema:
        return _object(schema, root)
    return st.none()


def _object(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {name: _value(field, root) for name, field in properties.items() if name in required},
        optional={name: _value(field, root) for name, field in properties.items() if name not in required},
    )


def _decodes(model: type[Message], value: bytes) -> bool:
    try:
        decode(model, value)
    except DecodeError:
        return False
    return True


def valid_document(model: type[Message]) -> st.SearchStrategy[dict[str, Any]]:
    schema = model.model_json_schema()
    return _object(schema, schema).filter(lambda document: _decodes(model, json.dumps(document).encode()))


def _fields(model: type[Message]) -> dict[str, dict[str, Any]]:
    schema = model.model_json_schema()
    return {name: _resolve(field, schema) for name, field in schema.get("properties", {}).items()}


def _is_integer(field: dict[str, Any]) -> bool:
    return field.get("type") == "integer" or any(option.get("type") == "integer" for option in field.get("anyOf", []))


def _is_text(field: dict[str, Any]) -> bool:
    return field.get("type") == "string" or any(option.get("type") == "string" for option in field.get("anyOf", []))


def catalogue(model: type[Message], document: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The fixed hostile values every type gets, as (what, value): 2^63 and beyond, zero and
    negative in every integer field; NUL, control characters and a huge text in every text field;
    a wrong type in every field; every required field missing; unknown fields beside a bad value;
    and values that are not a document. Only those the decoder refuses."""
    found: list[tuple[str, bytes]] = []
    fields = _fields(model)
    required = model.model_json_schema().get("required", [])

    def add(what: str, changed: dict[str, Any] | bytes) -> None:
        value = changed if isinstance(changed, bytes) else json.dumps(changed, ensure_ascii=False).encode()
        if not _decodes(model, value):
            found.append((what, value))

    integers = [name for name, field in fields.items() if _is_integer(field)]
    texts = [name for name, field in fields.items() if _is_text(field)]
    for index, name in enumerate(integers):
        # Every integer field at 2^63, zero and -1; the first one with every big value.
        for number in _BIG if index == 0 else [2**63, 0, -1]:
            add(f"{name}={number}", {**document, name: number})
    for index, name in enumerate(texts):
        # Every text field with a NUL; the first one with every bad text (a huge one included).
        for text in _BAD_TEXT if index == 0 else _BAD_TEXT[:1]:
            add(f"{name}={text[:12]!r}", {**document, name: text})
    for name in fields:
        add(f"{name} of the wrong type", {**document, name: [document.get(name)]})
    for name in required:
        add(f"{name} missing", {key: value for key, value in document.items() if key != name})
    if fields:
        first = next(iter(fields))
        add("unknown fields and a list for a field", {**document, "zz_unknown": {"x": 1}, first: [1]})
    for raw in _NOT_DOCUMENTS:
        add(f"not a document: {raw[:12]!r}", raw)
    return found


def hostile(model: type[Message], document: dict[str, Any]) -> st.SearchStrategy[tuple[str, bytes]]:
    """One generated hostile value: a random field set to a random hostile value, maybe with
    unknown fields beside it; kept only when the decoder refuses it (`st.filter`)."""
    fields = sorted(_fields(model))
    bad = st.one_of(st.sampled_from(_BIG), st.integers(2**63, 2**80), st.integers(-(2**80), 0),
                    st.sampled_from(_WRONG_TYPES), st.sampled_from(_BAD_TEXT),
                    st.text(st.characters(max_codepoint=0x9f), min_size=1, max_size=20))
    unknown = st.dictionaries(st.from_regex(r"zz_[a-z]{1,8}", fullmatch=True), st.integers() | st.text(max_size=5),
                              max_size=3)

    def build(name: str, value: Any, extra: dict[str, Any], drop: bool) -> tuple[str, bytes]:
        changed = {**document, **extra}
        if drop:
            changed.pop(name, None)
        else:
            changed[name] = value
        what = f"{name} missing" if drop else f"{name}={value!r:.30}"
        return (what + (f" with unknown fields {sorted(extra)}" if extra else ""),
                json.dumps(changed, ensure_ascii=False).encode())

    return st.builds(build, st.sampled_from(fields), bad, unknown, st.booleans()).filter(
        lambda made: not _decodes(model, made[1]))
