-- Answers to commands, by idempotency key (rule M5): written in the same transaction as the
-- command's effects, so a repeated key returns the first answer and applies nothing.
create table idempotent_requests (
    scope           text        not null,
    idempotency_key text        not null,
    fingerprint     text        not null,
    status_code     integer     not null,
    response        jsonb       not null,
    created_at      timestamptz not null default now(),
    primary key (scope, idempotency_key)
);
