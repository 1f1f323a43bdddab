-- The e-mail adapter's record of every e-mail it sent (rule I8), one row per email_id: a second
-- EmailRequested with the same email_id (another event id) sends nothing.
create table emails_sent (
    email_id text primary key,
    template text not null,
    recipient text not null,
    subject_id text not null,
    request_event_id text not null,
    sink text not null,
    sent_at timestamptz not null
);
