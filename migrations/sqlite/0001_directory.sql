-- The directory: customers, what they buy, who they are, who hears what.
-- Identities the team types (customer number, service ID, email) are UNIQUE
-- so that imports upsert instead of duplicating.

CREATE TABLE accounts (
    id           INTEGER PRIMARY KEY,
    number       TEXT NOT NULL UNIQUE,          -- customer number (OCN)
    name         TEXT NOT NULL,
    language     TEXT,
    intake       TEXT NOT NULL DEFAULT 'open'
                 CHECK (intake IN ('open', 'primary_only', 'approval')),
    health       TEXT,
    tier         TEXT,
    industry     TEXT,
    renewal_date TEXT
);

-- One row per email domain; a domain belongs to one account at most, or
-- an unknown sender's account would be ambiguous.
CREATE TABLE account_domains (
    domain     TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);

CREATE TABLE billing_accounts (
    id         INTEGER PRIMARY KEY,
    number     TEXT NOT NULL UNIQUE,            -- billing customer number (BCN)
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);

CREATE TABLE services (
    id         INTEGER PRIMARY KEY,
    service_id TEXT NOT NULL UNIQUE,            -- as it appears in mails: LON/ETH/000123
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       TEXT,
    a_end      TEXT,
    b_end      TEXT
);

CREATE TABLE contacts (
    id            INTEGER PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,         -- stored lower-case; never changes
    first_name    TEXT NOT NULL DEFAULT '',
    last_name     TEXT NOT NULL DEFAULT '',
    phone         TEXT,
    job_title     TEXT,
    language      TEXT,
    timezone      TEXT,
    account_id    INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    is_primary    INTEGER NOT NULL DEFAULT 0,
    is_group      INTEGER NOT NULL DEFAULT 0,
    ignore        INTEGER NOT NULL DEFAULT 0,   -- "ignore emails from this user"
    undeliverable INTEGER NOT NULL DEFAULT 0,   -- hard bounces: planned mail skips them
    created_by    TEXT NOT NULL CHECK (created_by IN ('directory', 'auto', 'cli')),
    created_at    INTEGER NOT NULL
);
CREATE INDEX contacts_account ON contacts(account_id);

-- The email is the contact's identity (seed 004): the database refuses to
-- change it even if a code path forgets to.
CREATE TRIGGER contacts_email_immutable
BEFORE UPDATE OF email ON contacts
WHEN NEW.email <> OLD.email
BEGIN
    SELECT RAISE(ABORT, 'contact email is immutable');
END;

CREATE TABLE subscriptions (
    id                 INTEGER PRIMARY KEY,
    contact_id         INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    contact_group      TEXT NOT NULL CHECK (contact_group IN (
        'default_service_notifications', 'proactive_service_outage',
        'proactive_informational', 'planned_works', 'reactive_service_outage',
        'escalation', 'technical_contact', 'a_end_onsite', 'b_end_onsite',
        'key_contact', 'product_communication', 'po_owner', 'accounts_payable')),
    account_id         INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    service_id         INTEGER REFERENCES services(id) ON DELETE CASCADE,
    billing_account_id INTEGER REFERENCES billing_accounts(id) ON DELETE CASCADE,
    level              INTEGER CHECK (level BETWEEN 1 AND 5),
    -- exactly one target
    CHECK ((account_id IS NOT NULL) + (service_id IS NOT NULL) + (billing_account_id IS NOT NULL) = 1),
    CHECK ((contact_group = 'escalation') = (level IS NOT NULL))
);
-- NULLs are distinct in UNIQUE constraints, so the targets are folded in.
CREATE UNIQUE INDEX subscriptions_unique ON subscriptions(
    contact_id, contact_group,
    COALESCE(account_id, 0), COALESCE(service_id, 0), COALESCE(billing_account_id, 0));

CREATE TABLE ignore_rules (
    id      INTEGER PRIMARY KEY,
    pattern TEXT NOT NULL UNIQUE
);
