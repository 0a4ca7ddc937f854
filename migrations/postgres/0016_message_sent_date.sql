-- The sender's Date: of each mail, as a unix timestamp (NULL when it had
-- none, and for mails stored before this column). A mail arriving under a
-- Message-ID its own sender already used is a redelivery only when it was
-- written at the same time: monitoring scripts and web forms that stamp
-- every mail with one constant Message-ID send each alert at its own time,
-- and were dropped as duplicates. Read with the key, so no index of its own.
ALTER TABLE messages ADD COLUMN sent_date BIGINT;
