//! Ingestion progress of each watched mailbox.
//!
//! The position (UIDVALIDITY, last UID) is what makes IMAP ingestion
//! exactly-once across restarts; the state and last error are what
//! `mailroom status` and systemd's STATUS= show an operator.

use serde::Serialize;
use sqlx::FromRow;

use super::{Store, views::timestamp};
use crate::error::Result;

/// One mailbox's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, FromRow)]
pub struct MailboxState {
    pub name: String,
    pub uidvalidity: Option<i64>,
    pub last_uid: i64,
    pub ingested: i64,
    pub state: String,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub last_mail_at: Option<i64>,
    #[serde(skip)]
    pub updated_at: i64,
    #[sqlx(skip)]
    #[serde(rename = "last_mail_at")]
    pub last_mail: Option<String>,
    /// The instance whose lease covers the mailbox now (host:pid:start),
    /// when several share the database.
    #[sqlx(skip)]
    pub holder: Option<String>,
}

impl Store {
    /// The mailbox's progress (a fresh one if never seen).
    pub async fn mailbox_state(&self, name: &str) -> Result<MailboxState> {
        let row: Option<MailboxState> = sqlx::query_as(
            "SELECT name, uidvalidity, last_uid, ingested, state, last_error, last_mail_at, updated_at
             FROM mailbox_state WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.unwrap_or_else(|| MailboxState {
            name: name.to_string(),
            state: "starting".into(),
            ..Default::default()
        }))
    }

    /// Every mailbox's progress, by name.
    pub async fn mailbox_states(&self) -> Result<Vec<MailboxState>> {
        let mut rows: Vec<MailboxState> = sqlx::query_as(
            "SELECT name, uidvalidity, last_uid, ingested, state, last_error, last_mail_at, updated_at
             FROM mailbox_state ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        let mut holders = self.mailbox_holders().await?;
        for r in &mut rows {
            r.last_mail = r.last_mail_at.map(timestamp);
            r.holder = holders.remove(&r.name);
        }
        Ok(rows)
    }

    /// Records that everything up to `last_uid` under `uidvalidity` is
    /// committed and handled on the server; `added` mails were ingested.
    ///
    /// Under an unchanged UIDVALIDITY the position only grows: at a lease
    /// handover the instance giving a mailbox up may record a chunk it
    /// committed after the new holder had already recorded a later one, and
    /// moving back would make the new holder fetch those mails again. A new
    /// UIDVALIDITY replaces the position (the old UIDs mean nothing).
    /// A CASE rather than MAX()/GREATEST(), which differ between SQLite and
    /// PostgreSQL; SET reads the row as it was, so the order of the
    /// assignments does not matter.
    pub async fn advance_mailbox(&self, name: &str, uidvalidity: u32, last_uid: u32, added: usize) -> Result<()> {
        let at = self.now();
        sqlx::query(
            "INSERT INTO mailbox_state (name, uidvalidity, last_uid, ingested, state, last_mail_at, updated_at)
             VALUES ($1, $2, $3, $4, 'fetching', CASE WHEN $4 > 0 THEN $5 END, $5)
             ON CONFLICT (name) DO UPDATE SET uidvalidity = excluded.uidvalidity,
               last_uid = CASE WHEN mailbox_state.uidvalidity = excluded.uidvalidity
                                    AND mailbox_state.last_uid > excluded.last_uid
                               THEN mailbox_state.last_uid ELSE excluded.last_uid END,
               ingested = mailbox_state.ingested + excluded.ingested,
               last_mail_at = COALESCE(excluded.last_mail_at, mailbox_state.last_mail_at), updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(i64::from(uidvalidity))
        .bind(i64::from(last_uid))
        .bind(added as i64)
        .bind(at)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Records what the mailbox is doing (`idle`, `fetching`, `backoff`, ...)
    /// and the last error, if any. The error stays through the reconnection
    /// that follows it and is cleared once the mailbox is caught up
    /// (`idle`, `polling`): monitoring that alerts on it then recovers.
    /// A caught-up mailbox may still carry an error of its own (the server
    /// refusing the `after` action): that one replaces what was there.
    pub async fn set_mailbox_state(&self, name: &str, state: &str, error: Option<&str>) -> Result<()> {
        sqlx::query(
            "INSERT INTO mailbox_state (name, state, last_error, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET state = excluded.state,
               last_error = CASE WHEN excluded.state IN ('idle', 'polling') THEN excluded.last_error
                                 ELSE COALESCE(excluded.last_error, mailbox_state.last_error) END,
               updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(state)
        .bind(error)
        .bind(self.now())
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
