//! The SQLite store `db copy` reads: opened read-only, and refused unless
//! it is at this build's schema and no running daemon is using it.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::SQLITE_MIGRATOR;
use crate::error::{Error, Result};
use crate::store::leases::SQLITE_NOW_MS;

/// Opens the store read-only; a missing file is an error, not a new store.
pub(super) async fn open_source(path: &Path) -> Result<SqlitePool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            return Err(Error::CopyRefused(format!(
                "{} is not a SQLite store file",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::CopyRefused(format!(
                "the SQLite store {} does not exist (check database.url; db copy never creates a store)",
                path.display()
            )));
        }
        Err(e) => return Err(Error::io(path, e)),
    }
    // read_only is sqlx's `mode=ro`; a path needs no URL escaping this way.
    // The copy streams each table; sqlx's worker thread reads up to
    // row_buffer_size rows ahead of it (50 by default), which for raw mails
    // of 10 MB meant 500 MB in flight. One row ahead keeps the reader busy
    // while a row is converted, and memory near the insert chunk
    // (CopyOptions::bytes_per_insert) plus a row or two.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .row_buffer_size(1)
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| Error::CopyRefused(format!("opening the SQLite store {}: {e}", path.display())))
}

/// Refuses a source whose migrations are not exactly this build's: its
/// tables would not match the ones the PostgreSQL migrations create.
pub(super) async fn check_source_schema(source: &SqlitePool, path: &Path) -> Result<()> {
    let store = format!("the SQLite store {}", path.display());
    let read = |e: sqlx::Error| Error::CopyRefused(format!("reading {store}: {e}"));
    let has_table: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_one(source)
            .await
            .map_err(read)?;
    let applied: Vec<(i64, bool, Vec<u8>)> = if has_table > 0 {
        sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
            .fetch_all(source)
            .await
            .map_err(read)?
    } else {
        Vec::new()
    };
    let known: Vec<(i64, &[u8])> = SQLITE_MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| (m.version, &*m.checksum))
        .collect();
    migration_verdict(&applied, &known).map_err(|why| Error::CopyRefused(format!("{store} {why}")))
}

/// Refuses a store that a running `mailroom run` is using: one holding a
/// mailbox's lease, or an instance whose heartbeat has not run out (both
/// on the database's clock, as the daemon reads them). The copy would be
/// complete up to its snapshot and miss every mail ingested and every
/// notification sent after it, with nothing to say so; stopping the daemon
/// first makes the copy the whole history.
pub(super) async fn refuse_if_in_use(source: &SqlitePool, path: &Path) -> Result<()> {
    let store = format!("the SQLite store {}", path.display());
    let sql = format!(
        "SELECT 'mailbox ' || name || ' is held by instance ' || holder, expires_at - {SQLITE_NOW_MS}
         FROM mailbox_leases WHERE expires_at > {SQLITE_NOW_MS}
         UNION ALL
         SELECT 'instance ' || id || CASE WHEN mailboxes = '' THEN ' (no mailboxes: sending notifications)'
                ELSE ' (mailboxes ' || REPLACE(mailboxes, char(10), ', ') || ')' END || ' is running',
                expires_at - {SQLITE_NOW_MS}
         FROM instances WHERE expires_at > {SQLITE_NOW_MS}
         ORDER BY 1"
    );
    let live: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(source)
        .await
        .map_err(|e| Error::CopyRefused(format!("reading the leases of {store}: {e}")))?;
    if live.is_empty() {
        return Ok(());
    }
    let longest = live.iter().map(|(_, ms)| *ms).max().unwrap_or(0);
    let holders: Vec<&str> = live.iter().map(|(what, _)| what.as_str()).collect();
    Err(Error::CopyRefused(format!(
        "{store} is in use by a running mailroom: {}. Stop the daemon first (e.g. systemctl stop mailroom), \
         then run db copy again: a copy taken while it runs would miss what it ingests and sends afterwards. \
         (A daemon that was killed leaves these behind until they run out, within {} s.)",
        holders.join("; "),
        (longest + 999) / 1000
    )))
}

/// Compares the source's applied migrations with this build's: `Err` says
/// what is wrong and what to do, after "the SQLite store PATH".
fn migration_verdict(applied: &[(i64, bool, Vec<u8>)], known: &[(i64, &[u8])]) -> Result<(), String> {
    let latest = known.last().map_or(0, |(v, _)| *v);
    if let Some((v, _, _)) = applied.iter().find(|(_, ok, _)| !ok) {
        return Err(format!(
            "has migration {v} recorded as failed: repair it, then run `mailroom migrate` first"
        ));
    }
    if let Some((v, _, _)) = applied.iter().find(|(v, _, _)| !known.iter().any(|(k, _)| k == v)) {
        return Err(format!(
            "has migration {v}, which this mailroom does not know (it knows up to {latest}): \
             copy it with the mailroom version that wrote it"
        ));
    }
    if let Some((v, _, _)) = applied
        .iter()
        .find(|(v, _, sum)| known.iter().any(|(k, s)| k == v && *s != sum.as_slice()))
    {
        return Err(format!(
            "has migration {v} applied from a different file than this mailroom's"
        ));
    }
    let at = applied.iter().map(|(v, _, _)| *v).max();
    if let Some((missing, _)) = known.iter().find(|(k, _)| !applied.iter().any(|(v, _, _)| v == k)) {
        let at = at.map_or("no migration at all".to_string(), |v| format!("schema version {v}"));
        return Err(format!(
            "is at {at}, behind this mailroom's {latest} (migration {missing} is missing): \
             run `mailroom migrate` first"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::migration_verdict;

    const KNOWN: &[(i64, &[u8])] = &[(1, b"a"), (2, b"b"), (3, b"c")];

    fn applied(versions: &[(i64, bool, &[u8])]) -> Vec<(i64, bool, Vec<u8>)> {
        versions.iter().map(|(v, ok, sum)| (*v, *ok, sum.to_vec())).collect()
    }

    #[test]
    fn a_current_store_passes() {
        assert_eq!(
            migration_verdict(&applied(&[(1, true, b"a"), (2, true, b"b"), (3, true, b"c")]), KNOWN),
            Ok(())
        );
    }

    #[test]
    fn a_store_behind_is_told_to_migrate() {
        let err = migration_verdict(&applied(&[(1, true, b"a"), (2, true, b"b")]), KNOWN).unwrap_err();
        assert!(
            err.contains("schema version 2") && err.contains("run `mailroom migrate` first"),
            "{err}"
        );
        let err = migration_verdict(&[], KNOWN).unwrap_err();
        assert!(
            err.contains("no migration at all") && err.contains("mailroom migrate"),
            "{err}"
        );
    }

    #[test]
    fn failed_foreign_and_changed_migrations_are_refused() {
        let err = migration_verdict(&applied(&[(1, true, b"a"), (2, false, b"b")]), KNOWN).unwrap_err();
        assert!(err.contains("failed"), "{err}");
        let err = migration_verdict(
            &applied(&[(1, true, b"a"), (2, true, b"b"), (3, true, b"c"), (4, true, b"d")]),
            KNOWN,
        )
        .unwrap_err();
        assert!(err.contains("migration 4") && err.contains("up to 3"), "{err}");
        let err = migration_verdict(&applied(&[(1, true, b"a"), (2, true, b"X"), (3, true, b"c")]), KNOWN).unwrap_err();
        assert!(err.contains("different file"), "{err}");
    }
}
