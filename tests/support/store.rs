//! Which store a test's mailroom runs on, so every test that touches the
//! store runs on both engines without a second copy of itself.
//!
//! By default a [`Scratch`] is a temp directory with a SQLite database in
//! it. With `MAILROOM_TEST_STORE=postgres` its database is a fresh
//! PostgreSQL database on `MAILROOM_TEST_POSTGRES_URL` instead (created
//! per test, dropped with the [`Scratch`]; see `postgres.rs`), and
//! attachments stay in the temp directory. CI runs the store suites once
//! per engine; a plain `cargo test` runs them on SQLite and says, once per
//! test binary, that the PostgreSQL pass did not run.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::Path;

use tempfile::TempDir;

#[path = "postgres.rs"]
pub mod postgres;

use postgres::{TestDb, URL_ENV};

/// `postgres` runs the store suites on PostgreSQL; anything else on SQLite.
pub const STORE_ENV: &str = "MAILROOM_TEST_STORE";

/// A test's temp directory and the database its mailroom uses.
pub struct Scratch {
    dir: TempDir,
    // Declared after `dir` is irrelevant: the database is dropped over the
    // network, the directory on disk.
    db: Option<TestDb>,
}

impl Scratch {
    /// A temp directory and, in the PostgreSQL pass, a fresh database.
    pub fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = if on_postgres() {
            Some(create_database())
        } else {
            if std::env::var_os(URL_ENV).is_none() {
                note_sqlite_only();
            }
            None
        };
        Scratch { dir, db }
    }

    /// A temp directory with a SQLite database in either pass: for tests of
    /// SQLite itself (`db copy` reads a SQLite store).
    pub fn sqlite() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
            db: None,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The database URL: `sqlite:<dir>/m.db`, or this test's PostgreSQL database.
    pub fn url(&self) -> String {
        self.url_at("m.db")
    }

    /// Like [`Scratch::url`] with the SQLite file at `rel` under the directory.
    pub fn url_at(&self, rel: &str) -> String {
        match &self.db {
            Some(db) => db.url().to_string(),
            None => format!("sqlite:{}", self.dir.path().join(rel).display()),
        }
    }

    /// The `[database]` section of a config (SQLite file at `m.db`).
    pub fn database_toml(&self) -> String {
        self.database_toml_at("m.db")
    }

    /// The `[database]` section with the SQLite file at `rel`. On PostgreSQL
    /// attachments go where SQLite would put them: `attachments/` beside it.
    pub fn database_toml_at(&self, rel: &str) -> String {
        let mut text = format!("[database]\nurl = '{}'\n", self.url_at(rel));
        if self.db.is_some() {
            let beside = self.dir.path().join(rel);
            let state = beside.parent().unwrap_or(self.dir.path());
            text.push_str(&format!("attachments = '{}'\n", state.join("attachments").display()));
        }
        text
    }

    /// Whether this scratch's store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.db.is_some()
    }
}

/// Whether this run is the PostgreSQL pass.
pub fn on_postgres() -> bool {
    std::env::var(STORE_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("postgres"))
}

/// Creates the test's database from sync code too (`Env::new`), on a thread
/// with a runtime of its own, as `TestDb`'s `Drop` does.
fn create_database() -> TestDb {
    let created = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(TestDb::create())
    })
    .join()
    .expect("creating the test database panicked");
    match created {
        Ok(Some(db)) => db,
        Ok(None) | Err(_) if std::env::var_os(URL_ENV).is_none() => {
            panic!("{STORE_ENV}=postgres needs {URL_ENV} (e.g. postgres://postgres@127.0.0.1:5432/test)")
        }
        Ok(None) => unreachable!("TestDb::create returns a database when {URL_ENV} is set"),
        Err(e) => panic!("{STORE_ENV}=postgres: {e}"),
    }
}

/// Says once per test binary, past libtest's capture, that the store tests
/// ran on SQLite only (without a server; with one, CI's second pass runs
/// them on PostgreSQL).
fn note_sqlite_only() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: PostgreSQL pass of the store tests (they ran on SQLite; set {STORE_ENV}=postgres and {URL_ENV} to run them on PostgreSQL, as CI does)"
        );
    });
}
