//! The process-wide SQLite settings `main` makes before anything opens a
//! database (`store::configure_sqlite`). A test binary of its own: SQLite
//! takes them only before it first initialises, which every other test
//! binary's first store does.

use sqlx::Connection as _;

#[tokio::test]
async fn sqlite_keeps_no_memory_statistics() {
    mailroom::store::configure_sqlite();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("CREATE TABLE t (x TEXT); INSERT INTO t VALUES (hex(randomblob(100000)))")
        .execute(&mut conn)
        .await
        .unwrap();
    // With statistics on (SQLite's default), this counts the page cache
    // and the statement just run: hundreds of KiB. Off, SQLite never
    // updates it, nor takes the global mutex each allocation would.
    let used = unsafe { libsqlite3_sys::sqlite3_memory_used() };
    conn.close().await.unwrap();
    assert_eq!(used, 0, "SQLite counts its memory: the setting did not take");
}
