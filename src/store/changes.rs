//! Everything a batch writes, gathered in memory and written at the end in
//! a few multi-row statements.
//!
//! Ids (contacts, ticket numbers, message rows) are allocated here from the
//! current maxima; the batch transaction is opened with `BEGIN IMMEDIATE`,
//! which holds SQLite's write lock from the first statement, so no other
//! writer can take the same numbers in between.

use std::collections::BTreeMap;

use sqlx::AnyConnection;

use super::sql::{Placeholders, Sql, Values};

use super::snapshot::TicketRecord;
use crate::error::Result;
use crate::notify::outbox::OutboxRow;

/// SQLite's limit on bound parameters per statement (32,766), with room.
const MAX_PARAMS: usize = 32_000;

/// Rows per INSERT: full chunks share one statement text, which both
/// engines then prepare once and reuse from sqlx's statement cache instead
/// of parsing and planning a new statement of thousands of values per batch.
/// On SQLite, the rest of a table's rows go in chunks of a quarter as many, then a
/// quarter of that, down to one (see [`chunks`]): a remainder of any size
/// would be a statement text seen once, parsed and planned anew in every
/// batch, and pushing the statements that recur out of the cache.
const ROWS_PER_INSERT: usize = 64;

/// A contact created by the batch.
#[derive(Debug, Clone)]
pub struct ContactInsert {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub account_id: Option<i64>,
    pub created_at: i64,
}

/// A processed mail's row (inserted, or updated when reprocessed).
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub id: i64,
    pub key: String,
    pub message_id: Option<String>,
    pub raw_sha256: String,
    pub raw: Vec<u8>,
    pub source: String,
    pub from_addr: Option<String>,
    pub from_name: Option<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
    /// The new part of a reply (see [`crate::message::Message::new_text`]).
    pub new_text: Option<String>,
    pub class: Option<&'static str>,
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub ticket: Option<i64>,
    pub contact_id: Option<i64>,
    pub received_at: i64,
    pub processed_at: i64,
    /// The sender's `Date:` (see [`crate::store::snapshot::KeyHolder`]).
    pub sent_date: Option<i64>,
}

/// An attachment of a mail on a ticket; its bytes go to the store or to a
/// file, by size ([`super::attachments::kept_in_store`]).
#[derive(Debug, Clone)]
pub struct AttachmentRow {
    pub message_row: i64,
    pub sha256: String,
    pub file_name: String,
    pub content_type: String,
    pub size: i64,
    pub content_id: Option<String>,
    pub inline: bool,
}

/// A mail that needs a person.
#[derive(Debug, Clone)]
pub struct QuarantineRow {
    pub message_row: i64,
    pub reason: String,
    pub detail: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub at: i64,
}

/// A ticket event (reopened, closed, a refused tag, ...).
#[derive(Debug, Clone)]
pub struct EventRow {
    pub ticket: i64,
    pub kind: String,
    pub detail: String,
    pub at: i64,
}

/// The next free contact id, ticket number and message row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextIds {
    pub contact: i64,
    pub ticket: i64,
    pub message: i64,
}

/// The pending writes of one batch.
#[derive(Debug, Default)]
pub struct Changes {
    /// The ids the batch started from: rows at or above them are its own.
    first: NextIds,
    next_contact: i64,
    next_ticket: i64,
    next_message: i64,
    pub contacts: Vec<ContactInsert>,
    /// Final state of every ticket the batch created or changed.
    pub tickets: BTreeMap<i64, TicketRecord>,
    pub messages: Vec<MessageRow>,
    pub participants: Vec<(i64, i64)>,
    pub events: Vec<EventRow>,
    pub quarantine: Vec<QuarantineRow>,
    /// With when the row was created (the cause's time: a mail's `Date:`
    /// when history is replayed) and when it was queued (now: it falls due
    /// and ages from then).
    pub outbox: Vec<(OutboxRow, i64, i64)>,
    /// Contacts a delivery report named as failed for good, with the
    /// hard-bounce limit in force.
    pub hard_bounces: Vec<(i64, u32)>,
    pub attachments: Vec<AttachmentRow>,
    /// Large attachments' bytes by SHA-256, written to files before the
    /// commit.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Small attachments' bytes by SHA-256, written with the rows.
    pub attachment_content: BTreeMap<String, Vec<u8>>,
}

