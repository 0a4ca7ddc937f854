//! Applying the core's decisions to the store.
//!
//! Everything one mail causes (its raw bytes, the contact, the ticket
//! change, the message row, the quarantine entry, the rendered outbox rows)
//! is written here on the caller's transaction, so it commits with the rest
//! of the batch or not at all.

use sqlx::{Row, SqliteConnection};

use crate::error::Result;
use crate::message::{Message, ParseFailure};
use crate::notify::Notice;
use crate::notify::outbox::{Cause, OutboxRow, Renderer, TicketView};
use crate::tickets::actions::{Action, ActionPlan};
use crate::tickets::plan::{ContactChange, Outcome, Plan, TicketChange};
use crate::tickets::tag::TagFormat;
use crate::tickets::TicketStatus;

/// Where and when a mail came from.
#[derive(Debug, Clone)]
pub struct Receipt<'a> {
    pub raw: &'a [u8],
    /// The replayed file, or `mailbox/UID`.
    pub source: &'a str,
    /// The processing time the core used.
    pub received_at: i64,
    /// Wall-clock time of processing.
    pub processed_at: i64,
}

/// What applying one plan did, for the summary.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub ticket: Option<i64>,
    pub contact_created: bool,
    pub notifications: usize,
}

/// Keeps the raw bytes (once per content).
async fn keep_raw(conn: &mut SqliteConnection, sha: &str, raw: &[u8]) -> Result<()> {
    sqlx::query("INSERT INTO raw_mail (sha256, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(sha)
        .bind(raw)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a mail that could not be parsed or processed: a duplicate if
/// its key was seen, else quarantined (as `reason`) with its raw bytes.
pub async fn record_unparseable(
    conn: &mut SqliteConnection,
    failure: &ParseFailure,
    receipt: &Receipt<'_>,
    reason: &str,
) -> Result<Outcome> {
    keep_raw(conn, &failure.raw_sha256, receipt.raw).await?;
    let outcome = if super::facts::is_known(conn, &failure.key).await? { Outcome::Duplicate } else { Outcome::Quarantined };
    let row: i64 = sqlx::query_scalar(
        "INSERT INTO messages (message_key, message_id, raw_sha256, source, from_addr, subject, outcome, reason, received_at, processed_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(&failure.key)
    .bind(&failure.message_id)
    .bind(&failure.raw_sha256)
    .bind(receipt.source)
    .bind(&failure.from)
    .bind(&failure.subject)
    .bind(outcome.as_str())
    .bind(&failure.reason)
    .bind(receipt.received_at)
    .bind(receipt.processed_at)
    .fetch_one(&mut *conn)
    .await?;
    if outcome == Outcome::Quarantined {
        quarantine(conn, row, reason, Some(&failure.reason), failure.from.as_deref(), failure.subject.as_deref(), receipt.received_at).await?;
    }
    Ok(outcome)
}

async fn quarantine(
    conn: &mut SqliteConnection,
    message_row: i64,
    reason: &str,
    detail: Option<&str>,
    from: Option<&str>,
    subject: Option<&str>,
    at: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO quarantine (message_row, reason, detail, from_addr, subject, received_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(message_row)
        .bind(reason)
        .bind(detail)
        .bind(from)
        .bind(subject)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Applies the plan for one parsed mail. `reprocess` names the message row
/// of a quarantined mail being given a second chance: that row is updated
/// instead of a new one being added.
pub async fn apply(
    conn: &mut SqliteConnection,
    msg: &Message,
    plan: &Plan,
    receipt: &Receipt<'_>,
    renderer: &Renderer<'_>,
    tag: &TagFormat,
    reprocess: Option<i64>,
) -> Result<Applied> {
    let mut applied = Applied::default();
    keep_raw(conn, &msg.raw_sha256, receipt.raw).await?;
    let at = receipt.received_at;

    let contact_id = match &plan.contact {
        ContactChange::None => None,
        ContactChange::Existing(id) => Some(*id),
        ContactChange::Create(c) => {
            applied.contact_created = true;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO contacts (email, first_name, last_name, account_id, created_by, created_at)
                 VALUES ($1, $2, $3, $4, 'auto', $5) RETURNING id",
            )
            .bind(&c.email)
            .bind(&c.first_name)
            .bind(&c.last_name)
            .bind(c.account_id)
            .bind(receipt.processed_at)
            .fetch_one(&mut *conn)
            .await?;
            Some(id)
        }
    };

    let ticket = match &plan.ticket {
        TicketChange::None => None,
        TicketChange::Open(t) => {
            let number: i64 = sqlx::query_scalar(
                "INSERT INTO tickets (subject, status, requester_id, account_id, service_id, related_ticket, root_message_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING number",
            )
            .bind(&t.subject)
            .bind(t.status.as_str())
            .bind(contact_id)
            .bind(t.scope.account)
            .bind(t.scope.service)
            .bind(t.related)
            .bind(&msg.message_id)
            .bind(at)
            .fetch_one(&mut *conn)
            .await?;
            Some(number)
        }
        TicketChange::Update { number, reopen } => {
            sqlx::query(
                "UPDATE tickets SET updated_at = MAX(updated_at, $2),
                   status = CASE WHEN $3 THEN 'open' ELSE status END,
                   closed_at = CASE WHEN $3 THEN NULL ELSE closed_at END
                 WHERE number = $1",
            )
            .bind(number)
            .bind(at)
            .bind(reopen)
            .execute(&mut *conn)
            .await?;
            if *reopen {
                ticket_event(conn, *number, "reopened", &format!("reopened by a reply from {}", msg.from.address), at).await?;
            }
            Some(*number)
        }
    };
    applied.ticket = ticket;

    let row_values = sqlx::query_scalar::<_, i64>(match reprocess {
        None => {
            "INSERT INTO messages (message_key, message_id, raw_sha256, source, from_addr, from_name, subject, text, class,
                                   outcome, reason, ticket, contact_id, received_at, processed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id"
        }
        Some(_) => {
            "UPDATE messages SET message_key = $1, message_id = $2, raw_sha256 = $3, from_addr = $5, from_name = $6,
               subject = $7, text = $8, class = $9, outcome = $10, reason = $11, ticket = $12, contact_id = $13,
               processed_at = $15
             WHERE id = $16 RETURNING id"
        }
    });
    let message_row = row_values
        .bind(&msg.key)
        .bind(&msg.message_id)
        .bind(&msg.raw_sha256)
        .bind(receipt.source)
        .bind(&msg.from.address)
        .bind(&msg.from.name)
        .bind(&msg.subject)
        .bind(&msg.text)
        .bind(plan.class.as_str())
        .bind(plan.outcome.as_str())
        .bind(&plan.reason)
        .bind(ticket)
        .bind(contact_id)
        .bind(receipt.received_at)
        .bind(receipt.processed_at)
        .bind(reprocess)
        .fetch_one(&mut *conn)
        .await?;

    if let (Some(t), Some(c)) = (ticket, contact_id) {
        sqlx::query("INSERT INTO ticket_participants (ticket, contact_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(t)
            .bind(c)
            .execute(&mut *conn)
            .await?;
    }
    for note in &plan.notes {
        tracing::info!(message = %msg.key, "{note}");
        if let Some(t) = ticket {
            ticket_event(conn, t, "note", note, at).await?;
        }
    }
    if plan.outcome == Outcome::Quarantined {
        let reason = plan.reason.as_deref().unwrap_or("quarantined");
        quarantine(conn, message_row, reason, None, Some(&msg.from.address), Some(&msg.subject), at).await?;
    }

    if !plan.notices.is_empty() {
        let view = match ticket {
            Some(n) => Some(ticket_view(conn, n, tag).await?),
            None => None,
        };
        let cause = Cause {
            subject: msg.subject.clone(),
            text: msg.text.clone(),
            sender_name: msg.from.name.clone().unwrap_or_default(),
            sender_email: msg.from.address.clone(),
            message_id: msg.message_id.clone(),
            key: msg.key.clone(),
        };
        for notice in &plan.notices {
            let mut notice = notice.clone();
            if notice.recipient.contact_id.is_none() && matches!(&plan.contact, ContactChange::Create(c) if c.email == notice.recipient.email) {
                notice.recipient.contact_id = contact_id;
            }
            applied.notifications += queue(conn, &notice, view.as_ref(), &cause, renderer, at).await?;
        }
    }
    Ok(applied)
}

/// Renders and queues one notice; returns 1 if a row was added (0 when the
/// same notice was queued before).
async fn queue(
    conn: &mut SqliteConnection,
    notice: &Notice,
    view: Option<&TicketView>,
    cause: &Cause,
    renderer: &Renderer<'_>,
    at: i64,
) -> Result<usize> {
    let row: OutboxRow = renderer.render(notice, view, cause)?;
    let done = sqlx::query(
        "INSERT INTO outbox (ticket, event, contact_id, to_addr, language, subject, body, message_id, in_reply_to,
                             references_ids, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(row.ticket)
    .bind(row.event.as_str())
    .bind(row.contact_id)
    .bind(&row.to)
    .bind(&row.language)
    .bind(&row.subject)
    .bind(&row.body)
    .bind(&row.message_id)
    .bind(&row.in_reply_to)
    .bind(row.references.join(" "))
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() as usize)
}

async fn ticket_event(conn: &mut SqliteConnection, ticket: i64, kind: &str, detail: &str, at: i64) -> Result<()> {
    sqlx::query("INSERT INTO ticket_events (ticket, kind, detail, at) VALUES ($1, $2, $3, $4)")
        .bind(ticket)
        .bind(kind)
        .bind(detail)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// A ticket as templates show it.
pub async fn ticket_view(conn: &mut SqliteConnection, number: i64, tag: &TagFormat) -> Result<TicketView> {
    let r = sqlx::query(
        "SELECT t.number, t.subject, t.status, t.escalation_level, t.root_message_id,
                COALESCE(a.name, '') AS account_name, COALESCE(a.number, '') AS account_number,
                COALESCE(s.service_id, '') AS service_id, COALESCE(s.name, '') AS service_name
         FROM tickets t LEFT JOIN accounts a ON a.id = t.account_id LEFT JOIN services s ON s.id = t.service_id
         WHERE t.number = $1",
    )
    .bind(number)
    .fetch_one(conn)
    .await?;
    let level: i64 = r.try_get("escalation_level")?;
    Ok(TicketView {
        number,
        tag: tag.render(number),
        subject: r.try_get("subject")?,
        status: r.try_get("status")?,
        account_name: r.try_get("account_name")?,
        account_number: r.try_get("account_number")?,
        service_id: r.try_get("service_id")?,
        service_name: r.try_get("service_name")?,
        escalation_level: level as u8,
        root_message_id: r.try_get("root_message_id")?,
    })
}

/// Applies a hand action (close, escalate, approve) decided by
/// [`crate::tickets::actions::decide_action`]; returns the rows queued.
pub async fn apply_action(
    conn: &mut SqliteConnection,
    number: i64,
    action: Action,
    plan: &ActionPlan,
    at: i64,
    renderer: &Renderer<'_>,
    tag: &TagFormat,
) -> Result<usize> {
    let closed = plan.status == TicketStatus::Closed;
    sqlx::query(
        "UPDATE tickets SET status = $2, escalation_level = $3, updated_at = MAX(updated_at, $4),
           closed_at = CASE WHEN $5 THEN $4 ELSE closed_at END WHERE number = $1",
    )
    .bind(number)
    .bind(plan.status.as_str())
    .bind(i64::from(plan.escalation_level))
    .bind(at)
    .bind(closed)
    .execute(&mut *conn)
    .await?;
    let (kind, detail) = match action {
        Action::Close => ("closed", "closed".to_string()),
        Action::Escalate(l) => ("escalated", format!("escalated to level {l}")),
        Action::Approve => ("approved", "approved".to_string()),
    };
    ticket_event(conn, number, kind, &detail, at).await?;
    let view = ticket_view(conn, number, tag).await?;
    let cause = Cause {
        subject: view.subject.clone(),
        text: String::new(),
        sender_name: String::new(),
        sender_email: renderer.support_address.to_string(),
        message_id: None,
        key: format!("action:{number}:{kind}:{}:{at}", plan.escalation_level),
    };
    let mut queued = 0;
    for notice in &plan.notices {
        queued += queue(conn, notice, Some(&view), &cause, renderer, at).await?;
    }
    Ok(queued)
}
