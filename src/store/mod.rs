//! The store: everything mailroom knows, in SQLite by default.
//!
//! SQLite runs in WAL mode with `synchronous = FULL`: a batch that
//! committed survives a power cut, which is what lets the IMAP side mark a
//! mail seen only after its commit. Plain SQL with `$n` placeholders (no
//! compile-time checked macros) keeps the door open for PostgreSQL without a
//! second code path in the pipeline.

pub mod apply;
pub mod attachments;
pub mod changes;
pub mod copy;
pub mod directory;
pub mod mailboxes;
pub mod outbox;
pub mod snapshot;
pub mod views;

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::config::Config;
use crate::error::{Error, Result};

/// The connection to the store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    attachments: attachments::AttachmentDir,
}

/// One transaction: a batch of mail or one CLI change.
pub type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// The embedded migrations (`migrations/sqlite`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

impl Store {
    /// Opens (creating if needed) the database of `config` and runs pending
    /// migrations, so every command sees the current schema.
    pub async fn open(config: &Config) -> Result<Store> {
        let path = config.sqlite_path()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite:{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // Index pages of a batch stay cached between batches instead of
            // being read back (the 2 MB default holds less than one batch).
            .pragma("cache_size", "-16384");
        // Two processes opening a new database at once (the daemon and a
        // `status` call) race on creating the file, switching it to WAL and
        // applying migrations; the loser sees "locked" or "already exists"
        // and simply tries again once the winner is done.
        // Migrations are serialised across processes by a lock file beside
        // the database: SQLite would let two of them apply the same ALTER
        // TABLE one after the other.
        let lock_path = path.with_extension("migrate-lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
            .await
            .map_err(|e| Error::io(&lock_path, std::io::Error::other(e)))?
            .map_err(|e| Error::io(&lock_path, e))?;
        let mut attempt = 0;
        let opened = loop {
            attempt += 1;
            let dir = path.parent().unwrap_or(std::path::Path::new("")).join("attachments");
            match Store::connect(options.clone(), dir).await {
                Ok(store) => break Ok(store),
                Err(e) if attempt < 50 && e.is_startup_race() => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(Error::Database(e)) => break Err(Error::Config(format!("database {}: {e}", path.display()))),
                Err(e) => break Err(e),
            }
        };
        drop(lock);
        opened
    }

    async fn connect(options: SqliteConnectOptions, attachments: std::path::PathBuf) -> Result<Store> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let store = Store {
            pool,
            attachments: attachments::AttachmentDir::new(attachments),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Starts a transaction holding the write lock from the first statement:
    /// batches allocate ticket numbers and ids from the current maxima.
    pub async fn begin_write(&self) -> Result<Tx> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Where attachment files live: `attachments/` beside the database.
    pub fn attachments(&self) -> &attachments::AttachmentDir {
        &self.attachments
    }

    /// The pool, for read-only queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
