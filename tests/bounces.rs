//! Delivery reports through the whole pipeline: a bounce of a notification
//! lands on that notification's ticket as an internal note, counts a hard
//! bounce against the contact, and opens, reopens and notifies nothing.

#[path = "support/pipeline.rs"]
mod support;

use mailroom::pipeline::Incoming;
use mailroom::store::views;
use mailroom::tickets::plan::Outcome;
use support::{Scratch, pipeline};

const REQUEST: &[u8] =
    b"From: Ana Horvat <ana@kovac.test>\r\nSubject: Linka nefunguje\r\nMessage-ID: <a1@kovac.test>\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nDobry den, linka nefunguje.\r\n";

/// A Postfix-style DSN returning the mail `returned_id` to `recipient`.
fn dsn(returned_id: &str, recipient: &str, status: &str) -> Vec<u8> {
    format!(
        "From: MAILER-DAEMON@mx.kovac.test (Mail Delivery System)\r\nTo: support@provider.test\r\n\
Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-{status}@mx.kovac.test>\r\n\
Date: Mon, 2 Mar 2026 10:05:00 +0100\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be delivered.\r\n\r\n\
--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.kovac.test\r\n\r\n\
Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown\r\n\r\n\
--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@provider.test\r\nTo: {recipient}\r\n\
Subject: [#1] Linka nefunguje\r\nMessage-ID: <{returned_id}>\r\n\r\n--B--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_bounced_notification_is_noted_on_its_ticket_and_counts_against_the_contact() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "[contacts]\nhard_bounce_limit = 2\n").await;
    p.process_batch(&[Incoming::new(REQUEST.to_vec(), "a")]).await.unwrap();
    let mut conn = p.store().pool().acquire().await.unwrap();
    let ack = views::outbox(&mut conn).await.unwrap().remove(0);

    let (summary, outcomes) = p
        .process_batch(&[Incoming::new(dsn(&ack.message_id, "ana@kovac.test", "5.1.1"), "b")])
        .await
        .unwrap();
    assert_eq!(outcomes, vec![Outcome::Update]);
    assert_eq!(
        (summary.new_tickets, summary.notifications, summary.contacts_created),
        (0, 0, 0)
    );
    let detail = views::ticket_detail(&mut conn, 1).await.unwrap();
    assert!(
        detail
            .events
            .iter()
            .any(|e| e.detail.contains("delivery to ana@kovac.test failed (5.1.1)")),
        "{:?}",
        detail.events
    );
    let messages = views::messages(&mut conn).await.unwrap();
    assert_eq!(messages[1].class.as_deref(), Some("bounce"));
    assert_eq!(messages[1].ticket, Some(1));
    let ana = views::contacts(&mut conn, Some("ana@kovac.test"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((ana.hard_bounces, ana.undeliverable), (1, false));

    // A second permanent failure reaches the limit of 2; a delay (4.x.x) counts nothing.
    p.process_batch(&[Incoming::new(dsn(&ack.message_id, "ana@kovac.test", "4.2.2"), "c")])
        .await
        .unwrap();
    let ana = views::contacts(&mut conn, Some("ana@kovac.test"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(ana.hard_bounces, 1);
    p.process_batch(&[Incoming::new(dsn(&ack.message_id, "ana@kovac.test", "5.2.1"), "d")])
        .await
        .unwrap();
    let ana = views::contacts(&mut conn, Some("ana@kovac.test"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((ana.hard_bounces, ana.undeliverable), (2, true));
    assert_eq!(
        views::tickets(&mut conn, None).await.unwrap().len(),
        1,
        "no ticket from a bounce"
    );
    assert_eq!(
        views::outbox(&mut conn).await.unwrap().len(),
        1,
        "nobody told about bounces"
    );
}

#[tokio::test]
async fn a_bounce_of_unknown_mail_without_a_sender_is_recorded_and_ignored() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    let raw = String::from_utf8(dsn("never-sent@elsewhere.test", "nobody@kovac.test", "5.1.1"))
        .unwrap()
        .replace("From: MAILER-DAEMON@mx.kovac.test (Mail Delivery System)", "From: <>");
    let (summary, outcomes) = p.process_batch(&[Incoming::new(raw.into_bytes(), "x")]).await.unwrap();
    assert_eq!(outcomes, vec![Outcome::Ignored]);
    assert_eq!((summary.contacts_created, summary.quarantined), (0, 0));
    let mut conn = p.store().pool().acquire().await.unwrap();
    let m = views::messages(&mut conn).await.unwrap().remove(0);
    assert_eq!(
        (m.class.as_deref(), m.reason.as_deref()),
        (Some("bounce"), Some("delivery report"))
    );
}

/// A delivery report for 70,000 recipients (a list's bounce digest) counts
/// against the one contact it names, the last of them: the contacts it
/// names are looked up in slices, where one statement of 70,000
/// parameters would be refused by PostgreSQL on every retry.
#[tokio::test]
async fn a_report_naming_seventy_thousand_recipients_counts_against_the_contact_among_them() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    p.process_batch(&[Incoming::new(REQUEST.to_vec(), "a")]).await.unwrap();
    let mut conn = p.store().pool().acquire().await.unwrap();
    let ack = views::outbox(&mut conn).await.unwrap().remove(0);

    let mut blocks = String::new();
    for n in 0..70_000 {
        blocks.push_str(&format!(
            "Final-Recipient: rfc822; gone{n}@list.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        ));
    }
    blocks.push_str("Final-Recipient: rfc822; ana@kovac.test\r\nAction: failed\r\nStatus: 5.1.1\r\n");
    let raw = String::from_utf8(dsn(&ack.message_id, "ana@kovac.test", "5.1.1"))
        .unwrap()
        .replacen(
            "Final-Recipient: rfc822; ana@kovac.test\r\nAction: failed\r\nStatus: 5.1.1\r\n",
            &blocks,
            1,
        );
    let (_, outcomes) = p.process_batch(&[Incoming::new(raw.into_bytes(), "b")]).await.unwrap();
    assert_eq!(outcomes, vec![Outcome::Update]);
    let ana = views::contacts(&mut conn, Some("ana@kovac.test"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(ana.hard_bounces, 1);
}

/// A DSN for a mail addressed to `original` that the receiving side
/// delivered on to `last` (an alias, a list), where it failed.
fn dsn_via(returned_id: &str, original: &str, last: &str, n: u32) -> Vec<u8> {
    String::from_utf8(dsn(returned_id, last, "5.1.1"))
        .unwrap()
        .replace("<bounce-5.1.1@", &format!("<bounce-via-{n}@"))
        .replace(
            &format!("Final-Recipient: rfc822; {last}"),
            &format!("Original-Recipient: rfc822; {original}\r\nFinal-Recipient: rfc822; {last}"),
        )
        .into_bytes()
}

#[tokio::test]
async fn a_team_address_is_not_charged_for_one_dead_member_but_a_rewritten_address_is() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    let request = String::from_utf8(REQUEST.to_vec())
        .unwrap()
        .replace("ana@kovac.test", "noc@kovac.test");
    p.process_batch(&[Incoming::new(request.into_bytes(), "a")])
        .await
        .unwrap();
    let mut conn = p.store().pool().acquire().await.unwrap();
    let ack = views::outbox(&mut conn).await.unwrap().remove(0);
    // A person's address rewritten (noc@ → bob@, bob unknown): charged.
    p.process_batch(&[Incoming::new(
        dsn_via(&ack.message_id, "noc@kovac.test", "bob@kovac.test", 1),
        "b",
    )])
    .await
    .unwrap();
    assert_eq!(hard_bounces(&mut conn, "noc@kovac.test").await, 1);

    // The same as a team address (a group contact) expanding to a dead
    // member: the others still get the mail, noc@ is not charged.
    sqlx::query("UPDATE contacts SET is_group = TRUE WHERE email = 'noc@kovac.test'")
        .execute(&mut *conn)
        .await
        .unwrap();
    p.process_batch(&[Incoming::new(
        dsn_via(&ack.message_id, "noc@kovac.test", "bob@kovac.test", 2),
        "c",
    )])
    .await
    .unwrap();
    assert_eq!(hard_bounces(&mut conn, "noc@kovac.test").await, 1);
}

async fn hard_bounces(conn: &mut sqlx::AnyConnection, email: &str) -> i64 {
    views::contacts(conn, Some(email)).await.unwrap().remove(0).hard_bounces
}

/// A bounce in the same batch as the mail that created its contact counts
/// too: the batch writes its new contacts before it counts bounces (the
/// count once found no row and was lost).
#[tokio::test]
async fn a_bounce_naming_a_contact_created_earlier_in_its_batch_counts() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    let (summary, outcomes) = p
        .process_batch(&[
            Incoming::new(REQUEST.to_vec(), "a"),
            Incoming::new(dsn_returning_no_id("ana@kovac.test"), "b"),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes, vec![Outcome::NewTicket, Outcome::Ignored]);
    assert_eq!(summary.contacts_created, 1);
    let mut conn = p.store().pool().acquire().await.unwrap();
    assert_eq!(
        hard_bounces(&mut conn, "ana@kovac.test").await,
        1,
        "the hard bounce was lost"
    );
}

/// A mail system's report that returns no Message-ID (only the failed
/// address): it cannot be told from ours, so it counts.
fn dsn_returning_no_id(recipient: &str) -> Vec<u8> {
    let raw = String::from_utf8(dsn("x@x", recipient, "5.1.1")).unwrap();
    raw.replace("Message-ID: <x@x>\r\n", "").into_bytes()
}

/// Backscatter: spam forged in a customer's name bounced by some mail
/// system to us. It returns a mail we never sent, so it charges nobody
/// (three such reports would make the contact undeliverable and silence
/// every notification to them); the same report returning our
/// notification does charge.
#[tokio::test]
async fn a_report_returning_a_mail_we_never_sent_charges_nobody() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "[contacts]\nhard_bounce_limit = 2\n").await;
    p.process_batch(&[Incoming::new(REQUEST.to_vec(), "a")]).await.unwrap();
    let mut conn = p.store().pool().acquire().await.unwrap();
    for n in 0..3 {
        let raw = String::from_utf8(dsn(&format!("spam{n}@botnet.test"), "ana@kovac.test", "5.7.1"))
            .unwrap()
            .replace("<bounce-5.7.1@", &format!("<bounce-spam-{n}@"));
        let (_, outcomes) = p
            .process_batch(&[Incoming::new(raw.into_bytes(), format!("s{n}"))])
            .await
            .unwrap();
        assert_eq!(outcomes, vec![Outcome::Ignored]);
    }
    let ana = views::contacts(&mut conn, Some("ana@kovac.test"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((ana.hard_bounces, ana.undeliverable), (0, false));
    let reasons: Vec<Option<String>> = views::messages(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.class.as_deref() == Some("bounce"))
        .map(|m| m.reason)
        .collect();
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons
            .iter()
            .all(|r| r.as_deref().is_some_and(|r| r.contains("we did not send"))),
        "{reasons:?}"
    );

    let ack = views::outbox(&mut conn).await.unwrap().remove(0);
    p.process_batch(&[Incoming::new(dsn(&ack.message_id, "ana@kovac.test", "5.1.1"), "ours")])
        .await
        .unwrap();
    assert_eq!(hard_bounces(&mut conn, "ana@kovac.test").await, 1);

    // Our notification under the relay's own Message-ID (Amazon SES gives
    // every mail one): our ticket header in the returned headers says whose.
    let relayed = String::from_utf8(dsn("0100018c-relay@email.amazonses.com", "ana@kovac.test", "5.1.1"))
        .unwrap()
        .replace("<bounce-5.1.1@", "<bounce-ses@")
        .replace("Subject: [#1] Linka", "X-Mailroom-Ticket: 1\r\nSubject: [#1] Linka");
    p.process_batch(&[Incoming::new(relayed.into_bytes(), "ses")])
        .await
        .unwrap();
    assert_eq!(hard_bounces(&mut conn, "ana@kovac.test").await, 2);
}
