//! What `db copy` refuses before it writes anything, and how it says so: a store a running
//! daemon is using, a target that is not empty (left exactly as it was: the refusal comes
//! before the migrations), and a URL whose password could be split by a parser. (Included by `tests/db_copy.rs`, whose helpers it uses.)

use super::*;

/// A password in four pieces, so a test can tell that no piece of it is shown.
const PIECES: [&str; 4] = ["Kq7v", "Vx2w", "Wm9z", "Zp4j"];

fn assert_no_piece(text: &str, url: &str) {
    for piece in PIECES {
        assert!(!text.contains(piece), "{url}: {piece} shown in {text}");
    }
}

/// A password holding `?`, `#` or `/` unencoded would be split by a URL parser, and its tail
/// quoted back as a parameter name or a database; percent-encoded it is fine, and hidden too.
#[tokio::test]
async fn a_password_holding_url_delimiters_is_never_shown() {
    let env = Env::on_sqlite();
    env.ok(&["migrate"]);
    for sep in ["?", "#", "/", "@", "%3F", "%23", "%2F", "%40"] {
        let url = format!("postgres://mailroom:{}@127.0.0.1:1/mailroom", PIECES.join(sep));
        let out = env.run(&["db", "copy", "--to", &url]);
        assert!(!out.status.success(), "{url}");
        assert_no_piece(&format!("{}{}", stdout(&out), stderr(&out)), &url);
        assert!(stderr(&out).contains("postgres://mailroom:***@"), "{}", stderr(&out));
        // The library refuses the same URLs on its own (the CLI checks them first).
        let err = copy_to_postgres_with(&store_path(&env), &url, &CopyOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert_no_piece(&err, &url);
        if ["?", "#", "/"].contains(&sep) {
            assert!(err.contains("percent-encode"), "{url}: {err}");
        }
    }
}

/// Runs SQL on the target directly.
async fn target_sql(conn: &mut sqlx::PgConnection, sql: &str) {
    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())))
        .await
        .unwrap();
}

