//! Unit tests of the pure core: [`decide`] for incoming mail and
//! [`decide_action`] for the team's hand actions. No store, no clock: every
//! fact is built by hand below.

use super::*;
use crate::classify::classify;
use crate::directory::{ContactGroup, SubscriptionTarget};
use crate::notify::Notice;
use crate::tickets::actions::{Action, decide_action};

use ContactGroup::{Escalation, KeyContact, PlannedWorks, ReactiveServiceOutage};

const ACME: i64 = 1;
const GLOBEX: i64 = 2;
const SVC: i64 = 10;
const SVC2: i64 = 11;
const DAY: i64 = 86_400;
const NOW: i64 = 1_772_442_000;

// ---- builders -------------------------------------------------------------

/// Parses a mail from header lines (`\n`-separated) and a body.
fn mail(head: &str, body: &str) -> Message {
    let raw = format!("{head}\n\n{body}\n").replace('\n', "\r\n");
    Message::parse(raw.as_bytes()).expect("test mail parses")
}

fn simple(from: &str, subject: &str) -> Message {
    mail(
        &format!("From: {from}\nSubject: {subject}\nMessage-ID: <m1@x.test>"),
        "Hello",
    )
}

fn account(id: i64, intake: IntakePolicy) -> Account {
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

fn contact(id: i64, email: &str, account_id: Option<i64>) -> Contact {
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

fn rcpt(email: &str) -> Recipient {
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

fn recipient_of(c: &Contact) -> Recipient {
    Recipient {
        contact_id: Some(c.id),
        ..rcpt(&c.email)
    }
}

fn sub(r: Recipient, group: ContactGroup, target: SubscriptionTarget) -> Subscription {
    Subscription {
        recipient: r,
        group,
        target,
        level: None,
    }
}

/// An account-level subscription on Acme.
fn on_acme(email: &str, group: ContactGroup) -> Subscription {
    sub(rcpt(email), group, SubscriptionTarget::Account(ACME))
}

fn esc(email: &str, level: u8) -> Subscription {
    Subscription {
        level: Some(level),
        ..on_acme(email, Escalation)
    }
}

fn services() -> Vec<Service> {
    let svc = |id, service_id: &str| Service {
        id,
        service_id: service_id.into(),
        account_id: ACME,
        name: None,
    };
    vec![svc(SVC, "LON/ETH/000123"), svc(SVC2, "PAR/ETH/000999")]
}

/// Marie, a non-primary contact of Acme.
fn marie() -> Contact {
    contact(100, "marie@acme.test", Some(ACME))
}

/// Facts for a known sender of Acme.
fn known(c: Contact, intake: IntakePolicy) -> Facts {
    Facts {
        sender: Some(c),
        account: Some(account(ACME, intake)),
        services: services(),
        ..Facts::default()
    }
}

/// Ticket `number` of Acme (no service), opened by `requester`.
fn ticket(number: i64, status: TicketStatus, requester: &Contact) -> TicketFacts {
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
        requester,
        participants,
    }
}

fn decide_at(cfg: &Config, rules: &[&str], m: &Message, class: Class, f: &Facts, now: i64) -> Plan {
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
        },
        now,
    )
}

fn plan_with(cfg: &Config, m: &Message, class: Class, f: &Facts) -> Plan {
    decide_at(cfg, &[], m, class, f, NOW)
}

fn plan(m: &Message, f: &Facts) -> Plan {
    plan_with(&Config::default(), m, Class::Normal, f)
}

/// Addresses that receive `event`, in order.
fn to(notices: &[Notice], event: Event) -> Vec<&str> {
    notices
        .iter()
        .filter(|n| n.event == event)
        .map(|n| n.recipient.email.as_str())
        .collect()
}

fn opened(p: &Plan) -> &NewTicket {
    match &p.ticket {
        TicketChange::Open(t) => t,
        other => panic!("expected a new ticket, got {other:?} ({p:?})"),
    }
}

