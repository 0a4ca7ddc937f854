//! Early exits, auto-replies, unknown senders and intake policies.

use super::*;

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
fn mail_from_our_own_support_address_is_not_a_customer() {
    let mut cfg = Config::default();
    cfg.mail.from = "Provider Support <support@provider.test>".into();
    let f = Facts {
        account: Some(account(ACME, IntakePolicy::Open)),
        ..Facts::default()
    };
    let m = simple("Support@Provider.test", "RE: Panne");
    let p = plan_with(&cfg, &m, Class::Normal, &f);
    assert_nothing_happens(&p, Outcome::Ignored);
    assert_eq!(p.class, Class::Loop);
    // Control: a customer's mail still opens a ticket.
    let p = plan_with(&cfg, &simple("marie@acme.test", "Panne"), Class::Normal, &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    // smtp.from counts too, read as the relay reads it: a display name
    // with its own angle brackets and a comma is not the address.
    let cfg = Config::parse(
        "[mail]\nfrom = \"support@provider.test\"\ndomain = \"provider.test\"\n\
         [smtp]\nhost = \"127.0.0.1\"\nfrom = '\"Desk <NOC>, Provider\" <noc@provider.test>'\n",
        "t",
    )
    .unwrap();
    assert_eq!(cfg.own_addresses(), ["noc@provider.test", "support@provider.test"]);
    for own in ["NOC@provider.test", "support@provider.test"] {
        let p = plan_with(&cfg, &simple(own, "RE: Panne"), Class::Normal, &f);
        assert_eq!((p.outcome, p.class), (Outcome::Ignored, Class::Loop), "{own}");
    }
    let p = plan_with(&cfg, &simple("marie@acme.test", "Panne"), Class::Normal, &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    // An unset address is nobody's: it must not match an empty one.
    let mut unset = Config::default();
    unset.mail.from = String::new();
    assert!(unset.own_addresses().iter().all(|a| !a.is_empty()));
}

#[test]
fn every_ignore_rule_form_ignores_without_creating_a_contact() {
    let cases = [
        ("spam@bad.test", "spam@bad.test"),
        ("*@bad.test", "anyone@bad.test"),
        ("alerts@*", "alerts@acme.test"),
        ("*@*.bad.test", "x@mx.bad.test"),
        ("regex:monitor-[0-9]+@.*", "monitor-42@acme.test"),
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

/// A customer's postmaster is a person at an ISP's desk: a known contact
/// writing in a bounce's words, with a real envelope sender and no report
/// part, opens a ticket. The same from the null sender stays a bounce.
#[test]
fn a_known_postmaster_writing_about_a_bounce_opens_a_ticket() {
    let body = "Hello,\n\nour mail to your customers could not be delivered: your relay answers\n\
                550 5.7.1 relay denied.\n\nThe postmaster team";
    let head =
        "From: Postmaster <postmaster@acme.test>\nSubject: Your relay rejects our mail\nMessage-ID: <pm1@acme.test>";
    let about = mail(&format!("Return-Path: <postmaster@acme.test>\n{head}"), body);
    let class = classify(&about, &Config::default().mail.domain);
    assert_eq!(class, Class::Bounce, "it reads like one");
    let f = known(contact(105, "postmaster@acme.test", Some(ACME)), IntakePolicy::Open);
    let p = plan_with(&Config::default(), &about, class, &f);
    assert_eq!((p.outcome, p.class), (Outcome::NewTicket, Class::Normal));

    let bounce = mail(&format!("Return-Path: <>\n{head}"), body);
    let class = classify(&bounce, &Config::default().mail.domain);
    let p = plan_with(&Config::default(), &bounce, class, &f);
    assert_eq!(p.outcome, Outcome::Ignored);
}

/// A customer writing about a failed delivery uses a bounce's subject, words
/// and status code: from a known contact and no mail system, it is a
/// request, and the address it names is not charged a hard bounce. The same
/// words from mailer-daemon stay a bounce.
#[test]
fn a_contact_writing_about_a_bounce_opens_a_ticket() {
    let body = "Hello,\n\nour mails to hugo@acme.test could not be delivered since this morning:\n\
                550 5.1.1 <hugo@acme.test>: Recipient address rejected: user unknown\n\nMarie";
    let about = mail(
        "From: Marie <marie@acme.test>\nSubject: Mail delivery problem since this morning\nMessage-ID: <p1@acme.test>",
        body,
    );
    let report = about.delivery_report.as_ref().expect("it reads like a bounce");
    assert!(!report.by_mail_system);
    let class = classify(&about, &Config::default().mail.domain);
    assert_eq!(class, Class::Bounce);
    let mut f = known(marie(), IntakePolicy::Open);
    f.bounced_contacts = vec![contact(101, "hugo@acme.test", Some(ACME))];
    let p = plan_with(&Config::default(), &about, class, &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    assert_eq!(p.class, Class::Normal);
    assert!(p.hard_bounces.is_empty(), "{:?}", p.hard_bounces);

    // Someone new from the customer's domain: a request too, the contact
    // created, nobody charged.
    let newcomer = mail(
        "From: Paul <paul@acme.test>\nSubject: Mail delivery problem since this morning\nMessage-ID: <p2@acme.test>",
        body,
    );
    let class = classify(&newcomer, &Config::default().mail.domain);
    assert_eq!(class, Class::Bounce);
    let unknown = Facts {
        account: Some(account(ACME, IntakePolicy::Open)),
        bounced_contacts: vec![contact(101, "hugo@acme.test", Some(ACME))],
        ..Facts::default()
    };
    let p = plan_with(&Config::default(), &newcomer, class, &unknown);
    assert_eq!(p.outcome, Outcome::NewTicket);
    assert_eq!(p.class, Class::Normal);
    assert!(p.hard_bounces.is_empty(), "{:?}", p.hard_bounces);
    // A stranger from no customer's domain: a person too (a prospect, a
    // customer's customer), so a request, and its words charge nobody.
    let stranger = mail(
        "From: Paul <paul@elsewhere.test>\nSubject: Mail delivery problem since this morning\nMessage-ID: <p3@elsewhere.test>",
        body,
    );
    let p = plan_with(
        &Config::default(),
        &stranger,
        Class::Bounce,
        &Facts {
            bounced_contacts: vec![contact(101, "hugo@acme.test", Some(ACME))],
            ..Facts::default()
        },
    );
    assert_eq!((p.outcome, p.class), (Outcome::NewTicket, Class::Normal));
    assert!(p.hard_bounces.is_empty(), "{:?}", p.hard_bounces);

    let real = mail(
        "From: Mail Delivery System <mailer-daemon@mx.acme.test>\nSubject: Mail delivery problem\nMessage-ID: <b1@mx.acme.test>",
        body,
    );
    assert!(real.delivery_report.as_ref().is_some_and(|r| r.by_mail_system));
    let p = plan_with(&Config::default(), &real, Class::Bounce, &f);
    assert_eq!(p.class, Class::Bounce);
    assert_eq!(p.hard_bounces.len(), 1);
}

/// A stranger forwarding a bounce to ask why their mail did not arrive
/// wrote a request: it opens a ticket, and charges nobody.
#[test]
fn a_stranger_forwarding_a_bounce_opens_a_ticket() {
    let body = "Hi, my mail to you came back, see below.\n\n---------- Forwarded message ---------\n\
                This message could not be delivered to the following recipients:\n\
                550 5.1.1 <sales@provider.test>: Recipient address rejected: User unknown\n";
    let m = mail(
        "From: Jane Roe <jane.roe@gmail.test>\nSubject: Fwd: Undelivered Mail Returned to Sender\nMessage-ID: <j1@gmail.test>",
        body,
    );
    assert!(
        m.delivery_report.as_ref().is_some_and(|r| !r.by_mail_system),
        "{:?}",
        m.delivery_report
    );
    let class = classify(&m, &Config::default().mail.domain);
    let p = plan_with(&Config::default(), &m, class, &Facts::default());
    assert_eq!((p.outcome, p.class), (Outcome::NewTicket, Class::Normal));
    assert!(p.hard_bounces.is_empty());
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
    let mut m = simple("marie@acme.test", "Out of office");
    m.headers.push(("auto-submitted".into(), "auto-replied".into()));
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

/// Read like an automatic answer, but nothing software sets says so: a
/// person may have written it ("Out of office: not working since the
/// migration"), so it is not dropped; it is never acknowledged.
#[test]
fn an_auto_reply_by_its_words_only_opens_a_ticket_unacknowledged() {
    let mut f = known(marie(), IntakePolicy::Open);
    f.subscriptions = vec![on_acme("key@acme.test", KeyContact)];
    let m = simple("marie@acme.test", "Out of office: not working since the migration");
    let p = plan_with(&Config::default(), &m, Class::AutoReply, &f);
    assert_eq!(p.outcome, Outcome::NewTicket);
    assert!(to(&p.notices, Event::Acknowledgement).is_empty(), "{:?}", p.notices);
    assert_eq!(to(&p.notices, Event::NewTicket), ["key@acme.test"]);
    assert!(p.notes.iter().any(|n| n.contains("by its words only")), "{:?}", p.notes);
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

/// Found by a review: with no primary to ask (none, or only an ignored
/// one), a request waited unseen; the ticket now says so.
#[test]
fn approval_with_nobody_to_ask_says_so_on_the_ticket() {
    let mut f = known(marie(), IntakePolicy::Approval);
    let p = plan(&simple("marie@acme.test", "New port please"), &f);
    assert_eq!(opened(&p).status, TicketStatus::AwaitingApproval);
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("no primary contact who can be asked")),
        "{:?}",
        p.notes
    );
    f.primaries = vec![Recipient {
        ignore: true,
        ..rcpt("boss@acme.test")
    }];
    let p = plan(&simple("marie@acme.test", "New port please"), &f);
    assert!(
        p.notes.iter().any(|n| n.contains("no primary contact")),
        "{:?}",
        p.notes
    );
    f.primaries = vec![rcpt("boss@acme.test")];
    let p = plan(&simple("marie@acme.test", "New port please"), &f);
    assert!(p.notes.is_empty(), "{:?}", p.notes);
}

// ---- per-sender rate limit ------------------------------------------------

#[test]
fn a_sender_over_the_hourly_limit_is_quarantined_as_rate_limited() {
    let mut f = known(marie(), IntakePolicy::Open);
    f.recent_new_tickets = 19;
    assert_eq!(
        plan(&simple("marie@acme.test", "Panne 20"), &f).outcome,
        Outcome::NewTicket
    );
    f.recent_new_tickets = 20;
    let p = plan(&simple("marie@acme.test", "Panne 21"), &f);
    assert_eq!(p.outcome, Outcome::Quarantined);
    assert_eq!(p.reason.as_deref(), Some(reason::RATE_LIMITED));
    assert!(p.notices.is_empty(), "nobody is told about a flood");
    assert_eq!(p.ticket, TicketChange::None);
}

#[test]
fn the_rate_limit_holds_back_new_tickets_only_and_zero_disables_it() {
    let mut f = known(marie(), IntakePolicy::Open);
    f.recent_new_tickets = 50;
    f.threaded = Some(ticket(5, TicketStatus::Open, &marie()));
    // A reply on an existing ticket still threads.
    assert_eq!(
        plan(&simple("marie@acme.test", "Re: Panne"), &f).outcome,
        Outcome::Update
    );
    f.threaded = None;
    let mut cfg = Config::default();
    cfg.intake.max_new_tickets_per_hour = 0;
    let m = simple("marie@acme.test", "Panne");
    let class = classify(&m, &cfg.mail.domain);
    assert_eq!(plan_with(&cfg, &m, class, &f).outcome, Outcome::NewTicket);
}
