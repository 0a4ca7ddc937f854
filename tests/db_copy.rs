//! `mailroom db copy --to postgres://…`: a SQLite store filled by the real binary (directory
//! import, fixture mails, hand actions) arrives in PostgreSQL identical row by row, a second copy
//! is refused without touching the first, passwords never reach the output, and the source
//! keeps working.
//!
//! Needs `MAILROOM_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`, trust
//! auth: the tests add a password the server then ignores); without it the PostgreSQL tests
//! print `SKIPPED: ...` and pass, unless `MAILROOM_REQUIRE_POSTGRES` is set. The refusals that
//! happen before connecting run either way.

#[allow(dead_code)]
#[path = "cli/support.rs"]
mod support;

#[path = "db_copy/compare.rs"]
mod compare;

#[path = "db_copy/refusals.rs"]
mod refusals;

#[path = "db_copy/memory.rs"]
mod memory;

use std::path::{Path, PathBuf};

use sqlx::{Connection, Executor as _};

use compare::{Dump, dump_pg, dump_sqlite};
use mailroom::store::copy::{CopyOptions, copy_to_postgres_with};
use support::store::postgres::TestDb;
use support::{DIRECTORY, Env, mail, reply, request, stderr, stdout, stranger};

/// Stands in for a real password; no output may contain it.
const SECRET: &str = "Tr0ub4dor-s3cret";

