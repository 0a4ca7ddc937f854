//! Threading by Message-ID and tag, reopening, service detection and subjects.

use super::*;

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

/// A late reply joins the old thread's follow-up only when it is the
/// sender's customer's: another account's contact opened it, so joining it
/// would pass this customer's mail to that account's staff.
#[test]
fn late_reply_joins_a_follow_up_only_of_its_own_account() {
    let mut old = ticket(5, TicketStatus::Closed, &marie());
    old.closed_at = Some(NOW - 30 * DAY);
    let hans = contact(300, "hans@globex.test", Some(GLOBEX));
    let mut follow_up = ticket(9, TicketStatus::Open, &hans);
    follow_up.scope.account = Some(GLOBEX);
    follow_up.requester_account = Some(GLOBEX);

    // Marie (Acme) answers the old thread late: Hans's follow-up is not hers.
    let mut f = known(marie(), IntakePolicy::Open);
    f.threaded = Some(old.clone());
    f.follow_up = Some(follow_up.clone());
    let p = plan(&simple("marie@acme.test", "Re: Panne"), &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    let t = opened(&p);
    assert_eq!((t.related, t.scope.account), (Some(5), Some(ACME)));
    assert!(to(&p.notices, Event::TicketUpdated).is_empty());

    // Her colleague, once the follow-up is Acme's, joins it.
    follow_up.scope.account = Some(ACME);
    let colleague = contact(101, "paul@acme.test", Some(ACME));
    let mut f = known(colleague, IntakePolicy::Open);
    f.threaded = Some(old);
    f.follow_up = Some(follow_up);
    let p = plan(&simple("paul@acme.test", "Re: Panne"), &f);
    assert_eq!(
        p.ticket,
        TicketChange::Update {
            number: 9,
            reopen: false
        }
    );
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
    // An ID is named as a whole, and may end a sentence.
    assert_eq!(service_of(simple("marie@acme.test", "LON/ETH/0001234 is down")), None);
    assert_eq!(service_of(simple("marie@acme.test", "XLON/ETH/000123 is down")), None);
    assert_eq!(
        service_of(mail("From: marie@acme.test\nSubject: Panne", "Down: LON/ETH/000123.")),
        Some(SVC)
    );
}

/// An ID that contains another account service's ID names its own service.
#[test]
fn the_longest_service_id_named_wins() {
    let mut f = known(marie(), IntakePolicy::Open);
    f.services.push(Service {
        id: 77,
        service_id: "LON/ETH/0001234".into(),
        account_id: ACME,
        name: None,
    });
    let p = plan(&simple("marie@acme.test", "LON/ETH/0001234 flapping"), &f);
    assert_eq!(opened(&p).scope.service, Some(77));
    let p = plan(&simple("marie@acme.test", "LON/ETH/000123 flapping"), &f);
    assert_eq!(opened(&p).scope.service, Some(SVC));
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
