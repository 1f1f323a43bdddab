"""Output for people (plain aligned tables, greppable at any terminal width) or for programs (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from typing import Any

import typer


def to_json(value: Any) -> str:
    """JSON with dataclasses as objects, times in RFC 3339 and durations in seconds; money stays int."""
    return json.dumps(_plain(value), indent=2, sort_keys=False)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {key: _plain(item) for key, item in asdict(value).items()}
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return value


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned with two spaces between them; None shows as '-' (as Kafka's tools show it)."""
    cells = [[str(header) for header in headers]] + [
        ["-" if cell is None else str(cell) for cell in row] for row in rows
    ]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def echo(text: str = "") -> None:
    typer.echo(text)


def emit(as_json: bool, value: Any, human: str) -> None:
    """Print the JSON form of `value` or the human text."""
    echo(to_json(value) if as_json else human)
