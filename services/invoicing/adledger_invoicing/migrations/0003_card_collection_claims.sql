-- A card payment is asked of the provider once per claim (issue 12): the claim is the invoice's
-- `collection_requested_at`, committed before the provider is asked. A claim may be taken again
-- after a while when the provider's webhook never came, so the index covers every open one.
drop index invoices_to_collect;
create index invoices_to_collect on invoices (issued_at) where automatic_collection and status = 'open';
