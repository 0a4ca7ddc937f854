//! The outbox as a work queue: claiming due notifications, recording what
//! the relay said, and the hand actions on it.
//!
//! Claiming and recording are separate transactions around the SMTP
//! exchange, because a transaction must never wait on the network. A claim
//! carries a token and a lease: a result is recorded only against the token
//! that claimed the row, and a row whose lease ran out (its process died)
//! is due again. The loop guard is decided inside the claim transaction, so
//! two senders cannot both see "9 sent" and both send the 10th.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{FromRow, Row};

use super::flag::flag;
use super::sql::Sql;
use super::{Backend, Store};
use crate::error::{Error, Result};

/// The loop guard's window.
pub const LOOP_WINDOW_SECS: i64 = 600;

/// A notification handed to this process for sending.
#[derive(Debug, Clone, FromRow)]
pub struct Claimed {
    pub id: i64,
    pub ticket: Option<i64>,
    pub event: String,
    pub contact_id: Option<i64>,
    #[sqlx(rename = "to_addr")]
    pub to: String,
    pub subject: String,
    pub body: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    /// Space-separated, as stored.
    pub references_ids: String,
    /// Attempts including this one.
    pub attempts: i64,
    pub queued_at: i64,
    /// `queued`, or `sending` when taken over from a sender whose lease ran
    /// out (it may have sent the mail).
    pub status: String,
    #[sqlx(skip)]
    pub token: String,
}

/// What to claim and under which rules.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules {
    pub now: i64,
    /// Queued rows due by this time (at most `now`): `outbox send` passes
    /// its own start, so a row it deferred and that falls due again while
    /// it still runs waits for the next run instead of being tried over
    /// and over within one.
    pub due_by: i64,
    /// At most this many rows.
    pub limit: usize,
    pub lease_secs: i64,
    /// Per recipient per ticket in [`LOOP_WINDOW_SECS`].
    pub per_ticket_limit: u32,
}

/// What came of one SMTP attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The relay accepted it; its reply.
    Sent(String),
    /// Try again later (connection, timeout, 4xx).
    Transient(String),
    /// Handed back without a try (it could not start within the claim's
    /// lease): queued again, due now, the attempt not counted, so a
    /// backlog behind a slow relay neither backs off nor ages to `failed`
    /// for mail never offered to it.
    Unsent(String),
    /// Never try again (5xx for this recipient, an unusable address).
    Permanent {
        error: String,
        /// A rejection of the recipient by a server (counts towards the
        /// contact's hard-bounce limit), not a fault of our own data.
        bounce: bool,
    },
}

/// How a recorded result ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recorded {
    pub sent: usize,
    pub deferred: usize,
    pub failed: usize,
    /// Contacts that just reached the hard-bounce limit.
    pub undeliverable: usize,
    /// Results that arrived after the lease ran out and another sender
    /// took the row over; not recorded.
    pub stale: usize,
}

/// How results turn into the next state.
#[derive(Debug, Clone, Copy)]
pub struct RecordRules {
    pub now: i64,
    pub max_age_secs: i64,
    pub retry_min_secs: i64,
    pub retry_max_secs: i64,
    pub hard_bounce_limit: u32,
}

/// Delay before attempt `attempts + 1` after `attempts` transient failures:
/// `min` doubling each time, capped at `max`.
pub fn retry_delay(attempts: i64, min: i64, max: i64) -> i64 {
    let doublings = (attempts - 1).clamp(0, 30) as u32;
    min.saturating_mul(1i64 << doublings).min(max)
}

static CLAIMS: AtomicU64 = AtomicU64::new(0);

/// A token no other claim (in this or another process) carries.
fn new_token(now: i64) -> String {
    format!(
        "{}-{now}-{}",
        super::leases::instance_id(),
        CLAIMS.fetch_add(1, Ordering::Relaxed)
    )
}

