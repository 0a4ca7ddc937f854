//! Which subscribers hear about a ticket.
//!
//! A subscription reaches a ticket through its target: the ticket's service,
//! the ticket's account (which covers all the account's services), or a
//! billing account of the ticket's account. Escalation subscribers are
//! reached only once the ticket's level has come up to theirs.
//!
//! Only subscriptions of the ticket's own account reach it: a service that
//! moved to another customer leaves its old tickets with the old one, whose
//! news the new customer's staff must not read.

use crate::directory::{ContactGroup, SubscriptionTarget};
use crate::notify::Recipient;

/// What a ticket is about, in database ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TicketScope {
    pub account: Option<i64>,
    pub service: Option<i64>,
}

/// A subscription with the recipient it reaches.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub recipient: Recipient,
    pub group: ContactGroup,
    pub target: SubscriptionTarget,
    /// The account whose staff subscribed: the target's account now.
    pub account: i64,
    /// Escalation level (1-5), only for the escalation group.
    pub level: Option<u8>,
}

impl Subscription {
    /// Does this subscription's target cover the ticket?
    pub fn covers(&self, scope: TicketScope) -> bool {
        scope.account == Some(self.account)
            && match self.target {
                SubscriptionTarget::Service(s) => scope.service == Some(s),
                SubscriptionTarget::Account(a) => a == self.account,
                SubscriptionTarget::Billing { account, .. } => account == self.account,
            }
    }
}

/// Subscribers of `groups` covering the ticket, in subscription order.
pub fn in_groups<'a>(
    subs: &'a [Subscription],
    scope: TicketScope,
    groups: &'a [ContactGroup],
) -> impl Iterator<Item = &'a Recipient> + 'a {
    subs.iter()
        .filter(move |s| groups.contains(&s.group) && s.covers(scope))
        .map(|s| &s.recipient)
}

/// Subscribers of the escalation `groups` (`notify.escalation`) covering
/// the ticket whose level lies in `(above, upto]`: `above = 0` gives
/// everyone already reached. A subscription without a level (a group
/// other than `escalation`) counts as level 1.
pub fn escalated<'a>(
    subs: &'a [Subscription],
    scope: TicketScope,
    groups: &'a [ContactGroup],
    above: u8,
    upto: u8,
) -> impl Iterator<Item = &'a Recipient> + 'a {
    subs.iter()
        .filter(move |s| {
            let level = s.level.unwrap_or(1);
            groups.contains(&s.group) && s.covers(scope) && level > above && level <= upto
        })
        .map(|s| &s.recipient)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(email: &str, group: ContactGroup, target: SubscriptionTarget, level: Option<u8>) -> Subscription {
        sub_of(1, email, group, target, level)
    }

    fn sub_of(
        account: i64,
        email: &str,
        group: ContactGroup,
        target: SubscriptionTarget,
        level: Option<u8>,
    ) -> Subscription {
        Subscription {
            account,
            recipient: Recipient {
                contact_id: Some(1),
                email: email.into(),
                first_name: String::new(),
                last_name: String::new(),
                language: None,
                ignore: false,
                undeliverable: false,
            },
            group,
            target,
            level,
        }
    }

    #[test]
    fn targets_and_levels() {
        use ContactGroup::*;
        use SubscriptionTarget::*;
        let subs = vec![
            sub("svc@a", ReactiveServiceOutage, Service(10), None),
            sub("other-svc@a", ReactiveServiceOutage, Service(11), None),
            sub("acct@a", KeyContact, Account(1), None),
            sub("bill@a", KeyContact, Billing { billing: 5, account: 1 }, None),
            sub("planned@a", PlannedWorks, Account(1), None),
            sub("e1@a", Escalation, Service(10), Some(1)),
            sub("e3@a", Escalation, Service(10), Some(3)),
        ];
        let scope = TicketScope {
            account: Some(1),
            service: Some(10),
        };
        let groups = [ReactiveServiceOutage, KeyContact];
        let got: Vec<_> = in_groups(&subs, scope, &groups).map(|r| r.email.as_str()).collect();
        assert_eq!(got, ["svc@a", "acct@a", "bill@a"]);
        let escalation = [Escalation];
        let got: Vec<_> = escalated(&subs, scope, &escalation, 0, 2)
            .map(|r| r.email.as_str())
            .collect();
        assert_eq!(got, ["e1@a"]);
        let got: Vec<_> = escalated(&subs, scope, &escalation, 1, 3)
            .map(|r| r.email.as_str())
            .collect();
        assert_eq!(got, ["e3@a"]);
        // `notify.escalation` naming another group too: its subscribers,
        // without levels, are called in from level 1.
        let wider = [Escalation, PlannedWorks];
        let got: Vec<_> = escalated(&subs, scope, &wider, 0, 1)
            .map(|r| r.email.as_str())
            .collect();
        assert_eq!(got, ["planned@a", "e1@a"]);
        let got: Vec<_> = escalated(&subs, scope, &wider, 1, 3)
            .map(|r| r.email.as_str())
            .collect();
        assert_eq!(got, ["e3@a"]);
    }

    /// Service 10 moved from account 1 to account 2: its subscribers at
    /// account 2 hear of its new tickets, not of account 1's old ones.
    #[test]
    fn a_moved_service_keeps_its_old_tickets_with_the_old_account() {
        use ContactGroup::*;
        use SubscriptionTarget::*;
        let subs = vec![sub_of(2, "new-owner@b", ReactiveServiceOutage, Service(10), None)];
        let groups = [ReactiveServiceOutage];
        let old = TicketScope {
            account: Some(1),
            service: Some(10),
        };
        assert_eq!(in_groups(&subs, old, &groups).count(), 0);
        let new = TicketScope {
            account: Some(2),
            service: Some(10),
        };
        assert_eq!(in_groups(&subs, new, &groups).count(), 1);
    }
}
