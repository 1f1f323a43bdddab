-- The order-escrow service's tables. Money itself is never here: the price is a hold in the
-- wallet's ledger (O1), and these tables say what was ordered, by whom, and what is due when.

-- A user of the API. The bearer token is stored only as its SHA-256. `admin` users (the
-- platform operator, and whoever it makes admin) resolve disputes and register channels.
create table users (
    id            text        primary key,
    name          text        not null,
    token_sha256  text        not null unique,
    admin         boolean     not null default false,
    created_at    timestamptz not null
);

-- The Business Centers or ad accounts a user may buy for (the escrowed money is theirs).
create table buyer_owners (
    user_id   text not null references users (id),
    owner_id  text not null,
    primary key (user_id, owner_id)
);

-- A seller: a channel, the user who answers its orders, and the owner it is paid to.
create table channels (
    id              text        primary key,
    name            text        not null,
    seller_user_id  text        not null references users (id),
    owner_id        text        not null,
    currency        text        not null check (currency ~ '^[A-Z]{3}$'),
    created_at      timestamptz not null
);

create table orders (
    id                       text        primary key,
    number                   bigint      not null unique,
    buyer_user_id            text        not null references users (id),
    buyer_owner_id           text        not null,
    channel_id               text        not null references channels (id),
    seller_owner_id          text        not null,
    price_micros             bigint      not null check (price_micros > 0),
    currency                 text        not null check (currency ~ '^[A-Z]{3}$'),
    status                   text        not null,
    placed_at                timestamptz not null,
    answer_due_at            timestamptz,
    completed_at             timestamptz,
    decline_reason           text,
    dispute_reason           text,
    seller_micros            bigint,
    buyer_micros             bigint,
    reordered_from_order_id  text        references orders (id),
    -- The wallet's answer to the resolution (post or void) of the hold, once it arrived.
    settled_at               timestamptz,
    settled_posted_micros    bigint,
    hold_error               text,
    updated_at               timestamptz not null
);
create sequence order_numbers start 1000;

-- Every deadline (O6): the job takes due rows with FOR UPDATE SKIP LOCKED, acts and sets
-- done_at in one transaction with its outbox rows, so it acts once, even after downtime.
create table deadlines (
    order_id  text        not null references orders (id),
    kind      text        not null check (kind in ('seller_answer', 'release')),
    due_at    timestamptz not null,
    done_at   timestamptz,
    outcome   text,
    primary key (order_id, kind)
);
create index deadlines_due on deadlines (due_at) where done_at is null;
