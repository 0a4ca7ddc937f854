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

/// SQLite's clock in milliseconds, as SQL (for `db copy` too, which reads
/// a store's leases without opening it as a [`Store`]).
pub(crate) const SQLITE_NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
/// PostgreSQL's clock in milliseconds, as SQL (also read with the write
/// lock: see [`Store::now`]).
pub(super) const POSTGRES_NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

impl Store {
    /// The database's clock in milliseconds, as SQL: instances on machines
    /// whose clocks disagree still agree on when a lease ran out.
    pub(super) fn db_now_ms(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => SQLITE_NOW_MS,
            Backend::Postgres => POSTGRES_NOW_MS,
        }
    }

    /// The database's clock in unix seconds. Outbox claims are written and
    /// checked on it: a sender on a machine whose clock runs ahead would
    /// otherwise see another instance's claims run out early and send the
    /// same notification again.
    pub async fn clock(&self) -> Result<i64> {
        Ok(self.clock_ms().await?.div_euclid(1000))
    }

    /// The database's clock in milliseconds.
    pub(super) async fn clock_ms(&self) -> Result<i64> {
        let sql = format!("SELECT {}", self.db_now_ms());
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(self.pool())
            .await?)
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
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether `holder` could take the lease on `name` now: nobody holds
    /// it, it ran out, or it is already `holder`'s. Only a hint (another
    /// instance may take it next); [`Store::hold_mailbox`] decides.
    pub async fn mailbox_is_free(&self, name: &str, holder: &str) -> Result<bool> {
        let sql = format!(
            "SELECT COUNT(*) FROM mailbox_leases WHERE name = $1 AND holder <> $2 AND expires_at > {}",
            self.db_now_ms()
        );
        let taken: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .bind(holder)
            .fetch_one(self.pool())
            .await?;
        Ok(taken == 0)
    }

    /// Gives the lease up (on shutdown), so a standby takes over at once
    /// instead of when it would have expired.
    pub async fn release_mailbox(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM mailbox_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.writer())
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

impl Store {
    /// Says that instance `id`, watching `mailboxes` (names, sorted, one
    /// per line), is alive for `ttl` more; returns how many live instances
    /// watch the same mailboxes (this one included).
    pub async fn instance_heartbeat(&self, id: &str, mailboxes: &str, ttl: Duration) -> Result<i64> {
        let now = self.db_now_ms();
        let sql = format!(
            "INSERT INTO instances (id, mailboxes, expires_at) VALUES ($1, $2, {now} + $3)
             ON CONFLICT (id) DO UPDATE SET mailboxes = excluded.mailboxes, expires_at = excluded.expires_at"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(mailboxes)
            .bind(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
            .execute(self.writer())
            .await?;
        let sql = format!("SELECT COUNT(*) FROM instances WHERE expires_at > {now} AND mailboxes = $1");
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(mailboxes)
            .fetch_one(self.pool())
            .await?)
    }

    /// Drops the rows of instances gone for a day (killed, never stopped),
    /// so the table stays small; once per start is enough.
    pub async fn forget_stale_instances(&self) -> Result<()> {
        let sql = format!(
            "DELETE FROM instances WHERE expires_at < {} - 86400000",
            self.db_now_ms()
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(self.writer()).await?;
        Ok(())
    }

    /// Instance `id` is stopping: the others' fair share grows at once.
    pub async fn instance_gone(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM instances WHERE id = $1")
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

/// Who this process is, in lease rows and outbox claim tokens: the host
/// name tells instances on different machines apart, the pid and start time
/// processes on one machine (and a restarted process from its past self),
/// and 32 random bits containers that share a host name, each its binary
/// as pid 1, started in the same millisecond: with one id both would hold
/// every lease, two sessions on each mailbox (found by a review).
pub fn instance_id() -> &'static str {
    static ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        // Seeded from the operating system's randomness, per process.
        let random = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), started) as u32;
        format!("{host}:{}:{started}.{random:08x}", std::process::id())
    });
    &ID
}

#[cfg(test)]
mod tests {
    /// The pid stays the second field (what `status` readers and the
    /// benchmark take it from), and the id ends in random bits.
    #[test]
    fn an_instance_id_names_host_pid_and_start_and_ends_in_random_bits() {
        let id = super::instance_id();
        let fields: Vec<&str> = id.split(':').collect();
        assert_eq!(fields.len(), 3, "{id}");
        assert_eq!(fields[1], std::process::id().to_string());
        let (started, random) = fields[2].split_once('.').unwrap();
        assert!(started.parse::<u128>().is_ok() && random.len() == 8, "{id}");
        assert!(u32::from_str_radix(random, 16).is_ok(), "{id}");
    }
}
