-- Mail, tickets and the outbox. Times are unix seconds (UTC).

CREATE TABLE tickets (
    number           INTEGER PRIMARY KEY,       -- the [#N] customers see
    subject          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('open', 'awaiting_approval', 'closed')),
    requester_id     INTEGER NOT NULL REFERENCES contacts(id),
    account_id       INTEGER REFERENCES accounts(id),
    service_id       INTEGER REFERENCES services(id),
    escalation_level INTEGER NOT NULL DEFAULT 0 CHECK (escalation_level BETWEEN 0 AND 5),
    related_ticket   INTEGER REFERENCES tickets(number),
    root_message_id  TEXT,                      -- Message-ID of the first mail
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    closed_at        INTEGER
);
CREATE INDEX tickets_account ON tickets(account_id);

-- Every processed mail, one row per delivery (a duplicate delivery gets a
-- row with outcome 'duplicate', so `messages list` shows it happened).
CREATE TABLE messages (
    id           INTEGER PRIMARY KEY,
    message_key  TEXT NOT NULL,                 -- Message-ID, else sha256:<raw hash>
    message_id   TEXT,
    raw_sha256   TEXT NOT NULL,
    source       TEXT NOT NULL,                 -- file path, or mailbox/UID
    from_addr    TEXT,
    from_name    TEXT,
    subject      TEXT,
    class        TEXT,
    outcome      TEXT NOT NULL CHECK (outcome IN ('new_ticket', 'update', 'ignored', 'duplicate', 'quarantined')),
    reason       TEXT,
    ticket       INTEGER REFERENCES tickets(number),
    contact_id   INTEGER REFERENCES contacts(id),
    received_at  INTEGER NOT NULL,
    processed_at INTEGER NOT NULL
);
-- Exactly-once: one mail key is processed once; only duplicate rows repeat it.
-- It also serves threading look-ups: the key is the Message-ID when there is one.
CREATE UNIQUE INDEX messages_key_once ON messages(message_key) WHERE outcome <> 'duplicate';
CREATE INDEX messages_ticket ON messages(ticket);

-- The raw bytes of every processed mail (nothing received is ever lost,
-- even when parsing failed) and its readable text. Kept beside the message
-- row, keyed by it: inserts append (no random-key index to maintain, which
-- is most of a batch's commit cost), and the message rows that threading
-- looks up stay small.
CREATE TABLE message_content (
    message_row INTEGER PRIMARY KEY REFERENCES messages(id),
    text        TEXT,
    raw         BLOB NOT NULL
);

-- Who wrote on a ticket: the subject tag is honoured only for them (and
-- for contacts of the ticket's account).
CREATE TABLE ticket_participants (
    ticket     INTEGER NOT NULL REFERENCES tickets(number),
    contact_id INTEGER NOT NULL REFERENCES contacts(id),
    PRIMARY KEY (ticket, contact_id)
);

-- What happened to a ticket besides mail: status changes, refused tags.
CREATE TABLE ticket_events (
    id     INTEGER PRIMARY KEY,
    ticket INTEGER NOT NULL REFERENCES tickets(number),
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL,
    at     INTEGER NOT NULL
);
CREATE INDEX ticket_events_ticket ON ticket_events(ticket);

-- The transactional outbox: written in the same transaction as the ticket
-- change it reports, fully rendered, delivered later.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    ticket          INTEGER REFERENCES tickets(number),
    event           TEXT NOT NULL,
    contact_id      INTEGER REFERENCES contacts(id),
    to_addr         TEXT NOT NULL,
    language        TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    message_id      TEXT NOT NULL UNIQUE,       -- threads replies back to the ticket
    in_reply_to     TEXT,
    references_ids  TEXT NOT NULL DEFAULT '',   -- space-separated
    status          TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'suppressed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    server_reply    TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_ticket ON outbox(ticket);

-- Mail that needs a person: kept with its raw bytes until reprocessed.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY,
    message_row INTEGER NOT NULL REFERENCES messages(id),
    reason      TEXT NOT NULL,
    detail      TEXT,
    from_addr   TEXT,
    subject     TEXT,
    received_at INTEGER NOT NULL,
    released_at INTEGER
);
