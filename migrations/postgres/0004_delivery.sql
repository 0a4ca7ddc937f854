-- Delivery of the outbox over SMTP.
-- PostgreSQL mirror of migrations/sqlite/0004_delivery.sql.
--
-- A row is claimed (status 'sending') with a token and a lease before it is
-- handed to the relay, and its result is recorded against that token. If
-- the process dies in between, the lease runs out and another send picks
-- the row up again: a queued notification is never lost, and the only
-- possible second copy is a mail that was in flight at the crash.
ALTER TABLE outbox ADD COLUMN claim_token TEXT;       -- who holds a 'sending' row
ALTER TABLE outbox ADD COLUMN claimed_at BIGINT;      -- when it was last handed to the relay
ALTER TABLE outbox ADD COLUMN lease_until BIGINT;     -- 'sending' past this: the holder died
-- When the row was (re)queued: outbox.max_age counts from here, so
-- `outbox retry` gives a failed row a fresh allowance.
ALTER TABLE outbox ADD COLUMN queued_at BIGINT;
UPDATE outbox SET queued_at = created_at;

-- The loop guard counts what one recipient got about one ticket lately.
CREATE INDEX outbox_recipient_ticket ON outbox(ticket, to_addr, claimed_at);

-- Permanent delivery failures (5xx) per contact; at contacts.hard_bounce_limit
-- the contact is marked undeliverable and planned notifications skip it.
ALTER TABLE contacts ADD COLUMN hard_bounces BIGINT NOT NULL DEFAULT 0;

-- The per-sender rate limit (intake.max_new_tickets_per_hour) counts the
-- tickets a sender opened in the hour before each mail.
CREATE INDEX messages_sender_new_tickets ON messages(from_addr, received_at) WHERE outcome = 'new_ticket';
