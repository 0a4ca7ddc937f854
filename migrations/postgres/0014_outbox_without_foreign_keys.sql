-- The outbox's references to its ticket and contact are no longer checked
-- by PostgreSQL. Every notification a batch queues is one outbox row (2.7
-- per mail in the reference workload), and each foreign key made every
-- row insert run a query locking the parent row: these two were half of
-- all the key checks of a batch, which took 29 % of PostgreSQL's time
-- (perf), and the outbox the largest share of its writing (replay of
-- 10,000 mails: 2.8 s with them, 2.35-2.57 s without).
--
-- Nothing relies on them: the rows are written in the same transaction as
-- the ticket and the contact they name, which are created first and never
-- deleted while rows name them (a ticket is never deleted; removing a
-- contact suppresses their queued notifications and clears contact_id
-- first, see store/directory/remove.rs). The row keeps its address and
-- text, so it stays a faithful record either way.
--
-- PostgreSQL only (SQLite's 0014 is empty): SQLite checks a key by its
-- rowid, a cost too small to pay for rebuilding the table.
ALTER TABLE outbox DROP CONSTRAINT outbox_ticket_fkey;
ALTER TABLE outbox DROP CONSTRAINT outbox_contact_id_fkey;
