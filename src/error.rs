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

    /// The database server could not be reached (refused, unknown host,
    /// no answer): a failure of the moment, not of the config.
    #[error("{0}")]
    Unreachable(String),

    /// The daemon stopped because one of its tasks died; systemd restarts it.
    #[error("{0}")]
    Daemon(String),

    /// A batch left uncommitted because one ahead of it failed for the
    /// moment: committing it would put it before that one. It is fetched
    /// (or replayed) again after it, in order.
    #[error("not committed: {0}")]
    Deferred(String),

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
            | Error::Template { .. }
            | Error::CopyRefused(_) => 2,
            _ => 1,
        }
    }

    /// Whether the database failed for the moment (unreachable, busy or
    /// out of space, a deadlock) rather than refusing the data written. A
    /// batch that fails so is retried whole later; any other failure sends
    /// its mails one by one, so the mail at fault is quarantined and the
    /// others go on. A file error is not of the moment: writing one mail's
    /// attachment can fail for that mail alone (too large for the volume or
    /// a file-size limit), and retrying the chunk would stall the mailbox.
    /// Nor is a protocol error: the driver refusing a statement (more
    /// parameters than the wire format carries) fails the same way on
    /// every retry, while a connection that breaks fails as I/O.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Deferred(_) => true,
            Error::Database(e) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| transient_code(&code)),
                _ => false,
            },
            _ => false,
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

/// Database error codes of the moment: SQLite's BUSY, LOCKED, IOERR and FULL
/// (primary codes; extended ones carry them in the low byte), PostgreSQL's
/// serialization failure, deadlock, lock not available, connection
/// exceptions (08), insufficient resources (53) and operator intervention
/// (57: shutdown, crash recovery, a statement cancelled by
/// `statement_timeout`). A batch that always runs past the timeout fails
/// whole again each time, visibly (`last_error` names the timeout): split
/// mail by mail instead, a slow moment of the server would quarantine
/// readable mail.
fn transient_code(code: &str) -> bool {
    // SQLite's codes have at most four digits; PostgreSQL's SQLSTATEs five.
    if let Ok(n) = code.parse::<u32>()
        && code.len() <= 4
    {
        return matches!(n & 0xff, 5 | 6 | 10 | 13);
    }
    matches!(code, "40001" | "40P01" | "55P03")
        || code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
}

#[cfg(test)]
mod transient_tests {
    use super::transient_code;

    #[test]
    fn codes_of_the_moment_are_told_from_refusals_of_the_data() {
        for code in [
            "5", "6", "10", "13", "261", "517", "40001", "40P01", "08006", "53100", "57P01",
        ] {
            assert!(transient_code(code), "{code}");
        }
        // SQLite: CONSTRAINT (19) and its extended codes (2067 UNIQUE); PostgreSQL:
        // unique_violation, not_null_violation, check_violation.
        for code in ["19", "2067", "787", "23505", "23502", "23514", "22001"] {
            assert!(!transient_code(code), "{code}");
        }
    }
}
