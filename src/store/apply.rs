//! Applying the core's decisions to a batch.
//!
//! Each mail's plan becomes rows in [`Changes`] (raw bytes, contact, ticket,
//! message, participants, quarantine entry, rendered outbox rows) and
//! updates the [`Snapshot`], so later mails of the same batch see it. A
//! plan is first turned into rows that can still fail (template rendering),
//! and only then recorded, so a mail that fails leaves nothing behind.

use super::attachments::{kept_in_store, sha256_hex};
use super::changes::{AttachmentRow, Changes, ContactInsert, EventRow, MessageRow, QuarantineRow};
use super::snapshot::{KeyHolder, Snapshot, TicketRecord};
use crate::error::{Error, Result};
use crate::message::{Message, ParseFailure};
use crate::notify::outbox::{Cause, OutboxRow, Renderer, TicketView};
use crate::notify::{Notice, Recipient};
use crate::tickets::TicketStatus;
use crate::tickets::actions::{Action, ActionPlan};
use crate::tickets::plan::{ContactChange, Outcome, Plan, TicketChange};
use crate::tickets::tag::TagFormat;

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

/// A hand action on a ticket, at a time.
#[derive(Debug, Clone)]
pub struct HandAction {
    pub number: i64,
    pub action: Action,
    pub at: i64,
    /// The text of the ticket's first mail, which an approval quotes.
    pub opening: Option<String>,
}

/// What applying one plan did, for the summary.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub ticket: Option<i64>,
    pub contact_created: bool,
    pub notifications: usize,
}

/// A batch in progress: what it knows and what it will write.
#[derive(Debug)]
pub struct Batch {
    pub snapshot: Snapshot,
    pub changes: Changes,
}

impl Batch {
    /// Records a mail that could not be parsed or processed: a duplicate if
    /// its key was seen, else quarantined (as `reason`) with its raw bytes.
    pub fn record_failure(&mut self, failure: &ParseFailure, receipt: &Receipt<'_>, reason: &str) -> Outcome {
        let outcome = if self.snapshot.known_keys.contains_key(&failure.key) {
            Outcome::Duplicate
        } else {
            Outcome::Quarantined
        };
        // A duplicate leaves the mail it repeats as the key's holder.
        if outcome == Outcome::Quarantined {
            self.snapshot.known_keys.insert(
                failure.key.clone(),
                KeyHolder::new(
                    failure.from.clone().unwrap_or_default(),
                    failure.sent_date,
                    receipt.received_at,
                ),
            );
        }
        let id = self.changes.take_message_id();
        self.changes.messages.push(MessageRow {
            id,
            key: failure.key.clone(),
            message_id: failure.message_id.clone(),
            raw_sha256: failure.raw_sha256.clone(),
            raw: receipt.raw.to_vec(),
            source: receipt.source.to_string(),
            from_addr: failure.from.clone(),
            from_name: None,
            subject: failure.subject.clone(),
            text: None,
            new_text: None,
            class: None,
            outcome: outcome.as_str(),
            reason: Some(failure.reason.clone()),
            ticket: None,
            contact_id: None,
            received_at: receipt.received_at,
            processed_at: receipt.processed_at,
            sent_date: failure.sent_date,
        });
        if outcome == Outcome::Quarantined {
            self.changes.quarantine.push(QuarantineRow {
                message_row: id,
                reason: reason.to_string(),
                detail: Some(failure.reason.clone()),
                from: failure.from.clone(),
                subject: failure.subject.clone(),
                at: receipt.received_at,
            });
        }
        outcome
    }

