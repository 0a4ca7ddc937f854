//! Notifications over real SMTP: a private Postfix (STARTTLS on its own CA)
//! delivering over LMTP into a private Dovecot, where each test reads the
//! recipients' mailboxes the way a customer would. Without Postfix or
//! Dovecot these tests print SKIPPED and pass; with MAILROOM_REQUIRE_POSTFIX
//! and MAILROOM_REQUIRE_DOVECOT (CI) they fail instead.

#[path = "delivery/acme.rs"]
mod acme;
#[path = "imap/daemon.rs"]
mod daemon;
#[path = "delivery/desk.rs"]
mod desk;
#[path = "support/dovecot.rs"]
mod dovecot;
#[path = "support/imap_client.rs"]
mod imap_client;
#[path = "support/postfix.rs"]
mod postfix;
#[path = "support/smtp_client.rs"]
mod smtp_client;

use std::time::Duration;

use acme::{acme, outage};
use desk::{Desk, header, headers};

/// Generous bounds: these are correctness tests, not benchmarks.
const SOON: Duration = Duration::from_secs(30);

#[test]
fn a_new_ticket_reaches_every_subscriber_once_in_their_language_and_a_reply_threads_back() {
    let Some(desk) = Desk::start(&[], "") else { return };
    acme(&desk);
    desk.receive(&outage("Lien MPLS coup\u{e9}"));
    let mut daemon = desk.setup.start();
    desk.wait("the three notifications", SOON, || {
        ["marie", "key", "noc"]
            .iter()
            .all(|u| desk.inbox_count(&format!("{u}@example.test")) >= 1)
    });
    desk.settle();
    for u in ["marie", "key", "noc"] {
        assert_eq!(desk.inbox_count(&format!("{u}@example.test")), 1, "{u}: exactly one");
    }
    for u in ["planned", "othernoc"] {
        assert_eq!(
            desk.inbox_count(&format!("{u}@example.test")),
            0,
            "{u} is not subscribed to this"
        );
    }

    let key = desk.inbox("key@example.test").remove(0);
    let noc = desk.inbox("noc@example.test").remove(0);
    let ack = desk.inbox("marie@example.test").remove(0);
    assert!(key.contains("Guten Tag Karl"), "German for the key contact:\n{key}");
    assert!(noc.contains("Buongiorno Nora"), "Italian for the NOC:\n{noc}");
    assert!(ack.contains("Bonjour Marie"), "French for the requester:\n{ack}");
    let id = header(&key, "Message-ID").unwrap();
    assert!(
        id.starts_with("<mailroom.1.") && id.ends_with("@provider.test>"),
        "{id}"
    );
    assert_eq!(header(&key, "In-Reply-To").as_deref(), Some("<outage-1@example.test>"));
    assert!(header(&key, "References").unwrap().contains("<outage-1@example.test>"));
    assert_eq!(header(&key, "Auto-Submitted").as_deref(), Some("auto-generated"));
    assert_eq!(header(&ack, "Auto-Submitted").as_deref(), Some("auto-replied"));
    assert_eq!(header(&key, "X-Auto-Response-Suppress").as_deref(), Some("All"));
    assert_eq!(header(&key, "X-Mailroom-Ticket").as_deref(), Some("1"));
    assert_eq!(header(&key, "From").as_deref(), Some("support@example.test"));
    assert_eq!(header(&key, "Reply-To").as_deref(), Some("support@example.test"));
    assert!(header(&key, "Subject").unwrap().contains("[#1]"));
    assert!(header(&key, "Content-Type").unwrap().contains("charset=utf-8"));

    // Karl answers the notification from his mail client, through the MX.
    let reply = format!(
        "From: Karl Keller <key@example.test>\r\nTo: support@example.test\r\nSubject: Re: {}\r\n\
Message-ID: <karl-1@example.test>\r\nIn-Reply-To: {id}\r\nReferences: {id}\r\nDate: Mon, 2 Mar 2026 11:00:00 +0100\r\n\r\n\
Wir haben das auch bemerkt.\r\n",
        header(&key, "Subject").unwrap()
    );
    let sent = smtp_client::send_mail(
        desk.postfix.smtp_port(),
        "key@example.test",
        &["support@example.test"],
        reply.as_bytes(),
    )
    .unwrap();
    assert!(sent.is_positive(), "{}", sent.text());
    desk.wait("the reply to thread into ticket 1", SOON, || {
        desk.setup.tickets().first().is_some_and(|t| t["messages"] == 2)
    });
    assert_eq!(desk.setup.tickets().len(), 1, "no second ticket");
    // Marie, the requester, hears about Karl's message.
    desk.wait("Marie's update", SOON, || desk.inbox_count("marie@example.test") == 2);
    let (code, _) = daemon.terminate();
    assert_eq!(code, Some(0), "{}", daemon.logs());
}

