//! Mailbox leases: with several instances on one database, each mailbox is
//! ingested by one of them at a time.
//!
//! A lease is a row with a holder and an expiry on the database's clock.
//! Taking, renewing and checking are one statement, so two instances
//! racing for a free mailbox cannot both win, on SQLite or PostgreSQL.

use std::collections::HashMap;
use std::time::Duration;

use super::{Backend, Store};
use crate::error::Result;

impl Store {
    /// The database's clock in milliseconds, as SQL: instances on machines
    /// whose clocks disagree still agree on when a lease ran out.
    fn db_now_ms(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
            Backend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    /// Takes the lease on mailbox `name` for `holder`, or renews it, for
    /// `ttl` from now. True if `holder` holds it afterwards: it was free,
    /// expired, or already `holder`'s.
    pub async fn hold_mailbox(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = self.db_now_ms();
        let sql = format!(
            "INSERT INTO mailbox_leases (name, holder, acquired_at, expires_at) VALUES ($1, $2, {now}, {now} + $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
               acquired_at = CASE WHEN mailbox_leases.holder = excluded.holder
                                  THEN mailbox_leases.acquired_at ELSE excluded.acquired_at END
             WHERE mailbox_leases.holder = excluded.holder OR mailbox_leases.expires_at <= excluded.acquired_at"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(holder)
            .bind(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up (on shutdown), so a standby takes over at once
    /// instead of when it would have expired.
    pub async fn release_mailbox(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM mailbox_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Who holds each mailbox now (unexpired leases only), for `status`.
    pub async fn mailbox_holders(&self) -> Result<HashMap<String, String>> {
        let sql = format!(
            "SELECT name, holder FROM mailbox_leases WHERE expires_at > {}",
            self.db_now_ms()
        );
        let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().collect())
    }
}

/// Who this process is, in lease rows and outbox claim tokens: the host
/// name tells instances on different machines apart, the pid and start time
/// processes on one machine (and a restarted process from its past self).
pub fn instance_id() -> &'static str {
    static ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        format!("{host}:{}:{started}", std::process::id())
    });
    &ID
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    async fn store(dir: &std::path::Path) -> Store {
        let text = format!("[database]\nurl = 'sqlite:{}'\n", dir.join("m.db").display());
        Store::open(&Config::parse(&text, "test").unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn one_holder_at_a_time_until_the_lease_runs_out_or_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path()).await;
        let ttl = Duration::from_millis(300);
        assert!(s.hold_mailbox("support", "a", ttl).await.unwrap());
        assert!(!s.hold_mailbox("support", "b", ttl).await.unwrap(), "held by a");
        assert!(
            s.hold_mailbox("other", "b", ttl).await.unwrap(),
            "leases are per mailbox"
        );
        assert!(s.hold_mailbox("support", "a", ttl).await.unwrap(), "a renews");
        assert_eq!(s.mailbox_holders().await.unwrap()["support"], "a");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(s.mailbox_holders().await.unwrap().is_empty(), "both expired");
        assert!(
            s.hold_mailbox("support", "b", ttl).await.unwrap(),
            "b takes over an expired lease"
        );
        assert!(!s.hold_mailbox("support", "a", ttl).await.unwrap(), "a lost it");
        s.release_mailbox("support", "a").await.unwrap();
        assert!(
            !s.hold_mailbox("support", "a", ttl).await.unwrap(),
            "a cannot release b's lease"
        );
        s.release_mailbox("support", "b").await.unwrap();
        assert!(
            s.hold_mailbox("support", "a", ttl).await.unwrap(),
            "released: free at once"
        );
    }
}
