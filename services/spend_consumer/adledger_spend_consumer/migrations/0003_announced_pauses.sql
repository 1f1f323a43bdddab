-- Issue 14, lever 4: pauses sent on delivery.control.v1 before their batch commits. Each is
-- written here, in its own committed statement, before it is sent; the spend batch's own
-- transaction deletes the rows of its partitions when it commits. A row left over belongs to an
-- attempt that never committed (a rollback, or a crash of the process): the next batch of the
-- partition, or the next assignment of the partition, re-publishes the key's state from the
-- database so that the topics end as the database says.
create table announced_pauses (
    topic        text        not null,
    partition    integer     not null,
    key          text        not null,
    cause        text        not null,
    event_id     text        not null,
    announced_at timestamptz not null,
    primary key (topic, partition, key, cause)
);
