-- Two outbox indexes that other indexes already serve, each maintained on
-- every notification queued for nothing (found by bench/replay.sh, where
-- the outbox INSERT is the largest statement of a batch):
-- outbox.message_id is UNIQUE, and the unique constraint is itself an index
-- that serves the threading lookup 0007 indexed a second time;
DROP INDEX IF EXISTS outbox_message_id;
-- outbox_recipient_ticket (ticket, to_addr, claimed_at) starts with ticket,
-- so it answers every lookup by ticket alone.
DROP INDEX IF EXISTS outbox_ticket;
