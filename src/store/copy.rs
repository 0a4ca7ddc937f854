//! `mailroom db copy`: moves a SQLite store into an empty PostgreSQL
//! database, so a desk that outgrows SQLite keeps all its history: the
//! directory, every ticket, every mail with its raw bytes, the outbox, the
//! quarantine and the mailbox positions.
//!
//! All or nothing: the rows go in inside one PostgreSQL transaction, which
//! commits only after every table's row count was checked on both sides.
//! The source is opened read-only (`mode=ro`) and read inside one
//! transaction, so a daemon still writing to it cannot make the copy see
//! half a batch. Ids are copied as they are (ticket numbers are what
//! customers quote), and afterwards every identity sequence is moved past
//! the largest copied id, so new rows do not collide with copied ones.
//!
//! The tables and columns are read from the databases (`copy/schema.rs`),
//! so a later migration's table or column is copied without a change here.
//!
//! The triggers of `migrations/postgres` leave copied rows alone:
//! `contacts_assign_id` gives an id only to a contact inserted without one,
//! and every copied contact has its id; `contacts_email_immutable` fires on
//! an UPDATE of the email, and the copy only inserts contacts (its one
//! UPDATE fills in references of a table to itself, `tickets.related_ticket`).
//! They stay enabled, so the copied data passes the same checks as any
//! writer's.

mod rows;
mod schema;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, SqliteConnection};

use crate::config::redact_url;
use crate::error::{Error, Result};
use schema::{Table, ident};

/// The schema the source must be at: this build's SQLite migrations.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");
/// The schema the copy creates on the target first.
static PG_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// How the copy runs. The chunk defaults suit any store; tests make chunks
/// tiny to cross chunk boundaries with little data.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Rows per INSERT at most (fewer for wide tables: PostgreSQL takes at
    /// most 65,535 parameters per statement).
    pub rows_per_insert: usize,
    /// Bytes per INSERT at most, roughly (at least one row), so a chunk of
    /// large raw mails does not have to fit in memory at once.
    pub bytes_per_insert: usize,
    /// Store U+FFFD for each NUL character in text instead of stopping:
    /// SQLite keeps NULs in text (a mail body with a NUL byte has one in
    /// its decoded text and in the notifications quoting it), PostgreSQL's
    /// text cannot hold them. Off by default, so that a copy is identical
    /// unless the user agreed otherwise; the raw mail (BYTEA) is never touched.
    pub replace_nul: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            rows_per_insert: 1_000,
            bytes_per_insert: 16 << 20,
            replace_nul: false,
        }
    }
}

/// What a finished copy did, for the CLI to print.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The target URL with its password masked.
    pub target: String,
    /// Every table, in the order copied (referenced tables first).
    pub tables: Vec<TableCopy>,
    /// Rows over all tables.
    pub total: u64,
}

/// Rows copied into one table (checked against both databases).
#[derive(Debug, Clone, Serialize)]
pub struct TableCopy {
    /// The table's name (the same on both sides).
    pub table: String,
    /// Rows inserted, equal to the source's and the target's count.
    pub rows: u64,
    /// Text values stored with U+FFFD for NUL ([`CopyOptions::replace_nul`]).
    pub nul_replaced: u64,
}

/// Copies the SQLite store at `sqlite_path` into the empty PostgreSQL
/// database at `pg_url` with the default [`CopyOptions`]; see the module
/// documentation for what is guaranteed.
pub async fn copy_to_postgres(sqlite_path: &Path, pg_url: &str) -> Result<CopyReport> {
    copy_to_postgres_with(sqlite_path, pg_url, &CopyOptions::default()).await
}

