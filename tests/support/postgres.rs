//! A fresh PostgreSQL database per test, on the server `MAILROOM_TEST_POSTGRES_URL` names.
//!
//! ```ignore
//! let Some(db) = postgres::TestDb::create().await.unwrap() else { return };
//! let mut conn = db.connect().await; // or PgConnection::connect(db.url())
//! ```
//!
//! The URL points at any database the role can connect to (CI:
//! `postgres://postgres@127.0.0.1:5432/test`, trust auth); [`TestDb::create`] connects there and
//! runs `CREATE DATABASE mailroom_test_<pid>_<n>`, and dropping the [`TestDb`] runs
//! `DROP DATABASE ... WITH (FORCE)` (PostgreSQL 13+), which ends connections a test left open.
//! A database left behind by a killed run has a dead process's pid in its name and is dropped
//! before a later run with the same pid creates it again.
//!
//! Without the variable, [`TestDb::create`] prints `SKIPPED: ...` straight to the real stderr
//! (past libtest's capture, like `dovecot.rs`) and returns `Ok(None)`; with
//! `MAILROOM_REQUIRE_POSTGRES` set (CI) it returns `Err` instead, so a missing server fails the
//! run rather than passing it. A set variable whose server cannot be reached is an `Err` too.
//!
//! The connection uses sqlx's default `sslmode=prefer`: TLS (rustls on ring) when the server
//! offers it, which is how the tests exercise the TLS path. Add `?sslmode=disable` to the URL
//! to test without.

#![allow(dead_code)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, Executor, PgConnection};

pub const URL_ENV: &str = "MAILROOM_TEST_POSTGRES_URL";
pub const REQUIRE_ENV: &str = "MAILROOM_REQUIRE_POSTGRES";

/// A URL as a message may show it: CI may put a password in
/// MAILROOM_TEST_POSTGRES_URL, and test output ends up in its logs.
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// A PostgreSQL feature the server lacks: skipped visibly, or a failure
/// when PostgreSQL tests are required (CI), so a test of it cannot pass
/// without having run.
pub fn lacking(what: &str) {
    assert!(
        std::env::var_os(REQUIRE_ENV).is_none(),
        "{REQUIRE_ENV} is set but {what}: the test cannot run"
    );
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("SKIPPED: {what}; the test did not run\n").as_bytes(),
    );
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database of its own, dropped with this value.
#[derive(Debug)]
pub struct TestDb {
    /// The URL the test was given (the maintenance connection).
    admin_url: String,
    name: String,
    url: String,
}

impl TestDb {
    /// Creates a fresh database, or `Ok(None)` (after a `SKIPPED:` line) when no server is
    /// configured and none is required.
    pub async fn create() -> Result<Option<TestDb>, String> {
        let url = std::env::var(URL_ENV).ok().filter(|u| !u.trim().is_empty());
        let required = std::env::var_os(REQUIRE_ENV).is_some();
        let Some(admin_url) = url else {
            return Self::missing_outcome(required);
        };
        let name = format!(
            "mailroom_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(&admin_url, &name)?;
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .map_err(|e| format!("{URL_ENV}={}: cannot connect: {e}", shown(&admin_url)))?;
        // A leftover of a killed run with the same pid (no live process has it).
        admin
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            ))))
            .await
            .map_err(|e| format!("dropping leftover database {name}: {e}"))?;
        admin
            .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))))
            .await
            .map_err(|e| format!("CREATE DATABASE {name} on {}: {e}", shown(&admin_url)))?;
        let _ = admin.close().await;
        Ok(Some(TestDb { admin_url, name, url }))
    }

    /// What [`TestDb::create`] does without `MAILROOM_TEST_POSTGRES_URL`.
    pub fn missing_outcome(required: bool) -> Result<Option<TestDb>, String> {
        missing_is_fatal(required)?;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: no PostgreSQL server (set {URL_ENV}, e.g. postgres://postgres@127.0.0.1:5432/test); PostgreSQL tests did not run"
        );
        Ok(None)
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to this test's database.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", shown(&self.url)))
    }
}

impl Drop for TestDb {
    /// Drops the database on a thread of its own with its own runtime: `Drop` cannot await,
    /// and may run inside (or outside) the test's runtime.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin
                    .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    ))))
                    .await?;
                admin.close().await?;
                Ok::<_, sqlx::Error>(())
            })
            .map_err(std::io::Error::other)
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = writeln!(std::io::stderr(), "warning: DROP DATABASE {}: {e}", self.name);
            }
            Err(_) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "warning: DROP DATABASE {}: the thread panicked",
                    self.name
                );
            }
        }
    }
}

/// `url` with its database (the path) replaced by `name`, keeping user, host and parameters.
pub fn with_database(url: &str, name: &str) -> Result<String, String> {
    let scheme_end = url
        .find("://")
        .ok_or_else(|| format!("{URL_ENV}={url}: not a postgres://... URL"))?
        + 3;
    let (head, query) = match url.find('?') {
        Some(q) => url.split_at(q),
        None => (url, ""),
    };
    let authority_end = head[scheme_end..].find('/').map_or(head.len(), |i| scheme_end + i);
    Ok(format!("{}/{name}{query}", &head[..authority_end]))
}

/// Without a server: a failure naming CI's variable when it is set (a
/// skip there would hide the PostgreSQL pass), else nothing (a skip).
fn missing_is_fatal(required: bool) -> Result<(), String> {
    if required {
        return Err(format!(
            "{URL_ENV} is not set but {REQUIRE_ENV} is (e.g. {URL_ENV}=postgres://postgres@127.0.0.1:5432/test)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{REQUIRE_ENV, missing_is_fatal, shown, with_database};

    /// Without a server, CI's variable turns the visible skip into a
    /// failure that names it; without the variable the tests skip.
    #[test]
    fn a_missing_server_fails_only_when_required() {
        let err = missing_is_fatal(true).unwrap_err();
        assert!(err.contains(REQUIRE_ENV), "{err}");
        assert_eq!(missing_is_fatal(false), Ok(()));
    }

    /// Messages quote the URL without its password (CI logs keep them).
    #[test]
    fn a_url_is_shown_without_its_password() {
        let url = shown("postgres://postgres:Hunter2-CI-secret@127.0.0.1:5432/test");
        assert!(!url.contains("Hunter2"), "{url}");
        assert_eq!(url, "postgres://postgres:***@127.0.0.1:5432/test");
        assert_eq!(shown("postgres://postgres@h/test"), "postgres://postgres@h/test");
    }

    #[test]
    fn database_is_replaced_in_the_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=require", "x").unwrap(),
            "postgres://u:p@h/x?sslmode=require"
        );
        assert_eq!(with_database("postgres://h:5432", "x").unwrap(), "postgres://h:5432/x");
        assert_eq!(
            with_database("postgresql://h?sslmode=disable", "x").unwrap(),
            "postgresql://h/x?sslmode=disable"
        );
        assert!(with_database("nonsense", "x").is_err());
    }
}
