//! Read models for the CLI: what `tickets list`, `outbox list` and the other
//! listing commands print, as plain serialisable rows.
//!
//! Field names are part of the CLI's stable JSON contract; scripts and tests
//! depend on them.

use serde::Serialize;
use sqlx::{AnyConnection, FromRow};

use super::flag::Flag;

use crate::error::{Error, Result};

/// Formats unix seconds as RFC 3339 (UTC).
pub fn timestamp(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn opt_timestamp(t: Option<i64>) -> Option<String> {
    t.map(timestamp)
}

/// A ticket in `tickets list`.
#[derive(Debug, Clone, Serialize)]
pub struct TicketRow {
    pub number: i64,
    pub subject: String,
    pub status: String,
    pub requester: String,
    pub account: Option<String>,
    pub service: Option<String>,
    pub messages: i64,
    pub escalation_level: i64,
    pub related: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub closed_at: Option<String>,
}

#[derive(FromRow)]
struct TicketRecord {
    number: i64,
    subject: String,
    status: String,
    requester: String,
    account: Option<String>,
    service: Option<String>,
    messages: i64,
    escalation_level: i64,
    related_ticket: Option<i64>,
    created_at: i64,
    updated_at: i64,
    closed_at: Option<i64>,
}

const TICKET_SQL: &str = "SELECT t.number, t.subject, t.status, c.email AS requester, a.number AS account,
        s.service_id AS service, (SELECT COUNT(*) FROM messages m WHERE m.ticket = t.number) AS messages,
        t.escalation_level, t.related_ticket, t.created_at, t.updated_at, t.closed_at
    FROM tickets t JOIN contacts c ON c.id = t.requester_id
    LEFT JOIN accounts a ON a.id = t.account_id LEFT JOIN services s ON s.id = t.service_id";

impl From<TicketRecord> for TicketRow {
    fn from(r: TicketRecord) -> Self {
        TicketRow {
            number: r.number,
            subject: r.subject,
            status: r.status,
            requester: r.requester,
            account: r.account,
            service: r.service,
            messages: r.messages,
            escalation_level: r.escalation_level,
            related: r.related_ticket,
            created_at: timestamp(r.created_at),
            updated_at: timestamp(r.updated_at),
            closed_at: opt_timestamp(r.closed_at),
        }
    }
}

/// Every ticket, optionally of one status, by number.
pub async fn tickets(conn: &mut AnyConnection, status: Option<&str>) -> Result<Vec<TicketRow>> {
    let sql = format!("{TICKET_SQL} WHERE $1 IS NULL OR t.status = $1 ORDER BY t.number");
    let rows: Vec<TicketRecord> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(status)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(TicketRow::from).collect())
}

/// A ticket with its conversation, for `tickets show`: the fields of
/// `tickets list`, but for the count of mails, shown as `message_count`
/// because `messages` is the conversation itself (the same key twice made
/// JSON readers keep one or the other).
#[derive(Debug, Clone)]
pub struct TicketDetail {
    pub ticket: TicketRow,
    pub messages: Vec<ConversationEntry>,
    pub events: Vec<TicketEvent>,
    pub attachments: Vec<AttachmentView>,
}

impl Serialize for TicketDetail {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap};
        let serde_json::Value::Object(fields) = serde_json::to_value(&self.ticket).map_err(S::Error::custom)? else {
            return Err(S::Error::custom("a ticket serialises as an object"));
        };
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in &fields {
            let key = if key == "messages" {
                "message_count"
            } else {
                key.as_str()
            };
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry("messages", &self.messages)?;
        map.serialize_entry("events", &self.events)?;
        map.serialize_entry("attachments", &self.attachments)?;
        map.end()
    }
}

/// A file attached to one of a ticket's mails.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct AttachmentView {
    /// The mail (`messages list` id) it came with.
    pub message: i64,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    #[sqlx(try_from = "Flag")]
    pub inline: bool,
    pub content_id: Option<String>,
    pub sha256: String,
    /// Kept in the store (small ones) rather than as a file.
    #[sqlx(try_from = "Flag")]
    pub in_store: bool,
    /// Where the file is, for one that is a file (filled in by the caller,
    /// which knows the state directory). `tickets attachment` writes out
    /// either kind.
    #[sqlx(skip)]
    pub path: Option<String>,
}

