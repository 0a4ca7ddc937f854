//! Who is told: new tickets, updates, and the team's hand actions.

use super::*;

// ---- new-ticket notifications --------------------------------------------

#[test]
fn new_ticket_notifies_configured_groups_covering_the_ticket() {
    use SubscriptionTarget::{Account as A, Billing, Service as S};
    let requester = marie();
    let mut f = known(requester.clone(), IntakePolicy::Open);
    f.subscriptions = vec![
        sub(rcpt("svc@acme.test"), ReactiveServiceOutage, S(SVC)),
        sub(rcpt("other-svc@acme.test"), ReactiveServiceOutage, S(SVC2)),
        sub(rcpt("key@acme.test"), KeyContact, A(ACME)),
        sub(rcpt("KEY@acme.test"), ReactiveServiceOutage, S(SVC)),
        sub(
            rcpt("billing@acme.test"),
            KeyContact,
            Billing {
                billing: 77,
                account: ACME,
            },
        ),
        sub(rcpt("planned@acme.test"), PlannedWorks, A(ACME)),
        sub(rcpt("globex@globex.test"), KeyContact, A(GLOBEX)),
        sub(recipient_of(&requester), KeyContact, A(ACME)),
        sub(
            Recipient {
                ignore: true,
                ..rcpt("muted@acme.test")
            },
            KeyContact,
            A(ACME),
        ),
        sub(
            Recipient {
                undeliverable: true,
                ..rcpt("bounced@acme.test")
            },
            KeyContact,
            A(ACME),
        ),
        esc("esc@acme.test", 1),
    ];
    let p = plan(&simple("marie@acme.test", "LON/ETH/000123 down"), &f);
    assert_eq!(
        opened(&p).scope,
        TicketScope {
            account: Some(ACME),
            service: Some(SVC)
        }
    );
    assert_eq!(p.notices[0].event, Event::Acknowledgement);
    assert_eq!(to(&p.notices, Event::Acknowledgement), ["marie@acme.test"]);
    assert_eq!(
        to(&p.notices, Event::NewTicket),
        ["svc@acme.test", "key@acme.test", "billing@acme.test"]
    );
    assert_eq!(p.notices.len(), 4);
}

#[test]
fn new_ticket_groups_come_from_the_config() {
    let mut f = known(marie(), IntakePolicy::Open);
    f.subscriptions = vec![
        on_acme("key@acme.test", KeyContact),
        on_acme("planned@acme.test", PlannedWorks),
    ];
    let mut cfg = Config::default();
    cfg.notify.new_ticket = vec![PlannedWorks];
    let p = plan_with(&cfg, &simple("marie@acme.test", "Panne"), Class::Normal, &f);
    assert_eq!(to(&p.notices, Event::NewTicket), ["planned@acme.test"]);
}

#[test]
fn noreply_sender_gets_no_acknowledgement_but_subscribers_are_told() {
    for from in ["noreply@acme.test", "do-not-reply@acme.test", "postmaster@acme.test"] {
        let mut f = Facts {
            account: Some(account(ACME, IntakePolicy::Open)),
            ..Facts::default()
        };
        // The sender is itself subscribed: with no acknowledgement to dedupe
        // against, only the requester exclusion keeps it off the list.
        f.subscriptions = vec![on_acme(from, KeyContact), on_acme("key@acme.test", KeyContact)];
        let p = plan(&simple(from, "Alarm"), &f);
        assert_eq!(p.outcome, Outcome::NewTicket, "{from}");
        assert!(
            to(&p.notices, Event::Acknowledgement).is_empty(),
            "{from}: {:?}",
            p.notices
        );
        assert_eq!(to(&p.notices, Event::NewTicket), ["key@acme.test"], "{from}");
    }
}

#[test]
fn acknowledgement_uses_contact_language_before_account_language() {
    let f = known(
        Contact {
            language: Some("it".into()),
            ..marie()
        },
        IntakePolicy::Open,
    );
    let p = plan(&simple("marie@acme.test", "Guasto"), &f);
    assert_eq!(p.notices[0].recipient.language.as_deref(), Some("it"));
    let p = plan(&simple("marie@acme.test", "Panne"), &known(marie(), IntakePolicy::Open));
    assert_eq!(p.notices[0].recipient.language.as_deref(), Some("fr"));
}

// ---- update notifications -------------------------------------------------

