-- Threading looks a reply up by the Message-IDs it refers to (In-Reply-To,
-- References), among the mail received and the notifications sent. Without
-- these indexes every batch read both tables whole, so ingest slowed down
-- as the store grew (found by bench/instances.sh: 1.9M rows read from
-- messages for 20,000 mails).
CREATE INDEX messages_message_id ON messages(message_id);
CREATE INDEX outbox_message_id ON outbox(message_id);
