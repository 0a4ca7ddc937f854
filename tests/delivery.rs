//! Notifications over real SMTP: a private Postfix (STARTTLS on its own CA)
//! delivering over LMTP into a private Dovecot, where each test reads the
//! recipients' mailboxes the way a customer would. Without Postfix or
//! Dovecot these tests print SKIPPED and pass; with MAILROOM_REQUIRE_POSTFIX
//! and MAILROOM_REQUIRE_DOVECOT (CI) they fail instead.

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

use desk::{Desk, header, headers};

/// Generous bounds: these are correctness tests, not benchmarks.
const SOON: Duration = Duration::from_secs(30);

/// Acme: its requester Marie (French), a key contact at account level
/// (German), a NOC on the MPLS service (Italian), and people who must not
/// hear about an MPLS outage: planned works, and the NOC of another service.
fn acme(desk: &Desk) -> String {
    for u in ["marie", "key", "noc", "planned", "othernoc", "victim"] {
        desk.user(u);
    }
    let toml = r#"
[[account]]
number = "OCN-1"
name = "Acme SA"
domains = ["example.test"]
language = "fr"

[[service]]
id = "PAR/MPLS/000001"
account = "OCN-1"
name = "MPLS Paris"

[[service]]
id = "LON/ETH/000002"
account = "OCN-1"
name = "Ethernet London"

[[contact]]
email = "marie@example.test"
first_name = "Marie"
last_name = "Dupont"
account = "OCN-1"

[[contact]]
email = "key@example.test"
first_name = "Karl"
last_name = "Keller"
account = "OCN-1"
language = "de"

[[contact]]
email = "noc@example.test"
first_name = "Nora"
last_name = "Conti"
account = "OCN-1"
language = "it"

[[contact]]
email = "planned@example.test"
account = "OCN-1"

[[contact]]
email = "othernoc@example.test"
account = "OCN-1"

[[subscription]]
contact = "key@example.test"
group = "key_contact"
account = "OCN-1"

[[subscription]]
contact = "noc@example.test"
group = "reactive_service_outage"
service = "PAR/MPLS/000001"

[[subscription]]
contact = "planned@example.test"
group = "planned_works"
account = "OCN-1"

[[subscription]]
contact = "othernoc@example.test"
group = "reactive_service_outage"
service = "LON/ETH/000002"
"#;
    desk.directory(toml);
    toml.to_string()
}

fn outage(subject: &str) -> Vec<u8> {
    format!(
        "From: Marie Dupont <marie@example.test>\r\nTo: support@example.test\r\nSubject: {subject}\r\n\
Message-ID: <outage-1@example.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour, le lien PAR/MPLS/000001 est coup\u{e9} depuis 9h40.\r\n"
    )
    .into_bytes()
}

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

/// Found by a review: on SIGTERM a paced round (`smtp.max_per_minute`)
/// went on waiting for its slots until the courier was cut off after the
/// stop's grace, its rows left `sending` until their lease ran out. Mails
/// not started are handed back at once; the one sent stays sent.
#[test]
fn stopping_hands_back_the_mails_still_waiting_for_their_slot() {
    let Some(desk) = Desk::start(&[], "") else { return };
    // Two a minute, and a lease long enough for one round to claim all
    // three: the second waits 30 s for its slot, the third 60 s.
    let text = format!(
        "{db}[mail]\nfrom = \"support@example.test\"\ndomain = \"provider.test\"\n\
[outbox]\nretry_min = \"1s\"\nlease = \"120s\"\n\
[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"starttls\"\nca_file = \"{ca}\"\ntimeout = \"3s\"\nmax_per_minute = 2\n",
        db = desk.setup.dir.database_toml(),
        port = desk.postfix.smtp_port(),
        ca = desk.postfix.ca_file().display(),
    );
    std::fs::write(desk.setup.config(), text).unwrap();
    acme(&desk);
    let eml = desk.setup.dir.path().join("outage.eml");
    std::fs::write(&eml, outage("Panne")).unwrap();
    assert!(desk.setup.cli(&["replay", eml.to_str().unwrap()]).status.success());
    let mut daemon = desk.setup.start();
    desk.wait("the first notification", SOON, || desk.outbox("sent").len() == 1);
    desk.wait("the others claimed", SOON, || desk.outbox("sending").len() == 2);
    let (code, took) = daemon.terminate();
    assert_eq!(code, Some(0), "{}", daemon.logs());
    assert!(desk.outbox("sending").is_empty(), "{:?}", desk.outbox("sending"));
    let queued = desk.outbox("queued");
    assert_eq!(queued.len(), 2, "{queued:?}");
    for row in &queued {
        assert!(
            row["last_error"]
                .as_str()
                .unwrap_or_default()
                .contains("mailroom is stopping"),
            "{row}"
        );
        assert_eq!(row["attempts"], 0, "not an attempt: {row}");
    }
    eprintln!("stopped in {took:?}");
    assert_eq!(desk.outbox("sent").len(), 1);
}

