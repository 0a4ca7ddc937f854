//! Moving SQLite's WAL into the database file off the writer's path.
//!
//! By default SQLite checkpoints inside the commit that crosses 1,000 WAL
//! pages: that batch then copies megabytes into the database file and
//! fsyncs it before its commit returns, and ingest stalls meanwhile
//! (a third of the commit time in `bench/replay.sh`). Here a task runs a
//! passive checkpoint on a connection of the read pool after each commit
//! ([`crate::store::Store::commit`]), which copies what it can while the
//! next batch is already being written. The
//! writer's own automatic checkpoint stays as a backstop, at a threshold
//! the background task keeps the WAL far below.

use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::Notify;

/// The WAL size (in pages: 16 KiB in stores created since page_size was
/// set, 4 KiB before) past which a commit checkpoints by itself: reached
/// only if the background task falls behind; it bounds the WAL at ~64 MB
/// (~16 MB in older stores).
pub const BACKSTOP: &str = "PRAGMA wal_autocheckpoint = 4096";

/// Wakes the background checkpoint; one per SQLite store.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    wake: Arc<Notify>,
}

impl Checkpointer {
    /// Starts the background task on `pool`; it ends when the pool closes.
    pub fn start(pool: AnyPool) -> Checkpointer {
        let wake = Arc::new(Notify::new());
        let waiting = wake.clone();
        tokio::spawn(async move {
            loop {
                waiting.notified().await;
                // Commits that land while a checkpoint runs leave one
                // pending wake-up, so the WAL they wrote is taken next.
                match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&pool).await {
                    Ok(_) => {}
                    Err(_) if pool.is_closed() => break,
                    Err(e) => tracing::debug!(error = %e, "background checkpoint skipped"),
                }
            }
        });
        Checkpointer { wake }
    }

    /// A transaction committed: its WAL pages can go to the database file.
    pub fn committed(&self) {
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::config::Config;
    use crate::store::Store;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_committed_batch_reaches_the_database_file_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        let text = format!("[database]\nurl = \"sqlite:{}\"\n", db.display());
        let store = Store::open(&Config::parse(&text, "t").unwrap()).await.unwrap();
        // 1 MB committed behind the store's back stays in the WAL: it is
        // far below the backstop (64 MB).
        let mut tx = store.begin_write().await.unwrap();
        sqlx::query("CREATE TABLE filler (data BLOB)")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO filler VALUES (zeroblob(1048576))")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let file = || std::fs::metadata(&db).unwrap().len();
        assert!(file() < 1_048_576, "not checkpointed before a store commit");
        // The next commit through the store wakes the checkpoint, which
        // takes the whole WAL, the megabyte included.
        let mut tx = store.begin_write().await.unwrap();
        sqlx::query("INSERT INTO filler VALUES (x'00')")
            .execute(&mut *tx)
            .await
            .unwrap();
        store.commit(tx).await.unwrap();
        let started = Instant::now();
        while file() < 1_048_576 && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(file() >= 1_048_576, "the WAL was checkpointed: {} bytes", file());
        store.close().await;
    }

    /// Every SQLite connection, the writer's and the readers', commits
    /// durably (WAL, synchronous FULL) and keeps statement journals in
    /// memory instead of spilling them to temp files.
    #[tokio::test]
    async fn every_connection_commits_durably_and_journals_statements_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("[database]\nurl = \"sqlite:{}/m.db\"\n", dir.path().display());
        let store = Store::open(&Config::parse(&text, "t").unwrap()).await.unwrap();
        for pool in [store.writer(), store.pool()] {
            let mut conn = pool.acquire().await.unwrap();
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let temp: i64 = sqlx::query_scalar("PRAGMA temp_store")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(
                (mode.as_str(), sync, temp),
                ("wal", 2, 2),
                "journal_mode, synchronous (2 = FULL), temp_store (2 = MEMORY)"
            );
        }
        store.close().await;
    }
}