impl Changes {
    /// Starts a batch, reading the id maxima (under the write lock).
    pub async fn start(conn: &mut AnyConnection) -> Result<Changes> {
        let (contact, ticket, message): (i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM contacts), (SELECT COALESCE(MAX(number), 0) FROM tickets),
                    (SELECT COALESCE(MAX(id), 0) FROM messages)",
        )
        .fetch_one(conn)
        .await?;
        Ok(Changes::resume(NextIds {
            contact: contact + 1,
            ticket: ticket + 1,
            message: message + 1,
        }))
    }

    /// Starts a batch from the ids another batch left free
    /// ([`Changes::next_ids`]), read under no lock: only valid while that
    /// batch and this one are the only writers in between (see the
    /// pipeline's carry).
    pub fn resume(ids: NextIds) -> Changes {
        Changes {
            first: ids,
            next_contact: ids.contact,
            next_ticket: ids.ticket,
            next_message: ids.message,
            ..Changes::default()
        }
    }

    /// Whether the batch's snapshot, as its decisions left it, is what the
    /// store will hold once these changes commit. Not when it counts hard
    /// bounces: those change contacts in the store alone (a contact may
    /// become undeliverable), so the next batch must read them there.
    pub fn carries_over(&self) -> bool {
        self.hard_bounces.is_empty()
    }

    /// The ids the next batch would take.
    pub fn next_ids(&self) -> NextIds {
        NextIds {
            contact: self.next_contact,
            ticket: self.next_ticket,
            message: self.next_message,
        }
    }

    /// The id the next created contact will get.
    pub fn peek_contact(&self) -> i64 {
        self.next_contact
    }

    /// The number the next new ticket will get.
    pub fn peek_ticket(&self) -> i64 {
        self.next_ticket
    }

    pub fn take_contact_id(&mut self) -> i64 {
        self.next_contact += 1;
        self.next_contact - 1
    }

    pub fn take_ticket_number(&mut self) -> i64 {
        self.next_ticket += 1;
        self.next_ticket - 1
    }

    pub fn take_message_id(&mut self) -> i64 {
        self.next_message += 1;
        self.next_message - 1
    }

    /// Writes every row (not the files: see [`Changes::into_writes`]).
    pub async fn write(self, conn: &mut AnyConnection) -> Result<()> {
        let style = Placeholders::of(conn);
        self.into_writes(style).execute(conn).await
    }

    /// The batch's statements, built but not run, with its files: built
    /// while the batch ahead is still being written (when the batch was
    /// decided on a carried snapshot), they are not on the writer's path.
    /// Parents before children (foreign keys).
    pub fn into_writes(mut self, style: Placeholders) -> Writes {
        let mut writes = Writes {
            style,
            steps: Vec::new(),
            files: std::mem::take(&mut self.files),
        };
        let conn = &mut writes;
        insert_rows(
            conn,
            "INSERT INTO contacts (id, email, first_name, last_name, account_id, created_by, created_at) ",
            &self.contacts,
            7,
            "",
            |b, c| {
                b.push_bind(c.id)
                    .push_bind(c.email.clone())
                    .push_bind(c.first_name.clone())
                    .push_bind(c.last_name.clone())
                    .push_bind(c.account_id)
                    .push_bind("auto")
                    .push_bind(c.created_at);
            },
        );
        // After the contacts: a bounce may name a contact this batch
        // created. In contact order, as the outbox's answers are counted:
        // two writers locking the same contacts in different orders could
        // deadlock.
        let mut bounced = self.hard_bounces.clone();
        bounced.sort_unstable();
        conn.steps.extend(
            bounced
                .into_iter()
                .map(|(contact, limit)| Step::HardBounce(contact, limit)),
        );
        let tickets: Vec<&TicketRecord> = self.tickets.values().collect();
        insert_or_update(
            conn,
            "INSERT INTO tickets (number, subject, status, requester_id, account_id, service_id, escalation_level,
                                  related_ticket, root_message_id, created_at, updated_at, closed_at, approval_pending) ",
            &tickets,
            13,
            " ON CONFLICT (number) DO UPDATE SET subject = excluded.subject, status = excluded.status,
                service_id = excluded.service_id, escalation_level = excluded.escalation_level,
                updated_at = excluded.updated_at, closed_at = excluded.closed_at,
                approval_pending = excluded.approval_pending",
            |t| t.number >= self.first.ticket,
            |b, t| {
                b.push_bind(t.number)
                    .push_bind(t.subject.clone())
                    .push_bind(t.status.as_str())
                    .push_bind(t.requester_id)
                    .push_bind(t.account_id)
                    .push_bind(t.service_id)
                    .push_bind(i64::from(t.escalation_level))
                    .push_bind(t.related)
                    .push_bind(t.root_message_id.clone())
                    .push_bind(t.created_at)
                    .push_bind(t.updated_at)
                    .push_bind(t.closed_at)
                    .push_bind(t.approval_pending);
            },
        );
        insert_or_update(
            conn,
            "INSERT INTO messages (id, message_key, message_id, raw_sha256, source, from_addr, from_name, subject,
                                   class, outcome, reason, ticket, contact_id, received_at, processed_at, sent_date) ",
            &self.messages,
            16,
            " ON CONFLICT (id) DO UPDATE SET message_key = excluded.message_key, message_id = excluded.message_id,
                raw_sha256 = excluded.raw_sha256, from_addr = excluded.from_addr, from_name = excluded.from_name,
                subject = excluded.subject, class = excluded.class, outcome = excluded.outcome,
                reason = excluded.reason, ticket = excluded.ticket, contact_id = excluded.contact_id,
                processed_at = excluded.processed_at, sent_date = excluded.sent_date",
            |m| m.id >= self.first.message,
            |b, m| {
                b.push_bind(m.id)
                    .push_bind(m.key.clone())
                    .push_bind(m.message_id.clone())
                    .push_bind(m.raw_sha256.clone())
                    .push_bind(m.source.clone())
                    .push_bind(m.from_addr.clone())
                    .push_bind(m.from_name.clone())
                    .push_bind(m.subject.clone())
                    .push_bind(m.class)
                    .push_bind(m.outcome)
                    .push_bind(m.reason.clone())
                    .push_bind(m.ticket)
                    .push_bind(m.contact_id)
                    .push_bind(m.received_at)
                    .push_bind(m.processed_at)
                    .push_bind(m.sent_date);
            },
        );
        insert_or_update(
            conn,
            "INSERT INTO message_content (message_row, text, new_text, raw) ",
            &self.messages,
            4,
            " ON CONFLICT (message_row) DO UPDATE SET text = excluded.text, new_text = excluded.new_text, raw = excluded.raw",
            |m| m.id >= self.first.message,
            |b, m| {
                b.push_bind(m.id)
                    .push_bind(m.text.clone())
                    .push_bind(m.new_text.clone())
                    .push_bind(m.raw.clone());
            },
        );
        insert_rows(
            conn,
            "INSERT INTO attachments (message_row, sha256, file_name, content_type, size, content_id, inline) ",
            &self.attachments,
            7,
            "",
            |b, a| {
                b.push_bind(a.message_row)
                    .push_bind(a.sha256.clone())
                    .push_bind(a.file_name.clone())
                    .push_bind(a.content_type.clone())
                    .push_bind(a.size)
                    .push_bind(a.content_id.clone())
                    .push_bind(a.inline);
            },
        );
        let content: Vec<(&String, &Vec<u8>)> = self.attachment_content.iter().collect();
        insert_rows(
            conn,
            "INSERT INTO attachment_content (sha256, data) ",
            &content,
            2,
            // Stored already by an earlier mail that carried it.
            " ON CONFLICT (sha256) DO NOTHING",
            |b, (sha256, data)| {
                b.push_bind((*sha256).clone()).push_bind((*data).clone());
            },
        );
        insert_rows(
            conn,
            "INSERT INTO ticket_participants (ticket, contact_id) ",
            &self.participants,
            2,
            " ON CONFLICT DO NOTHING",
            |b, (t, c)| {
                b.push_bind(*t).push_bind(*c);
            },
        );
        insert_rows(
            conn,
            "INSERT INTO ticket_events (ticket, kind, detail, at) ",
            &self.events,
            4,
            "",
            |b, e| {
                b.push_bind(e.ticket)
                    .push_bind(e.kind.clone())
                    .push_bind(e.detail.clone())
                    .push_bind(e.at);
            },
        );
        insert_rows(
            conn,
            "INSERT INTO quarantine (message_row, reason, detail, from_addr, subject, received_at) ",
            &self.quarantine,
            6,
            "",
            |b, q| {
                b.push_bind(q.message_row)
                    .push_bind(q.reason.clone())
                    .push_bind(q.detail.clone())
                    .push_bind(q.from.clone())
                    .push_bind(q.subject.clone())
                    .push_bind(q.at);
            },
        );
        insert_rows(
            conn,
            "INSERT INTO outbox (ticket, event, contact_id, to_addr, language, subject, body, message_id, in_reply_to,
                                 references_ids, next_attempt_at, created_at, queued_at) ",
            &self.outbox,
            13,
            " ON CONFLICT (message_id) DO NOTHING",
            |b, (r, created, queued)| {
                b.push_bind(r.ticket)
                    .push_bind(r.event.as_str())
                    .push_bind(r.contact_id)
                    .push_bind(r.to.clone())
                    .push_bind(r.language.clone())
                    .push_bind(r.subject.clone())
                    .push_bind(r.body.clone())
                    .push_bind(r.message_id.clone())
                    .push_bind(r.in_reply_to.clone())
                    .push_bind(r.references.join(" "))
                    .push_bind(*queued)
                    .push_bind(*created)
                    .push_bind(*queued);
            },
        );
        writes
    }
}