impl Store {
    /// Claims due rows, oldest first; rows over the loop guard's limit are
    /// marked `suppressed` instead. Returns the claimed rows and how many
    /// were suppressed.
    pub async fn claim_outbox(&self, rules: ClaimRules) -> Result<(Vec<Claimed>, usize)> {
        let mut tx = self.begin_outbox().await?;
        let due: Vec<Claimed> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, ticket, event, contact_id, to_addr, subject, body, message_id, in_reply_to, references_ids,
                    attempts + 1 AS attempts, COALESCE(queued_at, created_at) AS queued_at, status
             FROM outbox
             WHERE (status = 'queued' AND next_attempt_at <= $1) OR (status = 'sending' AND lease_until <= $2)
             ORDER BY id LIMIT $3{}",
            self.row_lock(true)
        )))
        .bind(rules.due_by.min(rules.now))
        .bind(rules.now)
        .bind(rules.limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            return Ok((due, 0));
        }
        self.lock_tickets(&mut tx, &due).await?;
        let mut recent = recent_counts(&mut tx, &due, rules.now).await?;
        let barred = barred_contacts(&mut tx, &due).await?;
        let token = new_token(rules.now);
        let (mut claimed, mut suppressed) = (Vec::new(), Vec::new());
        let mut withheld: HashMap<(Barred, bool), Vec<i64>> = HashMap::new();
        for mut row in due {
            // Queued before the contact was set to be ignored or became
            // undeliverable (a retry that waited, one fan-out of several
            // tickets): what the operator or the bounces said holds now.
            if let Some(why) = row.contact_id.and_then(|c| barred.get(&c)) {
                // A row taken over from a lapsed lease may have gone out
                // meanwhile: its error says so rather than "never sent".
                let lapsed = row.status == "sending";
                withheld.entry((*why, lapsed)).or_default().push(row.id);
                continue;
            }
            if let Some(ticket) = row.ticket {
                let n = recent.entry((ticket, row.to.to_lowercase())).or_default();
                *n += 1;
                if *n > i64::from(rules.per_ticket_limit) {
                    suppressed.push(row.id);
                    continue;
                }
            }
            row.token = token.clone();
            claimed.push(row);
        }
        if !claimed.is_empty() {
            let mut q = Sql::new(&tx, "UPDATE outbox SET status = 'sending', claim_token = ");
            q.push_bind(&token)
                .push(", claimed_at = ")
                .push_bind(rules.now)
                .push(", lease_until = ")
                // `now` is the clock's whole second, up to a second before
                // the claim: rounded up, the lease never ends early.
                .push_bind(rules.now + rules.lease_secs + 1)
                .push(", attempts = attempts + 1 WHERE id");
            q.push_in(claimed.iter().map(|r| r.id));
            q.build().execute(&mut *tx).await?;
        }
        if !suppressed.is_empty() {
            let mut q = Sql::new(&tx, "UPDATE outbox SET status = 'suppressed', last_error = ");
            q.push_bind(format!(
                "loop guard: more than {} notifications to this recipient about this ticket in {} minutes",
                rules.per_ticket_limit,
                LOOP_WINDOW_SECS / 60
            ))
            .push(", claim_token = NULL, lease_until = NULL WHERE id");
            q.push_in(suppressed.iter().copied());
            q.build().execute(&mut *tx).await?;
        }
        let mut count = suppressed.len();
        for ((why, lapsed), ids) in withheld {
            count += ids.len();
            let why = if lapsed {
                format!(
                    "{}; an earlier attempt whose answer was never recorded may have sent it",
                    why.why()
                )
            } else {
                why.why().to_string()
            };
            let mut q = Sql::new(&tx, "UPDATE outbox SET status = 'suppressed', last_error = ");
            q.push_bind(why)
                .push(", claim_token = NULL, lease_until = NULL WHERE id");
            q.push_in(ids);
            q.build().execute(&mut *tx).await?;
        }
        self.commit_outbox(tx).await?;
        Ok((claimed, count))
    }

    /// Keeps this sender's claim on row `id` (its `token`) for another
    /// `lease` on the database's clock, while its send is still in flight:
    /// a relay that filters mail before it answers can take minutes, and a
    /// claim that ran out meanwhile was taken over and the mail sent again.
    /// False when the claim is no longer this sender's.
    pub async fn keep_claim(&self, id: i64, token: &str, lease: std::time::Duration) -> Result<bool> {
        let sql = format!(
            "UPDATE outbox SET lease_until = {} / 1000 + $1 WHERE id = $2 AND status = 'sending' AND claim_token = $3",
            self.db_now_ms()
        );
        let kept = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX) + 1)
            .bind(id)
            .bind(token)
            .execute(self.writer())
            .await?
            .rows_affected();
        Ok(kept == 1)
    }

    /// Records the relay's answers in one transaction.
    pub async fn record_deliveries(&self, results: &[(Claimed, Delivery)], rules: RecordRules) -> Result<Recorded> {
        let mut tx = self.begin_outbox().await?;
        let mut done = Recorded::default();
        let mut bounced = Vec::new();
        let mut delivered = Vec::new();
        for (row, delivery) in results {
            let (status, next, error, reply) = match delivery {
                Delivery::Sent(reply) => ("sent", rules.now, None, Some(reply.as_str())),
                Delivery::Transient(e) if rules.now - row.queued_at >= rules.max_age_secs => (
                    "failed",
                    rules.now,
                    Some(format!("gave up after {} attempts: {e}", row.attempts)),
                    None,
                ),
                Delivery::Transient(e) => (
                    "queued",
                    rules.now + retry_delay(row.attempts, rules.retry_min_secs, rules.retry_max_secs),
                    Some(e.clone()),
                    None,
                ),
                Delivery::Unsent(e) => ("queued", rules.now, Some(e.clone()), None),
                Delivery::Permanent { error, .. } => ("failed", rules.now, Some(error.clone()), None),
            };
            // The claim counted the attempt; one never made is taken back.
            let uncounted = i64::from(matches!(delivery, Delivery::Unsent(_)));
            let updated = sqlx::query(
                "UPDATE outbox SET status = $1, next_attempt_at = $2, last_error = $3, server_reply = COALESCE($4, server_reply),
                        sent_at = CASE WHEN $1 = 'sent' THEN $5 ELSE sent_at END, claim_token = NULL, lease_until = NULL,
                        attempts = attempts - $8
                 WHERE id = $6 AND status = 'sending' AND claim_token = $7",
            )
            .bind(status)
            .bind(next)
            .bind(error)
            .bind(reply)
            .bind(rules.now)
            .bind(row.id)
            .bind(&row.token)
            .bind(uncounted)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                done.stale += 1;
                continue;
            }
            match status {
                "sent" => done.sent += 1,
                "queued" => done.deferred += 1,
                _ => done.failed += 1,
            }
            match (delivery, row.contact_id) {
                (Delivery::Permanent { bounce: true, .. }, Some(contact)) => bounced.push(contact),
                (Delivery::Sent(_), Some(contact)) => delivered.push(contact),
                _ => {}
            }
        }
        // The answers are recorded first, in a transaction of their own
        // that touches no contact: their claims' leases run out soon, and
        // waiting there for a batch's write lock (as counting a bounce in
        // the same transaction did, taking the rows' locks before the
        // facts' count, the reverse of a batch's order) could let a sent
        // row lapse and go out again from another instance.
        self.commit_outbox(tx).await?;
        done.undeliverable = self.count_bounces(bounced, delivered, rules.hard_bounce_limit).await?;
        Ok(done)
    }

    /// Counts a round's bounces against their contacts and clears the
    /// count of contacts a mail reached, as any writer of facts does,
    /// under the write lock; returns how many contacts became
    /// undeliverable. A crash between the answers' commit and this one
    /// loses a round's counts, never an answer.
    async fn count_bounces(&self, mut bounced: Vec<i64>, mut delivered: Vec<i64>, limit: u32) -> Result<usize> {
        // Once per contact a round: three notifications refused at once
        // by one full mailbox are one incident, not the three that mark
        // it undeliverable for good. In id order, as every writer locks
        // contacts, so two of them cannot deadlock.
        bounced.sort_unstable();
        bounced.dedup();
        // A mailbox that took a mail works: the bounces counted before were
        // not for good, and the limit counts bounces in a row. Looked up
        // first, so that a round with nothing to clear takes no lock and
        // writes no contact (on PostgreSQL any statement on contacts voids
        // carried snapshots).
        delivered.retain(|c| bounced.binary_search(c).is_err());
        let mut counted: Vec<i64> = Vec::new();
        if !delivered.is_empty() {
            let mut conn = self.pool.acquire().await?;
            let mut q = Sql::new(
                &conn,
                "SELECT id FROM contacts WHERE hard_bounces > 0 AND NOT undeliverable AND id",
            );
            q.push_in(delivered.iter().copied());
            counted = q
                .build()
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
        }
        if bounced.is_empty() && counted.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        if !counted.is_empty() {
            let mut q = Sql::new(
                &tx,
                "UPDATE contacts SET hard_bounces = 0 WHERE hard_bounces > 0 AND id",
            );
            q.push_in(counted);
            q.build().execute(&mut *tx).await?;
        }
        let mut undeliverable = 0;
        for contact in bounced {
            if super::directory::count_hard_bounce(&mut tx, contact, limit).await? {
                undeliverable += 1;
            }
        }
        self.commit(tx).await?;
        Ok(undeliverable)
    }

    /// When the next queued row falls due (for the worker's sleep).
    pub async fn next_outbox_due(&self) -> Result<Option<i64>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN status = 'queued' THEN next_attempt_at ELSE lease_until END)
             FROM outbox WHERE status IN ('queued', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(next)
    }

    /// Rows waiting (queued or sending) and given up (failed), for STATUS=.
    pub async fn outbox_backlog(&self) -> Result<(i64, i64)> {
        Ok(sqlx::query_as(
            // Two counts over the status index, not a scan of every row ever
            // sent: this runs on every STATUS= tick.
            "SELECT (SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending')),
                    (SELECT COUNT(*) FROM outbox WHERE status = 'failed')",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// `outbox retry ID`: a failed or suppressed row is queued again, now,
    /// with a fresh `max_age` allowance and its backoff started over. A row
    /// for a contact still ignored or undeliverable is refused: it would
    /// only be suppressed again at its next claim.
    pub async fn retry_outbox(&self, id: i64, now: i64) -> Result<()> {
        let mut tx = self.begin_outbox().await?;
        let row: Option<(String, Option<i64>, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT status, contact_id, to_addr FROM outbox WHERE id = $1{}",
            self.row_lock(false)
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, contact_id, to)) = row else {
            return Err(Error::NotFound(format!("outbox row {id}")));
        };
        if !matches!(status.as_str(), "failed" | "suppressed") {
            return Err(Error::Usage(format!(
                "outbox row {id} is {status}; only failed or suppressed rows can be retried"
            )));
        }
        let barred_now = match contact_id {
            Some(contact) => barred(&mut tx, vec![contact]).await?.remove(&contact),
            None => None,
        };
        if let Some(barred) = barred_now {
            return Err(Error::Usage(format!(
                "outbox row {id} is for {to}: {}; it would be suppressed again (`{}` first)",
                barred.why(),
                barred.remedy(&to)
            )));
        }
        sqlx::query(
            "UPDATE outbox SET status = 'queued', next_attempt_at = $1, queued_at = $1, claim_token = NULL,
                    lease_until = NULL, attempts = 0 WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(())
    }
}

impl Store {
    /// A transaction for the outbox alone. On PostgreSQL it does not take
    /// the batch writers' lock: claims lock their rows one by one (SKIP
    /// LOCKED), so instances sending and instances ingesting do not wait for
    /// each other. SQLite has one writer in any case.
    async fn begin_outbox(&self) -> Result<super::Tx> {
        match self.backend() {
            Backend::Sqlite => self.begin_write().await,
            Backend::Postgres => self.begin().await,
        }
    }

    /// The row-locking clause of a SELECT in [`Store::begin_outbox`]'s
    /// transaction: rows another instance is claiming right now are skipped
    /// (`skip`) or waited for. SQLite's write lock already covers it.
    fn row_lock(&self, skip: bool) -> &'static str {
        match (self.backend(), skip) {
            (Backend::Sqlite, _) => "",
            (Backend::Postgres, true) => " FOR UPDATE SKIP LOCKED",
            (Backend::Postgres, false) => " FOR UPDATE",
        }
    }

    /// The loop guard counts a ticket's recent notifications before
    /// claiming more: on PostgreSQL two instances claiming rows of the same
    /// ticket take turns, so together they cannot pass its limit. Tickets
    /// are locked in ascending order, so two claims never wait on each other
    /// in a circle.
    async fn lock_tickets(&self, tx: &mut super::Tx, due: &[Claimed]) -> Result<()> {
        if self.backend() == Backend::Sqlite {
            return Ok(());
        }
        let mut tickets: Vec<i64> = due.iter().filter_map(|r| r.ticket).collect();
        tickets.sort_unstable();
        tickets.dedup();
        for ticket in tickets {
            // The two-key form keeps these apart from the batch writers' lock.
            sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                .bind(TICKET_LOCKS)
                .bind(ticket as i32)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// The first key of the per-ticket advisory locks of the loop guard.
const TICKET_LOCKS: i32 = 0x6f75_7462; // "outb"

/// Why a contact must not be mailed any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Barred {
    Ignored,
    Undeliverable,
}

impl Barred {
    /// As `last_error` and the CLI say it.
    fn why(self) -> &'static str {
        match self {
            Barred::Ignored => "the contact is set to be ignored",
            Barred::Undeliverable => "the contact is undeliverable (hard bounces)",
        }
    }

    /// The command that lifts it for the contact at `email`.
    fn remedy(self, email: &str) -> String {
        match self {
            Barred::Ignored => format!("contacts ignore {email} --off"),
            Barred::Undeliverable => format!("contacts deliverable {email}"),
        }
    }
}

/// The contacts of `due` that must not be mailed any more, with why.
async fn barred_contacts(tx: &mut super::Tx, due: &[Claimed]) -> Result<HashMap<i64, Barred>> {
    barred(tx, due.iter().filter_map(|r| r.contact_id).collect()).await
}

/// Which of the contacts `ids` are barred from mail, and why.
async fn barred(tx: &mut super::Tx, mut ids: Vec<i64>) -> Result<HashMap<i64, Barred>> {
    ids.sort_unstable();
    ids.dedup();
    let mut barred = HashMap::new();
    if ids.is_empty() {
        return Ok(barred);
    }
    let mut q = Sql::new(tx, "SELECT id, ignore, undeliverable FROM contacts WHERE id");
    q.push_in(ids);
    for r in q.build().fetch_all(&mut **tx).await? {
        let id: i64 = r.try_get("id")?;
        if flag(&r, "ignore")? {
            barred.insert(id, Barred::Ignored);
        } else if flag(&r, "undeliverable")? {
            barred.insert(id, Barred::Undeliverable);
        }
    }
    Ok(barred)
}

/// Notifications each (ticket, recipient) of `due` got in the loop window:
/// sent, or handed to a live sender.
async fn recent_counts(tx: &mut super::Tx, due: &[Claimed], now: i64) -> Result<HashMap<(i64, String), i64>> {
    let mut tickets: Vec<i64> = due.iter().filter_map(|r| r.ticket).collect();
    tickets.sort_unstable();
    tickets.dedup();
    let mut counts = HashMap::new();
    if tickets.is_empty() {
        return Ok(counts);
    }
    let mut q = Sql::new(
        tx,
        "SELECT ticket, lower(to_addr), COUNT(*) FROM outbox
         WHERE (status = 'sent' OR (status = 'sending' AND lease_until > ",
    );
    q.push_bind(now)
        .push(")) AND claimed_at >= ")
        .push_bind(now - LOOP_WINDOW_SECS)
        .push(" AND ticket");
    q.push_in(tickets.iter().copied());
    q.push(" GROUP BY 1, 2");
    let rows: Vec<(i64, String, i64)> = q.build_query_as().fetch_all(&mut **tx).await?;
    for (ticket, to, n) in rows {
        counts.insert((ticket, to), n);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delay_doubles_from_min_to_max() {
        let d: Vec<i64> = (1..=8).map(|a| retry_delay(a, 60, 3600)).collect();
        assert_eq!(d, vec![60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_delay(1_000, 60, 3600), 3600);
    }
}
