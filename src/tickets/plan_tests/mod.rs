//! Unit tests of the pure core: [`decide`] for incoming mail and
//! [`decide_action`] for the team's hand actions. No store, no clock: every
//! fact is built by hand below.

use super::*;
use crate::classify::classify;
use crate::directory::{ContactGroup, SubscriptionTarget};
use crate::notify::Notice;
use crate::tickets::actions::{Action, decide_action};

use ContactGroup::{Escalation, KeyContact, PlannedWorks, ReactiveServiceOutage};

pub(super) const ACME: i64 = 1;
pub(super) const GLOBEX: i64 = 2;
pub(super) const SVC: i64 = 10;
pub(super) const SVC2: i64 = 11;
pub(super) const DAY: i64 = 86_400;
pub(super) const NOW: i64 = 1_772_442_000;

// ---- builders -------------------------------------------------------------

/// Parses a mail from header lines (`\n`-separated) and a body.
pub(super) fn mail(head: &str, body: &str) -> Message {
    let raw = format!("{head}\n\n{body}\n").replace('\n', "\r\n");
    Message::parse(raw.as_bytes()).expect("test mail parses")
}

pub(super) fn simple(from: &str, subject: &str) -> Message {
    mail(
        &format!("From: {from}\nSubject: {subject}\nMessage-ID: <m1@x.test>"),
        "Hello",
    )
}

pub(super) fn account(id: i64, intake: IntakePolicy) -> Account {
    let (number, name) = (format!("OCN-{id}"), format!("Account {id}"));
    Account {
        id,
        number,
        name,
        domains: vec!["acme.test".into()],
        language: Some("fr".into()),
        intake,
    }
}

pub(super) fn contact(id: i64, email: &str, account_id: Option<i64>) -> Contact {
    let (email, first_name, last_name) = (email.into(), "First".into(), format!("Last{id}"));
    Contact {
        id,
        email,
        first_name,
        last_name,
        phone: None,
        job_title: None,
        language: None,
        account_id,
        primary: false,
        group: false,
        ignore: false,
        undeliverable: false,
    }
}

pub(super) fn rcpt(email: &str) -> Recipient {
    let (email, first_name, last_name) = (email.into(), String::new(), String::new());
    let (language, ignore, undeliverable) = (None, false, false);
    Recipient {
        contact_id: Some(900),
        email,
        first_name,
        last_name,
        language,
        ignore,
        undeliverable,
    }
}

pub(super) fn recipient_of(c: &Contact) -> Recipient {
    Recipient {
        contact_id: Some(c.id),
        ..rcpt(&c.email)
    }
}

pub(super) fn sub(r: Recipient, group: ContactGroup, target: SubscriptionTarget) -> Subscription {
    Subscription {
        recipient: r,
        group,
        target,
        account: ACME,
        level: None,
    }
}

/// An account-level subscription on Acme.
pub(super) fn on_acme(email: &str, group: ContactGroup) -> Subscription {
    sub(rcpt(email), group, SubscriptionTarget::Account(ACME))
}

pub(super) fn esc(email: &str, level: u8) -> Subscription {
    Subscription {
        level: Some(level),
        ..on_acme(email, Escalation)
    }
}

pub(super) fn services() -> Vec<Service> {
    let svc = |id, service_id: &str| Service {
        id,
        service_id: service_id.into(),
        account_id: ACME,
        name: None,
    };
    vec![svc(SVC, "LON/ETH/000123"), svc(SVC2, "PAR/ETH/000999")]
}

/// Marie, a non-primary contact of Acme.
pub(super) fn marie() -> Contact {
    contact(100, "marie@acme.test", Some(ACME))
}

/// Facts for a known sender of Acme.
pub(super) fn known(c: Contact, intake: IntakePolicy) -> Facts {
    Facts {
        sender: Some(c),
        account: Some(account(ACME, intake)),
        services: services(),
        ..Facts::default()
    }
}

/// Ticket `number` of Acme (no service), opened by `requester`.
pub(super) fn ticket(number: i64, status: TicketStatus, requester: &Contact) -> TicketFacts {
    let (scope, requester, participants) = (
        TicketScope {
            account: Some(ACME),
            service: None,
        },
        recipient_of(requester),
        vec![requester.id],
    );
    TicketFacts {
        number,
        status,
        scope,
        closed_at: None,
        escalation_level: 0,
        approval_pending: status == TicketStatus::AwaitingApproval,
        requester,
        requester_account: Some(ACME),
        participants,
    }
}

pub(super) fn decide_at(cfg: &Config, rules: &[&str], m: &Message, class: Class, f: &Facts, now: i64) -> Plan {
    let tag = TagFormat::new(&cfg.tickets.tag).unwrap();
    let rules: Vec<IgnoreRule> = rules.iter().map(|r| IgnoreRule::parse(r).unwrap()).collect();
    decide(
        m,
        class,
        f,
        &Policy {
            config: cfg,
            tag: &tag,
            ignore_rules: &rules,
            own_addresses: &cfg.own_addresses(),
        },
        now,
    )
}

pub(super) fn plan_with(cfg: &Config, m: &Message, class: Class, f: &Facts) -> Plan {
    decide_at(cfg, &[], m, class, f, NOW)
}

pub(super) fn plan(m: &Message, f: &Facts) -> Plan {
    plan_with(&Config::default(), m, Class::Normal, f)
}

/// Addresses that receive `event`, in order.
pub(super) fn to(notices: &[Notice], event: Event) -> Vec<&str> {
    notices
        .iter()
        .filter(|n| n.event == event)
        .map(|n| n.recipient.email.as_str())
        .collect()
}

pub(super) fn opened(p: &Plan) -> &NewTicket {
    match &p.ticket {
        TicketChange::Open(t) => t,
        other => panic!("expected a new ticket, got {other:?} ({p:?})"),
    }
}

pub(super) fn assert_nothing_happens(p: &Plan, outcome: Outcome) {
    assert_eq!(p.outcome, outcome, "{p:?}");
    assert_eq!(p.contact, ContactChange::None, "{p:?}");
    assert_eq!(p.ticket, TicketChange::None, "{p:?}");
    assert!(p.notices.is_empty(), "{p:?}");
}

mod intake;
mod notices;
mod threading;
