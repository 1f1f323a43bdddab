-- Every owner of ledger accounts, by id, with its kind: one id names one owner across every kind
-- (a Business Center, an ad account, a funding source, a user balance), so an id can never make
-- money land on an owner of another kind (issue 12: an ad account opened with another tenant's
-- Business Center id). Registered by `PostgresLedger.register_owner` before the owner's accounts.
create table owners (
    owner_id       text        primary key check (length(owner_id) between 1 and 256),
    kind           text        not null check (length(kind) between 1 and 64),
    registered_at  timestamptz not null default now()
);

insert into owners (owner_id, kind)
select distinct on (owner_id) owner_id,
       case when code like 'business_center\_%' then 'business_center'
            when code like 'ad_account\_%' then 'ad_account'
            else code end
  from accounts
 where owner_id is not null
 order by owner_id, code
on conflict do nothing;
