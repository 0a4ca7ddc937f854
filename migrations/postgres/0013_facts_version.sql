-- A count of the commits that changed what batches decide on, so that a
-- batch decided on the snapshot the batch ahead of it left (the pipeline's
-- carry) can tell, in its write turn, whether anyone else changed those
-- facts since: another instance's batch, a CLI command, a hand action.
-- SQLite answers that with PRAGMA data_version; PostgreSQL has no such
-- count, so every statement on a table a snapshot reads moves this one.
--
-- The row is locked by every batch from the start of its transaction
-- (Store::begin_write, after the writers' advisory lock), and the triggers
-- fire BEFORE each statement: a writer that does not take the advisory
-- lock (an outbox delivery counting a hard bounce) waits for the row before
-- it touches any fact, so nothing can commit a change between a batch's
-- check and its commit without moving the count past what the batch saw.
--
-- PostgreSQL only (SQLite's 0013 is empty): `db copy` and the schema
-- mirror test leave this table out.
CREATE TABLE facts_version (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    facts BIGINT NOT NULL
);
INSERT INTO facts_version (id, facts) VALUES (1, 0);

-- Once per transaction is enough (the count only has to move), and a
-- batch runs some thirty statements: the setting is local to the
-- transaction (and to a savepoint rolled back with the update).
CREATE FUNCTION facts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mailroom.facts_changed', true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config('mailroom.facts_changed', 'yes', true);
        UPDATE facts_version SET facts = facts + 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END;
$$;

-- On every table a snapshot reads (src/store/snapshot), each trigger named
-- <table>_facts_changed. Not the outbox's updates: deliveries change only a
-- row's state, which no snapshot reads, and they are many.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['accounts', 'account_domains', 'billing_accounts', 'services', 'contacts',
                             'subscriptions', 'ignore_rules', 'tickets', 'messages', 'ticket_participants',
                             'quarantine'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION facts_changed()', t || '_facts_changed', t);
    END LOOP;
END;
$$;
CREATE TRIGGER outbox_facts_changed BEFORE INSERT OR DELETE OR TRUNCATE ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION facts_changed();
