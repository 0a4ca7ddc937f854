-- The rows a batch writes for every mail are no longer key-checked by
-- PostgreSQL, and the bulky text of mails and notifications is compressed
-- with lz4 instead of pglz.
--
-- Why: PostgreSQL checks a foreign key by running a query that locks the
-- parent row, once per inserted row. After 0014 the remaining checks of a
-- batch (a message's ticket and contact, its content's and attachments'
-- message, a participant's ticket and contact, a ticket's requester,
-- account and service) were still a sixth of PostgreSQL's time in a
-- replay, on the one connection that writes. Replay of 10,000
-- mails: 1.62-1.73 s with them, 1.42-1.47 s without and with lz4.
--
-- What they guarded still holds, by the one write path:
--  * a batch writes a ticket and a contact before the rows naming them, in
--    the same transaction, and under the advisory write lock, which every
--    writer of these tables takes (batches, the CLI, hand actions);
--  * tickets, messages and their content are never deleted;
--  * removing an account, service or contact is refused, under the same
--    lock, while any ticket, participant or mail names it
--    (store/directory/remove.rs), with an error saying why, which a key
--    violation would not have said.
-- SQLite keeps its keys (its 0015 is empty): it checks one by a rowid
-- lookup, too cheap to be worth rebuilding the tables. The directory's own
-- keys stay on both engines: they cascade deletes and are checked rarely.
-- So does a ticket's related ticket: it is NULL but for follow-ups, and a
-- NULL key costs no query.
ALTER TABLE messages DROP CONSTRAINT messages_ticket_fkey;
ALTER TABLE messages DROP CONSTRAINT messages_contact_id_fkey;
ALTER TABLE message_content DROP CONSTRAINT message_content_message_row_fkey;
ALTER TABLE attachments DROP CONSTRAINT attachments_message_row_fkey;
ALTER TABLE ticket_participants DROP CONSTRAINT ticket_participants_ticket_fkey;
ALTER TABLE ticket_participants DROP CONSTRAINT ticket_participants_contact_id_fkey;
ALTER TABLE tickets DROP CONSTRAINT tickets_requester_id_fkey;
ALTER TABLE tickets DROP CONSTRAINT tickets_account_id_fkey;
ALTER TABLE tickets DROP CONSTRAINT tickets_service_id_fkey;

-- Raw mails, their text and rendered notification bodies are mostly a few
-- KiB, over the size PostgreSQL compresses; pglz was 3 % of its time in a
-- replay, lz4 costs a fraction of that and gives up sooner on what does
-- not compress (most attachments). Per-column compression came with
-- PostgreSQL 14, and a server may be built without lz4: either way the
-- columns keep pglz (the statements run through EXECUTE so that an older
-- server does not fail on parsing them). The data is the same either way,
-- and the setting only applies to new values.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE message_content
                     ALTER COLUMN raw SET COMPRESSION lz4,
                     ALTER COLUMN text SET COMPRESSION lz4,
                     ALTER COLUMN new_text SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE outbox ALTER COLUMN body SET COMPRESSION lz4';
        EXECUTE 'ALTER TABLE attachment_content ALTER COLUMN data SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4: mail text stays compressed with pglz';
END
$$;
