-- W12: the balances.v1 version a threshold state was decided from, so an older (stale)
-- record never overrides the decision made from a newer one.
alter table prepayment_threshold_states add column version bigint not null default 0;

-- W13: the history endpoint reads one owner's snapshots by day.
create index balance_snapshots_by_day on balance_snapshots (day);
