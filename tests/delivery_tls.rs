//! How notifications are protected on their way to the relay: implicit TLS (SMTPS) to a
//! private Postfix's wrapper-mode port, delivered into a private Dovecot; a relay whose
//! certificate the configured CA did not sign is never sent anything, with STARTTLS or
//! implicit TLS, and never in plaintext instead; SMTP AUTH after STARTTLS against a relay that
//! checks the password (Postfix asking Dovecot's SASL service), where a wrong password defers
//! the mail without charging any recipient and is never written anywhere; `check-config`
//! refuses plaintext to a remote relay and never prints a password. Without Postfix or Dovecot the server tests print
//! SKIPPED and pass; with MAILROOM_REQUIRE_POSTFIX and MAILROOM_REQUIRE_DOVECOT (CI) they fail
//! instead. The `check-config` tests need no server.

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

use std::path::Path;
use std::process::{Command, Output};

use daemon::Setup;
use desk::{Desk, header, headers};
use dovecot::Dovecot;
use postfix::{Postfix, PostfixOptions};

/// The recipients of the notifications [`queue_notifications`] makes.
const RECIPIENTS: [&str; 2] = ["marie@example.test", "key@example.test"];

/// Which port and protocol mailroom uses towards the relay.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tls {
    /// `tls = "implicit"` to the SMTPS port.
    Implicit,
    /// `tls = "starttls"` to the plain SMTP port.
    Starttls,
}

/// A Dovecot with LMTP, a Postfix with an SMTPS port delivering to it, and a mailroom config
/// with `[smtp]` in `tls` mode trusting `ca` (a file of the Postfix's temp dir, named by a
/// function so the caller can pick `ca_file` or `wrong_ca_file`). `None`: skipped (reported).
fn start_desk(tls: Tls, ca: fn(&Postfix) -> std::path::PathBuf) -> Option<Desk> {
    let dovecot = Dovecot::start_with_lmtp().unwrap_or_else(|e| panic!("{e}"))?;
    let opts = PostfixOptions::lmtp(dovecot.lmtp_port()).with_smtps();
    let postfix = Postfix::start(opts).unwrap_or_else(|e| panic!("{e}"))?;
    let (mode, port) = match tls {
        Tls::Implicit => ("implicit", postfix.smtps_port().expect("an SMTPS port")),
        Tls::Starttls => ("starttls", postfix.smtp_port()),
    };
    let desk = Desk {
        setup: Setup::new(),
        postfix,
        dovecot,
    };
    desk.write_config_for(port, mode, &ca(&desk.postfix), "");
    Some(desk)
}

/// The relay's SASL account (a Dovecot user) and its password.
const RELAY_USER: &str = "mailroom-relay@example.test";
const RELAY_PASSWORD: &str = "relay-Pa55word-7f3e";

/// A desk whose Postfix offers AUTH after STARTTLS (checked by Dovecot) and lets only
/// authenticated clients relay; mailroom logs in as [`RELAY_USER`] with `password`.
fn start_desk_with_auth(password: &str) -> Option<Desk> {
    let dovecot = Dovecot::start_with_lmtp().unwrap_or_else(|e| panic!("{e}"))?;
    dovecot.add_user(RELAY_USER, RELAY_PASSWORD).unwrap();
    let opts = PostfixOptions::lmtp(dovecot.lmtp_port()).sasl(dovecot.auth_port());
    let postfix = Postfix::start(opts).unwrap_or_else(|e| panic!("{e}"))?;
    let desk = Desk {
        setup: Setup::new(),
        postfix,
        dovecot,
    };
    desk.write_config(&format!("username = \"{RELAY_USER}\"\npassword = \"{password}\"\n"));
    Some(desk)
}

/// A plain-ASCII line of 76+ characters, quoted in the key contact's notification: such a
/// body cannot go as 7bit (lettre panicked when told to), so it goes quoted-printable.
const LONG_LINE: &str = "Graph: https://noc.example.test/graphs/mpls?circuit=LON-ETH-000123&from=-24h&to=now&step=60";

