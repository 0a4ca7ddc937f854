//! The plan for a delivery report: what it charges, and where it is kept.

use super::plan::{Facts, Outcome, Plan, TicketChange};
use crate::classify::Class;
use crate::config::Config;
use crate::message::Message;
use crate::notify::outbox::is_notification_id;

/// A delivery report: never a ticket, never a notification. Its permanent
/// failures count against the contacts they name, and it is kept on the
/// ticket of the notification it returns, with what failed as a note.
pub(super) fn bounce_plan(msg: &Message, facts: &Facts, config: &Config) -> Plan {
    let mut plan = Plan::ended(Class::Bounce, Outcome::Ignored, "delivery report");
    // A report charges the addresses it names only when the mail it
    // returns is ours (a mail of one of our tickets, or a notification by
    // its Message-ID's form): backscatter, a mail system's reports about
    // spam forged in a customer's name, would otherwise make customers
    // undeliverable and silence their notifications. A report that
    // returns no Message-ID charges them when a mail system wrote it; one
    // known only by its words, from no mail system, never does. A returned
    // mail carrying our X-Mailroom-Ticket header is ours whatever its
    // Message-ID (a relay such as Amazon SES replaces it).
    let trusted = msg
        .delivery_report
        .as_ref()
        .is_some_and(|r| match &r.original_message_id {
            Some(id) => {
                facts.bounced.is_some() || is_notification_id(id, &config.mail.domain) || r.returns_ticket_header
            }
            None => r.by_mail_system,
        });
    if trusted {
        let limit = config.contacts.hard_bounce_limit;
        plan.hard_bounces = facts.bounced_contacts.iter().map(|c| (c.id, limit)).collect();
    } else if !facts.bounced_contacts.is_empty() {
        plan.reason = Some("delivery report about a mail we did not send: no contact charged".into());
    }
    let Some(t) = &facts.bounced else { return plan };
    let failures: Vec<String> = msg
        .delivery_report
        .iter()
        .flat_map(|r| r.recipients.iter().filter(|f| f.action.as_deref() != Some("delivered")))
        .map(|f| {
            let status = f.status.as_deref().unwrap_or("no status");
            let what = if f.permanent { "failed" } else { "delayed" };
            match &f.diagnostic {
                Some(d) => format!("delivery to {} {what} ({status}): {d}", f.address),
                None => format!("delivery to {} {what} ({status})", f.address),
            }
        })
        .collect();
    plan.outcome = Outcome::Update;
    plan.reason = None;
    plan.ticket = TicketChange::Update {
        number: t.number,
        reopen: false,
    };
    plan.notes = if failures.is_empty() {
        vec!["a delivery report about a notification of this ticket".into()]
    } else {
        failures
    };
    plan
}
