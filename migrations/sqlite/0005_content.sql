-- What a mail says, beyond its raw bytes (kept in message_content.raw).

-- The new part of a reply: the text without the quoted thread and the
-- signature, which is what a ticket shows and notifications quote. The full
-- text stays in message_content.text.
ALTER TABLE message_content ADD COLUMN new_text TEXT;

-- Attachments and inline parts of mails on tickets. The bytes live in files
-- named by their SHA-256 under the state directory (attachments/ab/abcd...),
-- written once however many mails carry them; the raw mail in
-- message_content stays the source of truth they can be rebuilt from.
CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    message_row  INTEGER NOT NULL REFERENCES messages(id),
    sha256       TEXT NOT NULL,
    file_name    TEXT NOT NULL,                 -- sanitised: no paths, no control characters
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content_id   TEXT,                          -- how an HTML body refers to an inline image
    inline       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX attachments_message ON attachments(message_row);