/// [`copy_to_postgres`] with explicit [`CopyOptions`] (chunk sizes, NUL
/// replacement).
///
/// Refuses ([`Error::CopyRefused`], nothing written) when the source does
/// not exist or is not at this build's schema, when the target cannot be
/// reached or has a row in any table, or when the two schemas differ; fails
/// ([`Error::CopyFailed`], rolled back) when a value cannot be stored as it
/// is or the row counts do not match. Errors name the target by its
/// password-less URL.
pub async fn copy_to_postgres_with(sqlite_path: &Path, pg_url: &str, options: &CopyOptions) -> Result<CopyReport> {
    let target = redact_url(pg_url);
    let source = open_source(sqlite_path).await?;
    let result = async {
        check_source_schema(&source, sqlite_path).await?;
        let pg = open_target(pg_url, &target).await?;
        let copied = async {
            PG_MIGRATOR
                .run(&pg)
                .await
                .map_err(|e| Error::CopyRefused(format!("creating the schema on {target}: {e}")))?;
            copy(&source, &pg, &target, options).await
        }
        .await;
        pg.close().await;
        copied
    }
    .await;
    source.close().await;
    result
}

/// Opens the store read-only; a missing file is an error, not a new store.
async fn open_source(path: &Path) -> Result<SqlitePool> {
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
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| Error::CopyRefused(format!("opening the SQLite store {}: {e}", path.display())))
}

