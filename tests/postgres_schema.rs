//! `migrations/postgres` mirrors `migrations/sqlite` (groundwork for the PostgreSQL backend,
//! issue 6): the same migrations, tables, columns (with compatible types, nullability,
//! defaults and keys), indexes and triggers, and the rules the schema enforces behave alike.
//!
//! The SQLite side is read from a real database the SQLite migrations built (`pragma_table_info`,
//! `pragma_index_list`), so a new SQLite migration without its PostgreSQL twin fails here.
//!
//! Needs `MAILROOM_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); without
//! it every test prints `SKIPPED: ...` and passes, unless `MAILROOM_REQUIRE_POSTGRES` is set.

#[path = "support/postgres.rs"]
mod postgres;

use std::collections::{BTreeMap, BTreeSet};

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

use postgres::TestDb;

static PG_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Columns the code binds and reads as `bool` (SQLite keeps 0/1 in INTEGER).
const BOOL_COLUMNS: &[(&str, &str)] = &[
    ("contacts", "is_primary"),
    ("contacts", "is_group"),
    ("contacts", "ignore"),
    ("contacts", "undeliverable"),
    ("attachments", "inline"),
    ("tickets", "approval_pending"),
];

/// Triggers PostgreSQL has beyond SQLite's, and why.
const PG_ONLY_TRIGGERS: &[(&str, &str)] = &[
    // SQLite's INTEGER PRIMARY KEY gives a row inserted without an id MAX(id)+1.
    ("contacts_assign_id", "contacts"),
];

/// The tables whose statements move `facts_version` on PostgreSQL, each by
/// a trigger `<table>_facts_changed` (0013): SQLite's PRAGMA data_version
/// counts other connections' commits itself.
const FACTS_TABLES: &[&str] = &[
    "accounts",
    "account_domains",
    "billing_accounts",
    "services",
    "contacts",
    "subscriptions",
    "ignore_rules",
    "tickets",
    "messages",
    "ticket_participants",
    "quarantine",
    "outbox",
];

fn pg_only_trigger(name: &str, table: &str) -> bool {
    PG_ONLY_TRIGGERS.contains(&(name, table))
        || (FACTS_TABLES.contains(&table) && name.strip_suffix("_facts_changed") == Some(table))
}

/// Foreign keys SQLite checks and PostgreSQL does not (0014, 0015): the
/// rows a batch writes for every mail, whose checks were a sixth of
/// PostgreSQL's time and which one write path keeps consistent.
const PG_UNCHECKED_KEYS: &[(&str, &str)] = &[
    ("outbox", "ticket"),
    ("outbox", "contact_id"),
    ("messages", "ticket"),
    ("messages", "contact_id"),
    ("message_content", "message_row"),
    ("attachments", "message_row"),
    ("ticket_participants", "ticket"),
    ("ticket_participants", "contact_id"),
    ("tickets", "requester_id"),
    ("tickets", "account_id"),
    ("tickets", "service_id"),
];

