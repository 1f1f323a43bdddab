"""The one marker of a refusal: a request refused because of what it asked, never a bug.

A rule that refuses (the ledger's guards, a currency mismatch, a state that does not allow the
change) raises a subclass of `Refusal`. At the edges this is what tells the caller's fault from
ours: an HTTP API answers a refusal with a 4xx and its reason; a Kafka consumer dead-letters the
record that caused it, with the reason, and goes on with the rest of its batch. Any other
exception is a bug: a 500, or a consumer that stops loudly.
"""

from __future__ import annotations


class Refusal(Exception):
    """A request refused by a rule because of its own values or the state it met."""
