"""structlog set-up: JSON lines (or console for people), with the trace id in every line.

The trace id comes from a Kafka header or an HTTP request and is bound with contextvars, so
every log line written while that message or request is handled carries it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import structlog


def configure_logging(level: str = "INFO", fmt: str = "json", service: str | None = None) -> None:
    renderer: structlog.types.Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library; keep their warnings, drop their chatter.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    if service:
        structlog.contextvars.bind_contextvars(service=service)


def new_trace_id() -> str:
    """A random 128-bit id as 32 hex digits (the form of a W3C trace id)."""
    return os.urandom(16).hex()


@contextmanager
def trace_context(trace_id: str | None) -> Iterator[str]:
    """Bind a trace id (a new one when none came in) for the duration of one unit of work."""
    trace_id = trace_id or new_trace_id()
    tokens = structlog.contextvars.bind_contextvars(trace_id=trace_id)
    try:
        yield trace_id
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def current_trace_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get("trace_id")
    return str(value) if value else None


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