    /// Applies the plan for one parsed mail. `reprocess` is the message row
    /// of a quarantined mail given a second chance (updated, not added).
    pub fn apply(
        &mut self,
        msg: &Message,
        plan: &Plan,
        receipt: &Receipt<'_>,
        renderer: &Renderer<'_>,
        tag: &TagFormat,
        reprocess: Option<i64>,
    ) -> Result<Applied> {
        let at = receipt.received_at;
        // 1. Work out the new state without touching the batch.
        let created = match &plan.contact {
            ContactChange::Create(c) => Some(ContactInsert {
                id: self.changes.peek_contact(),
                email: c.email.clone(),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                account_id: c.account_id,
                created_at: receipt.processed_at,
            }),
            _ => None,
        };
        let contact_id = match &plan.contact {
            ContactChange::None => None,
            ContactChange::Existing(id) => Some(*id),
            ContactChange::Create(_) => created.as_ref().map(|c| c.id),
        };
        let mut events = Vec::new();
        let ticket: Option<TicketRecord> = match &plan.ticket {
            TicketChange::None => None,
            TicketChange::Open(t) => {
                let requester_id = contact_id.ok_or_else(|| Error::Usage("a new ticket needs a requester".into()))?;
                let number = self.changes.peek_ticket();
                if let Some(old) = t.related {
                    events.push((number, "related", format!("follows up ticket {old}")));
                }
                Some(TicketRecord {
                    number,
                    subject: t.subject.clone(),
                    status: t.status,
                    requester_id,
                    account_id: t.scope.account,
                    service_id: t.scope.service,
                    escalation_level: 0,
                    related: t.related,
                    root_message_id: msg.message_id.clone(),
                    created_at: at,
                    updated_at: at,
                    closed_at: None,
                    approval_pending: t.status == TicketStatus::AwaitingApproval,
                    requester: self.requester(msg, &plan.contact, contact_id, t.scope.account),
                    // The ticket is on its requester's account.
                    requester_account: t.scope.account,
                    participants: Vec::new(),
                })
            }
            TicketChange::Update { number, reopen } => {
                let mut t = self
                    .snapshot
                    .tickets
                    .get(number)
                    .cloned()
                    .ok_or_else(|| Error::NotFound(format!("ticket {number}")))?;
                t.updated_at = t.updated_at.max(at);
                if *reopen {
                    // A request closed before anyone approved it still
                    // needs the approval when its requester writes again.
                    t.status = if t.approval_pending {
                        TicketStatus::AwaitingApproval
                    } else {
                        TicketStatus::Open
                    };
                    t.closed_at = None;
                    events.push((
                        *number,
                        "reopened",
                        format!("reopened by a reply from {}", msg.from.address),
                    ));
                }
                Some(t)
            }
        };
        for note in &plan.notes {
            tracing::info!(message = %msg.key, "{note}");
            if let Some(t) = &ticket {
                events.push((t.number, "note", note.clone()));
            }
        }
        let rows = if plan.notices.is_empty() {
            Vec::new()
        } else {
            let view = ticket.as_ref().map(|t| self.view(t, tag));
            let cause = Cause {
                // Without "Re: Odp:": a refusal answers it with its own "Re:".
                subject: crate::tickets::subject::ticket_subject(&msg.subject, tag),
                // An update quotes what is new, not the whole thread; the
                // mail that opens a ticket is the ticket, quoted whole.
                text: first_text(msg, plan).unwrap_or(&msg.new_text).to_string(),
                sender_name: msg.from.name.clone().unwrap_or_default(),
                sender_email: msg.from.address.clone(),
                message_id: msg.message_id.clone(),
                key: msg.key.clone(),
                action: "",
            };
            let mut rows = Vec::with_capacity(plan.notices.len());
            for notice in &plan.notices {
                let mut notice: Notice = notice.clone();
                if notice.recipient.contact_id.is_none()
                    && created.as_ref().is_some_and(|c| c.email == notice.recipient.email)
                {
                    notice.recipient.contact_id = contact_id;
                }
                rows.push(renderer.render(&notice, view.as_ref(), &cause)?);
            }
            rows
        };

        // 2. Record it: nothing below can fail.
        let mut applied = Applied {
            contact_created: created.is_some(),
            ..Applied::default()
        };
        if let Some(c) = created {
            self.changes.take_contact_id();
            self.snapshot.contacts.insert(c.email.clone(), contact_from_insert(&c));
            self.changes.contacts.push(c);
        }
        if let Some(mut t) = ticket {
            if matches!(plan.ticket, TicketChange::Open(_)) {
                self.changes.take_ticket_number();
                if let Some(old) = t.related {
                    self.snapshot.follow_ups.insert(old, t.number);
                }
            }
            if let Some(c) = contact_id.filter(|c| !t.participants.contains(c)) {
                t.participants.push(c);
                self.changes.participants.push((t.number, c));
            }
            if let Some(id) = &msg.message_id {
                self.snapshot.thread_ids.insert(id.clone(), t.number);
            }
            applied.ticket = Some(t.number);
            self.snapshot.tickets.insert(t.number, t.clone());
            self.changes.tickets.insert(t.number, t);
        }
        for (ticket, kind, detail) in events {
            self.changes.events.push(EventRow {
                ticket,
                kind: kind.to_string(),
                detail,
                at,
            });
        }
        let message_row = reprocess.unwrap_or_else(|| self.changes.take_message_id());
        // A duplicate leaves the mail it repeats as the key's holder: its
        // own sender and date were never stored, and the next mail must be
        // judged against the stored one, whatever the batch boundaries.
        if plan.outcome != Outcome::Duplicate {
            self.snapshot.known_keys.insert(
                msg.key.clone(),
                KeyHolder::new(msg.from.address.clone(), msg.date, receipt.received_at),
            );
        }
        self.changes.hard_bounces.extend(plan.hard_bounces.iter().copied());
        if plan.outcome == Outcome::NewTicket {
            self.snapshot
                .opened
                .entry(msg.from.address.clone())
                .or_default()
                .push(at);
        }
        if let Some(t) = applied.ticket {
            self.snapshot
                .ticket_mail
                .entry(t)
                .or_default()
                .push((msg.from.address.clone(), at));
        }
        if plan.notices.iter().any(|n| n.event == crate::notify::Event::Refusal) {
            self.snapshot
                .refused
                .entry(msg.from.address.clone())
                .or_default()
                .push(at);
        }
        self.changes.messages.push(MessageRow {
            id: message_row,
            key: msg.key.clone(),
            message_id: msg.message_id.clone(),
            raw_sha256: msg.raw_sha256.clone(),
            raw: receipt.raw.to_vec(),
            source: receipt.source.to_string(),
            from_addr: Some(msg.from.address.clone()),
            from_name: msg.from.name.clone(),
            subject: Some(msg.subject.clone()),
            text: Some(msg.text.clone()),
            // None: views show the whole text of the mail that opened a ticket.
            new_text: first_text(msg, plan).map_or_else(|| Some(msg.new_text.clone()), |_| None),
            class: Some(plan.class.as_str()),
            outcome: plan.outcome.as_str(),
            reason: plan.reason.clone(),
            ticket: applied.ticket,
            contact_id,
            received_at: receipt.received_at,
            processed_at: receipt.processed_at,
            sent_date: msg.date,
        });
        if applied.ticket.is_some() {
            for f in &msg.files {
                let sha256 = sha256_hex(&f.data);
                self.changes.attachments.push(AttachmentRow {
                    message_row,
                    sha256: sha256.clone(),
                    file_name: f.file_name.clone(),
                    content_type: f.content_type.clone(),
                    size: f.size as i64,
                    content_id: f.content_id.clone(),
                    inline: f.inline,
                });
                let bytes = if kept_in_store(f.data.len()) {
                    &mut self.changes.attachment_content
                } else {
                    &mut self.changes.files
                };
                bytes.entry(sha256).or_insert_with(|| f.data.clone());
            }
        }
        if plan.outcome == Outcome::Quarantined {
            self.changes.quarantine.push(QuarantineRow {
                message_row,
                reason: plan.reason.clone().unwrap_or_else(|| "quarantined".into()),
                detail: None,
                from: Some(msg.from.address.clone()),
                subject: Some(msg.subject.clone()),
                at,
            });
        }
        applied.notifications = self.queue(rows, at, receipt.processed_at);
        Ok(applied)
    }

