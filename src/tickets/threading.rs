//! Which ticket a mail naming one belongs to, and who may join a ticket
//! without a thread leading there: the rules that keep one customer's mail
//! off another's ticket.

use super::TicketFacts;
use super::plan::Facts;
use crate::directory::domain_of;
use crate::message::Message;

/// The ticket a reply belongs to: by Message-ID first; by subject tag only
/// when the sender has a right to that ticket, so quoting someone else's
/// ticket number cannot put a stranger's mail on it.
pub(super) fn thread_target<'a>(msg: &Message, facts: &'a Facts, notes: &mut Vec<String>) -> Option<&'a TicketFacts> {
    if let Some(t) = &facts.threaded {
        return Some(t);
    }
    let t = facts.tagged.as_ref()?;
    if entitled(t, facts) {
        Some(t)
    } else {
        notes.push(format!(
            "subject names ticket {} but {} is neither a participant nor a contact of its account: opened a new ticket",
            t.number, msg.from.address
        ));
        None
    }
}

/// Whether the sender has a right to ticket `t` without a thread leading
/// there: they wrote on it, or they are a contact of its account.
pub(super) fn entitled(t: &TicketFacts, facts: &Facts) -> bool {
    let participant = facts.sender.as_ref().is_some_and(|c| t.participants.contains(&c.id));
    let same_account = t.scope.account.is_some() && facts.account.as_ref().map(|a| a.id) == t.scope.account;
    participant || same_account
}

/// Whether the mail is a primary contact of the ticket's account answering
/// while the ticket awaits their approval.
pub(super) fn answers_approval_request(t: &TicketFacts, facts: &Facts) -> bool {
    t.awaits_approval()
        && facts
            .sender
            .as_ref()
            .is_some_and(|c| c.primary && c.account_id.is_some() && c.account_id == t.scope.account)
}

/// Whether a late reply to an old thread joins `f`, the follow-up someone
/// opened on it: when the sender has a right to it, or when neither it nor
/// the sender has an account and the sender writes from its requester's
/// domain (a colleague, where the directory knows neither).
pub(super) fn joins_follow_up(f: &TicketFacts, facts: &Facts, address: &str) -> bool {
    let strangers_alike = f.scope.account.is_none()
        && facts.account.is_none()
        && domain_of(address).eq_ignore_ascii_case(domain_of(&f.requester.email));
    entitled(f, facts) || strangers_alike
}
