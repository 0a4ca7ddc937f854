//! What the store knows about a whole batch, loaded in a handful of queries.
//!
//! Looking facts up mail by mail costs a dozen round trips each; at 200
//! mails a batch that dominated everything else. Instead the batch's keys,
//! senders, referenced Message-IDs, tagged tickets and the accounts they
//! touch are loaded at once with `IN (…)` queries, and the snapshot is kept
//! current in memory as the batch creates contacts and tickets, so the 50th
//! mail of a batch threads onto a ticket the 3rd one opened.

mod load;

use std::collections::{HashMap, HashSet};

use crate::directory::{Account, Contact, Service, domain_candidates, domain_of};
use crate::message::Message;
use crate::notify::Recipient;
use crate::notify::audience::{Subscription, TicketScope};
use crate::tickets::plan::{Facts, REPLY_WINDOW_SECS};
use crate::tickets::tag::TagFormat;
use crate::tickets::{TicketFacts, TicketStatus};

pub use load::key_is_known;

/// How far a chain of follow-ups is followed (a ticket closed long ago, its
/// follow-up closed long ago too, ...): far past any real chain, and a
/// bound on a malformed one.
const FOLLOW_UP_DEPTH: usize = 16;

/// A ticket row as stored, with what the core needs about it.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketRecord {
    pub number: i64,
    pub subject: String,
    pub status: TicketStatus,
    pub requester_id: i64,
    pub account_id: Option<i64>,
    pub service_id: Option<i64>,
    pub escalation_level: u8,
    pub related: Option<i64>,
    pub root_message_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    /// Still waiting for its account's approval, whatever its status.
    pub approval_pending: bool,
    pub requester: Recipient,
    /// The requester's account now (see [`TicketFacts::requester_account`]).
    pub requester_account: Option<i64>,
    pub participants: Vec<i64>,
}

impl TicketRecord {
    /// The facts the core reads.
    pub fn facts(&self) -> TicketFacts {
        TicketFacts {
            number: self.number,
            status: self.status,
            scope: TicketScope {
                account: self.account_id,
                service: self.service_id,
            },
            closed_at: self.closed_at,
            escalation_level: self.escalation_level,
            approval_pending: self.approval_pending,
            requester: self.requester.clone(),
            requester_account: self.requester_account,
            participants: self.participants.clone(),
        }
    }
}

/// The window of the per-sender rate limit.
pub const RATE_WINDOW_SECS: i64 = 3_600;

/// The mail holding a key: enough to tell a redelivery of it from another
/// mail carrying the same Message-ID.
#[derive(Debug, Clone, Default)]
pub struct KeyHolder {
    /// The sender's address; "" when it had none.
    pub sender: String,
    /// The sender's `Date:`; `None` when it had none (or was stored before
    /// dates were kept).
    pub date: Option<i64>,
    /// When it was received.
    pub received_at: i64,
}

impl KeyHolder {
    pub fn new(sender: String, date: Option<i64>, received_at: i64) -> KeyHolder {
        KeyHolder {
            sender,
            date,
            received_at,
        }
    }
}

/// How far a sender's clock may run ahead of ours: a mail dated more than
/// this after the mail holding its Message-ID arrived was written after it.
const CLOCK_SKEW_SECS: i64 = 900;

/// The batch's view of the store.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The keys of mails the store holds, each with who sent it and when:
    /// a mail reusing a Message-ID under another sender, or written at
    /// another time, is another mail ([`Snapshot::reused_key`]).
    pub known_keys: HashMap<String, KeyHolder>,
    pub contacts: HashMap<String, Contact>,
    pub accounts: HashMap<i64, Account>,
    pub domain_accounts: HashMap<String, i64>,
    /// Message-ID (received or sent) → ticket.
    pub thread_ids: HashMap<String, i64>,
    pub tickets: HashMap<i64, TicketRecord>,
    /// Closed ticket → the newest ticket opened as its follow-up.
    pub follow_ups: HashMap<i64, i64>,
    pub services: HashMap<i64, Vec<Service>>,
    pub subscriptions: HashMap<i64, Vec<Subscription>>,
    pub primaries: HashMap<i64, Vec<Recipient>>,
    /// When each sender of the batch opened tickets, from an hour before
    /// the batch's earliest mail on (for the per-sender rate limit).
    pub opened: HashMap<String, Vec<i64>>,
    /// When each sender of the batch was sent a refusal (`not_authorised`),
    /// over the same window: a refusal goes out at most once an hour.
    pub refused: HashMap<String, Vec<i64>>,
    /// Mails on each loaded ticket since 10 minutes before the batch's
    /// earliest mail: sender and time (for the per-ticket reply limit).
    pub ticket_mail: HashMap<i64, Vec<(String, i64)>>,
    /// Senders whose `opened` and `refused` times are loaded (a sender
    /// without any has no entry there).
    pub senders_loaded: HashSet<String>,
}

