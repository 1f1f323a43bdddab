-- The wallet's copy of each ad account's budget cap now follows the campaign service, which owns
-- caps (W9, W10): `AdAccountBudgetCapChanged` snapshots on campaign.events.v1 carry a version
-- per account, and only a newer one replaces the copy. Budget Sync (W5) reads the copy.
alter table ad_accounts add column budget_version integer not null default 0;