    /// Adds rendered rows to the outbox (once per Message-ID), created `at`
    /// and queued `now`; returns how many.
    fn queue(&mut self, rows: Vec<OutboxRow>, at: i64, now: i64) -> usize {
        let mut queued = 0;
        for row in rows {
            if self.snapshot.thread_ids.contains_key(&row.message_id) {
                continue;
            }
            if let Some(t) = row.ticket {
                self.snapshot.thread_ids.insert(row.message_id.clone(), t);
            }
            self.changes.outbox.push((row, at, now));
            queued += 1;
        }
        queued
    }

    /// The sender of a mail opening a ticket on `account`, as the ticket's
    /// requester. Without a language of their own or their account's,
    /// they are written to in the language of the ticket's account (their
    /// domain's), as their acknowledgement was: a contact without an
    /// account got it in French and the ticket's later news in English.
    fn requester(
        &self,
        msg: &Message,
        contact: &ContactChange,
        contact_id: Option<i64>,
        account: Option<i64>,
    ) -> Recipient {
        let language_of = |a: Option<i64>| {
            a.and_then(|a| self.snapshot.accounts.get(&a))
                .and_then(|a| a.language.clone())
        };
        let account_language = |a: Option<i64>| language_of(a).or_else(|| language_of(account));
        match (self.snapshot.contacts.get(&msg.from.address), contact) {
            (Some(c), _) => Recipient {
                contact_id: Some(c.id),
                email: c.email.clone(),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                language: c.language.clone().or_else(|| account_language(c.account_id)),
                ignore: c.ignore,
                undeliverable: c.undeliverable,
            },
            (None, ContactChange::Create(n)) => Recipient {
                contact_id,
                email: n.email.clone(),
                first_name: n.first_name.clone(),
                last_name: n.last_name.clone(),
                language: account_language(n.account_id),
                ignore: false,
                undeliverable: false,
            },
            (None, _) => Recipient {
                contact_id,
                email: msg.from.address.clone(),
                first_name: String::new(),
                last_name: String::new(),
                language: account_language(None),
                ignore: false,
                undeliverable: false,
            },
        }
    }

