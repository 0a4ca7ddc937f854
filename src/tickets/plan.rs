//! The pure core: what happens to one mail.
//!
//! [`decide`] gets the parsed mail, its class, the facts the store gathered
//! ([`Facts`]) and the policy ([`Policy`]), and returns a [`Plan`]. It does no
//! I/O and reads no clock, so every rule of intake, threading and
//! notification is tested here without a database or a socket, and the
//! store applies the plan in the batch transaction.

use serde::Serialize;

use super::bounce::bounce_plan;
use super::subject::ticket_subject;
use super::tag::TagFormat;
use super::threading::{answers_approval_request, joins_follow_up, thread_target};
use super::{TicketFacts, TicketStatus};
use crate::classify::{Class, suppresses_acknowledgement};
use crate::config::Config;
use crate::directory::names::split_name;
use crate::directory::{Account, Contact, IgnoreRule, IntakePolicy, Service};
use crate::message::Message;
use crate::notify::audience::{Subscription, TicketScope, escalated, in_groups};
use crate::notify::{Event, Notice, NoticeList, Recipient};

/// What the store knows that bears on one mail.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// A message with the same key was processed before.
    pub duplicate: bool,
    /// The sender, if already a contact.
    pub sender: Option<Contact>,
    /// The contact of the sender's mailbox, when the sender wrote from a
    /// sub-address of it (`ign+x@` for `ign@`) and it is set to be ignored.
    pub mailbox_ignored: bool,
    /// The sender's account: the contact's, or for an unknown sender the
    /// account whose domain (or a parent domain) matches the address.
    pub account: Option<Account>,
    /// The ticket that In-Reply-To / References point at.
    pub threaded: Option<TicketFacts>,
    /// The ticket whose tag is in the subject.
    pub tagged: Option<TicketFacts>,
    /// The newest ticket opened as a follow-up of the threaded (else the
    /// tagged) ticket, when one was: a later reply to a thread closed too
    /// long ago joins it instead of opening yet another ticket.
    pub follow_up: Option<TicketFacts>,
    /// Services of `account`, for service-ID detection.
    pub services: Vec<Service>,
    /// Subscriptions of every account involved.
    pub subscriptions: Vec<Subscription>,
    /// Primary contacts of `account`, who approve requests.
    pub primaries: Vec<Recipient>,
    /// Tickets the sender opened in the hour up to this mail.
    pub recent_new_tickets: usize,
    /// Refusals (`not_authorised`) sent to the sender in that hour.
    pub recent_refusals: usize,
    /// Mails added to each candidate ticket (threaded, tagged) in the 10
    /// minutes up to this mail: by the sender, and by the busiest other
    /// sender.
    pub recent_replies: Vec<(i64, usize, usize)>,
    /// For a delivery report: the ticket of the notification it returns.
    pub bounced: Option<TicketFacts>,
    /// For a delivery report: contacts among its permanent failures.
    pub bounced_contacts: Vec<Contact>,
}

/// The rules the core applies, from the config and the directory.
pub struct Policy<'a> {
    pub config: &'a Config,
    pub tag: &'a TagFormat,
    /// Config and directory ignore rules together.
    pub ignore_rules: &'a [IgnoreRule],
    /// [`Config::own_addresses`], worked out once per config.
    pub own_addresses: &'a [String],
}

/// How a mail ended, as shown in `messages list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    NewTicket,
    Update,
    Ignored,
    Duplicate,
    Quarantined,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::NewTicket => "new_ticket",
            Outcome::Update => "update",
            Outcome::Ignored => "ignored",
            Outcome::Duplicate => "duplicate",
            Outcome::Quarantined => "quarantined",
        }
    }
}

/// A contact the plan creates from the From header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewContact {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub account_id: Option<i64>,
}

/// Which contact the mail is tied to.
#[derive(Debug, Clone, PartialEq)]
pub enum ContactChange {
    None,
    Existing(i64),
    Create(NewContact),
}

