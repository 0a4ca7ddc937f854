-- A late reply to a thread closed more than tickets.reopen_days ago opens a
-- follow-up ticket (related_ticket); the thread's next late replies look it
-- up by the old ticket's number, once per batch that touches a closed
-- ticket, so the lookup must not scan every ticket. Partial: most tickets
-- follow up nothing, and an entry for each would cost every ticket insert.
CREATE INDEX tickets_related ON tickets(related_ticket) WHERE related_ticket IS NOT NULL;