impl Snapshot {
    /// How much it holds, to bound a snapshot kept across batches.
    pub fn size(&self) -> usize {
        self.known_keys.len() + self.contacts.len() + self.tickets.len() + self.thread_ids.len()
    }

    /// The newest ticket down `number`'s chain of follow-ups, if it has
    /// one: a late reply to the oldest thread belongs there.
    fn newest_follow_up(&self, number: i64) -> Option<&TicketRecord> {
        let mut newest = *self.follow_ups.get(&number)?;
        for _ in 0..FOLLOW_UP_DEPTH {
            match self.follow_ups.get(&newest) {
                Some(&next) if next != newest && next != number => newest = next,
                _ => break,
            }
        }
        self.tickets.get(&newest)
    }

    /// The sender's account: their contact's, else by the address's domain.
    /// A contact without an account (created from mail before the directory
    /// named its domain, or imported without one) falls under its domain's
    /// account as a stranger would: its mail must meet that account's intake
    /// policy and reach its subscribers.
    fn account_of(&self, sender: Option<&Contact>, address: &str) -> Option<&Account> {
        let id = sender.and_then(|c| c.account_id).or_else(|| {
            domain_candidates(domain_of(address))
                .into_iter()
                .find_map(|d| self.domain_accounts.get(d).copied())
        })?;
        self.accounts.get(&id)
    }

    /// The key `msg` is kept under instead of its Message-ID's when a mail
    /// from another sender, or from the same sender but written at another
    /// time (another `Date:`), already holds that Message-ID: its bytes'
    /// hash. Web forms and scripts that send every mail with one constant
    /// Message-ID had each mail after the first dropped as a duplicate; a
    /// mail delivered again (a second mailbox, a re-fetch, a mailing list
    /// that rewrote its subject or added a footer) keeps its sender and its
    /// `Date:`, which no relay rewrites, and stays a duplicate. Where either
    /// mail has no date, the sender alone decides, as it did before dates
    /// were kept.
    pub fn reused_key(&self, msg: &Message) -> Option<String> {
        msg.message_id.as_ref()?;
        if msg.from.address.is_empty() {
            return None;
        }
        let holder = self.known_keys.get(&msg.key).filter(|h| !h.sender.is_empty())?;
        let other_sender = !holder.sender.eq_ignore_ascii_case(&msg.from.address);
        // A mail stored without its date (before dates were kept): the new
        // one is another if it was written after that one arrived.
        let other_time = match (holder.date, msg.date) {
            (Some(held), Some(new)) => held != new,
            (None, Some(new)) => new > holder.received_at + CLOCK_SKEW_SECS,
            _ => false,
        };
        (other_sender || other_time).then(|| crate::message::hash_key(&msg.raw_sha256))
    }