/// A request from Marie, replayed: an acknowledgement to her and a notification to the key
/// contact are queued. Returns the queued rows.
fn queue_notifications(desk: &Desk) -> Vec<serde_json::Value> {
    for r in RECIPIENTS {
        desk.user(r.split('@').next().unwrap());
    }
    desk.directory(
        r#"
[[account]]
number = "OCN-1"
name = "Acme SA"
domains = ["example.test"]
language = "en"

[[contact]]
email = "marie@example.test"
first_name = "Marie"
account = "OCN-1"

[[contact]]
email = "key@example.test"
first_name = "Karl"
account = "OCN-1"

[[subscription]]
contact = "key@example.test"
group = "key_contact"
account = "OCN-1"
"#,
    );
    let eml = desk.setup.dir.path().join("request.eml");
    std::fs::write(
        &eml,
        format!(
            "From: Marie <marie@example.test>\r\nTo: support@example.test\r\nSubject: Link down\r\n\
Message-ID: <req-1@example.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nThe MPLS link is down.\r\n\
{LONG_LINE}\r\n"
        ),
    )
    .unwrap();
    let out = desk.setup.cli(&["replay", eml.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let queued = desk.outbox("queued");
    let mut to: Vec<&str> = queued.iter().map(|r| r["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(to, ["key@example.test", "marie@example.test"], "{queued:?}");
    queued
}

#[test]
fn implicit_tls_to_the_smtps_port_delivers_into_the_mailbox() {
    let Some(desk) = start_desk(Tls::Implicit, Postfix::ca_file) else {
        return;
    };
    queue_notifications(&desk);
    let report = desk.send_outbox();
    assert!(report.starts_with("sent 2, deferred 0, failed 0"), "{report}");
    desk.settle();
    for r in RECIPIENTS {
        let mails = desk.inbox(r);
        assert_eq!(mails.len(), 1, "{r}: {mails:?}");
        assert_eq!(header(&mails[0], "X-Mailroom-Ticket").as_deref(), Some("1"));
        // Postfix's own Received: line (under Dovecot's) says how the mail came in: ESMTPS is
        // ESMTP over TLS (RFC 3848).
        let head = headers(&mails[0]);
        let postfix = head
            .lines()
            .find(|l| l.starts_with("Received:") && l.contains("(Postfix)"))
            .unwrap_or_else(|| panic!("no Received: from Postfix:\n{head}"));
        assert!(postfix.contains(" with ESMTPS "), "{postfix}");
    }
    assert!(desk.outbox("queued").is_empty());
    assert_eq!(desk.outbox("sent").len(), 2);
    // The key contact's notification quotes the long line: quoted-printable, whole once decoded.
    let quoting = desk.inbox("key@example.test").remove(0);
    assert!(
        header(&quoting, "Content-Transfer-Encoding").as_deref() == Some("quoted-printable"),
        "{quoting}"
    );
    assert!(
        quoting.replace("=\r\n", "").replace("=3D", "=").contains(LONG_LINE),
        "{quoting}"
    );
    // Both came in through the SMTPS listener (its smtpd logs as postfix/smtps), over TLS;
    // the plain port only saw the harness's readiness check.
    let log = desk.postfix.log_tail(300);
    let accepted: Vec<&str> = log.lines().filter(|l| l.contains(": client=")).collect();
    assert_eq!(accepted.len(), 2, "{log}");
    assert!(accepted.iter().all(|l| l.contains(" postfix/smtps/smtpd[")), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(" postfix/smtps/smtpd[") && l.contains("TLS connection established")),
        "{log}"
    );
}

/// An `outbox send` report where both rows were deferred, none sent or
/// failed. The desk retries after 1 s (`outbox.retry_min`): on a loaded
/// machine a drain may outlast that and try a row twice, deferred again.
fn only_deferred(report: &str) -> bool {
    let deferred: Option<u64> = report
        .strip_prefix("sent 0, deferred ")
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok());
    deferred.is_some_and(|n| n >= 2) && report.contains(", failed 0, suppressed 0,")
}

/// With `ca_file` naming a CA that did not sign the relay's certificate: nothing is sent,
/// every row stays queued with a TLS error, and Postfix accepted no mail.
fn wrong_ca_defers_and_sends_nothing(tls: Tls) {
    let Some(desk) = start_desk(tls, Postfix::wrong_ca_file) else {
        return;
    };
    queue_notifications(&desk);
    let report = desk.send_outbox();
    assert!(only_deferred(&report), "{tls:?}: {report}");
    let queued = desk.outbox("queued");
    assert_eq!(queued.len(), 2, "{queued:?}");
    for row in &queued {
        assert!(row["attempts"].as_u64().is_some_and(|a| a >= 1), "{row}");
        // "TLS with 127.0.0.1: invalid peer certificate: UnknownIssuer" (implicit),
        // "STARTTLS with 127.0.0.1: invalid peer certificate: UnknownIssuer" (STARTTLS).
        let error = row["last_error"].as_str().unwrap_or_default();
        eprintln!("{tls:?}, wrong CA: last_error {error:?}");
        assert!(
            error.contains("certificate"),
            "{tls:?}: last_error does not name the certificate: {row}"
        );
        let step = match tls {
            Tls::Implicit => "TLS with ",
            Tls::Starttls => "STARTTLS with ",
        };
        assert!(
            error.starts_with(step) && !error.contains("Connection error"),
            "{tls:?}: last_error does not say plainly which step failed: {row}"
        );
    }
    // Postfix saw the handshake fail, and nothing reached its queue or the mailboxes.
    desk.settle();
    let log = desk.postfix.log_tail(300);
    assert!(
        log.contains("connect from") && !log.contains("TLS connection established"),
        "{tls:?}: no handshake attempt, or one that succeeded:\n{log}"
    );
    let accepted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("message-id=") || l.contains("status=sent") || l.contains(": client="))
        .collect();
    assert!(accepted.is_empty(), "{tls:?}: Postfix accepted mail:\n{log}");
    for r in RECIPIENTS {
        assert_eq!(desk.inbox_count(r), 0, "{tls:?}: {r} got mail");
    }
}

#[test]
fn starttls_with_the_wrong_ca_defers_and_never_sends_in_plaintext() {
    wrong_ca_defers_and_sends_nothing(Tls::Starttls);
}

#[test]
fn implicit_tls_with_the_wrong_ca_defers_and_never_sends_in_plaintext() {
    wrong_ca_defers_and_sends_nothing(Tls::Implicit);
}

#[test]
fn smtp_auth_after_starttls_logs_in_and_delivers() {
    let Some(desk) = start_desk_with_auth(RELAY_PASSWORD) else {
        return;
    };
    queue_notifications(&desk);
    let report = desk.send_outbox();
    assert!(report.starts_with("sent 2, deferred 0, failed 0"), "{report}");
    desk.settle();
    for r in RECIPIENTS {
        assert_eq!(desk.inbox(r).len(), 1, "{r}");
    }
    // Postfix names the SASL login on the line of each mail it accepted, and offered AUTH
    // only inside TLS (smtpd_tls_auth_only), so the password never crossed in plaintext.
    let log = desk.postfix.log_tail(300);
    let accepted: Vec<&str> = log.lines().filter(|l| l.contains(": client=")).collect();
    assert_eq!(accepted.len(), 2, "{log}");
    for line in accepted {
        assert!(
            line.contains("sasl_method=PLAIN") && line.contains(&format!("sasl_username={RELAY_USER}")),
            "not an authenticated submission: {line}"
        );
    }
    assert!(log.contains("TLS connection established"), "{log}");
}

#[test]
fn a_wrong_relay_password_defers_without_charging_recipients_or_showing_it() {
    const WRONG: &str = "not-the-Pa55word-91c2";
    let Some(desk) = start_desk_with_auth(WRONG) else {
        return;
    };
    queue_notifications(&desk);
    let (stdout, stderr, queued) = send_refused(&desk);
    for row in &queued {
        let error = row["last_error"].as_str().unwrap_or_default();
        eprintln!("wrong relay password: last_error {error:?}");
        assert!(
            error.starts_with("AUTH with 127.0.0.1: ") && error.contains("535"),
            "last_error does not say the login was refused: {row}"
        );
        assert!(!error.contains(WRONG), "the password is in last_error: {row}");
    }
    assert!(
        !stdout.contains(WRONG) && !stderr.contains(WRONG),
        "the password was printed:\n{stdout}\n{stderr}"
    );
    // No contact was marked undeliverable or charged a bounce.
    for contact in desk.setup.json(&["contacts", "list"]) {
        assert_eq!(contact["undeliverable"], false, "{contact}");
        assert_eq!(contact["hard_bounces"], 0, "{contact}");
    }
    // Dovecot checked the password and said no; Postfix accepted nothing.
    desk.settle();
    let log = desk.postfix.log_tail(300);
    assert!(log.contains("SASL PLAIN authentication failed"), "{log}");
    assert!(!log.lines().any(|l| l.contains(": client=")), "{log}");
    for r in RECIPIENTS {
        assert_eq!(desk.inbox_count(r), 0, "{r} got mail");
    }
}

/// `outbox send` against a relay that refuses our login: it succeeds,
/// every row deferred and queued again. Its stdout and stderr, and the rows.
fn send_refused(desk: &Desk) -> (String, String, Vec<serde_json::Value>) {
    let out = desk.setup.cli(&["outbox", "send"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The relay refused us, not the recipients: every row waits for a retry.
    assert!(only_deferred(&stdout), "{stdout}\n{stderr}");
    let queued = desk.outbox("queued");
    assert_eq!(queued.len(), 2, "{queued:?}");
    (stdout, stderr, queued)
}

/// Found by a review: every queued row tried AUTH on a connection of its
/// own, so a rotated password meant thousands of refused logins at once,
/// enough for a relay to lock the account out. Once the relay refuses us,
/// the rest of the round is handed back untried.
#[test]
fn a_relay_refusing_the_login_is_tried_once_a_connection_not_once_a_row() {
    let Some(desk) = start_desk_with_auth("not-the-Pa55word-91c2") else {
        return;
    };
    desk.write_config(&format!(
        "username = \"{RELAY_USER}\"\npassword = \"not-the-Pa55word-91c2\"\nconnections = 1\n"
    ));
    queue_notifications(&desk);
    let (_, _, queued) = send_refused(&desk);
    let errors: Vec<&str> = queued
        .iter()
        .map(|r| r["last_error"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        errors.iter().filter(|e| e.starts_with("AUTH with 127.0.0.1: ")).count(),
        1,
        "one row tried: {errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("not tried: the relay is failing (AUTH with")),
        "{errors:?}"
    );
    // An untried row is not an attempt.
    assert!(queued.iter().any(|r| r["attempts"] == 0), "{queued:?}");
    desk.settle();
    let log = desk.postfix.log_tail(300);
    assert_eq!(log.matches("SASL PLAIN authentication failed").count(), 1, "{log}");
}

/// `mailroom check-config` on a config with `smtp` as its `[smtp]` section, with `env` set.
fn check_config(smtp: &str, env: &[(&str, &str)]) -> Output {
    let setup = Setup::new();
    let mut text = std::fs::read_to_string(setup.config()).unwrap();
    text.push_str("\n[smtp]\n");
    text.push_str(smtp);
    std::fs::write(setup.config(), text).unwrap();
    run_check_config(&setup.config(), env)
}

fn run_check_config(config: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .env_remove("MAILROOM_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_refuses_plaintext_to_a_remote_relay() {
    let out = check_config("host = \"relay.example.com\"\ntls = \"none\"\n", &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("smtp: tls = \"none\" to relay.example.com") && stderr.contains("allow_insecure"),
        "{stderr}"
    );
    // Asked for by name it is allowed; to loopback it needs no asking.
    for smtp in [
        "host = \"relay.example.com\"\ntls = \"none\"\nallow_insecure = true\n",
        "host = \"127.0.0.1\"\ntls = \"none\"\n",
    ] {
        let out = check_config(smtp, &[]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{smtp}: {stdout}\n{stderr}");
        assert!(stdout.contains("tls=None"), "{stdout}");
    }
}

#[test]
fn check_config_warns_about_an_inline_password_and_never_prints_one() {
    const SECRET: &str = "hunter2-secret";
    let out = check_config(
        &format!("host = \"relay.example.com\"\nusername = \"u\"\npassword = \"{SECRET}\"\n"),
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("warning: smtp: the password is written in the config file"),
        "{stderr}"
    );
    assert!(
        stdout.contains("user=u") && stdout.contains("password (inline)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "{stdout}\n{stderr}"
    );

    // From the environment: the variable is named, its value is not printed, no warning.
    let out = check_config(
        "host = \"relay.example.com\"\nusername = \"u\"\npassword_env = \"MAILROOM_TEST_SMTP_PW\"\n",
        &[("MAILROOM_TEST_SMTP_PW", SECRET)],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("password_env MAILROOM_TEST_SMTP_PW"), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "{stdout}\n{stderr}"
    );
}