fn assert_nothing_happens(p: &Plan, outcome: Outcome) {
    assert_eq!(p.outcome, outcome, "{p:?}");
    assert_eq!(p.contact, ContactChange::None, "{p:?}");
    assert_eq!(p.ticket, TicketChange::None, "{p:?}");
    assert!(p.notices.is_empty(), "{p:?}");
}

// ---- early exits ----------------------------------------------------------

#[test]
fn duplicate_changes_nothing() {
    let mut f = known(marie(), IntakePolicy::Open);
    f.duplicate = true;
    f.threaded = Some(ticket(5, TicketStatus::Open, &marie()));
    let p = plan(&simple("marie@acme.test", "Panne"), &f);
    assert_nothing_happens(&p, Outcome::Duplicate);
}

#[test]
fn own_mail_coming_back_is_ignored() {
    let cfg = Config::default();
    let m = mail(
        &format!(
            "From: support@localhost\nSubject: [#5] x\nMessage-ID: <mailroom.5.ab@{}>",
            cfg.mail.domain
        ),
        "x",
    );
    let class = classify(&m, &cfg.mail.domain);
    assert_eq!(class, Class::Loop);
    assert_nothing_happens(&plan_with(&cfg, &m, class, &Facts::default()), Outcome::Ignored);
}

#[test]
fn every_ignore_rule_form_ignores_without_creating_a_contact() {
    let cases = [
        ("spam@bad.test", "spam@bad.test"),
        ("*@bad.test", "anyone@bad.test"),
        ("alerts@*", "alerts@acme.test"),
        ("*@*.bad.test", "x@mx.bad.test"),
        ("regex:^monitor-[0-9]+@", "monitor-42@acme.test"),
    ];
    for (rule, address) in cases {
        let f = Facts {
            account: Some(account(ACME, IntakePolicy::Open)),
            ..Facts::default()
        };
        let m = simple(address, "Newsletter");
        let p = decide_at(&Config::default(), &[rule], &m, Class::Normal, &f, NOW);
        assert_nothing_happens(&p, Outcome::Ignored);
        // Control: without the rule the same mail opens a ticket.
        let p = decide_at(&Config::default(), &[], &m, Class::Normal, &f, NOW);
        assert_eq!(p.outcome, Outcome::NewTicket, "{rule} control");
    }
}

#[test]
fn contact_with_ignore_flag_is_ignored_even_on_a_thread() {
    let c = Contact {
        ignore: true,
        ..marie()
    };
    let mut f = known(c.clone(), IntakePolicy::Open);
    f.threaded = Some(ticket(5, TicketStatus::Open, &c));
    assert_nothing_happens(&plan(&simple("marie@acme.test", "Re: Panne"), &f), Outcome::Ignored);
}

#[test]
fn bounce_is_ignored_even_when_it_threads() {
    let mut f = known(marie(), IntakePolicy::Open);
    f.threaded = Some(ticket(5, TicketStatus::Open, &marie()));
    let p = plan_with(
        &Config::default(),
        &simple("mailer-daemon@acme.test", "Undelivered"),
        Class::Bounce,
        &f,
    );
    assert_nothing_happens(&p, Outcome::Ignored);
}

