//! The PostgreSQL database `db copy` fills: reached, and refused unless it
//! is empty.

use std::str::FromStr;
use std::time::Duration;

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
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .map_err(unreachable)
}

/// Locks every table against writers for the rest of the transaction, then
/// refuses when any of them has a row: a copy merged into existing data
/// would clash on ids, or worse, quietly mix two desks' histories.
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
