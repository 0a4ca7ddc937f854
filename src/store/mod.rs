//! The store: everything mailroom knows, in SQLite by default and in
//! PostgreSQL when several instances share one database.
//!
//! SQLite runs in WAL mode with `synchronous = FULL`: a batch that
//! committed survives a power cut, which is what lets the IMAP side mark a
//! mail seen only after its commit. Plain SQL with `$n` placeholders (no
//! compile-time checked macros) runs on both engines through sqlx's `Any`
//! driver, so the pipeline has one code path.

pub mod apply;
pub mod attachments;
pub mod changes;
pub mod checkpoint;
pub mod copy;
pub mod directory;
mod domain_forms;
pub mod flag;
pub mod leases;
pub mod mailboxes;
pub mod outbox;
pub mod snapshot;
pub mod sql;
pub mod views;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor};

use crate::config::{Config, redact_url};
use crate::error::{Error, Result};

/// Which database engine is behind the store. Only the store looks at it:
/// the few statements whose SQL differs (locking, skip-locked claims) pick
/// their form here, and nothing above the store branches on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file, one machine: the embedded default.
    Sqlite,
    /// Several instances on one database.
    Postgres,
}

/// The connection to the store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where batches write: SQLite, one connection of its own (see
    /// `connect_sqlite`); PostgreSQL, the pool itself.
    writer: AnyPool,
    backend: Backend,
    attachments: attachments::AttachmentDir,
    /// SQLite only: checkpoints the WAL after each commit.
    checkpoint: Option<checkpoint::Checkpointer>,
    /// Commits made through this store (any clone) that may have changed
    /// what a batch decides on (directory, contacts, tickets, messages).
    /// A pipeline that keeps its snapshot from one batch to the next trusts
    /// it only while nothing but its own batches moved this count.
    facts_changed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// SQLite: how many times the writer connection was opened.
    writer_connections: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// PostgreSQL: the database's clock less this machine's, in
    /// milliseconds, as last read (see [`Store::now`]); 0 on SQLite.
    clock_offset_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

/// See [`Store::writer_mark`]. SQLite's `data_version` is each
/// connection's own count, so a replaced writer connection (its ping
/// failed) could show an old value again: the connection's number is part
/// of the mark (always 0 on PostgreSQL, whose count is the database's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterMark {
    connection: u64,
    /// SQLite's `PRAGMA data_version`, or PostgreSQL's `facts_version`.
    data_version: i64,
}

/// One transaction: a batch of mail or one CLI change.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// The embedded migrations, one set per engine; `tests/postgres_schema.rs`
/// proves the two produce the same schema.
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Whether a connection failed because the PostgreSQL server is not up
/// yet (not listening, starting up, out of connection slots), which a
/// start waits out, rather than refusing us for good (password, database).
fn not_up_yet(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        // cannot_connect_now, too_many_connections
        sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("57P03" | "53300")),
        _ => false,
    }
}

/// Tables only the PostgreSQL schema has: its own bookkeeping, no data of
/// the store's (`db copy` neither copies nor expects them).
pub const POSTGRES_ONLY_TABLES: &[&str] = &["facts_version"];

/// Process-wide SQLite settings, made before any connection opens: SQLite
/// takes them only before it initialises, so `main` calls this first.
///
/// Memory statistics off: with them on (SQLite's default), every
/// allocation SQLite makes takes one global mutex, which the batch writer,
/// the readers loading snapshots and the checkpointer, each on a thread of
/// its own, contend for; in a replay's profile the futex wake-ups of that
/// mutex were the largest single cost after SQLite's own work. mailroom
/// never reads those statistics.
pub fn configure_sqlite() {
    // SAFETY: an integer option, set before any SQLite call in the process
    // (after one, SQLite refuses it with SQLITE_MISUSE and changes nothing).
    let rc = unsafe { libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int) };
    if rc != libsqlite3_sys::SQLITE_OK {
        tracing::debug!(rc, "SQLite was initialised already: memory statistics stay on");
    }
}

