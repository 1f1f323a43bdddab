-- One identity (issue 13): users, their tokens and their roles per Business Center (W9) are the
-- identity service's, replicated into the library's identity_* tables of this schema; the campaign
-- service's own copies go. Campaigns and cap changes keep the ids of the users who made them.
drop table memberships;
drop table users;

-- Every campaign belongs to its ad account's Business Center (inserted from the ad account, whose
-- column is not null): who may see it is decided by that Business Center's roles (W9).
alter table campaigns alter column business_center_id set not null;
