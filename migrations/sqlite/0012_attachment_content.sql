-- The bytes of small attachments (up to 64 KiB: signature logos, short logs,
-- screenshots), kept in the store beside the rows that name them instead of
-- as files. A file costs an inode, two fsyncs and often a directory: for the
-- small attachments that are most of them, that was a fifth of the time a
-- batch took. In the batch's own transaction they are as durable as its
-- rows, with no ordering to get right, and a PostgreSQL store needs no shared
-- directory for them. Larger ones stay files (attachments/ab/abcd...): a
-- database full of large blobs is slow to back up and to copy.
-- Keyed by SHA-256 like the files: stored once however many mails carry it.
CREATE TABLE attachment_content (
    sha256 TEXT PRIMARY KEY,
    data   BLOB NOT NULL
);