/// Tables PostgreSQL has beyond SQLite's: `facts_version`, the count those
/// triggers move (the store's `POSTGRES_ONLY_TABLES`).
const PG_ONLY_TABLES: &[&str] = &["facts_version"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    ty: String,
    not_null: bool,
    primary_key: bool,
    default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Index {
    table: String,
    unique: bool,
    partial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Schema {
    /// Table → columns in declaration order.
    tables: BTreeMap<String, Vec<Column>>,
    /// Index name → what it is (explicit CREATE INDEX only, not those behind constraints).
    indexes: BTreeMap<String, Index>,
    /// Trigger name → table.
    triggers: BTreeMap<String, String>,
}

/// A fresh PostgreSQL database with the migrations applied, or `None` (skipped).
async fn migrated_pg() -> Option<(TestDb, PgConnection)> {
    let db = TestDb::create().await.unwrap_or_else(|e| panic!("{e}"))?;
    let mut conn = db.connect().await;
    PG_MIGRATOR
        .run(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("migrations/postgres on {}: {e}", db.name()));
    Some((db, conn))
}

/// A SQLite database the SQLite migrations built, in a temp dir kept while
/// the connection is used.
async fn migrated_sqlite() -> (tempfile::TempDir, SqliteConnection) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("schema.db"))
        .create_if_missing(true)
        .foreign_keys(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    SQLITE_MIGRATOR.run(&mut conn).await.unwrap();
    (dir, conn)
}

async fn sqlite_schema() -> Schema {
    let (_dir, mut conn) = migrated_sqlite().await;
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
           AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for table in tables {
        let rows =
            sqlx::query(r#"SELECT name, type, "notnull", pk, dflt_value FROM pragma_table_info($1) ORDER BY cid"#)
                .bind(&table)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let columns = rows
            .iter()
            .map(|r| Column {
                name: r.get("name"),
                ty: r.get::<String, _>("type").to_uppercase(),
                not_null: r.get::<i64, _>("notnull") != 0,
                primary_key: r.get::<i64, _>("pk") != 0,
                default: r.get("dflt_value"),
            })
            .collect();
        let indexes = sqlx::query(
            r#"SELECT name, "unique", partial FROM pragma_index_list($1) WHERE origin = 'c' ORDER BY name"#,
        )
        .bind(&table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for r in indexes {
            schema.indexes.insert(
                r.get("name"),
                Index {
                    table: table.clone(),
                    unique: r.get::<i64, _>("unique") != 0,
                    partial: r.get::<i64, _>("partial") != 0,
                },
            );
        }
        schema.tables.insert(table, columns);
    }
    let triggers: Vec<(String, String)> =
        sqlx::query_as("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    schema.triggers = triggers.into_iter().collect();
    conn.close().await.unwrap();
    schema
}

async fn pg_schema(conn: &mut PgConnection) -> Schema {
    let mut schema = Schema::default();
    let primary: BTreeSet<(String, String)> = sqlx::query_as(
        "SELECT t.relname::text, a.attname::text
         FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (i.indkey)
         WHERE i.indisprimary AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let rows = sqlx::query(
        "SELECT table_name::text AS tbl, column_name::text AS name, data_type::text AS ty,
                is_nullable::text = 'NO' AS not_null, column_default::text AS dflt
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for r in rows {
        let table: String = r.get("tbl");
        let name: String = r.get("name");
        schema.tables.entry(table.clone()).or_default().push(Column {
            primary_key: primary.contains(&(table, name.clone())),
            name,
            ty: r.get::<String, _>("ty").to_uppercase(),
            not_null: r.get("not_null"),
            default: r.get("dflt"),
        });
    }
    let indexes = sqlx::query(
        "SELECT ic.relname::text AS name, t.relname::text AS tbl, i.indisunique AS is_unique, i.indpred IS NOT NULL AS partial
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         WHERE n.nspname = current_schema() AND t.relname <> '_sqlx_migrations'
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    for r in indexes {
        schema.indexes.insert(
            r.get("name"),
            Index {
                table: r.get("tbl"),
                unique: r.get("is_unique"),
                partial: r.get("partial"),
            },
        );
    }
    let triggers: Vec<(String, String)> = sqlx::query_as(
        "SELECT tg.tgname::text, t.relname::text FROM pg_trigger tg JOIN pg_class t ON t.oid = tg.tgrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace WHERE NOT tg.tgisinternal AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    schema.triggers = triggers.into_iter().collect();
    schema
}

/// The PostgreSQL type a SQLite column must have: the code reads INTEGER as `i64` (BIGINT;
/// sqlx refuses INT4 for i64) or, for flags, as `bool`.
fn expected_pg_type(table: &str, column: &str, sqlite_type: &str) -> Option<&'static str> {
    match sqlite_type {
        "INTEGER" if BOOL_COLUMNS.contains(&(table, column)) => Some("BOOLEAN"),
        "INTEGER" => Some("BIGINT"),
        "TEXT" => Some("TEXT"),
        "BLOB" => Some("BYTEA"),
        _ => None,
    }
}

/// A default as SQLite would write it: `'open'::text` → `'open'`, `false` → `0`.
fn normalise_pg_default(d: &str) -> String {
    let d = d
        .strip_suffix("::text")
        .or_else(|| d.strip_suffix("::bigint"))
        .unwrap_or(d);
    match d {
        "false" => "0".into(),
        "true" => "1".into(),
        d => d.into(),
    }
}

/// Every way the PostgreSQL schema differs from SQLite's, one line each.
fn differences(sqlite: &Schema, pg: &Schema) -> Vec<String> {
    let mut diff = Vec::new();
    for table in sqlite.tables.keys().filter(|t| !pg.tables.contains_key(*t)) {
        diff.push(format!("table {table}: in SQLite, missing in PostgreSQL"));
    }
    for table in pg
        .tables
        .keys()
        .filter(|t| !sqlite.tables.contains_key(*t) && !PG_ONLY_TABLES.contains(&t.as_str()))
    {
        diff.push(format!("table {table}: in PostgreSQL, not in SQLite"));
    }
    for (table, s_cols) in &sqlite.tables {
        let Some(p_cols) = pg.tables.get(table) else { continue };
        let s_names: Vec<&str> = s_cols.iter().map(|c| c.name.as_str()).collect();
        let p_names: Vec<&str> = p_cols.iter().map(|c| c.name.as_str()).collect();
        if s_names != p_names {
            diff.push(format!(
                "table {table}: columns differ\n    SQLite:     {s_names:?}\n    PostgreSQL: {p_names:?}"
            ));
        }
        for s in s_cols {
            let Some(p) = p_cols.iter().find(|p| p.name == s.name) else {
                continue;
            };
            let at = format!("{table}.{}", s.name);
            match expected_pg_type(table, &s.name, &s.ty) {
                None => diff.push(format!("{at}: SQLite type {} has no PostgreSQL mapping here", s.ty)),
                Some(want) if p.ty != want => {
                    diff.push(format!("{at}: SQLite {} wants PostgreSQL {want}, found {}", s.ty, p.ty));
                }
                Some(_) => {}
            }
            // A SQLite primary key is NOT NULL in effect (and should be); PostgreSQL's always is.
            let s_not_null = s.not_null || s.primary_key;
            if s_not_null != p.not_null {
                diff.push(format!(
                    "{at}: NOT NULL is {s_not_null} in SQLite, {} in PostgreSQL",
                    p.not_null
                ));
            }
            if s.primary_key != p.primary_key {
                diff.push(format!(
                    "{at}: part of the primary key is {} in SQLite, {} in PostgreSQL",
                    s.primary_key, p.primary_key
                ));
            }
            // Identity columns have no column_default: they match SQLite's defaultless keys.
            let p_default = p.default.as_deref().map(normalise_pg_default);
            if s.default != p_default {
                diff.push(format!(
                    "{at}: default {:?} in SQLite, {:?} in PostgreSQL",
                    s.default, p.default
                ));
            }
        }
    }
    for (name, s) in &sqlite.indexes {
        match pg.indexes.get(name) {
            None => diff.push(format!("index {name} (on {}): missing in PostgreSQL", s.table)),
            Some(p) if p != s => diff.push(format!("index {name}: {s:?} in SQLite, {p:?} in PostgreSQL")),
            Some(_) => {}
        }
    }
    for (name, p) in pg.indexes.iter().filter(|(n, _)| !sqlite.indexes.contains_key(*n)) {
        diff.push(format!("index {name} (on {}): in PostgreSQL, not in SQLite", p.table));
    }
    for (name, table) in &sqlite.triggers {
        match pg.triggers.get(name) {
            Some(t) if t == table => {}
            Some(t) => diff.push(format!("trigger {name}: on {table} in SQLite, on {t} in PostgreSQL")),
            None => diff.push(format!("trigger {name} (on {table}): missing in PostgreSQL")),
        }
    }
    for (name, table) in &pg.triggers {
        if !sqlite.triggers.contains_key(name) && !pg_only_trigger(name, table) {
            diff.push(format!("trigger {name} (on {table}): in PostgreSQL, not in SQLite"));
        }
    }
    diff
}

#[test]
fn migrations_mirror_one_to_one() {
    let describe =
        |m: &Migrator| -> Vec<(i64, String)> { m.iter().map(|m| (m.version, m.description.to_string())).collect() };
    assert_eq!(
        describe(&PG_MIGRATOR),
        describe(&SQLITE_MIGRATOR),
        "migrations/postgres must have one file per migrations/sqlite file, same number and name"
    );
}

#[tokio::test]
async fn schema_matches_sqlite() {
    let Some((_db, mut conn)) = migrated_pg().await else {
        return;
    };
    let sqlite = sqlite_schema().await;
    assert!(
        sqlite.tables.len() >= 15,
        "SQLite schema read back: {:?}",
        sqlite.tables.keys()
    );
    let pg = pg_schema(&mut conn).await;
    let diff = differences(&sqlite, &pg);
    assert!(
        diff.is_empty(),
        "migrations/postgres differs from migrations/sqlite:\n  {}",
        diff.join("\n  ")
    );
    conn.close().await.unwrap();
}

#[tokio::test]
async fn migrating_twice_is_a_no_op() {
    let Some((_db, mut conn)) = migrated_pg().await else {
        return;
    };
    let before = pg_schema(&mut conn).await;
    PG_MIGRATOR.run(&mut conn).await.expect("second run");
    assert_eq!(pg_schema(&mut conn).await, before);
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let all: Vec<i64> = PG_MIGRATOR.iter().map(|m| m.version).collect();
    assert_eq!(applied, all);
    conn.close().await.unwrap();
}

/// (table, column, referenced table, on delete) of every single-column
/// foreign key.
type ForeignKeys = BTreeSet<(String, String, String, String)>;

#[tokio::test]
async fn foreign_keys_are_sqlites_but_for_the_rows_batches_write() {
    let Some((_db, mut conn)) = migrated_pg().await else {
        return;
    };
    let (_dir, mut sqlite) = migrated_sqlite().await;
    let sqlite_keys: ForeignKeys = sqlx::query_as(
        "SELECT m.name, k.\"from\", k.\"table\", k.on_delete FROM sqlite_master m, pragma_foreign_key_list(m.name) k
         WHERE m.type = 'table'",
    )
    .fetch_all(&mut sqlite)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let pg_keys: ForeignKeys = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, a.attname::text, c.confrelid::regclass::text,
                CASE c.confdeltype WHEN 'a' THEN 'NO ACTION' WHEN 'r' THEN 'RESTRICT' WHEN 'c' THEN 'CASCADE'
                                   WHEN 'n' THEN 'SET NULL' ELSE 'SET DEFAULT' END
         FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert!(sqlite_keys.len() >= 20, "SQLite's keys read back: {sqlite_keys:?}");
    for (table, column) in PG_UNCHECKED_KEYS {
        assert!(
            sqlite_keys.iter().any(|(t, c, _, _)| t == table && c == column),
            "{table}.{column} is listed as unchecked on PostgreSQL but SQLite has no such key"
        );
    }
    let expected: ForeignKeys = sqlite_keys
        .into_iter()
        .filter(|(t, c, _, _)| !PG_UNCHECKED_KEYS.contains(&(t.as_str(), c.as_str())))
        .collect();
    assert_eq!(pg_keys, expected, "PostgreSQL's foreign keys");

    // Mail text is compressed with lz4 where the server has it (0015).
    let lz4: bool = sqlx::query_scalar(
        "SELECT count(*) > 0 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let compressed: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT attrelid::regclass::text, attname::text, attcompression::text FROM pg_attribute
         WHERE (attrelid::regclass::text, attname::text) IN (('message_content', 'raw'), ('message_content', 'text'),
               ('message_content', 'new_text'), ('outbox', 'body'), ('attachment_content', 'data'))
         ORDER BY 1, 2",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(compressed.len(), 5, "{compressed:?}");
    let want = if lz4 { "l" } else { "" };
    for (table, column, method) in &compressed {
        assert_eq!(method, want, "compression of {table}.{column} (server has lz4: {lz4})");
    }
    conn.close().await.unwrap();
}

async fn insert_contact(conn: &mut PgConnection, id: Option<i64>, email: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO contacts (id, email, created_by, created_at) VALUES ($1, $2, 'cli', 1) RETURNING id",
    )
    .bind(id)
    .bind(email)
    .fetch_one(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn contact_email_is_immutable_and_ids_follow_the_maximum() {
    let Some((_db, mut conn)) = migrated_pg().await else {
        return;
    };
    // Inserted without an id (directory import): MAX(id)+1, as SQLite's INTEGER PRIMARY KEY.
    assert_eq!(insert_contact(&mut conn, None, "a@example.com").await, 1);
    // A batch's own id (store/changes.rs) ...
    assert_eq!(insert_contact(&mut conn, Some(10), "b@example.com").await, 10);
    // ... is not handed out again.
    assert_eq!(insert_contact(&mut conn, None, "c@example.com").await, 11);

    let err = sqlx::query("UPDATE contacts SET email = 'other@example.com' WHERE id = 1")
        .execute(&mut conn)
        .await
        .expect_err("changing a contact's email must be refused");
    let db_err = err.as_database_error().expect("a database error");
    assert!(db_err.message().contains("contact email is immutable"), "{db_err}");
    assert_eq!(db_err.code().as_deref(), Some("23000"), "{db_err}");
    let email: String = sqlx::query_scalar("SELECT email FROM contacts WHERE id = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(email, "a@example.com");

    // Other columns change freely, and setting the same email is no change.
    sqlx::query("UPDATE contacts SET email = email, first_name = 'Ada', ignore = $1 WHERE id = 1")
        .bind(true)
        .execute(&mut conn)
        .await
        .unwrap();
    let (first, ignore): (String, bool) = sqlx::query_as("SELECT first_name, ignore FROM contacts WHERE id = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!((first.as_str(), ignore), ("Ada", true));

    // Emails are unique (the code lower-cases them before they get here).
    let err = sqlx::query("INSERT INTO contacts (email, created_by, created_at) VALUES ('b@example.com', 'cli', 1)")
        .execute(&mut conn)
        .await
        .expect_err("a second contact with the same email");
    assert!(err.as_database_error().unwrap().is_unique_violation(), "{err}");
    conn.close().await.unwrap();
}

async fn facts(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT facts FROM facts_version")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// A batch decided on the snapshot the batch ahead left trusts it only if
/// `facts_version` has not moved since: whoever changes a fact, with
/// whatever statement, moves it; a delivery recording how a notification
/// went (the outbox's updates, many) does not.
#[tokio::test]
async fn every_change_of_a_fact_moves_the_facts_version_and_deliveries_do_not() {
    let Some((_db, mut conn)) = migrated_pg().await else {
        return;
    };
    let schema = pg_schema(&mut conn).await;
    for table in FACTS_TABLES {
        let name = format!("{table}_facts_changed");
        assert_eq!(
            schema.triggers.get(&name).map(String::as_str),
            Some(*table),
            "trigger {name}"
        );
    }
    let mut seen = facts(&mut conn).await;
    for change in [
        "INSERT INTO contacts (id, email, created_by, created_at) VALUES (1, 'a@example.com', 'cli', 1)",
        "UPDATE contacts SET ignore = TRUE",
        "INSERT INTO accounts (number, name) VALUES ('OCN-1', 'Acme')",
        "INSERT INTO ignore_rules (pattern) VALUES ('*@spam.test')",
        "INSERT INTO tickets (number, subject, status, requester_id, created_at, updated_at)
         VALUES (1, 's', 'open', 1, 1, 1)",
        "INSERT INTO outbox (ticket, event, contact_id, to_addr, language, subject, body, message_id,
                             next_attempt_at, created_at)
         VALUES (1, 'new_ticket', 1, 'a@example.com', 'en', 's', 'b', '<n1@provider.test>', 1, 1)",
        "DELETE FROM ignore_rules",
        "TRUNCATE quarantine",
    ] {
        sqlx::query(change).execute(&mut conn).await.unwrap();
        let now = facts(&mut conn).await;
        assert!(now > seen, "{change} did not move facts_version ({now})");
        seen = now;
    }
    sqlx::query("UPDATE outbox SET status = 'sent'")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(facts(&mut conn).await, seen, "a delivery's update moved facts_version");
    conn.close().await.unwrap();
}

async fn insert_message(conn: &mut PgConnection, id: i64, key: &str, outcome: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO messages (id, message_key, raw_sha256, source, outcome, received_at, processed_at)
         VALUES ($1, $2, 'sha', 'test', $3, 1, 1)",
    )
    .bind(id)
    .bind(key)
    .bind(outcome)
    .execute(conn)
    .await
    .map(drop)
}

#[tokio::test]
async fn a_mail_key_is_processed_once_but_duplicates_repeat_it() {
    let Some((_db, mut conn)) = migrated_pg().await else {
        return;
    };
    insert_message(&mut conn, 1, "<a@example.com>", "new_ticket")
        .await
        .unwrap();
    insert_message(&mut conn, 2, "<a@example.com>", "duplicate")
        .await
        .unwrap();
    insert_message(&mut conn, 3, "<a@example.com>", "duplicate")
        .await
        .unwrap();
    let err = insert_message(&mut conn, 4, "<a@example.com>", "update")
        .await
        .expect_err("a second non-duplicate row with the same key must be refused");
    let db_err = err.as_database_error().expect("a database error");
    assert!(db_err.is_unique_violation(), "{db_err}");
    assert_eq!(db_err.constraint(), Some("messages_key_once"));
    insert_message(&mut conn, 4, "<b@example.com>", "quarantined")
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_subscription_has_exactly_one_target_once() {
    let Some((_db, mut conn)) = migrated_pg().await else {
        return;
    };
    let account: i64 = sqlx::query_scalar("INSERT INTO accounts (number, name) VALUES ('A1', 'Acme') RETURNING id")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let service: i64 =
        sqlx::query_scalar("INSERT INTO services (service_id, account_id) VALUES ('LON/ETH/000123', $1) RETURNING id")
            .bind(account)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let contact = insert_contact(&mut conn, None, "a@example.com").await;
    let subscribe = |account: Option<i64>, service: Option<i64>| {
        sqlx::query(
            "INSERT INTO subscriptions (contact_id, contact_group, account_id, service_id)
             VALUES ($1, 'planned_works', $2, $3)",
        )
        .bind(contact)
        .bind(account)
        .bind(service)
    };
    let err = subscribe(Some(account), Some(service))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(err.as_database_error().unwrap().is_check_violation(), "{err}");
    let err = subscribe(None, None).execute(&mut conn).await.unwrap_err();
    assert!(err.as_database_error().unwrap().is_check_violation(), "{err}");
    subscribe(Some(account), None).execute(&mut conn).await.unwrap();
    subscribe(None, Some(service)).execute(&mut conn).await.unwrap();
    let err = subscribe(Some(account), None).execute(&mut conn).await.unwrap_err();
    let db_err = err.as_database_error().unwrap();
    assert!(db_err.is_unique_violation(), "{db_err}");
    assert_eq!(db_err.constraint(), Some("subscriptions_unique"));
    conn.close().await.unwrap();
}

/// With the default `sslmode=prefer`, a server offering TLS gets it: through rustls on ring.
#[tokio::test]
async fn the_connection_uses_tls_when_the_server_offers_it() {
    let Some(db) = TestDb::create().await.unwrap_or_else(|e| panic!("{e}")) else {
        return;
    };
    let mut conn = db.connect().await;
    let offered: String = sqlx::query_scalar("SELECT current_setting('ssl')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let tls: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    if offered != "on" {
        postgres::lacking("the PostgreSQL server does not speak TLS");
    } else if db.url().contains("sslmode=disable") {
        postgres::lacking("MAILROOM_TEST_POSTGRES_URL asks for sslmode=disable");
    } else {
        assert!(tls, "the server offers TLS but the connection is plain");
    }
    conn.close().await.unwrap();
}