/// How long a PostgreSQL session may sit in a transaction doing nothing
/// before the server ends it: far past any pause of a batch (deciding 200
/// mails, writing their attachment files), and what bounds how long every
/// instance waits when one dies or freezes holding the write lock. Without
/// it the lock stayed held until the server's TCP keepalive found the dead
/// peer, two hours by default, and every instance and CLI write waited.
pub const IDLE_IN_TRANSACTION: &str = "60s";

/// Settings of every pooled PostgreSQL session: [`IDLE_IN_TRANSACTION`]
/// (unless the URL's `options[idle_in_transaction_session_timeout]` set
/// one), and TCP keepalives that find a vanished peer in under a minute
/// instead of two hours.
async fn guard_session(conn: &mut sqlx::AnyConnection) -> std::result::Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SELECT set_config('idle_in_transaction_session_timeout', '{IDLE_IN_TRANSACTION}', false)
             WHERE current_setting('idle_in_transaction_session_timeout') = '0';
         SET tcp_keepalives_idle = 20; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 4"
    )))
    .execute(conn)
    .await
    .map(|_| ())
}

/// A PostgreSQL database's encoding, read by [`not_utf8`]'s callers.
pub(crate) const SERVER_ENCODING: &str = "SELECT current_setting('server_encoding')";

/// What is wrong with a PostgreSQL database of `encoding`, if it is not
/// UTF8: mail in every language is stored, and SQLite's text (`db copy`)
/// is UTF-8. Said the same way at start and by `db copy`.
pub(crate) fn not_utf8(encoding: &str) -> Option<String> {
    (encoding != "UTF8")
        .then(|| format!("it is encoded {encoding}, not UTF8: create it with ENCODING 'UTF8' TEMPLATE template0"))
}

/// The key of the advisory lock that makes PostgreSQL writers take turns, as
/// `BEGIN IMMEDIATE` does on SQLite ("mailroom" in ASCII).
const WRITE_LOCK: i64 = 0x6d61_696c_726f_6f6d;

impl Store {
    /// Opens (creating if needed) the database of `config` and runs pending
    /// migrations, so every command sees the current schema.
    pub async fn open(config: &Config) -> Result<Store> {
        sqlx::any::install_default_drivers();
        if config.database.is_postgres() {
            return Store::open_postgres(config).await;
        }
        let path = config.sqlite_path()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
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
        let attachments = config.sqlite_attachments()?;
        let mut attempt = 0;
        let opened = loop {
            attempt += 1;
            match Store::connect_sqlite(&path, attachments.clone()).await {
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

    async fn connect_sqlite(path: &Path, attachments: PathBuf) -> Result<Store> {
        // The Any driver takes a URL, which carries the file and the open
        // mode but not the pragmas; those are set on every new connection.
        let url = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .to_url_lossy();
        let options = AnyConnectOptions::from_url(&url)?;
        // One connection first, reading the file's header: the pool retries
        // a connection that fails (a file that is not a database, one it
        // may not read) until its 60 s acquire timeout, logging each try,
        // and then says only that it timed out.
        {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options).await?;
            conn.execute("PRAGMA schema_version").await?;
            let _ = sqlx::Connection::close(conn).await;
        }
        // Readers keep a small page cache: every commit of the writer
        // empties it, so a larger one would only hold memory (peak RSS of
        // `bench/replay.sh` 57-61 MB with 1 MB, up to 64 MB with 2 MB).
        let pool = Store::sqlite_pool(4, 1_024, None).connect_with(options.clone()).await?;
        // Batches always write through the same connection, whose index
        // pages stay cached between batches instead of being read back
        // (4 MB: with the reader's cache and the batches in flight, peak
        // RSS stays under 64 MB). SQLite drops a
        // connection's page cache whenever another connection wrote, and the
        // pool hands its connections out in turn, so batches spread over
        // four connections each read their index pages back from disk.
        // Not replaced on a timer: each replacement voids a carried snapshot
        // (see `writer_mark`).
        let writer_connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = Store::sqlite_pool(1, 4_096, Some(writer_connections.clone()))
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_with(options)
            .await?;
        let store = Store {
            facts_changed: Default::default(),
            writer_connections,
            clock_offset_ms: Default::default(),
            checkpoint: Some(checkpoint::Checkpointer::start(pool.clone())),
            pool,
            writer,
            backend: Backend::Sqlite,
            attachments: attachments::AttachmentDir::new(attachments),
        };
        store.migrate().await?;
        store.upgrade_stored_forms().await;
        Ok(store)
    }

    /// A pool of up to `size` SQLite connections with mailroom's pragmas,
    /// each caching up to `cache_kib` KiB of pages; `opened` counts the
    /// connections it opens.
    fn sqlite_pool(
        size: u32,
        cache_kib: u32,
        opened: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    ) -> AnyPoolOptions {
        AnyPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(Duration::from_secs(60))
            .after_connect(move |conn, _| {
                let opened = opened.clone();
                Box::pin(async move {
                    if let Some(opened) = opened {
                        opened.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    // WAL + synchronous FULL: a committed batch survives a
                    // power cut. Pages of 16 KiB (for a new store; an
                    // existing one keeps its own): a mail's raw bytes and
                    // text fit in one page instead of a chain of overflow
                    // pages, and the WAL needs a quarter of the write calls.
                    // Statement journals in memory: every multi-row INSERT
                    // inside the batch's transaction keeps one (to undo
                    // just that statement on a constraint error), and past
                    // 64 KiB SQLite spills it to a temp file, which cost
                    // two thirds of a replay's write calls.
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000; \
                         PRAGMA cache_size = -{cache_kib}; PRAGMA temp_store = MEMORY;"
                    )))
                    .await?;
                    conn.execute(checkpoint::BACKSTOP).await?;
                    Ok(())
                })
            })
    }

