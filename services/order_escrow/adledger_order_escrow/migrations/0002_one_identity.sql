-- Issue 13: callers come from the platform's one identity (the library's identity_* replica
-- tables, kept from identity.events.v1), so the service's own users and the owners each could
-- buy for go. An order's buyer_user_id and a channel's seller_user_id are identity user ids now;
-- the ids already stored stay as they are (an identity user with the same id is that party).
alter table orders drop constraint orders_buyer_user_id_fkey;
alter table channels drop constraint channels_seller_user_id_fkey;
drop table buyer_owners;
drop table users;

-- The Business Centers and ad accounts the wallet opened (BusinessCenterOpened, AdAccountOpened
-- on wallet.events.v1): whose roles (W9) decide who may buy with an owner's money, and which
-- currency it holds. Owner ids are unique across both kinds; the first record of an id stays.
create table owners (
    owner_id            text        primary key,
    kind                text        not null check (kind in ('business_center', 'ad_account')),
    business_center_id  text        not null,
    currency            text        not null check (currency ~ '^[A-Z]{3}$'),
    opened_at           timestamptz not null
);