/// A ticket the plan opens.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    pub subject: String,
    pub status: TicketStatus,
    pub scope: TicketScope,
    /// The closed ticket this one follows up, when a late reply opened it.
    pub related: Option<i64>,
}

/// What happens to tickets.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketChange {
    None,
    Open(NewTicket),
    /// Attach to ticket `number`; `reopen` when it was closed.
    Update {
        number: i64,
        reopen: bool,
    },
}

/// The decision for one mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub class: Class,
    pub outcome: Outcome,
    /// Why it was ignored or quarantined (`unknown_sender`, `ignore rule *@x`, ...).
    pub reason: Option<String>,
    pub contact: ContactChange,
    pub ticket: TicketChange,
    pub notices: Vec<Notice>,
    /// Things the team should know (a refused subject tag, ...), kept on the ticket.
    pub notes: Vec<String>,
    /// Contacts a delivery report says cannot receive mail, each counting
    /// one hard bounce towards the limit given with it
    /// (`contacts.hard_bounce_limit`).
    pub hard_bounces: Vec<(i64, u32)>,
}

impl Plan {
    pub(super) fn ended(class: Class, outcome: Outcome, reason: impl Into<String>) -> Plan {
        Plan {
            class,
            outcome,
            reason: Some(reason.into()),
            contact: ContactChange::None,
            ticket: TicketChange::None,
            notices: Vec::new(),
            notes: Vec::new(),
            hard_bounces: Vec::new(),
        }
    }
}

/// Quarantine reasons the core can give.
pub mod reason {
    pub const UNKNOWN_SENDER: &str = "unknown_sender";
    pub const NOT_AUTHORISED: &str = "not_authorised";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const NO_SENDER: &str = "no_sender";
}

