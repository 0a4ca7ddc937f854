//! Relay behaviour against scripted SMTP peers on loopback: which answers
//! defer, bounce or fail a notification, and how pooled connections recover.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;

/// A relay on loopback that answers each command from `script` (by
/// verb; `.` is the end of the message), else as a relay that takes
/// everything would. Returns its port and the commands it received.
async fn scripted_relay(
    script: &'static [(&'static str, &'static str)],
) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    slow_scripted_relay(script, None).await
}

/// [`scripted_relay`], waiting `pause.1` before it answers the command
/// `pause.0`. A client gone meanwhile ends it.
async fn slow_scripted_relay(
    script: &'static [(&'static str, &'static str)],
    pause: Option<(&'static str, Duration)>,
) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read).lines();
        let mut seen = Vec::new();
        let mut in_data = false;
        write.write_all(b"220 relay.test ESMTP\r\n").await.unwrap();
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data && line != "." {
                continue;
            }
            in_data = false;
            let verb = line.split([' ', ':']).next().unwrap_or_default().to_ascii_uppercase();
            seen.push(verb.clone());
            if let Some((slow, wait)) = pause
                && slow == verb
            {
                tokio::time::sleep(wait).await;
            }
            let reply = match script.iter().find(|(v, _)| *v == verb) {
                Some((_, reply)) => reply.to_string(),
                None => match verb.as_str() {
                    "EHLO" => "250-relay.test\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN".into(),
                    "DATA" => {
                        in_data = true;
                        "354 go ahead".into()
                    }
                    "QUIT" => "221 bye".into(),
                    _ => "250 ok".into(),
                },
            };
            if write.write_all(format!("{reply}\r\n").as_bytes()).await.is_err() || verb == "QUIT" {
                break;
            }
        }
        seen
    });
    (port, peer)
}

/// A relay that serves two connections: the first takes one mail and
/// then closes the socket without a word (an idle timeout, a restart);
/// the second takes everything. Returns its port and the number of
/// mails it took.
async fn relay_that_drops_after_one_mail() -> (u16, tokio::task::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = tokio::spawn(async move {
        let mut taken = 0;
        for connection in 0..2 {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 relay.test ESMTP\r\n").await.unwrap();
            let mut in_data = false;
            while let Ok(Some(line)) = lines.next_line().await {
                if in_data && line != "." {
                    continue;
                }
                let verb = line.split([' ', ':']).next().unwrap_or_default().to_ascii_uppercase();
                let reply = match verb.as_str() {
                    _ if in_data => "250 2.0.0 queued",
                    "EHLO" => "250-relay.test\r\n250 8BITMIME",
                    "DATA" => "354 go ahead",
                    "QUIT" => "221 bye",
                    _ => "250 ok",
                };
                write.write_all(format!("{reply}\r\n").as_bytes()).await.unwrap();
                if in_data {
                    taken += 1;
                    if connection == 0 {
                        break;
                    }
                }
                in_data = verb == "DATA";
                if verb == "QUIT" {
                    break;
                }
            }
        }
        taken
    });
    (port, peer)
}

/// The pool reuses a connection idle for less than 30 s untested; one
/// the relay closed meanwhile must not cost the next mail an attempt
/// (and a minute's wait behind a misleading "sender refused").
#[tokio::test]
async fn a_pooled_connection_closed_by_the_relay_is_replaced_at_once() {
    let (port, peer) = relay_that_drops_after_one_mail().await;
    let config: SmtpConfig = toml::from_str(&format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n")).unwrap();
    let relay = Relay::new(&config, "support@provider.test").unwrap();
    let first = relay
        .send(&notification(), END_OF_MAIL_WAIT, &AtomicBool::new(false))
        .await;
    assert!(matches!(first, Delivery::Sent(_)), "{first:?}");
    // Let the relay's close reach us.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = relay
        .send(&notification(), END_OF_MAIL_WAIT, &AtomicBool::new(false))
        .await;
    assert!(matches!(second, Delivery::Sent(_)), "{second:?}");
    relay.close().await;
    assert_eq!(peer.await.unwrap(), 2);
}

/// A relay that takes one mail, waiting `pause` before it answers the
/// command `slow` (`.`: the end of the mail). Returns its port and the
/// number of mails it took.
async fn relay_slow_at(slow: &'static str, pause: Duration) -> (u16, tokio::task::JoinHandle<usize>) {
    let (port, peer) = slow_scripted_relay(&[], Some((slow, pause))).await;
    let taken = tokio::spawn(async move { peer.await.unwrap().iter().filter(|v| *v == ".").count() });
    (port, taken)
}

fn relay_with_timeout(port: u16, timeout: &str) -> Relay {
    let config: SmtpConfig = toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"{timeout}\"\n"
    ))
    .unwrap();
    Relay::new(&config, "support@provider.test").unwrap()
}

