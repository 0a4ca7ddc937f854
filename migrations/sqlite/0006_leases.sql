-- Which instance ingests each mailbox. Several `mailroom run` processes may
-- share one database; each mailbox is watched by the holder of its lease
-- alone. The holder renews `expires_at` while it works; when a holder dies
-- its lease runs out and a standby instance takes the mailbox over.
-- Times are milliseconds on the database's clock, so instances on machines
-- whose clocks disagree still agree on who holds what.
CREATE TABLE mailbox_leases (
    name        TEXT PRIMARY KEY,      -- [[mailbox]] name
    holder      TEXT NOT NULL,         -- host:pid:start of the instance
    acquired_at INTEGER NOT NULL,      -- when this holder took it (ms)
    expires_at  INTEGER NOT NULL       -- free for others after this (ms)
);

-- The instances running now, each renewing its row: an instance's fair
-- share is its mailboxes over the live instances watching the same ones, so
-- a new instance gets work and one instance does not keep every mailbox.
-- Instances configured with other mailboxes do not count: they could not
-- take over ours.
CREATE TABLE instances (
    id          TEXT PRIMARY KEY,      -- host:pid:start
    mailboxes   TEXT NOT NULL,         -- its [[mailbox]] names, sorted, one per line
    expires_at  INTEGER NOT NULL        -- gone after this (ms)
);
