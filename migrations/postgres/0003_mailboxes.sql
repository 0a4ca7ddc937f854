-- Where ingestion of each watched IMAP folder stands. The high-water UID is
-- advanced only after a chunk's batch committed and its after-action ran,
-- so a restart re-fetches at most one chunk, which the message-key dedupe
-- turns into no-ops.
-- PostgreSQL mirror of migrations/sqlite/0003_mailboxes.sql.
CREATE TABLE mailbox_state (
    name         TEXT PRIMARY KEY,              -- [[mailbox]] name
    uidvalidity  BIGINT,                        -- the server's, for last_uid
    last_uid     BIGINT NOT NULL DEFAULT 0,     -- highest UID committed and handled
    ingested     BIGINT NOT NULL DEFAULT 0,     -- mails committed so far
    state        TEXT NOT NULL DEFAULT 'starting',
    last_error   TEXT,
    last_mail_at BIGINT,                        -- when the last chunk committed
    updated_at   BIGINT NOT NULL
);