fn fixture(path: &str) -> String {
    format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// A mail from a known contact with an inline image and an attachment.
fn with_attachments() -> Vec<u8> {
    b"From: Marie Dupont <marie.dupont@acme.fr>\r\nTo: support@provider.test\r\n\
Subject: Logs du routeur\r\nMessage-ID: <logs-0001@acme.fr>\r\nDate: Tue, 3 Mar 2026 09:00:00 +0100\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nVoici les journaux.\r\n\
--B\r\nContent-Type: image/png\r\nContent-ID: <logo@acme.fr>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"dump.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAECA//+/fw=\r\n--B--\r\n"
        .to_vec()
}

/// A mail from a known contact with an attachment too large to be kept in
/// the store (64 KiB and one byte): it is a file.
fn with_large_attachment() -> Vec<u8> {
    let line = "A".repeat(76);
    // 76 base64 characters are 57 bytes.
    let lines = (mailroom::store::attachments::STORED_UP_TO + 1).div_ceil(57);
    let body = vec![line.as_str(); lines].join("\r\n");
    format!(
        "From: Marie Dupont <marie.dupont@acme.fr>\r\nTo: support@provider.test\r\n\
Subject: Capture\r\nMessage-ID: <capture-0001@acme.fr>\r\nDate: Tue, 3 Mar 2026 09:10:00 +0100\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nLa capture.\r\n\
--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"capture.pcap\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{body}\r\n--B--\r\n"
    )
    .into_bytes()
}

/// A store with a row in every table, made the way a desk makes it: the directory imported,
/// mails replayed (new tickets, replies, tags, charsets, quarantine, unparseable mail,
/// attachments), tickets escalated and closed by hand.
fn filled_store() -> Env {
    let env = Env::on_sqlite();
    env.import(DIRECTORY);
    env.write("in/01-request.eml", request());
    env.write("in/02-reply.eml", reply());
    env.write("in/03-stranger.eml", stranger());
    env.write("in/04-attachments.eml", with_attachments());
    env.replay(&["in"]);
    for scenario in ["slovak-encoded-subject", "thread-by-tag", "primary-only-account"] {
        env.ok(&["directory", "import", &fixture(&format!("{scenario}/directory.toml"))]);
        env.ok(&["replay", "--date-from-header", &fixture(scenario)]);
    }
    env.ok(&["replay", "--date-from-header", &fixture("unparseable-mail")]);
    env.ok(&["tickets", "escalate", "1", "--level", "2"]);
    env.ok(&["tickets", "close", "2"]);
    env
}

fn store_path(env: &Env) -> PathBuf {
    env.dir.path().join("m.db")
}

/// Runs SQL on the store directly, for what the CLI cannot make.
async fn store_sql(env: &Env, sql: &str) {
    env.sql(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// What only the daemon writes (mailbox positions), and a ticket referring to a later one,
/// which a chunked copy must not insert before its target.
async fn add_daemon_rows(env: &Env) {
    store_sql(
        env,
        "INSERT INTO mailbox_state (name, uidvalidity, last_uid, ingested, state, last_error, last_mail_at, updated_at)
         VALUES ('support', 1700000001, 4242, 17, 'idle', NULL, 1772400000, 1772400001),
                ('billing', NULL, 0, 0, 'error', 'AUTHENTICATIONFAILED', NULL, 1772400002);
         INSERT INTO mailbox_leases (name, holder, acquired_at, expires_at)
         VALUES ('support', 'mx1:4242:1772400000000', 1772400000000, 1772400030000);
         INSERT INTO instances (id, mailboxes, expires_at) VALUES ('mx1:4242:1772400000000', 'billing
support', 1772400030000);
         UPDATE tickets SET related_ticket = (SELECT MAX(number) FROM tickets) WHERE number = 1;",
    )
    .await;
}

/// `url` with a password added, and the password (the URL's own when it has one).
fn with_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((_, password)) => (url.to_string(), password.to_string()),
            None => (format!("{scheme}://{userinfo}:{SECRET}@{host}"), SECRET.to_string()),
        },
        None => (format!("{scheme}://postgres:{SECRET}@{rest}"), SECRET.to_string()),
    }
}

async fn created_db() -> Option<TestDb> {
    TestDb::create().await.unwrap_or_else(|e| panic!("{e}"))
}

fn assert_same(source: &Dump, target: &Dump) {
    assert_eq!(
        source.keys().collect::<Vec<_>>(),
        target.keys().collect::<Vec<_>>(),
        "the same tables on both sides"
    );
    for (table, rows) in source {
        let copied = &target[table];
        assert_eq!(rows.columns, copied.columns, "columns of {table}");
        assert_eq!(rows.rows.len(), copied.rows.len(), "rows of {table}");
        for (a, b) in rows.rows.iter().zip(&copied.rows) {
            assert_eq!(a, b, "a row of {table} (columns {:?})", rows.columns);
        }
    }
}

#[tokio::test]
async fn every_table_arrives_identical_row_by_row() {
    let Some(db) = created_db().await else { return };
    let env = filled_store();
    add_daemon_rows(&env).await;
    let source = dump_sqlite(&store_path(&env)).await;
    for (table, rows) in &source {
        assert!(!rows.rows.is_empty(), "the test store has no row in {table}");
    }
    assert!(source.len() >= 16, "{:?}", source.keys());

    let out = env.ok(&["db", "copy", "--to", db.url()]);
    let total: usize = source.values().map(|t| t.rows.len()).sum();
    assert!(
        out.contains(&format!("total: {total} rows in {} tables", source.len())),
        "{out}"
    );
    for (table, rows) in &source {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(table.as_str()));
        let line = line.unwrap_or_else(|| panic!("no line for {table} in\n{out}"));
        assert_eq!(
            line.split_whitespace().nth(1),
            Some(rows.rows.len().to_string().as_str()),
            "{line}"
        );
    }

    let mut conn = db.connect().await;
    assert_same(&source, &dump_pg(&mut conn).await);

    // Sequences continue after the copied ids: a row inserted without an id does not collide.
    for table in ["outbox", "quarantine", "ticket_events", "attachments", "ignore_rules"] {
        let max = source[table].rows.len() as i64;
        let next: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let copied_max: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT MAX(id) FROM {table}")))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(next, copied_max + 1, "{table} ({max} rows)");
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_second_copy_is_refused_changes_nothing_and_shows_no_password() {
    let Some(db) = created_db().await else { return };
    let env = filled_store();
    let (url, secret) = with_password(db.url());

    let first = env.run(&["db", "copy", "--to", &url]);
    let (out, err) = (stdout(&first), stderr(&first));
    assert!(first.status.success(), "{out}{err}");
    assert!(!out.contains(&secret) && !err.contains(&secret), "{out}{err}");
    assert!(out.contains(":***@"), "the target is named, its password masked: {out}");

    let mut conn = db.connect().await;
    let before = dump_pg(&mut conn).await;
    let second = env.run(&["db", "copy", "--to", &url]);
    let (out, err) = (stdout(&second), stderr(&second));
    assert_eq!(second.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("not empty") && err.contains("table accounts already has rows"),
        "{err}"
    );
    assert!(err.contains(":***@"), "{err}");
    assert!(!out.contains(&secret) && !err.contains(&secret), "{out}{err}");
    assert!(!err.contains("total"), "{err}");
    assert_same(&before, &dump_pg(&mut conn).await);
    conn.close().await.unwrap();
}

#[test]
fn the_password_stays_hidden_when_the_target_is_unreachable() {
    let env = Env::on_sqlite();
    env.ok(&["migrate"]);
    let url = format!("postgres://mailroom:{SECRET}@127.0.0.1:1/mailroom");
    let out = env.run(&["db", "copy", "--to", &url]);
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{o}{e}");
    assert!(e.contains("postgres://mailroom:***@127.0.0.1:1/mailroom"), "{e}");
    assert!(!o.contains(SECRET) && !e.contains(SECRET), "{o}{e}");
    let out = env.run(&["db", "copy", "--to", &format!("mysql://root:{SECRET}@h/db")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a PostgreSQL URL") && !stderr(&out).contains(SECRET));
    // sqlx would log an unknown parameter with its value: a mistyped password parameter.
    let out = env.run(&[
        "db",
        "copy",
        "--to",
        &format!("postgres://u@127.0.0.1:1/db?pasword={SECRET}"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("pasword") && !stderr(&out).contains(SECRET),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn the_source_is_only_read_and_keeps_working() {
    let Some(db) = created_db().await else { return };
    let env = filled_store();
    let tickets = env.json(&["tickets", "list", "--json"]);
    let bytes = std::fs::read(store_path(&env)).unwrap();

    env.ok(&["db", "copy", "--to", db.url()]);
    assert!(
        std::fs::read(store_path(&env)).unwrap() == bytes,
        "the copy changed the store file"
    );
    assert_eq!(env.json(&["tickets", "list", "--json"]), tickets);
    env.write(
        "later/05-new.eml",
        mail(
            "Hans Weber <hans.weber@globex.de>",
            "after-copy-0005@globex.de",
            "Wed, 4 Mar 2026 10:00:00 +0100",
            "MPLS FRA/MPLS/000777 flapping",
            &[],
            "Since 09:40 the link flaps every few minutes.",
        ),
    );
    let summary = env.replay(&["later"]);
    assert_eq!(summary["processed"], 1, "{summary}");
    assert_eq!(
        env.list(&["tickets", "list", "--json"]).len(),
        tickets.as_array().unwrap().len() + 1
    );
    env.ok(&["outbox", "list"]);
    env.ok(&["messages", "list"]);
}

/// Attachment files are not in the database: the copy says that it left them, where they are,
/// and what `database.attachments` must say once the store is PostgreSQL.
#[tokio::test]
async fn the_attachment_directory_is_named_and_left_in_place() {
    let (Some(db), Some(json_db)) = (created_db().await, created_db().await) else {
        return;
    };
    let env = Env::on_sqlite();
    env.import(DIRECTORY);
    env.write("in/04-attachments.eml", with_attachments());
    env.write("in/05-large.eml", with_large_attachment());
    env.replay(&["in"]);
    let dir = env.path("attachments");
    assert!(Path::new(&dir).is_dir(), "the replay stored no attachment file");
    let source = dump_sqlite(&store_path(&env)).await;
    // The two small ones are in the store and copied with it: only the
    // large one is a file the copy leaves behind.
    assert_eq!(source["attachments"].rows.len(), 3);
    assert_eq!(source["attachment_content"].rows.len(), 2);
    let rows = 1;

    let out = env.ok(&["db", "copy", "--to", db.url()]);
    let note = out.lines().last().unwrap_or_default();
    assert!(
        note.starts_with(&format!(
            "attachments: NOT copied: {rows} attachment rows name files under {dir}"
        )) && note.contains(&format!("database.attachments = '{dir}'")),
        "{out}"
    );
    let report = env.json(&["db", "copy", "--json", "--to", json_db.url()]);
    assert_eq!(report["attachments"]["directory"], dir.as_str(), "{report}");
    assert_eq!(report["attachments"]["rows"], rows, "{report}");
    assert_eq!(report["attachments"]["copied"], false, "{report}");
    assert!(
        report["total"].as_u64().unwrap() > 0,
        "the report is still there: {report}"
    );
}

#[tokio::test]
async fn small_chunks_and_forward_references_copy_the_same() {
    let Some(db) = created_db().await else { return };
    let env = filled_store();
    add_daemon_rows(&env).await;
    let options = CopyOptions {
        rows_per_insert: 1,
        bytes_per_insert: 1,
        replace_nul: false,
    };
    let report = copy_to_postgres_with(&store_path(&env), db.url(), &options)
        .await
        .unwrap();
    let source = dump_sqlite(&store_path(&env)).await;
    assert_eq!(
        report.total as usize,
        source.values().map(|t| t.rows.len()).sum::<usize>()
    );
    let order: Vec<&str> = report.tables.iter().map(|t| t.table.as_str()).collect();
    let before = |a: &str, b: &str| order.iter().position(|t| *t == a) < order.iter().position(|t| *t == b);
    // Parents first, by the keys the target checks (the rows batches write
    // for every mail have none there, see migrations/postgres/0015).
    assert!(before("accounts", "contacts") && before("contacts", "subscriptions") && before("messages", "quarantine"));
    let mut conn = db.connect().await;
    assert_same(&source, &dump_pg(&mut conn).await);
    conn.close().await.unwrap();
}

#[tokio::test]
async fn nul_in_text_stops_the_copy_unless_replaced() {
    let Some(db) = created_db().await else { return };
    let env = Env::on_sqlite();
    env.import(DIRECTORY);
    env.write(
        "in/nul.eml",
        b"From: Marie Dupont <marie.dupont@acme.fr>\r\nSubject: Export\r\nMessage-ID: <nul-0001@acme.fr>\r\n\
Date: Mon, 2 Mar 2026 08:31:00 +0100\r\n\r\ncolumn\0separated\r\n"
            .as_slice(),
    );
    env.replay(&["in"]);
    // mailroom now replaces NULs when it parses; a store written by an
    // earlier version still holds them.
    store_sql(
        &env,
        "UPDATE message_content SET text = 'column' || char(0) || 'separated' WHERE message_row = 1",
    )
    .await;

    let refused = env.run(&["db", "copy", "--to", db.url()]);
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("NUL") && err.contains("message_content") && err.contains("--replace-nul"),
        "{err}"
    );
    let mut conn = db.connect().await;
    for (table, rows) in dump_pg(&mut conn).await {
        assert!(rows.rows.is_empty(), "rolled back, yet {table} has rows");
    }

    let out = env.ok(&["db", "copy", "--replace-nul", "--to", db.url()]);
    assert!(out.contains("NUL_REPLACED"), "{out}");
    let mut source = dump_sqlite(&store_path(&env)).await;
    compare::replace_nul_in_text(&mut source);
    assert_same(&source, &dump_pg(&mut conn).await);
    let raw: Vec<u8> = sqlx::query_scalar("SELECT raw FROM message_content WHERE message_row = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(raw.windows(2).any(|w| w == b"n\0"), "the raw mail keeps its NUL byte");
    conn.close().await.unwrap();
}

#[test]
fn a_missing_source_is_named_and_not_created() {
    let env = Env::on_sqlite();
    // The test environment starts with a store; this test needs none.
    for file in ["m.db", "m.db-wal", "m.db-shm"] {
        let _ = std::fs::remove_file(env.path(file));
    }
    let out = env.run(&["db", "copy", "--to", "postgres://postgres@127.0.0.1:1/none"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&env.path("m.db")) && err.contains("does not exist"),
        "{err}"
    );
    assert!(!Path::new(&env.path("m.db")).exists(), "db copy created the source");
}

#[tokio::test]
async fn a_source_behind_the_schema_is_told_to_migrate() {
    let env = Env::on_sqlite();
    env.ok(&["migrate"]);
    store_sql(
        &env,
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .await;
    let out = env.run(&["db", "copy", "--to", "postgres://postgres@127.0.0.1:1/none"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("run `mailroom migrate` first") && err.contains(&env.path("m.db")),
        "{err}"
    );
}
