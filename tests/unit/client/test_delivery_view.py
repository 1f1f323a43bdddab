"""The gate's view of delivery.state.v1 and delivery.control.v1 (rules W8, S3, S4), without Kafka:
per key and topic the newest record by offset, re-sends ignored, a key serving only while every
topic that spoke of it says so."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adledger_client.delivery import DeliveryKey, DeliveryView, Said, Source
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2026, 11, 21, 9, tzinfo=UTC)
ACCOUNT = DeliveryKey("acc-1", None)
CAMPAIGN = DeliveryKey("acc-1", "cmp-1")


def said(serving: bool, offset: int, *, reason: str = "insufficient_funds", partition: int = 0, seconds: int = 0) -> Said:
    return Said(serving, reason, T0 + timedelta(seconds=seconds), partition, offset)


def test_s4_a_key_nothing_was_said_about_serves_and_a_campaign_needs_its_account_and_itself() -> None:
    view = DeliveryView()
    assert view.may_serve("acc-1", "cmp-1")
    view.apply("state", CAMPAIGN, said(False, 0, reason="campaign_budget_reached"), event_id="s1", cold_start=True)
    assert not view.may_serve("acc-1", "cmp-1") and view.may_serve("acc-1", "cmp-2")
    view.apply("state", ACCOUNT, said(False, 1), event_id="s2", cold_start=True)
    assert not view.may_serve("acc-1", "cmp-2"), "an account's pause stops every campaign of it"
    assert view.may_serve("acc-2", "cmp-1")


def test_w8_a_pause_is_followed_from_whichever_topic_brings_it_first() -> None:
    for first in ("control", "state"):
        view = DeliveryView()
        change = view.apply(first, ACCOUNT, said(False, 10), event_id=f"{first}-pause", cold_start=False)  # type: ignore[arg-type]
        assert change is not None and not change.serving and change.source == first and not change.cold_start
        assert not view.may_serve("acc-1", "cmp-1")
        second: Source = "state" if first == "control" else "control"
        assert view.apply(second, ACCOUNT, said(False, 20), event_id=f"{second}-pause", cold_start=False) is None


def test_w8_a_resume_is_followed_once_both_topics_have_it() -> None:
    view = DeliveryView()
    view.apply("control", ACCOUNT, said(False, 10), event_id="c-pause", cold_start=False)
    view.apply("state", ACCOUNT, said(False, 20), event_id="s-pause", cold_start=False)
    assert view.apply("control", ACCOUNT, said(True, 11, reason="funds_restored"), event_id="c-resume", cold_start=False) is None
    assert not view.may_serve("acc-1", "cmp-1"), "delivery.state.v1 still says paused: it has not caught up"
    change = view.apply("state", ACCOUNT, said(True, 21, reason="funds_restored"), event_id="s-resume", cold_start=False)
    assert change is not None and change.serving and change.reason == "funds_restored"
    assert view.may_serve("acc-1", "cmp-1")


def test_s4_per_topic_the_highest_offset_of_the_partition_wins_whatever_decided_at_says() -> None:
    view = DeliveryView()
    # A resume decided by an instance whose clock is behind: an earlier decided_at at a higher offset.
    view.apply("state", ACCOUNT, said(False, 5, seconds=10), event_id="s-pause", cold_start=True)
    change = view.apply("state", ACCOUNT, said(True, 6, seconds=9, reason="funds_restored"), event_id="s-resume", cold_start=True)
    assert change is not None and change.serving and change.cold_start
    # The same records read again (a lower or equal offset of the same partition) change nothing.
    assert view.apply("state", ACCOUNT, said(False, 5, seconds=10), event_id=None, cold_start=False) is None
    assert view.may_serve("acc-1", "cmp-1")


def test_s4_a_re_sent_record_is_ignored_even_at_a_higher_offset() -> None:
    view = DeliveryView()
    view.apply("control", ACCOUNT, said(False, 1), event_id="pause-1", cold_start=False)
    view.apply("control", ACCOUNT, said(True, 2, reason="funds_restored"), event_id="resume-1", cold_start=False)
    view.apply("state", ACCOUNT, said(True, 2, reason="funds_restored"), event_id="state-1", cold_start=False)
    assert view.may_serve("acc-1", "cmp-1")
    # The platform's relay crashed before it deleted its rows, and publishes the pause again.
    assert view.apply("control", ACCOUNT, said(False, 3), event_id="pause-1", cold_start=False) is None
    assert view.seen("pause-1") and view.may_serve("acc-1", "cmp-1")


def test_a_tombstone_forgets_the_key_and_its_decisions() -> None:
    view = DeliveryView()
    view.apply("state", CAMPAIGN, said(False, 1, reason="campaign_ended"), event_id="s1", cold_start=True, record_key=b"acc-1/cmp-1")
    view.apply("control", CAMPAIGN, said(False, 7, reason="campaign_ended"), event_id="c1", cold_start=True)
    assert view.forget(b"unknown", partition=0, offset=9, cold_start=True) is None
    change = view.forget(b"acc-1/cmp-1", partition=0, offset=2, cold_start=False)
    assert change is not None and change.serving and change.key == CAMPAIGN
    assert view.may_serve("acc-1", "cmp-1") and view.paused() == {}


# ---------------------------------------------------------------------------------------------
# Any interleaving of the two topics, with the relay's re-sends, against what the platform decided.

KEYS = (ACCOUNT, CAMPAIGN, DeliveryKey("acc-2", None))


@dataclass(frozen=True)
class Published:
    """One record as the platform publishes it, with the index of the decision it belongs to."""

    source: Source
    key: DeliveryKey
    serving: bool
    decision: int
    offset: int
    event_id: str


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[bool], list[DeliveryKey], list[Published], list[Published]]:
    """Decisions as the spend consumer takes them: a pause (a new cause) publishes a decision and a
    state; the last cause ending publishes a resume and a state; a cause ending while others
    remain publishes only a state (still paused)."""
    serving = dict.fromkeys(KEYS, True)
    control: list[Published] = []
    state: list[Published] = []
    truths: list[bool] = []
    keys: list[DeliveryKey] = []
    for index in range(draw(st.integers(1, 12))):
        key = draw(st.sampled_from(KEYS))
        kind = "pause" if serving[key] else draw(st.sampled_from(["pause", "resume", "cause_ended"]))
        serving[key] = kind == "resume"
        if kind != "cause_ended":
            control.append(Published("control", key, serving[key], index, len(control), f"c{index}"))
        state.append(Published("state", key, serving[key], index, len(state), f"s{index}"))
        truths.append(serving[key])
        keys.append(key)
    return truths, keys, _with_resends(draw, control), _with_resends(draw, state)


def _with_resends(draw: st.DrawFn, records: list[Published]) -> list[Published]:
    """The relay crashed after publishing rows it had not deleted yet: it publishes them again, in
    order, with their event ids, at later offsets."""
    if not records or not draw(st.booleans()):
        return records
    start = draw(st.integers(0, len(records) - 1))
    again = records[start : draw(st.integers(start + 1, len(records)))]
    return records + [Published(r.source, r.key, r.serving, r.decision, len(records) + i, r.event_id) for i, r in enumerate(again)]


@settings(max_examples=400, deadline=None)
@given(histories(), st.data())
def test_s4_w8_whatever_the_interleaving_the_gate_never_serves_past_a_pause_it_has_seen_and_ends_as_the_platform_decided(
    history: tuple[list[bool], list[DeliveryKey], list[Published], list[Published]], data: st.DataObject
) -> None:
    truths, keys, control, state = history
    streams = [list(control), list(state)]
    view = DeliveryView()
    newest: dict[DeliveryKey, int] = {}
    while any(streams):
        stream = data.draw(st.sampled_from([s for s in streams if s]))
        record = stream.pop(0)
        view.apply(
            record.source, record.key, said(record.serving, record.offset), event_id=record.event_id, cold_start=False,
        )
        newest[record.key] = max(newest.get(record.key, -1), record.decision)
        for key, decision in newest.items():
            serves = key not in view.paused()
            # Safety: serving only if the newest decision the gate has seen, from either topic, serves.
            assert not serves or truths[decision], (key, decision, record)
    for key in KEYS:
        last = max((index for index, decided in enumerate(keys) if decided == key), default=None)
        assert (key not in view.paused()) == (last is None or truths[last]), key