/// Refuses a source whose migrations are not exactly this build's: its
/// tables would not match the ones the PostgreSQL migrations create.
async fn check_source_schema(source: &SqlitePool, path: &Path) -> Result<()> {
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

async fn open_target(pg_url: &str, target: &str) -> Result<PgPool> {
    if !crate::config::database::is_postgres_url(pg_url) {
        return Err(Error::CopyRefused(format!(
            "{target} is not a PostgreSQL URL (postgres://USER@HOST/DATABASE)"
        )));
    }
    if let Some(problem) = crate::config::database::url_problem(pg_url) {
        return Err(Error::CopyRefused(format!("the URL {target}: {problem}")));
    }
    let options =
        PgConnectOptions::from_str(pg_url).map_err(|e| Error::CopyRefused(format!("the URL {target}: {e}")))?;
    let unreachable = |e: sqlx::Error| Error::CopyRefused(format!("cannot connect to {target}: {e}"));
    // The pool retries a refused connection until its timeout and then
    // reports only the timeout; one plain connection first fails at once
    // and says why (refused, no such database, authentication).
    PgConnection::connect_with(&options)
        .await
        .map_err(unreachable)?
        .close()
        .await
        .map_err(unreachable)?;
    // One connection: the migrations, then the copy's one transaction.
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(unreachable)
}

/// The copy proper: one read transaction on the source, one write
/// transaction on the target, committed only after the counts match.
async fn copy(source: &SqlitePool, pg: &PgPool, target: &str, options: &CopyOptions) -> Result<CopyReport> {
    let begin = |e: sqlx::Error| Error::CopyRefused(format!("starting the copy: {e}"));
    let mut src = source.begin().await.map_err(begin)?;
    let mut dst = pg.begin().await.map_err(begin)?;
    let copied = async {
        let tables = schema::discover(&mut src, &mut dst, target).await?;
        refuse_unless_empty(&mut dst, &tables, target).await?;
        let plan = rows::Plan {
            rows: options.rows_per_insert.max(1),
            bytes: options.bytes_per_insert.max(1),
            replace_nul: options.replace_nul,
        };
        let mut report = Vec::new();
        for table in &tables {
            let copied = rows::copy_table(&mut src, &mut dst, table, plan).await?;
            tracing::info!(table = %table.name, rows = copied.rows, "db copy: table copied");
            report.push(TableCopy {
                table: table.name.clone(),
                rows: copied.rows,
                nul_replaced: copied.nul_replaced,
            });
        }
        reset_sequences(&mut dst, &tables)
            .await
            .map_err(|e| failed(format!("moving the id sequences past the copied ids: {e}")))?;
        verify_counts(&mut src, &mut dst, &report, target).await?;
        Ok(report)
    }
    .await;
    // The source was only read: ending its transaction either way is fine.
    let _ = src.rollback().await;
    match copied {
        Ok(tables) => {
            dst.commit()
                .await
                .map_err(|e| failed(format!("committing on {target}: {e}")))?;
            Ok(CopyReport {
                target: target.to_string(),
                total: tables.iter().map(|t| t.rows).sum(),
                tables,
            })
        }
        Err(e) => {
            let _ = dst.rollback().await;
            Err(e)
        }
    }
}

/// Locks every table against writers for the rest of the transaction, then
/// refuses when any of them has a row: a copy merged into existing data
/// would clash on ids, or worse, quietly mix two desks' histories.
async fn refuse_unless_empty(dst: &mut PgConnection, tables: &[Table], target: &str) -> Result<()> {
    let names: Vec<String> = tables.iter().map(|t| ident(&t.name)).collect();
    let lock = format!("LOCK TABLE {} IN EXCLUSIVE MODE", names.join(", "));
    sqlx::query(AssertSqlSafe(lock))
        .execute(&mut *dst)
        .await
        .map_err(|e| Error::CopyRefused(format!("locking the tables of {target}: {e}")))?;
    for (table, name) in tables.iter().zip(&names) {
        let has_rows: bool = sqlx::query_scalar(AssertSqlSafe(format!("SELECT EXISTS (SELECT 1 FROM {name})")))
            .fetch_one(&mut *dst)
            .await
            .map_err(|e| Error::CopyRefused(format!("reading table {} of {target}: {e}", table.name)))?;
        if has_rows {
            return Err(Error::CopyRefused(format!(
                "{target} is not empty: table {} already has rows. db copy only fills an empty database; \
                 copy into a new one (CREATE DATABASE) instead",
                table.name
            )));
        }
    }
    Ok(())
}

/// Sets every sequence behind a column (identities, serials) to the
/// column's largest copied value, so the next generated id follows it.
/// Tables left empty keep their fresh sequences.
async fn reset_sequences(dst: &mut PgConnection, tables: &[Table]) -> Result<(), sqlx::Error> {
    for table in tables {
        let name = ident(&table.name);
        let sequences: Vec<(String, String)> = sqlx::query_as(
            "SELECT attname::text, pg_get_serial_sequence($1, attname)::text FROM pg_attribute
             WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
               AND pg_get_serial_sequence($1, attname) IS NOT NULL",
        )
        .bind(&name)
        .fetch_all(&mut *dst)
        .await?;
        for (column, sequence) in sequences {
            let sql = format!(
                "SELECT setval($1::regclass, m) FROM (SELECT MAX({}) AS m FROM {name}) AS s WHERE m IS NOT NULL",
                ident(&column)
            );
            let set: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
                .bind(&sequence)
                .fetch_optional(&mut *dst)
                .await?;
            tracing::debug!(table = %table.name, column, sequence, ?set, "db copy: sequence set");
        }
    }
    Ok(())
}

/// The last check before commit: each table holds as many rows on the
/// target as the source's snapshot and as were inserted.
async fn verify_counts(
    src: &mut SqliteConnection,
    dst: &mut PgConnection,
    copied: &[TableCopy],
    target: &str,
) -> Result<()> {
    for table in copied {
        let sql = format!("SELECT COUNT(*) FROM {}", ident(&table.table));
        let in_source: i64 = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
            .fetch_one(&mut *src)
            .await
            .map_err(|e| failed(format!("counting {} in the SQLite store: {e}", table.table)))?;
        let in_target: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut *dst)
            .await
            .map_err(|e| failed(format!("counting {} on {target}: {e}", table.table)))?;
        if in_source != in_target || u64::try_from(in_target).ok() != Some(table.rows) {
            return Err(failed(format!(
                "table {}: {in_source} rows in the SQLite store, {} copied, {in_target} on {target}",
                table.table, table.rows
            )));
        }
    }
    Ok(())
}

fn failed(message: String) -> Error {
    Error::CopyFailed(format!("{message} (rolled back: nothing was copied)"))
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