/// The bytes of the attachment with this SHA-256 on one of ticket
/// `number`'s mails: from the store, or from its file under `files`.
/// Scoped to a ticket so a hash seen elsewhere (in `tickets show`) is all
/// an operator needs, and a mistyped one is named as not found.
pub async fn attachment_bytes(
    conn: &mut AnyConnection,
    files: &super::attachments::AttachmentDir,
    number: i64,
    sha256: &str,
) -> Result<Vec<u8>> {
    let sha256 = sha256.trim().to_ascii_lowercase();
    let (on_ticket, stored): (i64, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM attachments a JOIN messages m ON m.id = a.message_row
                 WHERE m.ticket = $1 AND a.sha256 = $2),
                (SELECT data FROM attachment_content WHERE sha256 = $2)",
    )
    .bind(number)
    .bind(&sha256)
    .fetch_one(&mut *conn)
    .await?;
    if on_ticket == 0 {
        return Err(Error::NotFound(format!("attachment {sha256} on ticket {number}")));
    }
    match stored {
        Some(data) => Ok(data),
        None => {
            let path = files.path(&sha256);
            std::fs::read(&path).map_err(|e| Error::io(&path, e))
        }
    }
}

/// One mail of a ticket's conversation, in or out.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ConversationEntry {
    pub direction: String,
    pub from: String,
    pub to: Option<String>,
    pub subject: String,
    pub text: String,
    pub class: Option<String>,
    pub event: Option<String>,
    #[serde(skip)]
    pub at_ts: i64,
    #[sqlx(skip)]
    pub at: String,
}

/// Something that happened to a ticket other than mail.
#[derive(Debug, Clone, Serialize)]
pub struct TicketEvent {
    pub kind: String,
    pub detail: String,
    pub at: String,
}

/// Ticket `number` with its messages (in and out) and events.
pub async fn ticket_detail(conn: &mut AnyConnection, number: i64) -> Result<TicketDetail> {
    let sql = format!("{TICKET_SQL} WHERE t.number = $1");
    let record: TicketRecord = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(number)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("ticket {number}")))?;
    let mut messages: Vec<ConversationEntry> = sqlx::query_as(
        "SELECT 'in' AS direction, COALESCE(from_addr, '') AS \"from\", NULL AS \"to\", COALESCE(subject, '') AS subject,
                COALESCE((SELECT COALESCE(new_text, text) FROM message_content c WHERE c.message_row = m.id), '') AS text, class,
                NULL AS event, received_at AS at_ts, id AS ord
         FROM messages m WHERE ticket = $1
         UNION ALL
         SELECT 'out', '', to_addr, subject, body, NULL, event, created_at, id + 1000000000000
         FROM outbox WHERE ticket = $1
         ORDER BY at_ts, ord",
    )
    .bind(number)
    .fetch_all(&mut *conn)
    .await?;
    for m in &mut messages {
        m.at = timestamp(m.at_ts);
    }
    let events = sqlx::query_as::<_, (String, String, i64)>(
        "SELECT kind, detail, at FROM ticket_events WHERE ticket = $1 ORDER BY id",
    )
    .bind(number)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(kind, detail, at)| TicketEvent {
        kind,
        detail,
        at: timestamp(at),
    })
    .collect();
    let attachments = sqlx::query_as(
        "SELECT a.message_row AS message, a.file_name, a.content_type, a.size, a.inline, a.content_id, a.sha256,
                EXISTS (SELECT 1 FROM attachment_content c WHERE c.sha256 = a.sha256) AS in_store
         FROM attachments a JOIN messages m ON m.id = a.message_row WHERE m.ticket = $1 ORDER BY a.id",
    )
    .bind(number)
    .fetch_all(&mut *conn)
    .await?;
    Ok(TicketDetail {
        ticket: record.into(),
        messages,
        events,
        attachments,
    })
}