/// Decides what happens to one mail received at time `now`.
pub fn decide(msg: &Message, class: Class, facts: &Facts, policy: &Policy, now: i64) -> Plan {
    if facts.duplicate {
        return Plan::ended(class, Outcome::Duplicate, "already processed");
    }
    if class == Class::Loop {
        return Plan::ended(class, Outcome::Ignored, "our own mail came back");
    }
    let address = msg.from.address.as_str();
    if policy.own_addresses.iter().any(|a| a.eq_ignore_ascii_case(address)) {
        // An agent answering from the shared support mailbox with it in
        // copy, a rule copying sent mail to the inbox: not a customer.
        return Plan::ended(Class::Loop, Outcome::Ignored, "sent from our own support address");
    }
    if policy.ignore_rules.iter().any(|r| r.matches(address)) {
        return Plan::ended(class, Outcome::Ignored, "sender matches an ignore rule");
    }
    if facts.sender.as_ref().is_some_and(|c| c.ignore) || facts.mailbox_ignored {
        return Plan::ended(class, Outcome::Ignored, "contact is set to be ignored");
    }
    // Someone writing about a delivery problem ("mail to X could not be
    // delivered: 550 5.1.1"), or forwarding a bounce to ask for help,
    // reads like a bounce, but a person wrote it: it is a request, and the
    // addresses it names are not charged. Only a mail system's report (by
    // its form or its sender) is a bounce.
    let person_about_a_bounce = msg.delivery_report.as_ref().is_some_and(|r| {
        !r.by_mail_system
            // `postmaster@customer` known as a contact is a person there.
            || (r.by_address_only && facts.sender.is_some())
    });
    let class = if class == Class::Bounce && person_about_a_bounce {
        Class::Normal
    } else {
        class
    };
    if class == Class::Bounce {
        return bounce_plan(msg, facts, policy.config);
    }
    let mut notes = Vec::new();
    let target = thread_target(msg, facts, &mut notes);
    // List mail opens no ticket (unless configured), but a reply to a
    // ticket that came through a list (the customer's team list in copy)
    // is part of that conversation: it joins it as a machine's answer
    // does, so it is on the ticket instead of lost, and notifies nobody
    // (list traffic answered by notifications could loop).
    let list_only = class == Class::List && !policy.config.tickets.ticket_from_lists;
    if list_only && target.is_none() {
        return Plan::ended(class, Outcome::Ignored, "mailing-list mail");
    }
    if list_only {
        notes.push("came through a mailing list: attached to the ticket, nobody notified".to_string());
    }

    if class == Class::AutoReply || list_only {
        // A machine's answer may join the conversation it answers, but it
        // never wakes a closed ticket, never creates a contact and is never
        // answered.
        if let Some(t) = target {
            let contact = facts
                .sender
                .as_ref()
                .map_or(ContactChange::None, |c| ContactChange::Existing(c.id));
            return Plan {
                class,
                outcome: Outcome::Update,
                reason: None,
                contact,
                ticket: TicketChange::Update {
                    number: t.number,
                    reopen: false,
                },
                notices: Vec::new(),
                notes,
                hard_bounces: Vec::new(),
            };
        }
        if !policy.config.tickets.ticket_from_auto_replies {
            if crate::classify::machine_marked(msg) {
                return Plan::ended(class, Outcome::Ignored, "auto-reply to no ticket");
            }
            // Only its subject or wording reads like an automatic answer:
            // a person may have written it, so it opens a ticket, but gets
            // no acknowledgement (a responder answered would loop).
            notes.push("reads like an automatic answer by its words only: opened, not acknowledged".to_string());
        }
    }

    let contact = match &facts.sender {
        Some(c) => ContactChange::Existing(c.id),
        // Only a delivery report may come without a sender, and it never
        // gets here; anything else without one needs a person.
        None if address.is_empty() => return Plan::ended(class, Outcome::Quarantined, reason::NO_SENDER),
        None if policy.config.contacts.auto_create => {
            let (first_name, last_name) = split_name(msg.from.name.as_deref(), address);
            ContactChange::Create(NewContact {
                email: address.to_string(),
                first_name,
                last_name,
                account_id: facts.account.as_ref().map(|a| a.id),
            })
        }
        None => return Plan::ended(class, Outcome::Quarantined, reason::UNKNOWN_SENDER),
    };
    let sender = sender_recipient(msg, facts, &contact);
    let may_acknowledge = !suppresses_acknowledgement(msg, class);

    let mut related = None;
    if let Some(mut t) = target {
        let window = i64::from(policy.config.tickets.reopen_days) * 86_400;
        let late = |t: &TicketFacts| t.status == TicketStatus::Closed && t.closed_at.is_none_or(|c| now - c > window);
        // The first late reply opened a follow-up; the thread's next
        // replies (a colleague answering the same old mail) belong there,
        // if it is their customer's: a follow-up another account's contact
        // opened on the same old thread would pass one customer's mail to
        // another's staff. They open one of their own instead.
        if let Some(f) = facts
            .follow_up
            .as_ref()
            .filter(|f| late(t) && joins_follow_up(f, facts, address))
        {
            notes.push(format!("follows up ticket {} through ticket {}", t.number, f.number));
            t = f;
        }
        if !late(t) {
            let reopen = t.status == TicketStatus::Closed;
            if reopen && t.approval_pending {
                notes.push(format!(
                    "reopened before anyone approved it: awaits approval again (mailroom tickets approve {})",
                    t.number
                ));
            }
            // The approval request asks its primary contacts to answer by
            // mail; their answer approves nothing by itself (it may say no,
            // or ask), so it is put in front of the desk.
            if answers_approval_request(t, facts) {
                notes.push(format!(
                    "a primary contact answered the approval request: read the answer, then approve (mailroom tickets approve {}) or close the ticket",
                    t.number
                ));
            }
            return Plan {
                class,
                outcome: Outcome::Update,
                reason: None,
                contact,
                ticket: TicketChange::Update {
                    number: t.number,
                    reopen,
                },
                notices: if replies_flood(t.number, facts, policy, &mut notes) {
                    Vec::new()
                } else {
                    update_notices(t, &sender, facts, policy, class)
                },
                notes,
                hard_bounces: Vec::new(),
            };
        }
        notes.push(format!(
            "follows up ticket {}, closed more than {} days ago",
            t.number, policy.config.tickets.reopen_days
        ));
        related = Some(t.number);
    }

    // A new ticket. A sender over the hourly limit (a script gone wrong, a
    // mail loop) is held in quarantine, raw kept, instead of flooding the
    // desk and every subscriber.
    let limit = policy.config.intake.max_new_tickets_per_hour;
    if limit > 0 && facts.recent_new_tickets >= limit as usize {
        let mut plan = Plan::ended(class, Outcome::Quarantined, reason::RATE_LIMITED);
        plan.contact = contact;
        return plan;
    }
    // The account's intake policy decides whether it opens.
    let account = facts.account.as_ref();
    // Primary for this account: a contact marked primary with no account
    // (or another one) must not pass every account's intake policy that
    // their address's domain happens to fall under.
    let is_primary = facts
        .sender
        .as_ref()
        .is_some_and(|c| c.primary && c.account_id.is_some() && c.account_id == account.map(|a| a.id));
    let intake = account.map_or(IntakePolicy::Open, |a| a.intake);
    if intake == IntakePolicy::PrimaryOnly && !is_primary {
        // One refusal an hour: an auto-responder our markers miss would
        // otherwise answer each refusal, and be refused again, forever.
        let mut list = NoticeList::new();
        if may_acknowledge && facts.recent_refusals == 0 {
            list.add(Event::Refusal, &sender);
        }
        return Plan {
            class,
            outcome: Outcome::Quarantined,
            reason: Some(reason::NOT_AUTHORISED.into()),
            contact,
            ticket: TicketChange::None,
            notices: list.into_vec(),
            notes,
            hard_bounces: Vec::new(),
        };
    }
    let status = if intake == IntakePolicy::Approval && !is_primary {
        TicketStatus::AwaitingApproval
    } else {
        TicketStatus::Open
    };
    let scope = TicketScope {
        account: account.map(|a| a.id),
        service: detect_service(msg, &facts.services),
    };
    let mut list = NoticeList::new();
    if may_acknowledge {
        list.add(Event::Acknowledgement, &sender);
    }
    list.exclude(&sender.email);
    if status == TicketStatus::AwaitingApproval {
        let mut asked = false;
        for p in &facts.primaries {
            asked |= list.add(Event::ApprovalRequest, p);
        }
        // Nobody to approve (no primary contact, or only ignored or
        // undeliverable ones): the request would wait unseen while its
        // sender is told approval is coming. The note puts it in front of
        // the desk.
        if !asked {
            notes.push(
                "awaits approval, but the account has no primary contact who can be asked: approve or close it by hand (mailroom tickets approve)"
                    .to_string(),
            );
        }
    } else {
        for r in in_groups(&facts.subscriptions, scope, &policy.config.notify.new_ticket) {
            list.add(Event::NewTicket, r);
        }
    }
    Plan {
        class,
        outcome: Outcome::NewTicket,
        reason: None,
        contact,
        ticket: TicketChange::Open(NewTicket {
            subject: ticket_subject(&msg.subject, policy.tag),
            status,
            scope,
            related,
        }),
        notices: list.into_vec(),
        notes,
        hard_bounces: Vec::new(),
    }
}