/// A TCP proxy on loopback in front of `port` that holds back the
/// server's answer to the end of each mail (after the client's
/// `\r\n.\r\n`) for `hold`: a relay that filters mail before it answers
/// (a before-queue content filter, a milter). Returns its port.
fn slow_to_answer_the_end_of_mail(port: u16, hold: Duration) -> u16 {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let local = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let (Ok(client), Ok(server)) = (client, TcpStream::connect(("127.0.0.1", port))) else {
                continue;
            };
            let until: Arc<Mutex<Option<std::time::Instant>>> = Arc::default();
            let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let seen = until.clone();
            std::thread::spawn(move || {
                let (mut buf, mut tail) = ([0u8; 16_384], Vec::new());
                while let Ok(n @ 1..) = from_client.read(&mut buf) {
                    tail.extend_from_slice(&buf[..n]);
                    // Marked before it is passed on: the answer comes after.
                    if tail.windows(5).any(|w| w == b"\r\n.\r\n") {
                        *seen.lock().unwrap() = Some(std::time::Instant::now() + hold);
                    }
                    tail.drain(..tail.len().saturating_sub(4));
                    if to_server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to_server.shutdown(Shutdown::Write);
            });
            let (mut from_server, mut to_client) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16_384];
                while let Ok(n @ 1..) = from_server.read(&mut buf) {
                    let held = until.lock().unwrap().take();
                    if let Some(at) = held {
                        std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
                    }
                    if to_client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = to_client.shutdown(Shutdown::Write);
            });
        }
    });
    local
}

/// A relay that answers the end of a mail later than `smtp.timeout`, and
/// later than the claim's lease: given up on at the timeout, the mail was
/// sent again at every retry; and a claim that ran out while the answer
/// was awaited was taken over by another sender, which sent it again.
/// Here Postfix's answers are held 10 s (`smtp.timeout` 3 s, `outbox.lease`
/// 6 s) and a second `outbox send` runs after the first claims ran out:
/// every subscriber gets one copy, and every row is `sent`.
#[test]
fn a_relay_slow_to_answer_the_end_of_a_mail_delivers_each_notification_once() {
    let Some(desk) = Desk::start(&[], "") else { return };
    let port = slow_to_answer_the_end_of_mail(desk.postfix.smtp_port(), Duration::from_secs(10));
    desk.write_config_for(port, "none", &desk.postfix.ca_file(), "");
    acme(&desk);
    let eml = desk.setup.dir.path().join("outage.eml");
    std::fs::write(&eml, outage("Panne")).unwrap();
    assert!(desk.setup.cli(&["replay", eml.to_str().unwrap()]).status.success());
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| desk.send_outbox());
        // Past the first claims' lease (6 s), before the answers (10 s).
        std::thread::sleep(Duration::from_secs(8));
        let second = desk.send_outbox();
        (first.join().unwrap(), second)
    });
    assert!(first.starts_with("sent 3, deferred 0, failed 0"), "{first}");
    assert!(second.starts_with("sent 0, deferred 0, failed 0"), "{second}");
    desk.settle();
    for u in ["marie", "key", "noc"] {
        assert_eq!(desk.inbox_count(&format!("{u}@example.test")), 1, "{u}: exactly one");
    }
    assert_eq!(desk.outbox("sent").len(), 3);
}

/// On SIGTERM, a send still waiting for the relay's answer to the end of
/// its mail is given a few seconds, then recorded as maybe delivered and
/// queued again, within the stop's grace: it no longer stays `sending`
/// until its lease runs out, long after the process is gone.
#[test]
fn stopping_records_a_send_still_waiting_for_the_relays_answer() {
    let Some(desk) = Desk::start(&[], "") else { return };
    let port = slow_to_answer_the_end_of_mail(desk.postfix.smtp_port(), Duration::from_secs(60));
    desk.write_config_for(port, "none", &desk.postfix.ca_file(), "");
    acme(&desk);
    let eml = desk.setup.dir.path().join("outage.eml");
    std::fs::write(&eml, outage("Panne")).unwrap();
    assert!(desk.setup.cli(&["replay", eml.to_str().unwrap()]).status.success());
    let mut daemon = desk.setup.start();
    desk.wait("the notifications in flight", SOON, || {
        desk.outbox("sending").len() == 3
    });
    std::thread::sleep(Duration::from_secs(1));
    let (code, took) = daemon.terminate();
    assert_eq!(code, Some(0), "{}", daemon.logs());
    assert!(took < Duration::from_secs(9), "stopped in {took:?}");
    assert!(desk.outbox("sending").is_empty(), "{:?}", desk.outbox("sending"));
    let queued = desk.outbox("queued");
    assert_eq!(queued.len(), 3, "{queued:?}");
    for row in &queued {
        let error = row["last_error"].as_str().unwrap_or_default();
        assert!(error.contains("it may have been delivered"), "{row}");
    }
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