#[test]
fn notifications_queued_while_the_relay_is_down_go_out_when_it_is_back() {
    let Some(mut desk) = Desk::start(&[], "") else { return };
    acme(&desk);
    let eml = desk.setup.dir.path().join("outage.eml");
    std::fs::write(&eml, outage("Panne")).unwrap();
    assert!(desk.setup.cli(&["replay", eml.to_str().unwrap()]).status.success());
    desk.postfix.stop().unwrap();
    let report = desk.send_outbox();
    assert!(report.starts_with("sent 0, deferred 3,"), "{report}");
    let queued = desk.outbox("queued");
    assert_eq!(queued.len(), 3);
    // One try is enough to know the relay is down: the rest of the round
    // is handed back untried (not an attempt), saying why.
    assert!(queued.iter().all(|r| !r["last_error"].is_null()), "{queued:?}");
    assert!(queued.iter().any(|r| r["attempts"] == 1), "{queued:?}");
    assert!(
        queued.iter().all(|r| r["attempts"] == 1
            || (r["attempts"] == 0
                && r["last_error"]
                    .as_str()
                    .unwrap()
                    .starts_with("not tried: the relay is failing (connect to"))),
        "{queued:?}"
    );

    desk.postfix.start_again().unwrap();
    std::thread::sleep(Duration::from_millis(1_100)); // outbox.retry_min = 1s
    let report = desk.send_outbox();
    assert!(report.starts_with("sent 3,"), "{report}");
    // `outbox list` shows what the relay said and when; a sent row has no
    // next attempt.
    let sent = desk.outbox("sent");
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(
        sent.iter()
            .all(|r| r["server_reply"].as_str().is_some_and(|a| a.contains("250"))
                && r["sent_at"].as_str().is_some_and(|t| t.ends_with('Z'))
                && r["next_attempt"] == ""),
        "{sent:#?}"
    );
    desk.settle();
    for u in ["marie", "key", "noc"] {
        assert_eq!(desk.inbox_count(&format!("{u}@example.test")), 1, "{u}");
    }
    assert!(desk.send_outbox().starts_with("sent 0, deferred 0, failed 0"));
}

