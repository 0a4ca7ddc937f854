//! Tickets: the unit of work the support team handles.
//!
//! [`plan`] is the pure core of mailroom: given a parsed, classified mail and
//! the facts the store gathered about it, it decides the outcome (ignore,
//! quarantine, new ticket, update), the contact to create and the
//! notifications to queue, without any I/O. [`actions`] does the same for
//! what the team does by hand (close, escalate, approve).

pub mod actions;
mod bounce;
pub mod plan;
pub mod subject;
pub mod tag;
mod threading;

use std::str::FromStr;

use serde::Serialize;

use crate::notify::Recipient;
use crate::notify::audience::TicketScope;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    Open,
    /// Waiting for a primary contact of an `approval` account.
    AwaitingApproval,
    Closed,
}

impl TicketStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::AwaitingApproval => "awaiting_approval",
            TicketStatus::Closed => "closed",
        }
    }
}

impl FromStr for TicketStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(TicketStatus::Open),
            "awaiting_approval" => Ok(TicketStatus::AwaitingApproval),
            "closed" => Ok(TicketStatus::Closed),
            _ => Err(format!("{s:?} is not a ticket status")),
        }
    }
}

/// What the core needs to know about an existing ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketFacts {
    pub number: i64,
    pub status: TicketStatus,
    pub scope: TicketScope,
    pub closed_at: Option<i64>,
    pub escalation_level: u8,
    /// Still waiting for its account's approval: a ticket closed while it
    /// waited and reopened waits again.
    pub approval_pending: bool,
    /// The requester, as a possible recipient of updates.
    pub requester: Recipient,
    /// The requester's account now: a requester the directory has since
    /// moved to another customer is no longer told of this one's ticket.
    pub requester_account: Option<i64>,
    /// Contact ids of everyone who wrote on the ticket (requester included).
    pub participants: Vec<i64>,
}

impl TicketFacts {
    /// The requester, unless they now belong to another account than the
    /// ticket's (a contact moved to another customer, or re-homed by an
    /// MSP): that customer's staff must not read this one's news. A
    /// requester with no account at all (whose ticket went to their
    /// domain's account) has moved nowhere.
    pub fn requester_to_tell(&self) -> Option<&Recipient> {
        let moved = self.scope.account.is_some()
            && self.requester_account.is_some()
            && self.requester_account != self.scope.account;
        (!moved).then_some(&self.requester)
    }

    /// Whether the ticket waits for its account's approval: awaiting it, or
    /// closed while it did (a reply reopens it awaiting again).
    pub fn awaits_approval(&self) -> bool {
        self.status == TicketStatus::AwaitingApproval || self.approval_pending
    }
}