/// The window of the per-ticket reply limit.
pub const REPLY_WINDOW_SECS: i64 = 600;

/// Whether the sender and someone else are answering each other on ticket
/// `number` past `intake.max_replies_per_ticket` (both near the limit in
/// 10 minutes): the mail is attached, but notifies nobody, and the ticket
/// says why. Two responders that do not mark their answers would otherwise
/// mail each other through the ticket for ever (the outbox's loop guard
/// only slows them down). One person sending many mails in a row is not
/// muted.
fn replies_flood(number: i64, facts: &Facts, policy: &Policy, notes: &mut Vec<String>) -> bool {
    let limit = policy.config.intake.max_replies_per_ticket as usize;
    let (recent, other) = facts
        .recent_replies
        .iter()
        .find(|(n, _, _)| *n == number)
        .map_or((0, 0), |(_, mine, other)| (*mine, *other));
    let flood = limit > 0 && recent >= limit && other + 1 >= limit;
    if flood {
        notes.push(format!(
            "{} mails from this sender on the ticket within {} minutes: attached without notifying anyone (intake.max_replies_per_ticket)",
            recent + 1,
            REPLY_WINDOW_SECS / 60
        ));
    }
    flood
}

/// The sender as a recipient (acknowledgement, refusal).
fn sender_recipient(msg: &Message, facts: &Facts, contact: &ContactChange) -> Recipient {
    let account_language = facts.account.as_ref().and_then(|a| a.language.clone());
    match (&facts.sender, contact) {
        (Some(c), _) => Recipient {
            contact_id: Some(c.id),
            email: c.email.clone(),
            first_name: c.first_name.clone(),
            last_name: c.last_name.clone(),
            language: c.language.clone().or(account_language),
            ignore: c.ignore,
            undeliverable: c.undeliverable,
        },
        (None, ContactChange::Create(n)) => Recipient {
            contact_id: None,
            email: n.email.clone(),
            first_name: n.first_name.clone(),
            last_name: n.last_name.clone(),
            language: account_language,
            ignore: false,
            undeliverable: false,
        },
        _ => Recipient {
            contact_id: None,
            email: msg.from.address.clone(),
            first_name: String::new(),
            last_name: String::new(),
            language: account_language,
            ignore: false,
            undeliverable: false,
        },
    }
}