fn update_facts(author: Contact, status: TicketStatus, level: u8) -> Facts {
    let mut t = ticket(5, status, &marie());
    t.escalation_level = level;
    let mut f = known(author, IntakePolicy::Open);
    f.threaded = Some(t);
    f.subscriptions = vec![
        on_acme("key@acme.test", KeyContact),
        on_acme("noc@acme.test", ReactiveServiceOutage),
        on_acme("planned@acme.test", PlannedWorks),
        esc("e1@acme.test", 1),
        esc("e2@acme.test", 2),
        esc("e3@acme.test", 3),
    ];
    f
}

#[test]
fn update_tells_requester_groups_and_reached_escalation_levels_but_not_the_author() {
    let noc = contact(102, "noc@acme.test", Some(ACME));
    let p = plan(
        &simple("noc@acme.test", "Re: Panne"),
        &update_facts(noc, TicketStatus::Open, 2),
    );
    assert_eq!(p.outcome, Outcome::Update);
    assert_eq!(
        to(&p.notices, Event::TicketUpdated),
        ["marie@acme.test", "key@acme.test", "e1@acme.test", "e2@acme.test"]
    );
    assert_eq!(p.notices.len(), 4);
}

#[test]
fn a_requester_moved_to_another_account_is_no_longer_told_of_the_ticket() {
    let noc = contact(102, "noc@acme.test", Some(ACME));
    let mut f = update_facts(noc, TicketStatus::Open, 0);
    let t = f.threaded.as_mut().unwrap();
    t.requester_account = Some(GLOBEX);
    let p = plan(&simple("noc@acme.test", "Re: Panne"), &f);
    assert_eq!(to(&p.notices, Event::TicketUpdated), ["key@acme.test"]);

    let t = f.threaded.clone().unwrap();
    // Her subscriptions went with the move (the directory prunes them).
    let subs: Vec<Subscription> = action_subs()
        .into_iter()
        .filter(|s| s.recipient.email != "marie@acme.test")
        .collect();
    let closed = decide_action(&t, Action::Close, &subs, &Config::default()).unwrap();
    assert!(
        !to(&closed.notices, Event::TicketClosed).contains(&"marie@acme.test"),
        "{:?}",
        closed.notices
    );
    assert!(!closed.notices.is_empty(), "the account's subscribers are still told");
}

/// A requester with no account (their ticket went to their domain's
/// account) has moved nowhere: they are still told.
#[test]
fn a_requester_without_an_account_is_told_of_their_ticket() {
    let noc = contact(102, "noc@acme.test", Some(ACME));
    let mut f = update_facts(noc, TicketStatus::Open, 0);
    f.threaded.as_mut().unwrap().requester_account = None;
    let p = plan(&simple("noc@acme.test", "Re: Panne"), &f);
    assert!(
        to(&p.notices, Event::TicketUpdated).contains(&"marie@acme.test"),
        "{:?}",
        p.notices
    );
}

#[test]
fn update_by_the_requester_is_not_echoed_to_them() {
    let p = plan(
        &simple("Marie@Acme.test", "Re: Panne"),
        &update_facts(marie(), TicketStatus::Open, 0),
    );
    assert_eq!((p.outcome, p.reason.clone()), (Outcome::Update, None));
    assert_eq!(p.contact, ContactChange::Existing(100));
    assert_eq!(
        p.ticket,
        TicketChange::Update {
            number: 5,
            reopen: false
        }
    );
    assert_eq!(to(&p.notices, Event::TicketUpdated), ["key@acme.test", "noc@acme.test"]);
}

#[test]
fn update_while_awaiting_approval_tells_only_the_requester() {
    let paul = contact(101, "paul@acme.test", Some(ACME));
    let p = plan(
        &simple("paul@acme.test", "Re: x"),
        &update_facts(paul, TicketStatus::AwaitingApproval, 3),
    );
    assert_eq!(
        p.ticket,
        TicketChange::Update {
            number: 5,
            reopen: false
        }
    );
    assert_eq!(to(&p.notices, Event::TicketUpdated), ["marie@acme.test"]);
    assert_eq!(p.notices.len(), 1);
}