/// [`insert_rows`] for a table whose rows the batch creates or changes:
/// the rows it created (`is_new`) go in as plain INSERTs, so one clashing
/// with a stored row (ids taken twice: a bug, or a carried snapshot out of
/// date unnoticed) fails the batch instead of overwriting that row; only
/// the rows it changed (a ticket updated, a mail reprocessed) take `update`.
fn insert_or_update<T>(
    writes: &mut Writes,
    head: &str,
    rows: &[T],
    columns: usize,
    update: &str,
    is_new: impl Fn(&T) -> bool,
    mut bind: impl FnMut(&mut Values<'_>, &T),
) {
    let (new, changed): (Vec<&T>, Vec<&T>) = rows.iter().partition(|r| is_new(r));
    insert_rows(writes, head, &new, columns, "", |b, r| bind(b, r));
    insert_rows(writes, head, &changed, columns, update, |b, r| bind(b, r));
}

/// One multi-row INSERT per chunk that fits SQLite's parameter limit.
fn insert_rows<T>(
    writes: &mut Writes,
    head: &str,
    rows: &[T],
    columns: usize,
    tail: &str,
    mut bind: impl FnMut(&mut Values<'_>, &T),
) {
    let full = (MAX_PARAMS / columns).clamp(1, ROWS_PER_INSERT);
    // On PostgreSQL each statement is a round trip to the server, which
    // costs more than parsing one remainder statement: one per table.
    let smallest = if writes.style.numbered() { full } else { 1 };
    for chunk in chunks(rows, full, smallest) {
        let mut qb = Sql::styled(writes.style, head);
        qb.push_values(chunk, |b, row| bind(b, row));
        qb.push(tail);
        writes.steps.push(Step::Sql(qb));
    }
}

/// A batch's writes, ready to run in its transaction.
pub struct Writes {
    style: Placeholders,
    steps: Vec<Step>,
    /// Large attachments' bytes by SHA-256, written to files before the
    /// commit.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// One step of [`Writes`].
enum Step {
    Sql(Sql),
    /// A contact's hard bounce counted, against this limit.
    HardBounce(i64, u32),
}

impl Writes {
    /// Runs the statements in order.
    pub async fn execute(self, conn: &mut AnyConnection) -> Result<()> {
        for step in self.steps {
            match step {
                Step::Sql(sql) => {
                    sql.build().execute(&mut *conn).await?;
                }
                Step::HardBounce(contact, limit) => {
                    super::directory::count_hard_bounce(conn, contact, limit).await?;
                }
            }
        }
        Ok(())
    }
}

/// `rows` in chunks of `full`, then of `full / 4`, `full / 16`, … down to
/// one: only a few chunk sizes, hence statement texts, per table. With
/// `smallest` above one, the chunks stop shrinking there and the last one
/// holds whatever is left.
fn chunks<T>(rows: &[T], full: usize, smallest: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    let mut size = full.max(1);
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        while size > smallest && rest.len() < size {
            size = (size / 4).max(smallest).max(1);
        }
        let (chunk, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn rows_go_in_chunks_of_few_sizes_in_order() {
        let rows: Vec<usize> = (0..200).collect();
        let sizes: Vec<usize> = chunks(&rows, 64, 1).map(<[usize]>::len).collect();
        assert_eq!(sizes, [64, 64, 64, 4, 4]);
        let again: Vec<usize> = chunks(&rows, 64, 1).flatten().copied().collect();
        assert_eq!(again, rows, "every row once, in order");
        let sizes: Vec<usize> = chunks(&rows[..83], 64, 1).map(<[usize]>::len).collect();
        assert_eq!(sizes, [64, 16, 1, 1, 1]);
        assert_eq!(chunks(&rows[..0], 64, 1).count(), 0);
        assert_eq!(chunks(&rows[..5], 1, 1).count(), 5);
        // Every size is 64 / 4^k: at most four statement texts per table.
        for n in 0..200 {
            assert!(
                chunks(&rows[..n], 64, 1).all(|c| [64, 16, 4, 1].contains(&c.len())),
                "{n}"
            );
        }
        // PostgreSQL's way: full chunks, then the rest in one.
        let sizes: Vec<usize> = chunks(&rows, 64, 64).map(<[usize]>::len).collect();
        assert_eq!(sizes, [64, 64, 64, 8]);
        assert_eq!(chunks(&rows, 64, 64).flatten().count(), 200);
    }
}
