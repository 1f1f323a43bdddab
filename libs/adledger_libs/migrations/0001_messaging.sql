-- The exactly-once machinery every service shares (libs/adledger_libs/outbox.py, consumer.py).

-- Outgoing events, written in the same transaction as the effects that caused them and
-- published afterwards by the relay, which deletes a row once Kafka acknowledged it.
create table outbox (
    id          bigserial primary key,
    event_id    text        not null,
    topic       text        not null,
    key         bytea,
    value       bytea       not null,
    -- JSON text, [[name, value], ...]: text rather than jsonb so the batch insert can use COPY.
    headers     text        not null,
    created_at  timestamptz not null default now()
);

-- Wakes the relay of any instance as soon as a transaction with outgoing events commits.
create function outbox_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('adledger_outbox_' || tg_table_schema, '');
    return null;
end;
$$;
create trigger outbox_inserted after insert on outbox
    for each statement execute function outbox_notify();

-- How far a consumer group has applied each partition: the next offset to apply. Written in
-- the same transaction as the effects, so it is the truth; Kafka's committed offsets follow it.
create table consumer_positions (
    group_id    text        not null,
    topic       text        not null,
    partition   integer     not null,
    next_offset bigint      not null,
    updated_at  timestamptz not null default now(),
    primary key (group_id, topic, partition)
);

-- Event ids already applied, so a re-sent event (same id, new offset) is dropped.
create table processed_events (
    group_id     text        not null,
    topic        text        not null,
    event_id     text        not null,
    processed_at timestamptz not null default now(),
    primary key (group_id, topic, event_id)
);
