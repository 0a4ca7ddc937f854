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
mod source;
mod target;

use std::path::Path;

use serde::Serialize;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use sqlx::{AssertSqlSafe, PgConnection, SqliteConnection};

use crate::config::redact_url;
use crate::error::{Error, Result};
use schema::{Table, ident};
use source::{check_source_schema, open_source, refuse_if_in_use};
use target::{open_target, refuse_unless_empty, refuse_unless_fresh};

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
    /// Rows of `attachments` whose bytes are a file under the attachment
    /// directory (not in `attachment_content`): what the copy leaves behind.
    #[serde(skip)]
    pub attachment_files: u64,
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
/// not exist, is not at this build's schema or is in use by a running
/// daemon (a live mailbox lease or instance), when the target cannot be
/// reached or holds anything but mailroom's empty schema (checked before its
/// migrations run, so such a target is left untouched), or when the two
/// schemas differ; fails
/// ([`Error::CopyFailed`], rolled back) when a value cannot be stored as it
/// is or the row counts do not match. Errors name the target by its
/// password-less URL.
pub async fn copy_to_postgres_with(sqlite_path: &Path, pg_url: &str, options: &CopyOptions) -> Result<CopyReport> {
    let target = redact_url(pg_url);
    let source = open_source(sqlite_path).await?;
    let result = async {
        check_source_schema(&source, sqlite_path).await?;
        refuse_if_in_use(&source, sqlite_path).await?;
        let pg = open_target(pg_url, &target).await?;
        let copied = async {
            let tables = {
                let mut src = source.acquire().await.map_err(|e| {
                    Error::CopyRefused(format!("reading the SQLite store {}: {e}", sqlite_path.display()))
                })?;
                schema::sqlite_table_names(&mut src).await.map_err(|e| {
                    Error::CopyRefused(format!("reading the SQLite store {}: {e}", sqlite_path.display()))
                })?
            };
            refuse_unless_fresh(&pg, &PG_MIGRATOR, &tables, &target).await?;
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
        let files: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM attachments a
             WHERE NOT EXISTS (SELECT 1 FROM attachment_content c WHERE c.sha256 = a.sha256)",
        )
        .fetch_one(&mut *src)
        .await
        .map_err(|e| failed(format!("counting the attachment files: {e}")))?;
        Ok((report, files as u64))
    }
    .await;
    // The source was only read: ending its transaction either way is fine.
    let _ = src.rollback().await;
    match copied {
        Ok((tables, attachment_files)) => {
            dst.commit()
                .await
                .map_err(|e| failed(format!("committing on {target}: {e}")))?;
            Ok(CopyReport {
                target: target.to_string(),
                total: tables.iter().map(|t| t.rows).sum(),
                tables,
                attachment_files,
            })
        }
        Err(e) => {
            let _ = dst.rollback().await;
            Err(e)
        }
    }
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