/// Whether the target has a relation (table, index, view) of that name.
async fn exists(conn: &mut sqlx::PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// A database holding someone else's tables is named and left as it was: no migrations
/// bookkeeping, no mailroom table created next to them.
#[tokio::test]
async fn a_target_holding_other_tables_is_refused_untouched() {
    let Some(db) = created_db().await else { return };
    let env = Env::on_sqlite();
    env.import(DIRECTORY);
    let mut conn = db.connect().await;
    target_sql(
        &mut conn,
        "CREATE TABLE notes (id INT PRIMARY KEY, body TEXT); INSERT INTO notes VALUES (1, 'keep me');
         CREATE TABLE scratch (x INT); CREATE VIEW recent AS SELECT body FROM notes;",
    )
    .await;

    let err = env.fail2(&["db", "copy", "--to", db.url()]);
    assert!(err.contains("is not empty"), "{err}");
    for what in ["table notes already has rows", "table scratch", "view recent"] {
        assert!(err.contains(what), "{what} not named: {err}");
    }
    assert!(
        !exists(&mut conn, "_sqlx_migrations").await,
        "the migrations ran: {err}"
    );
    assert!(!exists(&mut conn, "accounts").await, "a mailroom table was created");
    let body: String = sqlx::query_scalar("SELECT body FROM notes WHERE id = 1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(body, "keep me");
    conn.close().await.unwrap();
}

/// A mailroom database holding data, one migration behind: the second copy is refused before
/// that migration runs (it would drop an index), and so is one whose migrations record is gone
/// (the migrator would create it).
#[tokio::test]
async fn a_mailroom_target_with_rows_is_refused_before_its_migrations_run() {
    let Some(db) = created_db().await else { return };
    let env = Env::on_sqlite();
    env.import(DIRECTORY);
    env.ok(&["db", "copy", "--to", db.url()]);
    let mut conn = db.connect().await;
    // As if the target were written by the release before 0008, which drops this index.
    target_sql(
        &mut conn,
        "DELETE FROM _sqlx_migrations WHERE version = 8; CREATE INDEX outbox_ticket ON outbox (ticket);",
    )
    .await;
    let err = env.fail2(&["db", "copy", "--to", db.url()]);
    assert!(
        err.contains("is not empty") && err.contains("table accounts already has rows"),
        "{err}"
    );
    assert!(exists(&mut conn, "outbox_ticket").await, "migration 8 ran: {err}");
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 8")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(recorded, 0);

    target_sql(&mut conn, "DROP TABLE _sqlx_migrations").await;
    let err = env.fail2(&["db", "copy", "--to", db.url()]);
    assert!(err.contains("table accounts already has rows"), "{err}");
    assert!(
        !exists(&mut conn, "_sqlx_migrations").await,
        "the migrations ran: {err}"
    );
    conn.close().await.unwrap();
}

/// mailroom's own schema without data (`mailroom migrate` run on the target first) is what the
/// copy would create anyway: it is filled.
#[tokio::test]
async fn a_target_holding_only_the_empty_schema_is_filled() {
    let Some(db) = created_db().await else { return };
    let env = Env::on_sqlite();
    env.import(DIRECTORY);
    env.ok(&["db", "copy", "--to", db.url()]);
    let mut conn = db.connect().await;
    let tables: Vec<String> = dump_pg(&mut conn).await.into_keys().collect();
    target_sql(&mut conn, &format!("TRUNCATE {} CASCADE", tables.join(", "))).await;
    let out = env.ok(&["db", "copy", "--to", db.url()]);
    assert!(out.contains("total:"), "{out}");
    assert_same(&dump_sqlite(&store_path(&env)).await, &dump_pg(&mut conn).await);
    conn.close().await.unwrap();
}

/// SQLite's clock in milliseconds, as the daemon writes lease expiries.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

/// A live mailbox lease or instance row means a daemon is ingesting into the store: the copy
/// is refused before the target is even reached, naming who holds it; rows that ran out (a
/// daemon killed long ago) do not stop it.
#[tokio::test]
async fn a_store_in_use_by_a_running_daemon_is_refused() {
    let env = Env::on_sqlite();
    env.ok(&["migrate"]);
    let unreachable = "postgres://postgres@127.0.0.1:1/none";
    store_sql(
        &env,
        &format!(
            "INSERT INTO mailbox_leases (name, holder, acquired_at, expires_at)
             VALUES ('support', 'mx1:4242:1772400000000', {NOW_MS}, {NOW_MS} + 60000);
             INSERT INTO instances (id, mailboxes, expires_at)
             VALUES ('mx1:4242:1772400000000', 'billing' || char(10) || 'support', {NOW_MS} + 60000);"
        ),
    )
    .await;
    let err = env.fail2(&["db", "copy", "--to", unreachable]);
    for what in [
        "is in use by a running mailroom",
        "mailbox support is held by instance mx1:4242:1772400000000",
        "instance mx1:4242:1772400000000 (mailboxes billing, support) is running",
        "Stop the daemon first",
        &env.path("m.db"),
    ] {
        assert!(err.contains(what), "{what} not said: {err}");
    }
    assert!(!err.contains("cannot connect"), "checked after the target: {err}");

    // Between two leases (or watching none yet) the instance alone says it runs.
    store_sql(&env, "DELETE FROM mailbox_leases").await;
    let err = env.fail2(&["db", "copy", "--to", unreachable]);
    assert!(
        err.contains("instance mx1:4242:1772400000000") && !err.contains("mailbox support"),
        "{err}"
    );

    store_sql(&env, &format!("UPDATE instances SET expires_at = {NOW_MS} - 1")).await;
    let err = env.fail2(&["db", "copy", "--to", unreachable]);
    assert!(err.contains("cannot connect") && !err.contains("in use"), "{err}");
}

/// Found by a review: a daemon that only sends notifications (no
/// mailboxes) wrote no instance row, so a copy was taken while it sent,
/// and what it sent afterwards went out again from the copy.
#[tokio::test]
async fn a_store_in_use_by_a_daemon_without_mailboxes_is_refused() {
    let env = Env::on_sqlite();
    // A relay nobody listens on: the daemon starts and retries, sending nothing.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = std::fs::read_to_string(env.dir.path().join("mailroom.toml")).unwrap();
    env.write(
        "mailroom.toml",
        format!("{config}\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n"),
    );
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("--config")
        .arg(env.dir.path().join("mailroom.toml"))
        .arg("run")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let unreachable = "postgres://postgres@127.0.0.1:1/none";
    let started = std::time::Instant::now();
    let err = loop {
        let err = env.fail2(&["db", "copy", "--to", unreachable]);
        if err.contains("in use") || started.elapsed() > std::time::Duration::from_secs(20) {
            break err;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        err.contains("is in use by a running mailroom")
            && err.contains("(no mailboxes: sending notifications) is running"),
        "{err}"
    );
}
