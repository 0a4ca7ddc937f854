//! Moving SQLite's WAL into the database file off the writer's path.
//!
//! By default SQLite checkpoints inside the commit that crosses 1,000 WAL
//! pages: that batch then copies megabytes into the database file and
//! fsyncs it before its commit returns, and ingest stalls meanwhile
//! (a third of the commit time in `bench/replay.sh`). Here a task on its
//! own connection runs a passive checkpoint after each batch commit, which
//! copies what it can while the next batch is already being written. The
//! writer's own automatic checkpoint stays as a backstop, at a threshold
//! the background task keeps the WAL far below.

use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::Notify;

/// The WAL size (pages of 4 KiB) past which a commit checkpoints by itself:
/// reached only if the background task falls behind; it bounds the WAL at
/// ~64 MB.
pub const BACKSTOP: &str = "PRAGMA wal_autocheckpoint = 16384";

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

    /// A batch committed: its WAL pages can go to the database file.
    pub fn committed(&self) {
        self.wake.notify_one();
    }
}