/// A relay filtering the mail before it answers its end (a before-queue
/// content filter) may take longer than `smtp.timeout`: given up on
/// then, the notification was retried, and every retry delivered it
/// again. The answer is waited for (`END_OF_MAIL_WAIT`).
#[tokio::test]
async fn a_relay_slow_to_answer_the_end_of_the_mail_is_waited_for() {
    let (port, peer) = relay_slow_at(".", Duration::from_millis(2_500)).await;
    let relay = relay_with_timeout(port, "1s");
    let outcome = relay
        .send(&notification(), END_OF_MAIL_WAIT, &AtomicBool::new(false))
        .await;
    assert!(
        matches!(&outcome, Delivery::Sent(reply) if reply.starts_with("250")),
        "{outcome:?}"
    );
    relay.close().await;
    assert_eq!(peer.await.unwrap(), 1, "one copy");
}

/// Silent past the wait, the relay may or may not have the mail: the
/// notification is retried (rather lose none), says so, and the rest of
/// the round is held back, as with any relay not answering.
#[tokio::test]
async fn a_relay_silent_after_the_end_of_the_mail_defers_it_saying_it_may_have_gone() {
    let (port, _peer) = relay_slow_at(".", Duration::from_secs(30)).await;
    let relay = relay_with_timeout(port, "1s");
    let started = std::time::Instant::now();
    let outcome = relay
        .send(&notification(), Duration::from_secs(2), &AtomicBool::new(false))
        .await;
    assert!(
        matches!(&outcome, Delivery::Transient(e) if e.contains("may have been delivered")),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(relay.fault().is_some(), "the relay is failing");
    relay.close().await;
}

/// Only the mail and the answer to its end have the long wait: a
/// relay silent before it (at MAIL FROM) is given up on at
/// `smtp.timeout`, nothing of the mail sent.
#[tokio::test]
async fn a_relay_silent_before_the_mail_is_given_up_on_at_the_smtp_timeout() {
    let (port, peer) = relay_slow_at("MAIL", Duration::from_secs(3)).await;
    let relay = relay_with_timeout(port, "1s");
    let started = std::time::Instant::now();
    let outcome = relay
        .send(&notification(), END_OF_MAIL_WAIT, &AtomicBool::new(false))
        .await;
    assert!(
        matches!(&outcome, Delivery::Transient(e) if e.contains("no answer from the relay within 1s")),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    relay.close().await;
    assert_eq!(peer.await.unwrap(), 0, "nothing of the mail was sent");
}

fn notification() -> Claimed {
    Claimed {
        id: 1,
        ticket: Some(7),
        event: "new_ticket".into(),
        contact_id: Some(3),
        to: "marie@acme.test".into(),
        subject: "[#7] Link down".into(),
        body: "Hello".into(),
        message_id: "<mailroom.7.abc@provider.test>".into(),
        in_reply_to: None,
        references_ids: String::new(),
        attempts: 1,
        queued_at: 0,
        status: "queued".into(),
        token: String::new(),
    }
}

/// Sends one notification through a scripted relay; what came of it and
/// the commands the relay saw.
async fn send_through(script: &'static [(&'static str, &'static str)], login: bool) -> (Delivery, Vec<String>) {
    let (port, peer) = scripted_relay(script).await;
    let mut config = format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n");
    if login {
        config.push_str("username = \"desk\"\npassword = \"s3cret-pw\"\n");
    }
    let config: SmtpConfig = toml::from_str(&config).unwrap();
    let relay = Relay::new(&config, "support@provider.test").unwrap();
    let outcome = relay
        .send(&notification(), END_OF_MAIL_WAIT, &AtomicBool::new(false))
        .await;
    relay.close().await;
    (outcome, peer.await.unwrap())
}

/// A refused login is the relay's answer about us, not about the
/// recipient: the notification stays queued and no contact is charged
/// a hard bounce (every recipient would be, with a wrong password).
#[tokio::test]
async fn a_refused_login_defers_the_notification_instead_of_bouncing_its_recipient() {
    let (outcome, seen) = send_through(&[("AUTH", "535 5.7.8 Authentication credentials invalid")], true).await;
    let Delivery::Transient(error) = outcome else {
        panic!("a refused login must defer, got {outcome:?}");
    };
    assert!(
        error.starts_with("AUTH with 127.0.0.1: ") && error.contains("535"),
        "{error}"
    );
    assert!(!error.contains("s3cret-pw"), "{error}");
    assert!(seen.contains(&"AUTH".to_string()), "{seen:?}");
    assert!(!seen.contains(&"MAIL".to_string()), "{seen:?}");
}

/// A refused sender is our configuration (`mail.from`), not the
/// recipient: deferred, and the recipient is never even named.
#[tokio::test]
async fn a_refused_sender_defers_without_naming_the_recipient() {
    let (outcome, seen) = send_through(
        &[("MAIL", "553 5.7.1 Sender address rejected: not owned by user")],
        false,
    )
    .await;
    let Delivery::Transient(error) = outcome else {
        panic!("a refused sender must defer, got {outcome:?}");
    };
    assert!(
        error.starts_with("sender refused: ") && error.contains("553"),
        "{error}"
    );
    assert!(!seen.contains(&"RCPT".to_string()), "{seen:?}");
}

/// The recipient's own 5xx is the one bounce.
#[tokio::test]
async fn a_refused_recipient_is_a_bounce() {
    let (outcome, seen) = send_through(&[("RCPT", "550 5.1.1 No such user")], false).await;
    assert!(
        matches!(&outcome, Delivery::Permanent { bounce: true, error } if error.contains("550")),
        "{outcome:?}"
    );
    assert!(!seen.contains(&"DATA".to_string()), "{seen:?}");
}

/// A relay that will not relay for us (5.7.x at RCPT TO: no login, a
/// sender it does not accept) defers the mail and charges nobody.
#[tokio::test]
async fn a_relay_refusing_to_relay_defers_instead_of_bouncing() {
    let (outcome, _) = send_through(&[("RCPT", "554 5.7.1 <anna@acme.test>: Relay access denied")], false).await;
    let Delivery::Transient(error) = outcome else {
        panic!("a relay refusal must defer, got {outcome:?}");
    };
    assert!(
        error.starts_with("the relay refused to take mail from us: ") && error.contains("Relay access denied"),
        "{error}"
    );
}

#[test]
fn only_a_5_7_status_is_the_relay_refusing_us() {
    for reply in [
        "permanent error (554): 5.7.1 <a@b.test>: Relay access denied",
        "permanent error (530): 5.7.0 Authentication required",
        "permanent error (530): 5.7.0 Must issue a STARTTLS command first",
        "permanent error (550): 5.7.1 Client host rejected: cannot find your hostname",
        "5.7.27 Sender address has null MX",
        // Exim sends no enhanced status by default.
        "permanent error (550): relay not permitted",
        "permanent error (530): authentication required",
    ] {
        assert!(refuses_the_sender(reply), "{reply}");
    }
    for reply in [
        "permanent error (550): 5.1.1 <a@b.test>: Recipient address rejected: User unknown",
        "permanent error (552): 5.2.2 Mailbox full",
        "permanent error (550): mailbox unavailable",
        "permanent error (550): 5.7. broken",
        "permanent error (550): see 15.7.1 of the policy",
        // A policy refusal of the recipient: a bounce, not a deferral.
        "permanent error (554): 5.7.1 <a@b.test>: Recipient address rejected: Access denied",
    ] {
        assert!(!refuses_the_sender(reply), "{reply}");
    }
}

/// A policy refusal of the recipient at RCPT TO fails the mail at once
/// and counts against the address, like any refusal of the recipient.
#[tokio::test]
async fn a_policy_refusal_of_the_recipient_is_a_bounce() {
    let (outcome, _) = send_through(
        &[(
            "RCPT",
            "554 5.7.1 <anna@acme.test>: Recipient address rejected: Access denied",
        )],
        false,
    )
    .await;
    assert!(
        matches!(&outcome, Delivery::Permanent { bounce: true, error } if error.contains("Access denied")),
        "{outcome:?}"
    );
}

/// A refusal after DATA about the recipient's mailbox (a filter that
/// looks only then) counts against the address; one about the content
/// does not (below).
#[tokio::test]
async fn a_mailbox_refusal_after_data_is_a_bounce() {
    let (outcome, _) = send_through(&[(".", "552 5.2.2 <anna@acme.test>: Mailbox full")], false).await;
    assert!(
        matches!(&outcome, Delivery::Permanent { bounce: true, error } if error.contains("Mailbox full")),
        "{outcome:?}"
    );
}

/// Found by a review: any 5.1.x or 5.2.x after DATA was a bounce, so
/// Office 365 refusing a `from` the login may not send as (5.2.0), or our
/// mail's size (5.2.3), charged every recipient until the whole directory
/// was undeliverable. Only statuses naming the mailbox count.
#[tokio::test]
async fn only_a_status_naming_the_mailbox_after_data_is_a_bounce() {
    for (reply, bounce) in [
        ("554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException", false),
        ("552 5.2.3 Message size exceeds fixed maximum message size", false),
        ("550 5.1.1 <anna@acme.test>: User unknown", true),
        ("550 5.1.10 RESOLVER.ADR.RecipientNotFound", true),
    ] {
        // The fake relay's script lives as long as its task.
        let script: &'static [(&str, &str)] = Box::leak(vec![(".", reply)].into_boxed_slice());
        let (outcome, _) = send_through(script, false).await;
        assert!(
            matches!(&outcome, Delivery::Permanent { bounce: b, .. } if *b == bounce),
            "{reply}: {outcome:?}"
        );
    }
}

/// A relay refusing the content fails that mail for good, without
/// charging the address.
#[tokio::test]
async fn refused_content_fails_the_mail_without_a_bounce() {
    let (outcome, _) = send_through(&[(".", "554 5.7.1 Message rejected as spam")], false).await;
    assert!(
        matches!(&outcome, Delivery::Permanent { bounce: false, error } if error.starts_with("message refused: ") && error.contains("554")),
        "{outcome:?}"
    );
}

/// A recipient address the relay cannot carry (no SMTPUTF8) fails that
/// mail before any command, without a bounce and on a working session.
#[tokio::test]
async fn an_address_the_relay_cannot_carry_fails_before_any_command() {
    let (port, peer) = scripted_relay(&[("EHLO", "250 relay.test")]).await;
    let config: SmtpConfig = toml::from_str(&format!("host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n")).unwrap();
    let relay = Relay::new(&config, "support@provider.test").unwrap();
    let mut row = notification();
    row.to = "zoé@acme.test".into();
    let outcome = relay.send(&row, END_OF_MAIL_WAIT, &AtomicBool::new(false)).await;
    relay.close().await;
    let seen = peer.await.unwrap();
    assert!(
        matches!(&outcome, Delivery::Permanent { bounce: false, error } if error.contains("SMTPUTF8")),
        "{outcome:?}"
    );
    assert!(!seen.contains(&"MAIL".to_string()), "{seen:?}");
}

/// And the whole transaction, accepted: the relay's reply is recorded.
#[tokio::test]
async fn an_accepted_mail_records_the_reply() {
    let (outcome, seen) = send_through(&[(".", "250 2.0.0 queued as ABC123")], false).await;
    assert!(
        matches!(&outcome, Delivery::Sent(reply) if reply.contains("ABC123")),
        "{outcome:?}"
    );
    assert_eq!(seen[..4], ["EHLO", "MAIL", "RCPT", "DATA"], "{seen:?}");
}