    /// The facts of one mail received `at`, as of this point in the batch.
    pub fn facts(&self, msg: &Message, tag: &TagFormat, reprocessing: bool, at: i64) -> Facts {
        if !reprocessing && self.known_keys.contains_key(&msg.key) {
            return Facts {
                duplicate: true,
                ..Facts::default()
            };
        }
        let sender = self.contacts.get(&msg.from.address).cloned();
        let mailbox = crate::directory::mailbox_of(&msg.from.address);
        let mailbox_ignored =
            mailbox != msg.from.address && self.contacts.get(mailbox.as_ref()).is_some_and(|c| c.ignore);
        let account = self.account_of(sender.as_ref(), &msg.from.address).cloned();
        let threaded = msg
            .in_reply_to
            .iter()
            .chain(msg.references.iter().rev())
            .find_map(|id| self.thread_ids.get(id))
            .and_then(|n| self.tickets.get(n))
            .map(TicketRecord::facts);
        let tagged = match threaded {
            None => tag
                .find(&msg.subject)
                .and_then(|n| self.tickets.get(&n))
                .map(TicketRecord::facts),
            Some(_) => None,
        };
        let follow_up = threaded
            .as_ref()
            .or(tagged.as_ref())
            .and_then(|t| self.newest_follow_up(t.number))
            .map(TicketRecord::facts);
        let mut involved: Vec<i64> = Vec::new();
        for id in [
            account.as_ref().map(|a| a.id),
            threaded.as_ref().and_then(|t| t.scope.account),
            tagged.as_ref().and_then(|t| t.scope.account),
            follow_up.as_ref().and_then(|t| t.scope.account),
        ]
        .into_iter()
        .flatten()
        {
            if !involved.contains(&id) {
                involved.push(id);
            }
        }
        let subscriptions = involved
            .iter()
            .flat_map(|a| self.subscriptions.get(a).cloned().unwrap_or_default())
            .collect();
        let (services, primaries) = match &account {
            Some(a) => (
                self.services.get(&a.id).cloned().unwrap_or_default(),
                self.primaries.get(&a.id).cloned().unwrap_or_default(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        // An operator releasing a mail from quarantine has decided: no limit.
        let within_the_hour = |times: Option<&Vec<i64>>| match times {
            Some(times) if !reprocessing => times
                .iter()
                .filter(|t| **t > at - RATE_WINDOW_SECS && **t <= at)
                .count(),
            _ => 0,
        };
        let recent_new_tickets = within_the_hour(self.opened.get(&msg.from.address));
        let recent_refusals = within_the_hour(self.refused.get(&msg.from.address));
        let recent_replies = [threaded.as_ref(), tagged.as_ref(), follow_up.as_ref()]
            .into_iter()
            .flatten()
            .map(|t| {
                let mut by_sender: HashMap<&str, usize> = HashMap::new();
                if let Some(mails) = self.ticket_mail.get(&t.number).filter(|_| !reprocessing) {
                    for (from, when) in mails {
                        if *when > at - REPLY_WINDOW_SECS && *when <= at {
                            *by_sender.entry(from.as_str()).or_default() += 1;
                        }
                    }
                }
                let mine = by_sender.remove(msg.from.address.as_str()).unwrap_or(0);
                let other = by_sender.into_values().max().unwrap_or(0);
                (t.number, mine, other)
            })
            .collect();
        let bounced = returned_id(msg)
            .and_then(|id| self.thread_ids.get(id))
            .and_then(|n| self.tickets.get(n))
            .map(TicketRecord::facts);
        let bounced_contacts = self.bounced_contacts(msg);
        Facts {
            duplicate: false,
            bounced,
            bounced_contacts,
            sender,
            mailbox_ignored,
            account,
            threaded,
            tagged,
            follow_up,
            services,
            subscriptions,
            primaries,
            recent_new_tickets,
            recent_refusals,
            recent_replies,
        }
    }
}

impl Snapshot {
    /// The contacts a delivery report says failed for good, once each.
    ///
    /// The final recipient is the mailbox that failed. The original one is
    /// charged only when the final one is nobody we know and the original
    /// is a person's address rewritten (marie@ → marie.dupont@): a team
    /// address (a group contact) that expanded to one dead member still
    /// reaches the others.
    fn bounced_contacts(&self, msg: &Message) -> Vec<Contact> {
        let mut found: Vec<Contact> = Vec::new();
        for (address, original) in bounced_addresses(msg) {
            let contact = self
                .contacts
                .get(address)
                .or_else(|| original.and_then(|o| self.contacts.get(o)).filter(|c| !c.group));
            if let Some(c) = contact
                && !found.iter().any(|f| f.id == c.id)
            {
                found.push(c.clone());
            }
        }
        found
    }
}

/// The Message-ID of the mail a delivery report returns.
fn returned_id(msg: &Message) -> Option<&String> {
    msg.delivery_report.as_ref()?.original_message_id.as_ref()
}

/// Addresses a delivery report says failed for good: each final recipient
/// with the original one it was addressed as, if the report says.
fn bounced_addresses(msg: &Message) -> impl Iterator<Item = (&str, Option<&str>)> {
    // An abuse or opt-out feedback report says the mail was unwanted, not
    // that the address does not work.
    msg.delivery_report
        .iter()
        .filter(|r| r.kind != crate::message::ReportKind::Feedback)
        .flat_map(|r| r.permanent_failures())
        .map(|f| {
            (
                f.address.as_str(),
                f.original_address.as_deref().filter(|a| !a.is_empty()),
            )
        })
        .filter(|(a, o)| !a.is_empty() || o.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(date: &str) -> Message {
        let raw = format!(
            "From: nagios@noc.test\r\nSubject: ALERT\r\nMessage-ID: <alert@noc.test>\r\nDate: {date}\r\n\r\nCPU\r\n"
        );
        Message::parse(raw.as_bytes()).unwrap()
    }

    /// Found by a review: a mail stored before dates were kept (its date
    /// unknown) held its Message-ID against every later mail of its
    /// sender. A mail written well after it arrived is another; one dated
    /// before, or within the clock skew, is taken for a redelivery.
    #[test]
    fn a_mail_stored_without_its_date_is_told_from_a_later_one_by_its_arrival() {
        let first = alert("Mon, 2 Mar 2026 10:00:00 +0000");
        let arrived = first.date.unwrap() + 5;
        let mut s = Snapshot::default();
        s.known_keys.insert(
            first.key.clone(),
            KeyHolder::new("nagios@noc.test".into(), None, arrived),
        );
        assert_eq!(s.reused_key(&first), None, "the same mail again");
        let later = alert("Mon, 2 Mar 2026 11:00:00 +0000");
        assert_eq!(s.reused_key(&later), Some(crate::message::hash_key(&later.raw_sha256)));
        // With the stored date known, any other date is another mail.
        s.known_keys.insert(
            first.key.clone(),
            KeyHolder::new("nagios@noc.test".into(), first.date, arrived),
        );
        let soon = alert("Mon, 2 Mar 2026 10:01:00 +0000");
        assert!(s.reused_key(&soon).is_some());
        assert_eq!(s.reused_key(&first), None);
    }
}