#[test]
fn a_recipient_the_relay_rejects_fails_at_once_and_is_never_retried() {
    // `extra` ends the [smtp] section: a [contacts] table may follow.
    let Some(desk) = Desk::start(&["noc@example.test"], "[contacts]\nhard_bounce_limit = 1\n") else {
        return;
    };
    acme(&desk);
    let eml = desk.setup.dir.path().join("outage.eml");
    std::fs::write(&eml, outage("Panne")).unwrap();
    assert!(desk.setup.cli(&["replay", eml.to_str().unwrap()]).status.success());
    let report = desk.send_outbox();
    assert!(
        report.starts_with("sent 2, deferred 0, failed 1,") && report.ends_with("undeliverable 1"),
        "{report}"
    );
    let failed = desk.outbox("failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["to"], "noc@example.test");
    assert!(failed[0]["last_error"].as_str().unwrap().contains("550"), "{failed:?}");
    assert_eq!(failed[0]["attempts"], 1);
    std::thread::sleep(Duration::from_millis(1_100));
    assert!(
        desk.send_outbox().starts_with("sent 0, deferred 0, failed 0"),
        "never retried"
    );
    let shown = desk.setup.cli(&["contacts", "show", "noc@example.test", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["undeliverable"], true, "{shown}");
    assert_eq!(shown["hard_bounces"], 1);
    // The next ticket skips the undeliverable NOC.
    let next = String::from_utf8(outage("Encore"))
        .unwrap()
        .replace("outage-1@", "outage-2@");
    std::fs::write(&eml, next).unwrap();
    assert!(desk.setup.cli(&["replay", eml.to_str().unwrap()]).status.success());
    let queued = desk.outbox("queued");
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert!(queued.iter().all(|r| r["to"] != "noc@example.test"));
}

#[test]
fn a_hostile_subject_cannot_add_a_recipient_or_a_header() {
    let Some(desk) = Desk::start(&[], "") else { return };
    acme(&desk);
    // "Panne\r\nBcc: victim@example.test\r\nX-Injected: yes" as an encoded word: it decodes
    // to a subject with line breaks, which must never reach a header as such.
    let subject = "=?utf-8?B?UGFubmUNCkJjYzogdmljdGltQGV4YW1wbGUudGVzdA0KWC1JbmplY3RlZDogeWVz?=";
    let eml = desk.setup.dir.path().join("hostile.eml");
    std::fs::write(&eml, outage(subject)).unwrap();
    assert!(desk.setup.cli(&["replay", eml.to_str().unwrap()]).status.success());
    let report = desk.send_outbox();
    assert!(report.starts_with("sent 3,"), "{report}");
    desk.settle();
    assert_eq!(
        desk.inbox_count("victim@example.test"),
        0,
        "nobody was added by the subject"
    );
    for u in ["marie", "key", "noc"] {
        let mail = desk.inbox(&format!("{u}@example.test")).remove(0);
        let head = headers(&mail);
        assert!(!head.to_ascii_lowercase().contains("\nbcc:"), "{head}");
        assert!(!head.contains("\nX-Injected:"), "{head}");
        assert_eq!(head.matches("\nTo:").count(), 1, "{head}");
        let subject = header(&mail, "Subject").unwrap();
        assert!(subject.contains("Panne"), "{subject}");
    }
}

#[test]
fn a_kill_during_a_fan_out_loses_no_notification_and_repeats_at_most_those_in_flight() {
    const SUBSCRIBERS: usize = 120;
    const CONNECTIONS: usize = 4;
    // Paced (40/s) so the kill lands in the middle of the fan-out.
    let smtp = format!("connections = {CONNECTIONS}\nmax_per_minute = 2400\n");
    let Some(desk) = Desk::start(&[], &smtp) else { return };
    let mut toml = String::from(
        "[[account]]\nnumber = \"OCN-9\"\nname = \"Big\"\ndomains = [\"example.test\"]\nlanguage = \"en\"\n",
    );
    let mut users = vec![desk.user("marie")];
    for i in 0..SUBSCRIBERS {
        let u = desk.user(&format!("sub{i:03}"));
        toml.push_str(&format!(
            "[[contact]]\nemail = \"{u}\"\naccount = \"OCN-9\"\n[[subscription]]\ncontact = \"{u}\"\ngroup = \"key_contact\"\naccount = \"OCN-9\"\n"
        ));
        users.push(u);
    }
    desk.directory(&toml);
    desk.receive(&outage("Total outage"));
    let mut first = desk.setup.start();
    desk.wait("the fan-out to start", SOON, || desk.outbox("sent").len() >= 20);
    first.kill();
    let sent_before = desk.outbox("sent").len();
    assert!(sent_before < SUBSCRIBERS, "killed too late: {sent_before} already sent");

    let mut second = desk.setup.start();
    desk.wait("every notification to be sent", Duration::from_secs(60), || {
        desk.outbox("sent").len() == SUBSCRIBERS + 1
    });
    desk.settle();
    let mut extra = 0;
    for u in &users {
        let n = desk.inbox_count(u);
        assert!(n >= 1, "{u} got nothing");
        extra += n - 1;
    }
    assert!(
        extra <= CONNECTIONS,
        "{extra} duplicates; at most the {CONNECTIONS} in flight may repeat"
    );
    assert_eq!(second.terminate().0, Some(0), "{}", second.logs());
}

/// A naive auto-responder on `address`: answers every new mail in its
/// INBOX with a plain "Re:" (no Auto-Submitted, no vacation subject: the
/// hardest kind to tell from a person) until `stop` is set. Returns how
/// many it answered.
fn auto_responder(desk: &Desk, address: &str, stop: &std::sync::atomic::AtomicBool) -> usize {
    use std::sync::atomic::Ordering;
    let mut answered = std::collections::HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        for mail in desk.inbox(address) {
            let id = header(&mail, "Message-ID").unwrap_or_default();
            if !answered.insert(id.clone()) {
                continue;
            }
            let subject = header(&mail, "Subject").unwrap_or_default();
            let reply = format!(
                "From: <{address}>\r\nTo: support@example.test\r\nSubject: Re: {subject}\r\n\
Message-ID: <auto-{}-{address}>\r\nIn-Reply-To: {id}\r\nReferences: {id}\r\n\r\n\
Thank you for your mail. I will read it as soon as possible.\r\n",
                answered.len()
            );
            let sent = smtp_client::send_mail(
                desk.postfix.smtp_port(),
                address,
                &["support@example.test"],
                reply.as_bytes(),
            );
            assert!(sent.is_ok_and(|r| r.is_positive()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    answered.len()
}

#[test]
fn an_auto_responder_on_a_subscriber_gets_one_notification_and_no_ping_pong() {
    let Some(desk) = Desk::start(&[], "") else { return };
    desk.user("marie");
    desk.user("bot");
    desk.directory(
        r#"
[[account]]
number = "OCN-1"
name = "Acme SA"
domains = ["example.test"]
language = "en"

[[contact]]
email = "marie@example.test"
account = "OCN-1"

[[contact]]
email = "bot@example.test"
account = "OCN-1"

[[subscription]]
contact = "bot@example.test"
group = "key_contact"
account = "OCN-1"
"#,
    );
    desk.receive(&outage("Outage"));
    let mut daemon = desk.setup.start();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let answered = std::thread::scope(|s| {
        let responder = s.spawn(|| auto_responder(&desk, "bot@example.test", &stop));
        desk.wait("the responder's answer to reach the ticket", SOON, || {
            desk.setup.tickets().first().is_some_and(|t| t["messages"] == 2)
        });
        // Give a loop every chance to start: several responder polls and
        // daemon rounds.
        std::thread::sleep(Duration::from_secs(5));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        responder.join().unwrap()
    });
    desk.settle();
    assert_eq!(answered, 1, "the responder got exactly one mail from mailroom");
    assert_eq!(desk.inbox_count("bot@example.test"), 1);
    assert_eq!(desk.setup.tickets().len(), 1);
    assert_eq!(desk.setup.tickets()[0]["messages"], 2);
    // Marie: her acknowledgement and the update about the responder's mail.
    assert_eq!(desk.inbox_count("marie@example.test"), 2);
    assert_eq!(
        desk.setup.json(&["outbox", "list"]).len(),
        3,
        "ack, new_ticket, one update"
    );
    assert_eq!(daemon.terminate().0, Some(0), "{}", daemon.logs());
}
