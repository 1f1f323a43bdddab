-- The lists the console reads per account (teams, user balances, sends by state).
create index teams_by_account on teams (business_center_id, id);
create index sends_by_account_state on sends (business_center_id, state, created_at);