    async fn open_postgres(config: &Config) -> Result<Store> {
        let url = config.database.postgres_url()?;
        let url = url.as_str();
        let shown = redact_url(url);
        if let Some(warning) = config.database.tls_warning() {
            tracing::warn!("{warning}");
        }
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|e| Error::Config(format!("database.url {shown}: {e}")))?;
        // One connection first: a pool that cannot connect says only "timed
        // out", and the cause (refused, unknown host, wrong password, no
        // such database) is what the operator needs. A server that is not
        // up yet (refusing connections, starting, full) is waited for, as
        // at boot or during its restart; anything else fails at once.
        let timeout = config.database.connect_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(250);
        loop {
            let attempt = tokio::time::timeout_at(
                deadline,
                <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options),
            )
            .await;
            let e = match attempt {
                Ok(Ok(conn)) => {
                    let _ = sqlx::Connection::close(conn).await;
                    break;
                }
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(Error::Unreachable(format!(
                        "database {shown}: no connection within {timeout:?} (database.connect_timeout)"
                    )));
                }
            };
            let text = redact_in(&e.to_string(), url);
            if !not_up_yet(&e) {
                return Err(Error::Config(format!("database {shown}: {text}")));
            }
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(Error::Unreachable(format!(
                    "database {shown}: cannot connect within {timeout:?} (database.connect_timeout): {text}"
                )));
            }
            tracing::warn!("database {shown} is not accepting connections yet ({text}); retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
        let pool = AnyPoolOptions::new()
            .max_connections(config.database.connections)
            .acquire_timeout(timeout)
            .after_connect(|conn, _| Box::pin(async move { guard_session(conn).await }))
            .connect_with(options)
            .await
            .map_err(|e| Error::Config(format!("database {shown}: {}", redact_in(&e.to_string(), url))))?;
        let attachments = config
            .database
            .attachments
            .clone()
            .unwrap_or_else(|| PathBuf::from("attachments"));
        let store = Store {
            writer: pool.clone(),
            pool,
            backend: Backend::Postgres,
            attachments: attachments::AttachmentDir::new(attachments),
            checkpoint: None,
            facts_changed: Default::default(),
            writer_connections: Default::default(),
            clock_offset_ms: Default::default(),
        };
        store.require_utf8(&shown).await?;
        store.adopt_clock(store.clock_ms().await?);
        // sqlx's PostgreSQL migrator serialises concurrent runs with an
        // advisory lock of its own: several instances may start at once.
        store.migrate().await?;
        store.upgrade_stored_forms().await;
        Ok(store)
    }

    /// Refuses a database whose encoding is not UTF-8: a LATIN1 or WIN1252
    /// database refuses every character it cannot hold (a Slovak or
    /// Cyrillic mail, an emoji), so such mail was quarantined by its bytes
    /// alone with no ticket, where SQLite takes it; SQL_ASCII takes
    /// anything but compares bytes, not characters.
    async fn require_utf8(&self, shown: &str) -> Result<()> {
        let encoding: String = sqlx::query_scalar(SERVER_ENCODING).fetch_one(&self.pool).await?;
        match not_utf8(&encoding) {
            Some(problem) => Err(Error::Config(format!("database {shown}: {problem}"))),
            None => Ok(()),
        }
    }

    /// Brings rows an earlier release stored in another form to today's
    /// (see `domain_forms`). A failure leaves the store as usable as it
    /// was, so it is reported, not fatal.
    async fn upgrade_stored_forms(&self) {
        if let Err(e) = self.bring_domains_to_one_form().await {
            tracing::warn!(error = %e, "could not rewrite Unicode account domains and contact addresses in ASCII");
        }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATOR.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATOR.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Which engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    /// Starts a transaction holding the write lock from the first statement:
    /// batches allocate ticket numbers and ids from the current maxima, so
    /// writers take turns (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
    /// transaction-scoped advisory lock, released by commit or rollback).
    pub async fn begin_write(&self) -> Result<Tx> {
        match self.backend {
            Backend::Sqlite => Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres => {
                let mut tx = self.writer.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                // The count of fact changes, locked from here to the commit:
                // a writer outside the advisory lock (a delivery counting a
                // bounce) waits for it before touching a fact, so none can
                // commit between this batch's check and its commit (see
                // migrations/postgres/0013_facts_version.sql).
                // The clock is read in the same round trip: see `now`.
                let db_ms = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM facts_version WHERE id = 1 FOR UPDATE",
                    leases::POSTGRES_NOW_MS
                )))
                .fetch_one(&mut *tx)
                .await?;
                self.adopt_clock(db_ms);
                Ok(tx)
            }
        }
    }

    /// Commits a transaction of [`Store::begin_write`] (or the outbox's),
    /// then lets the WAL it wrote be checkpointed in the background
    /// (SQLite), so every writer keeps the WAL short, not only batches.
    pub async fn commit(&self, tx: Tx) -> Result<()> {
        self.commit_counted(tx).await.map(|_| ())
    }

    /// [`Store::commit`], returning the count of fact-changing commits
    /// ([`Store::facts_generation`]) this one brought it to.
    pub async fn commit_counted(&self, tx: Tx) -> Result<u64> {
        // Counted before the commit: a reader of the count may see a change
        // that then failed (and reloads for nothing), never miss one.
        let generation = self.facts_changed.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.commit_quietly(tx).await?;
        Ok(generation)
    }

    /// Commits a transaction that changed no fact a batch decides on (the
    /// outbox's claims and delivery results): a carried snapshot stays good.
    pub async fn commit_outbox(&self, tx: Tx) -> Result<()> {
        self.commit_quietly(tx).await
    }

    async fn commit_quietly(&self, tx: Tx) -> Result<()> {
        tx.commit().await?;
        if let Some(c) = &self.checkpoint {
            c.committed();
        }
        Ok(())
    }

    /// How many commits through this store may have changed facts.
    pub fn facts_generation(&self) -> u64 {
        self.facts_changed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// What the store's fact-changing commits look like from inside `tx`,
    /// a [`Store::begin_write`] transaction: read again in a later batch's
    /// write turn, the same mark means nobody but this process's batches
    /// changed a fact in between (the pipeline's carry compares the mark
    /// its last batch left before committing with the next one's).
    /// SQLite: the writer connection and its `PRAGMA data_version`, which
    /// counts other connections' commits (other processes, or this one's
    /// other connections) and not its own. PostgreSQL: the count of
    /// fact-changing statements (`facts_version`, moved by triggers), which
    /// this transaction has locked, so read just before the commit it is
    /// the count the commit leaves.
    pub async fn writer_mark(&self, tx: &mut Tx) -> Result<WriterMark> {
        match self.backend {
            Backend::Sqlite => {
                let data_version = sqlx::query_scalar("PRAGMA data_version").fetch_one(&mut **tx).await?;
                Ok(WriterMark {
                    connection: self.writer_connections.load(std::sync::atomic::Ordering::SeqCst),
                    data_version,
                })
            }
            Backend::Postgres => {
                let facts = sqlx::query_scalar("SELECT facts FROM facts_version WHERE id = 1")
                    .fetch_one(&mut **tx)
                    .await?;
                Ok(WriterMark {
                    connection: 0,
                    data_version: facts,
                })
            }
        }
    }

    /// How many entries (keys, contacts, tickets, thread ids) a snapshot
    /// carried from batch to batch may hold before the next batch starts a
    /// fresh one, decided under the write lock: the bound keeps a long
    /// backlog from growing the daemon's memory. A fresh start costs a
    /// batch's loading and deciding inside its write turn, which on
    /// PostgreSQL (queries over the network, the server busy writing) is
    /// several times what it is on SQLite: there the snapshot may hold
    /// three times as much (replay of 10,000 mails: 2.06 s against 2.30 s,
    /// 5 of 6 pairs faster, then 2 of 4 in a slower hour; peak RSS +2-3
    /// MB; on SQLite no faster).
    pub fn carried_snapshot_limit(&self) -> usize {
        match self.backend {
            Backend::Sqlite => 8_000,
            Backend::Postgres => 24_000,
        }
    }

    /// Where attachment files live: `database.attachments`, else
    /// `attachments/` beside the SQLite file.
    pub fn attachments(&self) -> &attachments::AttachmentDir {
        &self.attachments
    }

    /// Where a single-statement write goes (mailbox positions, leases). On
    /// SQLite that is the batches' own connection: in-process writers then
    /// queue in turn for it, instead of polling the file lock with
    /// `busy_timeout` while one mailbox's batches keep taking it (a
    /// position update waited up to 2.3 s behind six busy mailboxes).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// The pool, for read-only queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool (SQLite: flushing the WAL).
    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// A driver error's text with the URL's password taken out, in case the
/// driver quoted the URL back.
fn redact_in(text: &str, url: &str) -> String {
    match url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_owned)) {
        Some(password) if !password.is_empty() => text.replace(&password, "***"),
        _ => text.to_owned(),
    }
}

impl Store {
    /// The time now, in unix seconds, on the database's clock: on
    /// PostgreSQL, this machine's clock corrected by how far it was from the
    /// database's when last read (at start, and in every batch's write
    /// turn); on SQLite, this machine's, which is the database's. What a
    /// batch stamps (when a mail was received, when its notifications fall
    /// due) is compared with what other instances stamp and with the outbox
    /// claims, which the database's clock decides: an instance whose clock
    /// ran an hour ahead queued its notifications due an hour late, and its
    /// mails fell outside the rate limits' windows of the others.
    pub fn now(&self) -> i64 {
        let offset = self.clock_offset_ms.load(std::sync::atomic::Ordering::Relaxed);
        (chrono::Utc::now().timestamp_millis() + offset).div_euclid(1000)
    }

    /// Records how far the database's clock, read as `db_ms` just now, is
    /// from this machine's.
    fn adopt_clock(&self, db_ms: i64) {
        let offset = db_ms - chrono::Utc::now().timestamp_millis();
        self.clock_offset_ms.store(offset, std::sync::atomic::Ordering::Relaxed);
    }
}

/// This machine's time now, in unix seconds: for what is not compared
/// across instances; see [`Store::now`] for what is.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}