/// A contact in `contacts list`.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ContactView {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub account: Option<String>,
    pub language: Option<String>,
    #[sqlx(try_from = "Flag")]
    pub primary: bool,
    #[sqlx(try_from = "Flag")]
    pub group: bool,
    #[sqlx(try_from = "Flag")]
    pub ignore: bool,
    #[sqlx(try_from = "Flag")]
    pub undeliverable: bool,
    /// Permanent delivery failures so far (see contacts.hard_bounce_limit).
    pub hard_bounces: i64,
    pub created_by: String,
    pub phone: Option<String>,
    pub job_title: Option<String>,
    pub timezone: Option<String>,
}

/// Contacts, all or one.
pub async fn contacts(conn: &mut AnyConnection, email: Option<&str>) -> Result<Vec<ContactView>> {
    Ok(sqlx::query_as(
        "SELECT c.email, c.first_name, c.last_name, a.number AS account, c.language, c.is_primary AS \"primary\",
                c.is_group AS \"group\", c.ignore, c.undeliverable, c.hard_bounces, c.created_by, c.phone, c.job_title, c.timezone
         FROM contacts c LEFT JOIN accounts a ON a.id = c.account_id
         WHERE $1 IS NULL OR c.email = $1 ORDER BY c.email",
    )
    .bind(email.map(crate::directory::normalise_email))
    .fetch_all(conn)
    .await?)
}

/// An outbox row in `outbox list`.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct OutboxView {
    pub id: i64,
    pub ticket: Option<i64>,
    pub event: String,
    pub to: String,
    pub language: String,
    pub subject: String,
    pub status: String,
    pub attempts: i64,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub last_error: Option<String>,
    /// The relay's answer to a sent row (`250 2.0.0 Ok: queued as …`).
    pub server_reply: Option<String>,
    #[serde(skip)]
    pub next_attempt_ts: i64,
    /// When a queued row is tried next; empty for rows past sending.
    #[sqlx(skip)]
    pub next_attempt: String,
    #[serde(skip)]
    pub sent_at_ts: Option<i64>,
    /// When the relay took it.
    #[sqlx(skip)]
    pub sent_at: Option<String>,
    #[serde(skip)]
    pub body: String,
}

/// The whole outbox, oldest first.
pub async fn outbox(conn: &mut AnyConnection) -> Result<Vec<OutboxView>> {
    let mut rows: Vec<OutboxView> = sqlx::query_as(
        "SELECT id, ticket, event, to_addr AS \"to\", language, subject, status, attempts, message_id, in_reply_to,
                last_error, server_reply, next_attempt_at AS next_attempt_ts, sent_at AS sent_at_ts, body
         FROM outbox ORDER BY id",
    )
    .fetch_all(conn)
    .await?;
    for r in &mut rows {
        if matches!(r.status.as_str(), "queued" | "sending") {
            r.next_attempt = timestamp(r.next_attempt_ts);
        }
        r.sent_at = opt_timestamp(r.sent_at_ts);
    }
    Ok(rows)
}

/// A quarantined mail.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct QuarantineView {
    pub id: i64,
    pub reason: String,
    pub detail: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub source: String,
    #[sqlx(try_from = "Flag")]
    pub released: bool,
    #[serde(skip)]
    pub received_ts: i64,
    #[sqlx(skip)]
    pub received_at: String,
    #[serde(skip)]
    pub raw_sha256: String,
}

/// Quarantined mails (released ones too when `all`).
pub async fn quarantine(conn: &mut AnyConnection, id: Option<i64>, all: bool) -> Result<Vec<QuarantineView>> {
    let mut rows: Vec<QuarantineView> = sqlx::query_as(
        "SELECT q.id, q.reason, q.detail, q.from_addr AS \"from\", q.subject, m.source, q.released_at IS NOT NULL AS released,
                q.received_at AS received_ts, m.raw_sha256
         FROM quarantine q JOIN messages m ON m.id = q.message_row
         WHERE ($1 IS NULL OR q.id = $1) AND ($2 OR q.released_at IS NULL) ORDER BY q.id",
    )
    .bind(id)
    .bind(all || id.is_some())
    .fetch_all(conn)
    .await?;
    for r in &mut rows {
        r.received_at = timestamp(r.received_ts);
    }
    Ok(rows)
}

