//! What the store asks of every PostgreSQL session and database: a
//! transaction left idle (its instance dead or frozen while holding the
//! write lock) is ended by the server, so the other instances go on; a
//! database that cannot hold every language's text is refused at start;
//! and what an instance stamps is on the database's clock, not its own.
//! Runs against the PostgreSQL of `MAILROOM_TEST_POSTGRES_URL`.

#[path = "support/postgres.rs"]
mod postgres;

use std::time::{Duration, Instant};

use mailroom::config::Config;
use mailroom::store::Store;
use postgres::TestDb;

async fn open(url: &str) -> Result<Store, String> {
    let config = Config::parse(&format!("[database]\nurl = '{url}'\n"), "test").unwrap();
    Store::open(&config).await.map_err(|e| e.to_string())
}

async fn setting(store: &Store, name: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT current_setting('{name}')")))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn with_option(url: &str, name: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options[{name}]={value}")
}

/// Found by a review: nothing bounded how long a session could sit in a
/// transaction, so an instance that died holding the write lock (power
/// lost, cut off) held it until the server's keepalive found the dead
/// peer, two hours by default, and every other instance waited.
#[tokio::test]
async fn a_transaction_left_idle_releases_the_write_lock() {
    let Some(db) = TestDb::create().await.unwrap() else {
        return;
    };
    let store = open(db.url()).await.unwrap();
    assert_eq!(setting(&store, "idle_in_transaction_session_timeout").await, "1min");
    assert_eq!(setting(&store, "tcp_keepalives_idle").await, "20");
    store.close().await;

    // The URL's own value is kept; a short one lets the test watch it work.
    let url = with_option(db.url(), "idle_in_transaction_session_timeout", "1s");
    let frozen = open(&url).await.unwrap();
    assert_eq!(setting(&frozen, "idle_in_transaction_session_timeout").await, "1s");
    let held = frozen.begin_write().await.unwrap();
    let other = open(db.url()).await.unwrap();
    let started = Instant::now();
    let turn = tokio::time::timeout(Duration::from_secs(30), other.begin_write())
        .await
        .expect("the write lock of an idle transaction was never released")
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the lock was not held at all"
    );
    drop(turn);
    drop(held);
}

/// Found by a review: a LATIN1 database refused every character it could
/// not hold, so a Slovak or Cyrillic mail was quarantined by its bytes
/// alone, with no ticket, where SQLite took it.
#[tokio::test]
async fn a_database_not_in_utf8_is_refused_at_start_and_by_db_copy() {
    let Some(db) = TestDb::create().await.unwrap() else {
        return;
    };
    let latin1 = format!("{}_latin1", db.name());
    let mut admin = db.connect().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {latin1} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let url = postgres::with_database(db.url(), &latin1).unwrap();
    let refused = open(&url).await.err();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("m.db");
    open(&format!("sqlite:{}", sqlite.display()))
        .await
        .unwrap()
        .close()
        .await;
    let copied = mailroom::store::copy::copy_to_postgres(&sqlite, &url).await.err();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {latin1} WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .unwrap();
    let refused = refused.expect("a LATIN1 database must be refused");
    assert!(refused.contains("LATIN1") && refused.contains("UTF8"), "{refused}");
    let copied = copied
        .expect("a copy into a LATIN1 database must be refused")
        .to_string();
    assert!(copied.contains("LATIN1") && copied.contains("UTF8"), "{copied}");
}

/// Found by a review: batches stamped times with the instance's own clock,
/// while outbox claims are made on the database's, so an instance whose
/// clock ran an hour ahead queued its notifications due an hour late (and
/// its mails fell outside the other instances' rate-limit windows). Here
/// the replay runs under faketime, its clock an hour ahead of the server's.
#[tokio::test]
async fn a_machine_clock_an_hour_ahead_still_stamps_on_the_databases_clock() {
    let Some(db) = TestDb::create().await.unwrap() else {
        return;
    };
    let Some(faketime) = ["/usr/bin/faketime", "/usr/local/bin/faketime"]
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.exists())
    else {
        postgres::lacking("faketime is not installed (package faketime)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailroom.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = '{}'\nattachments = '{}'\n",
            db.url(),
            dir.path().join("attachments").display()
        ),
    )
    .unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/fanout-account-and-service");
    let ahead = |args: &[&str]| {
        let out = std::process::Command::new(faketime)
            .args(["-f", "+1h", env!("CARGO_BIN_EXE_mailroom"), "--config"])
            .arg(&config)
            .args(args)
            // Only the wall clock: tokio's timers keep the real one.
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mailroom {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ahead(&["directory", "import", &format!("{fixture}/directory.toml")]);
    ahead(&["replay", fixture]);
    let mut conn = db.connect().await;
    let (queued, processed, notifications): (i64, i64, i64) = sqlx::query_as(
        "SELECT MAX(o.queued_at) - CAST(EXTRACT(EPOCH FROM now()) AS BIGINT),
                (SELECT MAX(processed_at) FROM messages) - CAST(EXTRACT(EPOCH FROM now()) AS BIGINT),
                COUNT(*)
         FROM outbox o",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(notifications > 0, "the fixture queues notifications");
    // The replay took seconds: an hour off is the machine's clock.
    assert!(
        queued.abs() < 600,
        "notifications queued {queued} s from the database's now"
    );
    assert!(
        processed.abs() < 600,
        "mails processed {processed} s from the database's now"
    );
}
