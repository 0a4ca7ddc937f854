//! Stopping and slow relays, over real SMTP (a private Postfix delivering
//! into a private Dovecot, as in `delivery.rs`): what a send still in
//! flight leaves behind when the daemon stops, and a relay that takes
//! longer than `smtp.timeout` and the claim's lease to answer the end of a
//! mail. Without Postfix or Dovecot these tests print SKIPPED and pass;
//! with MAILROOM_REQUIRE_POSTFIX and MAILROOM_REQUIRE_DOVECOT (CI) they
//! fail instead.

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
use desk::Desk;

/// Generous bounds: these are correctness tests, not benchmarks.
const SOON: Duration = Duration::from_secs(30);

/// Acme's directory, and the outage mail replayed: its three
/// notifications queued.
fn queue_outage(desk: &Desk) {
    acme(desk);
    let eml = desk.setup.dir.path().join("outage.eml");
    std::fs::write(&eml, outage("Panne")).unwrap();
    assert!(desk.setup.cli(&["replay", eml.to_str().unwrap()]).status.success());
}

/// Stops the daemon, which must exit 0 within the stop's grace (9 s),
/// leaving no row `sending`; returns the rows queued again, each checked
/// for `said` in its error and, unless `attempted`, an attempt not counted.
fn stop_and_check_queued(desk: &Desk, daemon: &mut daemon::Daemon, said: &str, attempted: bool) -> usize {
    let (code, took) = daemon.terminate();
    assert_eq!(code, Some(0), "{}", daemon.logs());
    assert!(took < Duration::from_secs(9), "stopped in {took:?}");
    assert!(desk.outbox("sending").is_empty(), "{:?}", desk.outbox("sending"));
    let queued = desk.outbox("queued");
    for row in &queued {
        let error = row["last_error"].as_str().unwrap_or_default();
        assert!(error.contains(said), "{row}");
        if !attempted {
            assert_eq!(row["attempts"], 0, "not an attempt: {row}");
        }
    }
    queued.len()
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
    queue_outage(&desk);
    let mut daemon = desk.setup.start();
    desk.wait("the first notification", SOON, || desk.outbox("sent").len() == 1);
    desk.wait("the others claimed", SOON, || desk.outbox("sending").len() == 2);
    assert_eq!(
        stop_and_check_queued(&desk, &mut daemon, "mailroom is stopping", false),
        2
    );
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
/// Here Postfix's answers are held 16 s (`smtp.timeout` 3 s, `outbox.lease`
/// 6 s) and a second `outbox send` runs once the first claims would have
/// run out: every subscriber gets one copy, and every row is `sent`.
#[test]
fn a_relay_slow_to_answer_the_end_of_a_mail_delivers_each_notification_once() {
    let Some(desk) = Desk::start(&[], "") else { return };
    let port = slow_to_answer_the_end_of_mail(desk.postfix.smtp_port(), Duration::from_secs(16));
    desk.write_config_for(port, "none", &desk.postfix.ca_file(), "");
    queue_outage(&desk);
    let (first, second) = std::thread::scope(|s| {
        let first = s.spawn(|| desk.send_outbox());
        desk.wait("the notifications claimed", SOON, || desk.outbox("sending").len() == 3);
        // Past the first claims' lease (6 s, and a second of rounding),
        // before the answers (16 s).
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
    queue_outage(&desk);
    let mut daemon = desk.setup.start();
    desk.wait("the notifications in flight", SOON, || {
        desk.outbox("sending").len() == 3
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        stop_and_check_queued(&desk, &mut daemon, "it may have been delivered", true),
        3
    );
}

/// A send stopped while the relay was still being reached (here: a relay
/// that never greets) never handed the mail over: it is queued again as
/// not sent, not counted as an attempt.
#[test]
fn stopping_hands_back_a_send_that_never_reached_the_relay() {
    let Some(desk) = Desk::start(&[], "") else { return };
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>> = Default::default();
    let keep = held.clone();
    std::thread::spawn(move || {
        for client in silent.incoming().flatten() {
            keep.lock().unwrap().push(client);
        }
    });
    desk.write_config_for(port, "none", &desk.postfix.ca_file(), "");
    // Longer than the stop's grace, and a lease longer than that.
    let text = std::fs::read_to_string(desk.setup.config())
        .unwrap()
        .replace("timeout = \"3s\"", "timeout = \"30s\"")
        .replace("lease = \"6s\"", "lease = \"60s\"");
    std::fs::write(desk.setup.config(), text).unwrap();
    queue_outage(&desk);
    let mut daemon = desk.setup.start();
    desk.wait("the notifications in flight", SOON, || {
        desk.outbox("sending").len() == 3
    });
    assert_eq!(
        stop_and_check_queued(&desk, &mut daemon, "not sent: mailroom stopped", false),
        3
    );
    drop(held);
}