    /// A ticket as templates show it.
    fn view(&self, t: &TicketRecord, tag: &TagFormat) -> TicketView {
        let account = t.account_id.and_then(|a| self.snapshot.accounts.get(&a));
        let service = t.service_id.and_then(|s| {
            self.snapshot
                .services
                .get(&t.account_id.unwrap_or_default())?
                .iter()
                .find(|x| x.id == s)
        });
        TicketView {
            number: t.number,
            tag: tag.render(t.number),
            subject: t.subject.clone(),
            status: t.status.as_str().to_string(),
            account_name: account.map(|a| a.name.clone()).unwrap_or_default(),
            account_number: account.map(|a| a.number.clone()).unwrap_or_default(),
            service_id: service.map(|s| s.service_id.clone()).unwrap_or_default(),
            service_name: service.and_then(|s| s.name.clone()).unwrap_or_default(),
            escalation_level: t.escalation_level,
            root_message_id: t.root_message_id.clone(),
        }
    }

    /// Applies a hand action (close, escalate, approve) decided by
    /// [`crate::tickets::actions::decide_action`]; returns the rows queued.
    pub fn apply_action(
        &mut self,
        hand: HandAction,
        plan: &ActionPlan,
        renderer: &Renderer<'_>,
        tag: &TagFormat,
    ) -> Result<usize> {
        let HandAction {
            number,
            action,
            at,
            opening,
        } = hand;
        let mut t = self
            .snapshot
            .tickets
            .get(&number)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("ticket {number}")))?;
        // What the ticket was before: a close, a reopening reply and a
        // second close in the same second must not share a Message-ID (the
        // outbox keeps the first row of a Message-ID and drops the rest).
        let before = (t.status.as_str(), t.updated_at);
        t.status = plan.status;
        t.escalation_level = plan.escalation_level;
        t.updated_at = t.updated_at.max(at);
        if plan.status == TicketStatus::Closed {
            t.closed_at = Some(at);
        }
        if matches!(action, Action::Approve) {
            t.approval_pending = false;
        }
        let (kind, detail) = match action {
            Action::Close => ("closed", "closed".to_string()),
            Action::Escalate(l) => ("escalated", format!("escalated to level {l}")),
            Action::Approve => ("approved", "approved".to_string()),
        };
        let view = self.view(&t, tag);
        // An approval opens the request for its subscribers: they are told
        // of it as of any new ticket, by its requester and with its text,
        // not as something the desk wrote.
        let (text, sender_name, sender_email, message_id) = match (action, opening) {
            (Action::Approve, Some(text)) => (
                text,
                format!("{} {}", t.requester.first_name, t.requester.last_name)
                    .trim()
                    .to_string(),
                t.requester.email.clone(),
                t.root_message_id.clone(),
            ),
            // A hand action answers the ticket itself: In-Reply-To its
            // first mail, so clients that thread by it alone (not by
            // References) keep the notice in the conversation.
            _ => (
                String::new(),
                String::new(),
                renderer.support_address.to_string(),
                t.root_message_id.clone(),
            ),
        };
        let cause = Cause {
            subject: view.subject.clone(),
            text,
            sender_name,
            sender_email,
            message_id,
            key: format!(
                "action:{number}:{kind}:{}:{at}:{}:{}",
                plan.escalation_level, before.0, before.1
            ),
            action: kind,
        };
        let rows = plan
            .notices
            .iter()
            .map(|n| renderer.render(n, Some(&view), &cause))
            .collect::<Result<Vec<_>>>()?;
        self.changes.events.push(EventRow {
            ticket: number,
            kind: kind.to_string(),
            detail,
            at,
        });
        self.snapshot.tickets.insert(number, t.clone());
        self.changes.tickets.insert(number, t);
        Ok(self.queue(rows, at, at))
    }
}

fn contact_from_insert(c: &ContactInsert) -> crate::directory::Contact {
    crate::directory::Contact {
        id: c.id,
        email: c.email.clone(),
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        phone: None,
        job_title: None,
        language: None,
        account_id: c.account_id,
        primary: false,
        group: false,
        ignore: false,
        undeliverable: false,
    }
}

/// The whole text of a mail that opens a ticket: a forward's content, a
/// monitoring alarm under a `=====` line, a log pasted after `-----` are
/// the request itself, which reply trimming would cut. None for the rest,
/// and for a new ticket opened by a reply (to a ticket closed too long ago,
/// to mail we never saw): its quoted thread is not the request.
fn first_text<'m>(msg: &'m Message, plan: &Plan) -> Option<&'m str> {
    let a_reply = !msg.in_reply_to.is_empty() || !msg.references.is_empty();
    (plan.outcome == Outcome::NewTicket && !a_reply).then_some(msg.text.as_str())
}
