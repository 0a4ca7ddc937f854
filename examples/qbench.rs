use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
#[tokio::main]
async fn main() {
    let _ = std::fs::remove_file("/tmp/qb.db");
    let o = SqliteConnectOptions::from_str("sqlite:/tmp/qb.db")
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(o)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let t = std::time::Instant::now();
    for i in 0..20000 {
        let _: Option<i64> = sqlx::query_scalar("SELECT id FROM t WHERE k = $1")
            .bind(format!("k{i}"))
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
    }
    println!("select: {:.1} us/query", t.elapsed().as_secs_f64() * 1e6 / 20000.0);
    let t = std::time::Instant::now();
    for i in 0..20000 {
        sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind(format!("k{i}"))
            .bind(vec![0u8; 2000])
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    println!("insert: {:.1} us/query", t.elapsed().as_secs_f64() * 1e6 / 20000.0);
    tx.commit().await.unwrap();
}
