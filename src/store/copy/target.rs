//! The PostgreSQL database `db copy` fills: reached, and refused unless it
//! is empty.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

use super::schema::{Table, ident};
use crate::error::{Error, Result};

pub(super) async fn open_target(pg_url: &str, target: &str) -> Result<PgPool> {
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
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(unreachable)?;
    // SQLite's text is UTF-8: a database in another encoding would refuse
    // the first character it cannot hold, deep into the copy.
    let encoding: String = sqlx::query_scalar(crate::store::SERVER_ENCODING)
        .fetch_one(&pool)
        .await
        .map_err(unreachable)?;
    match crate::store::not_utf8(&encoding) {
        Some(problem) => Err(Error::CopyRefused(format!("{target}: {problem}"))),
        None => Ok(pool),
    }
}

/// Locks every table against writers for the rest of the transaction, then
/// refuses when any of them has a row: a copy merged into existing data
/// would clash on ids, or worse, quietly mix two desks' histories.
/// [`refuse_unless_fresh`] checked this before the migrations; this check
/// covers rows written since, by the time the copy holds the lock.
pub(super) async fn refuse_unless_empty(dst: &mut PgConnection, tables: &[Table], target: &str) -> Result<()> {
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

/// What a target may hold and still be filled: nothing at all, or this
/// mailroom's schema (some or all of its migrations) with every table empty.
/// Anything else is named, and the target is left as it was: the check runs
/// before the migrations, which would otherwise create `_sqlx_migrations`,
/// tables and functions in a database that is not the copy's, or alter a
/// mailroom schema that holds data. [`refuse_unless_empty`] checks the rows
/// again under a lock, once the schema is there.
///
/// `tables` are the tables the copy fills (the source's, whose schema is
/// this build's).
pub(super) async fn refuse_unless_fresh(
    pg: &PgPool,
    migrator: &Migrator,
    tables: &[String],
    target: &str,
) -> Result<()> {
    let read = |e: sqlx::Error| Error::CopyRefused(format!("reading what {target} holds: {e}"));
    let mut conn = pg.acquire().await.map_err(read)?;
    let objects = schema_objects(&mut conn).await.map_err(read)?;
    let ours = objects.iter().any(|(name, kind)| kind == "table" && name == MIGRATIONS);
    let mut found = Vec::new();
    if ours {
        let applied: Vec<(i64, bool, Vec<u8>)> =
            sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&mut *conn)
                .await
                .map_err(read)?;
        found.extend(foreign_migrations(&applied, migrator));
    }
    for (name, kind) in &objects {
        if kind == "table" {
            if ours && (name == MIGRATIONS || crate::store::POSTGRES_ONLY_TABLES.contains(&name.as_str())) {
                continue;
            }
            let has_rows: bool =
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT EXISTS (SELECT 1 FROM {})", ident(name))))
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(read)?;
            if has_rows {
                found.push(format!("table {name} already has rows"));
            } else if !(ours && tables.contains(name)) {
                found.push(format!("table {name}"));
            }
        } else if !(ours && kind == "function") {
            // Functions of a mailroom schema are its triggers'; anywhere
            // else, or any other object, is not the copy's to touch.
            found.push(format!("{kind} {name}"));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    const SHOWN: usize = 10;
    let more = found.len().saturating_sub(SHOWN);
    found.truncate(SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Err(Error::CopyRefused(format!(
        "{target} is not empty: {}{more}. db copy only fills an empty database (or one holding only \
         mailroom's empty schema) and has left this one as it was; copy into a new one (CREATE DATABASE) instead",
        found.join("; ")
    )))
}

/// sqlx's record of the migrations applied.
const MIGRATIONS: &str = "_sqlx_migrations";

/// The objects of the current schema that someone made, as (name, kind):
/// tables, views, sequences other than those behind a column, foreign
/// tables and functions; not what an extension brought, nor indexes,
/// triggers and constraints, which belong to a table.
async fn schema_objects(conn: &mut PgConnection) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, kind FROM (
           SELECT c.relname::text AS name,
                  CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                    WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence' ELSE 'table' END AS kind
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                               AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i'))))
           UNION ALL
           SELECT p.proname::text, 'function'
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = current_schema()
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                               AND d.deptype = 'e')
         ) AS o ORDER BY kind <> 'table', kind, name",
    )
    .fetch_all(conn)
    .await
}

/// The applied migrations (version, success, checksum) that are not this
/// mailroom's own: the schema would not be the one the copy expects.
fn foreign_migrations(applied: &[(i64, bool, Vec<u8>)], migrator: &Migrator) -> Vec<String> {
    applied
        .iter()
        .filter_map(|(version, success, checksum)| {
            let known = migrator
                .iter()
                .find(|m| m.version == *version && !m.migration_type.is_down_migration());
            match known {
                None => Some(format!("migration {version}, which this mailroom does not know")),
                Some(m) if *m.checksum != checksum[..] => Some(format!(
                    "migration {version}, from a different file than this mailroom's"
                )),
                Some(_) if !success => Some(format!("migration {version}, recorded as failed")),
                Some(_) => None,
            }
        })
        .collect()
}