#[test]
fn list_mail_is_ignored_unless_enabled() {
    let m = mail("From: news@acme.test\nSubject: Digest\nList-Id: <news.acme.test>", "x");
    assert_eq!(classify(&m, "mailroom.localhost"), Class::List);
    let mut f = Facts {
        account: Some(account(ACME, IntakePolicy::Open)),
        ..Facts::default()
    };
    f.subscriptions = vec![on_acme("key@acme.test", KeyContact)];
    assert_nothing_happens(&plan_with(&Config::default(), &m, Class::List, &f), Outcome::Ignored);

    let mut cfg = Config::default();
    cfg.tickets.ticket_from_lists = true;
    let p = plan_with(&cfg, &m, Class::List, &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    assert!(
        to(&p.notices, Event::Acknowledgement).is_empty(),
        "lists are never acknowledged"
    );
    assert_eq!(to(&p.notices, Event::NewTicket), ["key@acme.test"]);
}

// ---- auto-replies ---------------------------------------------------------

#[test]
fn threaded_auto_reply_updates_without_notices_and_never_reopens() {
    let mut t = ticket(5, TicketStatus::Closed, &marie());
    t.closed_at = Some(NOW - DAY);
    let mut f = known(marie(), IntakePolicy::Open);
    f.threaded = Some(t);
    f.subscriptions = vec![on_acme("key@acme.test", KeyContact)];
    let m = mail(
        "From: marie@acme.test\nSubject: Out of office\nAuto-Submitted: auto-replied",
        "away",
    );
    let p = plan_with(&Config::default(), &m, Class::AutoReply, &f);
    assert_eq!(p.outcome, Outcome::Update);
    assert_eq!(
        p.ticket,
        TicketChange::Update {
            number: 5,
            reopen: false
        }
    );
    assert_eq!(p.contact, ContactChange::Existing(100));
    assert!(p.notices.is_empty(), "{:?}", p.notices);

    // An unknown machine joins the thread but is never made a contact.
    f.sender = None;
    let p = plan_with(
        &Config::default(),
        &simple("robot@acme.test", "Auto reply"),
        Class::AutoReply,
        &f,
    );
    assert_eq!((p.outcome, p.contact), (Outcome::Update, ContactChange::None));
}

#[test]
fn unthreaded_auto_reply_is_ignored_unless_enabled() {
    let mut f = known(marie(), IntakePolicy::Open);
    f.subscriptions = vec![on_acme("key@acme.test", KeyContact)];
    let m = simple("marie@acme.test", "Out of office");
    assert_nothing_happens(
        &plan_with(&Config::default(), &m, Class::AutoReply, &f),
        Outcome::Ignored,
    );

    let mut cfg = Config::default();
    cfg.tickets.ticket_from_auto_replies = true;
    let p = plan_with(&cfg, &m, Class::AutoReply, &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    assert!(
        to(&p.notices, Event::Acknowledgement).is_empty(),
        "a machine is never answered"
    );
    assert_eq!(to(&p.notices, Event::NewTicket), ["key@acme.test"]);
}

// ---- unknown senders ------------------------------------------------------

#[test]
fn unknown_sender_is_created_with_split_name_and_matched_account() {
    let cases = [
        ("Marie Dupont <marie@acme.test>", "Marie", "Dupont"),
        ("\"Dupont, Marie\" <md@acme.test>", "Marie", "Dupont"),
        ("Ľubomír <lubo@acme.test>", "Ľubomír", ""),
        ("jean.martin@acme.test", "Jean", "Martin"),
    ];
    for (from, first, last) in cases {
        let f = Facts {
            account: Some(account(ACME, IntakePolicy::Open)),
            ..Facts::default()
        };
        let p = plan(&simple(from, "Panne"), &f);
        let ContactChange::Create(n) = &p.contact else {
            panic!("{from}: {:?}", p.contact)
        };
        assert_eq!((n.first_name.as_str(), n.last_name.as_str()), (first, last), "{from}");
        assert_eq!(n.account_id, Some(ACME));
        assert_eq!(p.outcome, Outcome::NewTicket);
        assert_eq!(opened(&p).scope.account, Some(ACME));
        // The acknowledgement goes to the new contact, in the account's language.
        let ack = &p.notices[0];
        assert_eq!(
            (ack.event, ack.recipient.email.as_str()),
            (Event::Acknowledgement, n.email.as_str())
        );
        assert_eq!(
            (ack.recipient.contact_id, ack.recipient.language.as_deref()),
            (None, Some("fr"))
        );
    }
}

#[test]
fn unknown_sender_without_matching_account_has_no_account() {
    let p = plan(&simple("Bob <bob@nowhere.test>", "Hi"), &Facts::default());
    let ContactChange::Create(n) = &p.contact else {
        panic!("{:?}", p.contact)
    };
    assert_eq!((n.email.as_str(), n.account_id), ("bob@nowhere.test", None));
    assert_eq!(
        opened(&p).scope,
        TicketScope {
            account: None,
            service: None
        }
    );
}

#[test]
fn unknown_sender_is_quarantined_when_auto_create_is_off() {
    let mut cfg = Config::default();
    cfg.contacts.auto_create = false;
    let f = Facts {
        account: Some(account(ACME, IntakePolicy::Open)),
        ..Facts::default()
    };
    let p = plan_with(
        &cfg,
        &simple("Marie Dupont <marie@acme.test>", "Panne"),
        Class::Normal,
        &f,
    );
    assert_nothing_happens(&p, Outcome::Quarantined);
    assert_eq!(p.reason.as_deref(), Some("unknown_sender"));
}

// ---- threading ------------------------------------------------------------

#[test]
fn threaded_ticket_wins_over_subject_tag() {
    let mut f = known(marie(), IntakePolicy::Open);
    f.threaded = Some(ticket(5, TicketStatus::Open, &marie()));
    f.tagged = Some(ticket(7, TicketStatus::Open, &marie()));
    let p = plan(&simple("marie@acme.test", "Re: [#7] Panne"), &f);
    assert_eq!(
        p.ticket,
        TicketChange::Update {
            number: 5,
            reopen: false
        }
    );
}

#[test]
fn tag_is_accepted_for_a_participant_of_another_account() {
    let partner = contact(300, "ops@globex.test", Some(GLOBEX));
    let mut t = ticket(7, TicketStatus::Open, &marie());
    t.participants.push(partner.id);
    let mut f = known(partner, IntakePolicy::Open);
    f.account = Some(account(GLOBEX, IntakePolicy::Open));
    f.tagged = Some(t);
    let p = plan(&simple("ops@globex.test", "Re: [#7] Panne"), &f);
    assert_eq!(
        p.ticket,
        TicketChange::Update {
            number: 7,
            reopen: false
        }
    );
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

#[test]
fn tag_is_accepted_for_a_contact_of_the_tickets_account() {
    let colleague = contact(101, "paul@acme.test", Some(ACME));
    let mut f = known(colleague, IntakePolicy::Open);
    f.tagged = Some(ticket(7, TicketStatus::Open, &marie()));
    let p = plan(&simple("paul@acme.test", "[#7] still down"), &f);
    assert_eq!(
        p.ticket,
        TicketChange::Update {
            number: 7,
            reopen: false
        }
    );
}

#[test]
fn tag_from_a_stranger_opens_a_new_ticket_with_a_note() {
    let stranger = contact(300, "eve@globex.test", Some(GLOBEX));
    let mut f = known(stranger, IntakePolicy::Open);
    f.account = Some(account(GLOBEX, IntakePolicy::Open));
    f.tagged = Some(ticket(7, TicketStatus::Open, &marie()));
    let p = plan(&simple("eve@globex.test", "Re: [#7] Panne"), &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    let t = opened(&p);
    assert_eq!(
        (t.subject.as_str(), t.related, t.scope.account),
        ("Panne", None, Some(GLOBEX))
    );
    assert_eq!(p.notes.len(), 1);
    assert!(
        p.notes[0].contains("ticket 7") && p.notes[0].contains("eve@globex.test"),
        "{:?}",
        p.notes
    );
    assert!(to(&p.notices, Event::TicketUpdated).is_empty());

    // No account on either side is not "the same account".
    let mut f = Facts {
        sender: Some(contact(301, "bob@nowhere.test", None)),
        ..Facts::default()
    };
    f.tagged = Some(TicketFacts {
        scope: TicketScope::default(),
        ..ticket(7, TicketStatus::Open, &marie())
    });
    let p = plan(&simple("bob@nowhere.test", "Re: [#7] Panne"), &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
}

#[test]
fn reply_to_closed_ticket_within_reopen_days_reopens_it() {
    for closed_ago in [DAY, 14 * DAY] {
        let mut t = ticket(5, TicketStatus::Closed, &marie());
        t.closed_at = Some(NOW - closed_ago);
        let mut f = known(contact(101, "paul@acme.test", Some(ACME)), IntakePolicy::Open);
        f.threaded = Some(t);
        let p = plan(&simple("paul@acme.test", "Re: Panne"), &f);
        assert_eq!(p.outcome, Outcome::Update);
        assert_eq!(
            p.ticket,
            TicketChange::Update {
                number: 5,
                reopen: true
            },
            "closed {closed_ago}s ago"
        );
        assert_eq!(to(&p.notices, Event::TicketUpdated), ["marie@acme.test"]);
    }
}

#[test]
fn late_reply_to_closed_ticket_opens_a_related_one() {
    let mut t = ticket(5, TicketStatus::Closed, &marie());
    t.closed_at = Some(NOW - 14 * DAY - 1);
    let mut f = known(marie(), IntakePolicy::Open);
    f.threaded = Some(t);
    let p = plan(&simple("marie@acme.test", "Re: [#5] Panne"), &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    assert_eq!(opened(&p).related, Some(5));
    assert_eq!(opened(&p).subject, "Panne");
    assert!(p.notes[0].contains("ticket 5"), "{:?}", p.notes);

    // reopen_days is honoured: with 30 days the same reply reopens.
    let mut cfg = Config::default();
    cfg.tickets.reopen_days = 30;
    let p = plan_with(&cfg, &simple("marie@acme.test", "Re: Panne"), Class::Normal, &f);
    assert_eq!(
        p.ticket,
        TicketChange::Update {
            number: 5,
            reopen: true
        }
    );
}

// ---- intake policies ------------------------------------------------------

#[test]
fn primary_only_refuses_non_primary_with_one_refusal() {
    let mut f = known(marie(), IntakePolicy::PrimaryOnly);
    f.subscriptions = vec![on_acme("key@acme.test", KeyContact)];
    let p = plan(&simple("marie@acme.test", "Panne"), &f);
    assert_eq!(
        (p.outcome, p.reason.as_deref()),
        (Outcome::Quarantined, Some("not_authorised"))
    );
    assert_eq!(p.ticket, TicketChange::None);
    assert_eq!(p.contact, ContactChange::Existing(100));
    assert_eq!(p.notices.len(), 1, "{:?}", p.notices);
    assert_eq!(to(&p.notices, Event::Refusal), ["marie@acme.test"]);
}

#[test]
fn primary_only_still_creates_an_unknown_sender() {
    let f = Facts {
        account: Some(account(ACME, IntakePolicy::PrimaryOnly)),
        ..Facts::default()
    };
    let p = plan(&simple("Paul Martin <paul@acme.test>", "Panne"), &f);
    assert_eq!(p.outcome, Outcome::Quarantined);
    assert!(
        matches!(&p.contact, ContactChange::Create(n) if n.email == "paul@acme.test"),
        "{:?}",
        p.contact
    );
    assert_eq!(to(&p.notices, Event::Refusal), ["paul@acme.test"]);
}

#[test]
fn primary_only_sends_no_refusal_to_machines() {
    let precedence_list = mail("From: marie@acme.test\nSubject: Panne\nPrecedence: list", "x");
    let noreply = simple("no-reply@acme.test", "Panne");
    for m in [precedence_list, noreply] {
        let class = classify(&m, "mailroom.localhost");
        assert_eq!(class, Class::Normal, "{:?}", m.headers);
        let p = plan_with(
            &Config::default(),
            &m,
            class,
            &known(marie(), IntakePolicy::PrimaryOnly),
        );
        assert_eq!(p.outcome, Outcome::Quarantined);
        assert!(p.notices.is_empty(), "{:?}", p.notices);
    }
}

#[test]
fn primary_only_opens_a_normal_ticket_for_a_primary() {
    let mut f = known(
        Contact {
            primary: true,
            ..marie()
        },
        IntakePolicy::PrimaryOnly,
    );
    f.subscriptions = vec![on_acme("key@acme.test", KeyContact)];
    let p = plan(&simple("marie@acme.test", "Panne"), &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    assert_eq!(opened(&p).status, TicketStatus::Open);
    assert_eq!(to(&p.notices, Event::Acknowledgement), ["marie@acme.test"]);
    assert_eq!(to(&p.notices, Event::NewTicket), ["key@acme.test"]);
}

#[test]
fn approval_holds_non_primary_requests_and_asks_every_primary() {
    let mut f = known(marie(), IntakePolicy::Approval);
    f.primaries = vec![rcpt("boss@acme.test"), rcpt("deputy@acme.test")];
    f.subscriptions = vec![on_acme("key@acme.test", KeyContact)];
    let p = plan(&simple("marie@acme.test", "New port please"), &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    assert_eq!(opened(&p).status, TicketStatus::AwaitingApproval);
    assert_eq!(to(&p.notices, Event::Acknowledgement), ["marie@acme.test"]);
    assert_eq!(
        to(&p.notices, Event::ApprovalRequest),
        ["boss@acme.test", "deputy@acme.test"]
    );
    assert!(
        to(&p.notices, Event::NewTicket).is_empty(),
        "no subscribers before approval"
    );

    f.sender = Some(Contact {
        primary: true,
        ..marie()
    });
    let p = plan(&simple("marie@acme.test", "New port please"), &f);
    assert_eq!(opened(&p).status, TicketStatus::Open);
    assert!(to(&p.notices, Event::ApprovalRequest).is_empty());
    assert_eq!(to(&p.notices, Event::NewTicket), ["key@acme.test"]);
}

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

// ---- service detection and subject ---------------------------------------

#[test]
fn service_is_detected_in_subject_or_body_case_insensitively() {
    let f = known(marie(), IntakePolicy::Open);
    let service_of = |m: Message| opened(&plan(&m, &f)).scope.service;
    assert_eq!(
        service_of(simple("marie@acme.test", "lon/eth/000123 is down")),
        Some(SVC)
    );
    let body = mail(
        "From: marie@acme.test\nSubject: Panne",
        "Our circuit PAR/ETH/000999 flaps.",
    );
    assert_eq!(service_of(body), Some(SVC2));
    // Both mentioned: the first service of the account wins, whatever the order in the mail.
    let both = mail("From: marie@acme.test\nSubject: PAR/ETH/000999", "and LON/ETH/000123");
    assert_eq!(service_of(both), Some(SVC));
    assert_eq!(service_of(simple("marie@acme.test", "LON/ETH/000124")), None);
}

#[test]
fn new_ticket_subject_is_stripped_of_prefixes_and_tags() {
    let f = known(marie(), IntakePolicy::Open);
    let subject_of = |cfg: &Config, s: &str| {
        let p = plan_with(cfg, &simple("marie@acme.test", s), Class::Normal, &f);
        opened(&p).subject.clone()
    };
    let cfg = Config::default();
    assert_eq!(subject_of(&cfg, "RE: AW: [#12] Fwd:  Panne   totale"), "Panne totale");
    assert_eq!(subject_of(&cfg, "TR: WG: RIF: Panne"), "Panne");
    assert_eq!(subject_of(&cfg, "Re: [#3]"), "(no subject)");
    assert_eq!(subject_of(&cfg, "Ticket: 4 ports down"), "Ticket: 4 ports down");
    let mut custom = Config::default();
    custom.tickets.tag = "[support-{number}]".into();
    assert_eq!(subject_of(&custom, "Re: [SUPPORT-9] Panne"), "Panne");
    let no_subject = mail("From: marie@acme.test", "body only");
    assert_eq!(opened(&plan(&no_subject, &f)).subject, "(no subject)");
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

#[test]
fn approve_opens_a_pending_ticket_and_tells_subscribers_but_not_the_requester() {
    let t = ticket(5, TicketStatus::AwaitingApproval, &marie());
    let plan = decide_action(&t, Action::Approve, &action_subs(), &Config::default()).unwrap();
    assert_eq!(plan.status, TicketStatus::Open);
    assert_eq!(to(&plan.notices, Event::NewTicket), ["key@acme.test"]);
    assert_eq!(plan.notices.len(), 1);

    for status in [TicketStatus::Open, TicketStatus::Closed] {
        let t = ticket(5, status, &marie());
        assert!(
            decide_action(&t, Action::Approve, &action_subs(), &Config::default()).is_err(),
            "{status:?}"
        );
    }
}
