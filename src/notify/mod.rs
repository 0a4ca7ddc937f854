//! Who is told about a ticket event, and what they receive.
//!
//! The audience is computed purely from the ticket's scope and the
//! subscriptions the store handed over ([`audience`]); the mail itself is
//! rendered from templates into a complete outbox row ([`outbox`]) in the
//! same transaction as the ticket change, so a crash can never leave a
//! ticket whose notifications were forgotten.

pub mod audience;
pub mod outbox;
pub mod templates;

use serde::Serialize;

use crate::directory::mailbox_of;

/// What happened, which decides the template and the audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// To the requester: we got your mail, here is your ticket.
    Acknowledgement,
    /// To subscribers: a customer opened a ticket.
    NewTicket,
    /// To requester and subscribers: a new message on the ticket.
    TicketUpdated,
    /// To requester and subscribers: the ticket was closed.
    TicketClosed,
    /// To escalation subscribers who just came within the ticket's level.
    Escalation,
    /// To a non-primary sender of a `primary_only` account.
    Refusal,
    /// To the primary contacts of an `approval` account.
    ApprovalRequest,
}

impl Event {
    /// All events, for template checks.
    pub const ALL: [Event; 7] = [
        Event::Acknowledgement,
        Event::NewTicket,
        Event::TicketUpdated,
        Event::TicketClosed,
        Event::Escalation,
        Event::Refusal,
        Event::ApprovalRequest,
    ];

    /// The stored name and template file stem.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Acknowledgement => "acknowledgement",
            Event::NewTicket => "new_ticket",
            Event::TicketUpdated => "ticket_updated",
            Event::TicketClosed => "ticket_closed",
            Event::Escalation => "escalation",
            Event::Refusal => "refusal",
            Event::ApprovalRequest => "approval_request",
        }
    }

    /// The event stored as `name`, if it is one.
    pub fn parse(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// RFC 3834: answers to a person's mail are `auto-replied`; everything
    /// else we send on our own is `auto-generated`.
    pub fn auto_submitted(self) -> &'static str {
        match self {
            Event::Acknowledgement | Event::Refusal => "auto-replied",
            _ => "auto-generated",
        }
    }
}

/// Someone who can receive a notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipient {
    /// The contact, when it already exists (a contact created in the same
    /// plan has none yet).
    pub contact_id: Option<i64>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// The contact's language, else their account's.
    pub language: Option<String>,
    /// "Ignore emails from this user": they are never mailed either.
    pub ignore: bool,
    /// Hard-bounced too often: mailing them again only hurts our reputation.
    pub undeliverable: bool,
}

/// One planned notification, before rendering.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    pub event: Event,
    pub recipient: Recipient,
}

/// Builds a notice list with the rules every event shares: one mail per
/// address, nobody ignored or undeliverable, nobody excluded.
#[derive(Debug, Default)]
pub struct NoticeList {
    notices: Vec<Notice>,
    /// Mailboxes (lower case, without sub-address) not to add again: the
    /// excluded ones and those already told.
    taken: Vec<String>,
}

impl NoticeList {
    pub fn new() -> Self {
        NoticeList::default()
    }

    /// Never send to this address (the author of the mail being reported).
    pub fn exclude(&mut self, email: &str) -> &mut Self {
        self.taken.push(mailbox_of(&email.to_lowercase()).into_owned());
        self
    }

    /// Adds a notice unless the address is excluded, already has one, or
    /// must not be mailed. Returns whether it was added.
    pub fn add(&mut self, event: Event, recipient: &Recipient) -> bool {
        // By mailbox: `req+foo@` writing is `req@` writing (not told of
        // their own mail), and one person subscribed under two sub-addresses
        // is told once.
        let email = recipient.email.to_lowercase();
        let mailbox = mailbox_of(&email);
        if recipient.ignore || recipient.undeliverable || self.taken.iter().any(|t| *t == mailbox) {
            return false;
        }
        self.taken.push(mailbox.into_owned());
        self.notices.push(Notice {
            event,
            recipient: recipient.clone(),
        });
        true
    }

    pub fn into_vec(self) -> Vec<Notice> {
        self.notices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(email: &str) -> Recipient {
        Recipient {
            contact_id: Some(1),
            email: email.into(),
            first_name: String::new(),
            last_name: String::new(),
            language: None,
            ignore: false,
            undeliverable: false,
        }
    }

    #[test]
    fn dedupes_and_filters() {
        let mut l = NoticeList::new();
        l.exclude("Author@x.test");
        assert!(l.add(Event::NewTicket, &r("a@x.test")));
        assert!(!l.add(Event::NewTicket, &r("A@x.test")));
        assert!(!l.add(Event::NewTicket, &r("author@x.test")));
        assert!(!l.add(
            Event::NewTicket,
            &Recipient {
                ignore: true,
                ..r("i@x.test")
            }
        ));
        assert!(!l.add(
            Event::NewTicket,
            &Recipient {
                undeliverable: true,
                ..r("u@x.test")
            }
        ));
        assert_eq!(l.into_vec().len(), 1);
    }
}
