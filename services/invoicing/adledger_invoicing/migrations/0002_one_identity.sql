-- One identity for the platform (issue 13): callers, their roles per Business Center (W9) and the
-- platform operator come from the identity replica (the library's identity_* tables), so the
-- service's own users, their tokens and the owners each could bill for go.
drop table billing_owners;
drop table users;