/// Found by a review: the approval request asks primaries to answer by
/// mail, and an answer approved nothing and showed nowhere; it now leaves
/// a note for the desk (a non-primary's reply does not).
#[test]
fn a_primary_answering_an_approval_request_leaves_a_note() {
    let boss = Contact {
        primary: true,
        ..contact(103, "boss@acme.test", Some(ACME))
    };
    let p = plan(
        &simple("boss@acme.test", "Re: x"),
        &update_facts(boss, TicketStatus::AwaitingApproval, 3),
    );
    assert!(
        p.notes.iter().any(|n| n.contains("answered the approval request")),
        "{:?}",
        p.notes
    );
    // The answer is for the desk: the requester is not sent it (it may be
    // a "no", or say why).
    assert!(p.notices.is_empty(), "{:?}", p.notices);
    let paul = contact(101, "paul@acme.test", Some(ACME));
    let p = plan(
        &simple("paul@acme.test", "Re: x"),
        &update_facts(paul, TicketStatus::AwaitingApproval, 3),
    );
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

#[test]
fn threaded_list_mail_updates_without_notices_when_lists_are_enabled() {
    let mut cfg = Config::default();
    cfg.tickets.ticket_from_lists = true;
    let paul = contact(101, "paul@acme.test", Some(ACME));
    let f = update_facts(paul, TicketStatus::Open, 0);
    let p = plan_with(&cfg, &simple("paul@acme.test", "Re: x"), Class::List, &f);
    assert_eq!(p.outcome, Outcome::Update);
    assert!(p.notices.is_empty(), "{:?}", p.notices);
}

/// With lists off (the default), a list mail that answers a ticket (the
/// customer's team list in copy) is still attached to it, with a note,
/// instead of being dropped; it notifies nobody and reopens nothing.
#[test]
fn threaded_list_mail_joins_its_ticket_when_lists_are_off() {
    let paul = contact(101, "paul@acme.test", Some(ACME));
    for status in [TicketStatus::Open, TicketStatus::Closed] {
        let f = update_facts(paul.clone(), status, 0);
        let p = plan_with(&Config::default(), &simple("paul@acme.test", "Re: x"), Class::List, &f);
        assert_eq!(p.outcome, Outcome::Update, "{status:?}");
        assert!(
            matches!(p.ticket, TicketChange::Update { reopen: false, .. }),
            "{:?}",
            p.ticket
        );
        assert!(p.notices.is_empty(), "{:?}", p.notices);
        assert!(p.notes.iter().any(|n| n.contains("mailing list")), "{:?}", p.notes);
    }
}

// ---- hand actions ---------------------------------------------------------

fn action_subs() -> Vec<Subscription> {
    vec![
        on_acme("key@acme.test", KeyContact),
        on_acme("planned@acme.test", PlannedWorks),
        sub(
            recipient_of(&marie()),
            ReactiveServiceOutage,
            SubscriptionTarget::Account(ACME),
        ),
        sub(
            rcpt("globex@globex.test"),
            KeyContact,
            SubscriptionTarget::Account(GLOBEX),
        ),
        esc("e1@acme.test", 1),
        esc("e2@acme.test", 2),
        esc("e3@acme.test", 3),
        esc("e5@acme.test", 5),
    ]
}

#[test]
fn close_tells_requester_groups_and_reached_escalation_levels() {
    let mut t = ticket(5, TicketStatus::Open, &marie());
    t.escalation_level = 2;
    let plan = decide_action(&t, Action::Close, &action_subs(), &Config::default()).unwrap();
    assert_eq!((plan.status, plan.escalation_level), (TicketStatus::Closed, 2));
    assert_eq!(
        to(&plan.notices, Event::TicketClosed),
        ["marie@acme.test", "key@acme.test", "e1@acme.test", "e2@acme.test"]
    );
    assert_eq!(plan.notices.len(), 4, "marie once, no planned_works, no other account");

    t.status = TicketStatus::Closed;
    assert!(decide_action(&t, Action::Close, &action_subs(), &Config::default()).is_err());
}

#[test]
fn closing_a_request_awaiting_approval_tells_only_the_requester() {
    let t = ticket(5, TicketStatus::AwaitingApproval, &marie());
    let plan = decide_action(&t, Action::Close, &action_subs(), &Config::default()).unwrap();
    assert_eq!(to(&plan.notices, Event::TicketClosed), ["marie@acme.test"]);
    assert_eq!(plan.notices.len(), 1);
}

#[test]
fn escalate_tells_only_the_newly_reached_levels() {
    let mut t = ticket(5, TicketStatus::Open, &marie());
    t.escalation_level = 1;
    let plan = decide_action(&t, Action::Escalate(3), &action_subs(), &Config::default()).unwrap();
    assert_eq!((plan.status, plan.escalation_level), (TicketStatus::Open, 3));
    assert_eq!(to(&plan.notices, Event::Escalation), ["e2@acme.test", "e3@acme.test"]);
    assert_eq!(plan.notices.len(), 2);

    for (bad, why) in [(0, "not 1-5"), (6, "not 1-5"), (1, "already at escalation level 1")] {
        let r = decide_action(&t, Action::Escalate(bad), &action_subs(), &Config::default());
        assert!(
            matches!(&r, Err(crate::error::Error::Usage(m)) if m.contains(why)),
            "level {bad}: {r:?}"
        );
    }
    t.escalation_level = 4;
    assert!(decide_action(&t, Action::Escalate(3), &action_subs(), &Config::default()).is_err());
    let plan = decide_action(&t, Action::Escalate(5), &action_subs(), &Config::default()).unwrap();
    assert_eq!(to(&plan.notices, Event::Escalation), ["e5@acme.test"]);
}

/// Found by an audit: one person subscribed at level 1 (say on the
/// service) and level 3 (on the account) was called in twice.
#[test]
fn escalate_does_not_call_in_again_someone_reached_at_a_lower_level() {
    let mut t = ticket(5, TicketStatus::Open, &marie());
    t.escalation_level = 1;
    let mut subs = action_subs();
    subs.push(esc("e1@acme.test", 3));
    let plan = decide_action(&t, Action::Escalate(3), &subs, &Config::default()).unwrap();
    assert_eq!(to(&plan.notices, Event::Escalation), ["e2@acme.test", "e3@acme.test"]);
}

#[test]
fn notify_escalation_names_the_groups_an_escalation_calls_in() {
    let mut config = Config::default();
    config.notify.escalation = vec![ContactGroup::Escalation, PlannedWorks];
    let t = ticket(5, TicketStatus::Open, &marie());
    let plan = decide_action(&t, Action::Escalate(1), &action_subs(), &config).unwrap();
    // A group without levels is called in at the first level.
    assert_eq!(
        to(&plan.notices, Event::Escalation),
        ["planned@acme.test", "e1@acme.test"]
    );
    let mut t = ticket(5, TicketStatus::Open, &marie());
    t.escalation_level = 1;
    let plan = decide_action(&t, Action::Escalate(2), &action_subs(), &config).unwrap();
    assert_eq!(to(&plan.notices, Event::Escalation), ["e2@acme.test"]);
    // Reached once, it hears of the close too.
    let mut t = ticket(5, TicketStatus::Open, &marie());
    t.escalation_level = 2;
    let plan = decide_action(&t, Action::Close, &action_subs(), &config).unwrap();
    assert!(
        to(&plan.notices, Event::TicketClosed).contains(&"planned@acme.test"),
        "{:?}",
        plan.notices
    );
}

#[test]
fn a_request_awaiting_approval_or_a_closed_ticket_is_not_escalated() {
    for (status, why) in [
        (TicketStatus::AwaitingApproval, "approve it before escalating"),
        (TicketStatus::Closed, "is closed"),
    ] {
        let t = ticket(5, status, &marie());
        let r = decide_action(&t, Action::Escalate(2), &action_subs(), &Config::default());
        assert!(
            matches!(&r, Err(crate::error::Error::Usage(m)) if m.contains(why)),
            "{status:?}: {r:?}"
        );
    }
}

#[test]
fn approve_opens_a_pending_ticket_and_tells_the_requester_and_subscribers() {
    let t = ticket(5, TicketStatus::AwaitingApproval, &marie());
    let plan = decide_action(&t, Action::Approve, &action_subs(), &Config::default()).unwrap();
    assert_eq!(plan.status, TicketStatus::Open);
    assert_eq!(to(&plan.notices, Event::NewTicket), ["key@acme.test"]);
    // She was told it awaits approval: now that it is open, she hears so.
    assert_eq!(to(&plan.notices, Event::Acknowledgement), [marie().email.as_str()]);
    assert_eq!(plan.notices.len(), 2);

    for status in [TicketStatus::Open, TicketStatus::Closed] {
        let t = ticket(5, status, &marie());
        assert!(
            decide_action(&t, Action::Approve, &action_subs(), &Config::default()).is_err(),
            "{status:?}"
        );
    }
}
