//! What the team does to a ticket by hand, and who is told.
//!
//! Closing, escalating and approving are decided here, purely, like mail
//! intake in [`super::plan`]: the CLI gathers the ticket and its
//! subscriptions, this module returns the new state and the notices, and
//! the store applies both in one transaction.

use super::{TicketFacts, TicketStatus};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::notify::audience::{Subscription, escalated, in_groups};
use crate::notify::{Event, Notice, NoticeList};

/// A hand action on a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Close,
    /// Raise the escalation level to this (1-5).
    Escalate(u8),
    /// A primary contact approved a pending request.
    Approve,
}

/// The result of an action: the ticket's new state and who to tell.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionPlan {
    pub status: TicketStatus,
    pub escalation_level: u8,
    pub notices: Vec<Notice>,
}

/// Decides an action; refuses ones that make no sense for the ticket's state.
pub fn decide_action(t: &TicketFacts, action: Action, subs: &[Subscription], config: &Config) -> Result<ActionPlan> {
    let mut list = NoticeList::new();
    match action {
        Action::Close => {
            if t.status == TicketStatus::Closed {
                return Err(Error::Usage(format!("ticket {} is already closed", t.number)));
            }
            if let Some(requester) = t.requester_to_tell() {
                list.add(Event::TicketClosed, requester);
            }
            // Subscribers never heard of a request still awaiting approval
            // (they are told when it is approved): closing it is news to the
            // requester only.
            if t.status != TicketStatus::AwaitingApproval {
                for r in in_groups(subs, t.scope, &config.notify.ticket_closed) {
                    list.add(Event::TicketClosed, r);
                }
                for r in escalated(subs, t.scope, &config.notify.escalation, 0, t.escalation_level) {
                    list.add(Event::TicketClosed, r);
                }
            }
            Ok(ActionPlan {
                status: TicketStatus::Closed,
                escalation_level: t.escalation_level,
                notices: list.into_vec(),
            })
        }
        Action::Escalate(level) => {
            if !(1..=5).contains(&level) {
                return Err(Error::Usage(format!("escalation level {level} is not 1-5")));
            }
            // Escalation subscribers must not hear of a request its account
            // has not approved (subscribers are told on approval), nor be
            // called to a ticket already closed.
            match t.status {
                TicketStatus::AwaitingApproval => {
                    return Err(Error::Usage(format!(
                        "ticket {} awaits its account's approval: approve it before escalating",
                        t.number
                    )));
                }
                TicketStatus::Closed => {
                    return Err(Error::Usage(format!("ticket {} is closed", t.number)));
                }
                TicketStatus::Open => {}
            }
            if level <= t.escalation_level {
                return Err(Error::Usage(format!(
                    "ticket {} is already at escalation level {}",
                    t.number, t.escalation_level
                )));
            }
            // Someone reached at a lower level already (subscribed at level
            // 1 on the service and 3 on the account) hears of the ticket's
            // updates: called in again, they got a second "you will now
            // receive updates".
            for r in escalated(subs, t.scope, &config.notify.escalation, 0, t.escalation_level) {
                list.exclude(&r.email);
            }
            for r in escalated(subs, t.scope, &config.notify.escalation, t.escalation_level, level) {
                list.add(Event::Escalation, r);
            }
            Ok(ActionPlan {
                status: t.status,
                escalation_level: level,
                notices: list.into_vec(),
            })
        }
        Action::Approve => {
            if t.status != TicketStatus::AwaitingApproval {
                return Err(Error::Usage(format!("ticket {} is not awaiting approval", t.number)));
            }
            // The requester was told the request awaits approval; now it
            // is an open ticket (the acknowledgement, rendered with the
            // ticket open, says so). Subscribers hear of it as new.
            if let Some(requester) = t.requester_to_tell() {
                list.add(Event::Acknowledgement, requester);
            }
            list.exclude(&t.requester.email);
            for r in in_groups(subs, t.scope, &config.notify.new_ticket) {
                list.add(Event::NewTicket, r);
            }
            Ok(ActionPlan {
                status: TicketStatus::Open,
                escalation_level: t.escalation_level,
                notices: list.into_vec(),
            })
        }
    }
}
