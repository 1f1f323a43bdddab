"""A consumer's batch is capped by time as well as by records (issue 14)."""

from __future__ import annotations

from adledger_libs.consumer import next_batch_records


def test_a_slow_batch_makes_the_next_one_proportionally_smaller() -> None:
    assert next_batch_records(2000, 2000, 0.200, 0.050, 2000) == 500
    assert next_batch_records(500, 500, 10.0, 0.050, 2000) == 250
    assert next_batch_records(25, 25, 10.0, 0.050, 25) == 16


def test_a_fast_full_batch_lets_the_cap_grow_back_to_the_records_limit() -> None:
    assert next_batch_records(400, 400, 0.010, 0.050, 2000) == 500
    assert next_batch_records(1900, 1900, 0.010, 0.050, 2000) == 2000


def test_a_batch_small_because_the_stream_is_caught_up_leaves_the_cap() -> None:
    assert next_batch_records(800, 12, 0.004, 0.050, 2000) == 800


def test_no_time_cap_means_the_records_limit() -> None:
    assert next_batch_records(100, 2000, 5.0, 0.0, 2000) == 2000
