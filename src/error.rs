//! One error type for the whole daemon.
//!
//! Every failure a user can cause (a bad config key, a directory row that
//! names an unknown account, an attempt to change a contact's email) gets its
//! own variant so the CLI can print one clear sentence and pick the exit code
//! (2 for usage/config, 1 for runtime) without string matching.

use std::path::PathBuf;

/// Everything that can go wrong in mailroom.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read or is invalid.
    #[error("{0}")]
    Config(String),

    /// The caller asked for something invalid (bad argument, unknown id).
    #[error("{0}")]
    Usage(String),

    /// A directory row is inconsistent (unknown account, bad group, ...).
    #[error("{0}")]
    Directory(String),

    /// The thing named does not exist.
    #[error("{0} not found")]
    NotFound(String),

    /// A contact's email is its identity and can never change.
    #[error("the email of contact {0} cannot be changed (it is the contact's identity)")]
    ContactEmailImmutable(String),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A template failed to load or render.
    #[error("template {name}: {detail}")]
    Template { name: String, detail: String },

    /// The database refused an operation.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),

    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// `db copy` will not start: the source store or the target database is
    /// not in the state a copy needs (target not empty, source schema
    /// behind, ...). The message says what to do; no row was written.
    #[error("db copy: {0}")]
    CopyRefused(String),

    /// `db copy` failed while copying; its one transaction on the target
    /// was rolled back, so the target holds no copied row.
    #[error("db copy: {0}")]
    CopyFailed(String),
}

impl Error {
    /// Exit code for the CLI: 2 for what the user must fix in their input,
    /// 1 for failures at run time.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_)
            | Error::Usage(_)
            | Error::Directory(_)
            | Error::NotFound(_)
            | Error::ContactEmailImmutable(_)
            | Error::CopyRefused(_) => 2,
            _ => 1,
        }
    }

    /// A database that another process is creating or migrating right now.
    pub fn is_startup_race(&self) -> bool {
        let text = self.to_string();
        matches!(self, Error::Database(_) | Error::Migrate(_))
            && (text.contains("locked")
                || text.contains("busy")
                || text.contains("already exists")
                || text.contains("duplicate column"))
    }

    /// Wraps an I/O error with the path it concerns, so the message names it.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
