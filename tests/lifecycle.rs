//! The daemon's life as a service: SIGHUP puts a new config in force, and
//! an IMAP server that refuses IDLE makes the mailbox back off instead of
//! hanging it. The first runs against a private Dovecot (SKIPPED without
//! one, a failure under `MAILROOM_REQUIRE_DOVECOT=1`); the second against
//! a scripted peer on loopback, since no real server refuses IDLE.

#[path = "imap/daemon.rs"]
mod daemon;
#[path = "support/dovecot.rs"]
mod dovecot;
#[path = "support/imap_client.rs"]
mod imap_client;

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use daemon::{Setup, request, signal, wait_for};
use dovecot::Dovecot;
use imap_client::ImapClient;

const SOON: Duration = Duration::from_secs(30);

fn append_config(setup: &Setup, toml: &str) {
    let mut text = std::fs::read_to_string(setup.config()).unwrap();
    text.push_str(toml);
    std::fs::write(setup.config(), text).unwrap();
}

/// A mail from `address`, unique by `n`.
fn mail_from(address: &str, n: usize) -> Vec<u8> {
    format!(
        "From: <{address}>\r\nTo: support@example.test\r\nSubject: Offer {n}\r\nMessage-ID: <offer-{n}@spam.test>\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nBuy now.\r\n"
    )
    .into_bytes()
}

#[test]
fn sighup_puts_new_ignore_rules_in_force_and_an_invalid_config_keeps_the_old() {
    let Some(d) = Dovecot::start().expect("private Dovecot") else {
        return;
    };
    let setup = Setup::new();
    let _ = d.add_user("hup", "pw-hup");
    let mut c = ImapClient::connect(d.imap_port()).unwrap();
    c.login("hup", "pw-hup").unwrap();
    setup.mailbox(&format!(
        "name = \"support\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"hup\"\npassword = \"pw-hup\"\n",
        d.imap_port()
    ));
    let mut daemon = setup.start();
    c.append("INBOX", &mail_from("offers@spam.test", 1)).unwrap();
    assert!(wait_for(SOON, || setup.tickets().len() == 1), "{}", daemon.logs());

    // Broken first: the old config stays, and the daemon says so.
    let good = std::fs::read_to_string(setup.config()).unwrap();
    append_config(&setup, "\n[intake]\nignore = [\"regex:(\"]\n");
    signal(daemon.pid(), "HUP");
    assert!(
        wait_for(SOON, || daemon.full_log().contains("keeping the old one")),
        "{}",
        daemon.logs()
    );
    std::fs::write(setup.config(), &good).unwrap();
    append_config(&setup, "\n[intake]\nignore = [\"*@spam.test\"]\n");
    signal(daemon.pid(), "HUP");
    assert!(
        wait_for(SOON, || daemon.full_log().contains("config and templates reloaded")),
        "{}",
        daemon.logs()
    );
    c.append("INBOX", &mail_from("offers@spam.test", 2)).unwrap();
    c.append("INBOX", &request(7)).unwrap();
    assert!(wait_for(SOON, || setup.messages().len() == 3), "{}", daemon.logs());
    let messages = setup.messages();
    let outcome = |subject: &str| {
        messages
            .iter()
            .find(|m| m["subject"] == subject)
            .map(|m| m["outcome"].clone())
    };
    assert_eq!(outcome("Offer 2"), Some("ignored".into()), "{messages:?}");
    assert_eq!(outcome("Line 7 is down"), Some("new_ticket".into()), "{messages:?}");
    assert_eq!(setup.tickets().len(), 2);
    // The mailbox section did not change: nothing is said to need a restart.
    assert!(!daemon.full_log().contains("take effect only at restart"));
    assert_eq!(daemon.terminate().0, Some(0));
}

/// A peer that logs in, has an empty INBOX, and refuses IDLE with `NO`;
/// every command line it got is sent on `seen`.
fn refusing_idle_server() -> (u16, std::sync::mpsc::Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(socket) = socket else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut out = socket.try_clone().unwrap();
                let _ = out.write_all(b"* OK [CAPABILITY IMAP4rev1 IDLE UIDPLUS] ready\r\n");
                for line in BufReader::new(socket).lines() {
                    let Ok(line) = line else { return };
                    let _ = tx.send(line.clone());
                    let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
                    let verb = rest.split(' ').next().unwrap_or_default().to_ascii_uppercase();
                    let answer = match verb.as_str() {
                        "CAPABILITY" => format!("* CAPABILITY IMAP4rev1 IDLE UIDPLUS\r\n{tag} OK done\r\n"),
                        "SELECT" => format!(
                            "* 0 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 1] ok\r\n{tag} OK [READ-WRITE] done\r\n"
                        ),
                        "UID" => format!("* SEARCH\r\n{tag} OK done\r\n"),
                        "IDLE" => format!("{tag} NO [UNAVAILABLE] IDLE is off tonight\r\n"),
                        "LOGOUT" => format!("* BYE\r\n{tag} OK bye\r\n"),
                        _ => format!("{tag} OK done\r\n"),
                    };
                    if out.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

#[test]
fn a_server_refusing_idle_is_polled_on_the_same_connection() {
    let (port, seen) = refusing_idle_server();
    let setup = Setup::new();
    setup.mailbox(&format!(
        "name = \"support\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nusername = \"u\"\npassword = \"p\"\npoll_seconds = 1\n"
    ));
    let mut daemon = setup.start();
    // It polls (a SELECT a second) on its one login, instead of logging in
    // again every second while the server refuses.
    let (mut logins, mut selects) = (0, 0);
    assert!(
        wait_for(SOON, || {
            for line in seen.try_iter() {
                logins += usize::from(line.contains("LOGIN"));
                selects += usize::from(line.contains("SELECT"));
            }
            selects >= 4
        }),
        "{logins} logins, {selects} selects\n{}",
        daemon.logs()
    );
    assert_eq!(logins, 1, "{}", daemon.logs());
    assert!(
        wait_for(SOON, || setup.status("support")["state"] == "polling"),
        "{:?}\n{}",
        setup.status("support"),
        daemon.logs()
    );
    assert!(
        daemon
            .full_log()
            .contains("[UNAVAILABLE] IDLE is off tonight); polling on this connection instead"),
        "{}",
        daemon.logs()
    );
    let (code, took) = daemon.terminate();
    assert_eq!(code, Some(0), "{}", daemon.logs());
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
}