/// The raw bytes stored under a hash.
pub async fn raw_mail(conn: &mut AnyConnection, sha: &str) -> Result<Vec<u8>> {
    sqlx::query_scalar(
        "SELECT c.raw FROM messages m JOIN message_content c ON c.message_row = m.id WHERE m.raw_sha256 = $1 LIMIT 1",
    )
    .bind(sha)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| Error::NotFound(format!("raw mail {sha}")))
}

/// A processed mail in `messages list`.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct MessageView {
    pub id: i64,
    pub message_id: Option<String>,
    pub source: String,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub class: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub ticket: Option<i64>,
}

/// Every processed mail, in processing order.
pub async fn messages(conn: &mut AnyConnection) -> Result<Vec<MessageView>> {
    Ok(sqlx::query_as(
        "SELECT id, message_id, source, from_addr AS \"from\", subject, class, outcome, reason, ticket FROM messages ORDER BY id",
    )
    .fetch_all(conn)
    .await?)
}

/// A service in `services list`.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ServiceView {
    pub id: String,
    pub account: String,
    pub name: Option<String>,
}

/// Every service.
pub async fn services(conn: &mut AnyConnection) -> Result<Vec<ServiceView>> {
    Ok(sqlx::query_as(
        "SELECT s.service_id AS id, a.number AS account, s.name FROM services s JOIN accounts a ON a.id = s.account_id ORDER BY s.service_id",
    )
    .fetch_all(conn)
    .await?)
}

/// A subscription in `subscriptions list` and `contacts subscriptions`:
/// every field present (null when not set), unlike the directory file.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionView {
    pub contact: String,
    pub group: String,
    pub account: Option<String>,
    pub service: Option<String>,
    pub billing: Option<String>,
    pub level: Option<u8>,
}

impl From<crate::directory::file::SubscriptionRow> for SubscriptionView {
    fn from(r: crate::directory::file::SubscriptionRow) -> Self {
        SubscriptionView {
            contact: r.contact,
            group: r.group.as_str().to_string(),
            account: r.account,
            service: r.service,
            billing: r.billing,
            level: r.level,
        }
    }
}

/// A quarantined mail to reprocess.
#[derive(Debug, FromRow)]
pub struct QuarantinedMail {
    pub message_row: i64,
    pub message_key: String,
    pub source: String,
    pub raw: Vec<u8>,
    /// When it was already reprocessed.
    pub released_at: Option<i64>,
    /// Why it was quarantined.
    pub reason: String,
}

/// Quarantined mail `id`, if there is one.
pub async fn quarantined_mail(conn: &mut AnyConnection, id: i64) -> Result<Option<QuarantinedMail>> {
    Ok(sqlx::query_as(
        "SELECT m.id AS message_row, m.message_key, m.source, c.raw, q.released_at, q.reason
         FROM quarantine q JOIN messages m ON m.id = q.message_row
         JOIN message_content c ON c.message_row = m.id WHERE q.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// The quarantine entry a mail is in now, if any: where a reprocessed mail
/// that is quarantined again can be found.
pub async fn open_quarantine_of(conn: &mut AnyConnection, message_row: i64) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT MAX(id) FROM quarantine WHERE message_row = $1 AND released_at IS NULL")
            .bind(message_row)
            .fetch_one(conn)
            .await?,
    )
}

/// Marks a quarantined mail as reprocessed; false when it already was.
pub async fn release_quarantined(conn: &mut AnyConnection, id: i64, at: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE quarantine SET released_at = $2 WHERE id = $1 AND released_at IS NULL")
        .bind(id)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The text of ticket `number`'s first mail (the request itself).
pub async fn opening_text(conn: &mut AnyConnection, number: i64) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT c.text FROM messages m JOIN message_content c ON c.message_row = m.id
         WHERE m.ticket = $1 AND m.outcome = 'new_ticket' ORDER BY m.id LIMIT 1",
    )
    .bind(number)
    .fetch_optional(conn)
    .await?
    .flatten())
}
