-- The per-ticket reply limit (intake.max_replies_per_ticket) reads the mail
-- of the last minutes on every ticket a batch touches. By (ticket,
-- received_at) that is a short range, not every mail the ticket ever had (a
-- monitoring alarm threading into one ticket for months). Lookups by ticket
-- alone use its first column, so the single-column index goes.
CREATE INDEX messages_ticket_time ON messages(ticket, received_at);
DROP INDEX IF EXISTS messages_ticket;