/// Who hears about a new message on an existing ticket: the requester and
/// the update groups (only the requester while approval is pending),
/// never the author.
fn update_notices(t: &TicketFacts, sender: &Recipient, facts: &Facts, policy: &Policy, class: Class) -> Vec<Notice> {
    if class != Class::Normal {
        return Vec::new();
    }
    let mut list = NoticeList::new();
    list.exclude(&sender.email);
    // A primary contact's answer to the approval request is for the desk
    // (it may say no, or say why): the requester waits for the decision.
    if let Some(requester) = t.requester_to_tell().filter(|_| !answers_approval_request(t, facts)) {
        list.add(Event::TicketUpdated, requester);
    }
    if !t.awaits_approval() {
        for r in in_groups(&facts.subscriptions, t.scope, &policy.config.notify.ticket_updated) {
            list.add(Event::TicketUpdated, r);
        }
        for r in escalated(
            &facts.subscriptions,
            t.scope,
            &policy.config.notify.escalation,
            0,
            t.escalation_level,
        ) {
            list.add(Event::TicketUpdated, r);
        }
    }
    list.into_vec()
}

/// The first service of the account whose ID the mail mentions.
fn detect_service(msg: &Message, services: &[Service]) -> Option<i64> {
    let subject = msg.subject.to_lowercase();
    let text = msg.text.to_lowercase();
    // The longest ID named wins, the account's first on a tie (`rev`:
    // `max_by_key` keeps the last of equals).
    services
        .iter()
        .filter(|s| {
            let id = s.service_id.to_lowercase();
            !id.is_empty() && (names_id(&subject, &id) || names_id(&text, &id))
        })
        .rev()
        .max_by_key(|s| s.service_id.len())
        .map(|s| s.id)
}

/// Whether `text` names `id` as a whole token: not inside a longer ID
/// (`LON/ETH/000123` in `LON/ETH/0001234` or `XLON/ETH/000123`).
fn names_id(text: &str, id: &str) -> bool {
    let part_of_id = |c: char| c.is_alphanumeric() || matches!(c, '/' | '-' | '_' | '.');
    text.match_indices(id).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + id.len()..].chars().next();
        // A trailing dot ends a sentence, not an ID.
        let after_ends = match after {
            Some('.') => !text[at + id.len() + 1..].chars().next().is_some_and(part_of_id),
            other => !other.is_some_and(part_of_id),
        };
        !before.is_some_and(part_of_id) && after_ends
    })
}

#[cfg(test)]
#[path = "plan_tests/mod.rs"]
mod tests;
