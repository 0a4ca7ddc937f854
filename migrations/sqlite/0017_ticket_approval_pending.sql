-- Whether a ticket still waits for its account's approval, whatever its
-- status: set when it opens awaiting approval, cleared only by
-- `tickets approve`. A ticket closed while it waited and then reopened by
-- its requester's reply went straight to `open`, skipping the approval its
-- account requires, and its subscribers heard of a request no primary
-- contact had seen; it now goes back to `awaiting_approval`.
-- Tickets waiting now are pending; one closed while waiting before this
-- migration cannot be told from one approved, and counts as approved.
ALTER TABLE tickets ADD COLUMN approval_pending INTEGER NOT NULL DEFAULT 0;
UPDATE tickets SET approval_pending = 1 WHERE status = 'awaiting_approval';
