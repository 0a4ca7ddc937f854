//! Pipeline properties that span batches: exactly-once across batches and
//! for mails that never parsed, and idempotent replays.

#[path = "support/pipeline.rs"]
mod support;

use mailroom::pipeline::Incoming;
use mailroom::store::views;
use mailroom::tickets::plan::Outcome;
use support::{Scratch, pipeline};

fn mail(raw: &[u8], source: &str) -> Incoming {
    Incoming::new(raw.to_vec(), source)
}

const GOOD: &[u8] = b"From: Ana Horvat <ana@kovac.test>\r\nTo: support@provider.test\r\nSubject: Linka nefunguje\r\n\
Message-ID: <a1@kovac.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nDobry den, linka nefunguje.\r\n";

#[tokio::test]
async fn an_unparseable_mail_seen_in_an_earlier_batch_is_a_duplicate() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    let junk = b"\x00\x01 not a mail at all\n".as_slice();
    let (_, first) = p.process_batch(&[mail(junk, "a"), mail(GOOD, "b")]).await.unwrap();
    assert_eq!(first, vec![Outcome::Quarantined, Outcome::NewTicket]);
    // A re-fetch of the same bytes (an IMAP chunk replayed after a crash).
    let (_, second) = p.process_batch(&[mail(junk, "a"), mail(GOOD, "b")]).await.unwrap();
    assert_eq!(second, vec![Outcome::Duplicate, Outcome::Duplicate]);
    let mut conn = p.store().pool().acquire().await.unwrap();
    assert_eq!(views::quarantine(&mut conn, None, true).await.unwrap().len(), 1);
    assert_eq!(views::tickets(&mut conn, None).await.unwrap().len(), 1);
    // Recognised as a duplicate by the batch itself, not by the fallback
    // that quarantines mails whose writes the store refused.
    let messages = views::messages(&mut conn).await.unwrap();
    assert!(
        messages
            .iter()
            .all(|m| !m.reason.as_deref().unwrap_or("").contains("processing failed")),
        "{messages:?}"
    );
}

#[tokio::test]
async fn the_same_message_id_twice_in_one_batch_is_processed_once() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    let (summary, outcomes) = p.process_batch(&[mail(GOOD, "a"), mail(GOOD, "b")]).await.unwrap();
    assert_eq!(outcomes, vec![Outcome::NewTicket, Outcome::Duplicate]);
    assert_eq!(summary.notifications, 1, "one acknowledgement only");
    let mut conn = p.store().pool().acquire().await.unwrap();
    assert_eq!(views::outbox(&mut conn).await.unwrap().len(), 1);
    assert_eq!(
        views::messages(&mut conn).await.unwrap().len(),
        2,
        "the duplicate delivery is recorded"
    );
}

#[tokio::test]
async fn a_reply_threads_onto_a_ticket_opened_earlier_in_the_same_batch() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    let reply = b"From: Ana Horvat <ana@kovac.test>\r\nSubject: Re: Linka nefunguje\r\nMessage-ID: <a2@kovac.test>\r\n\
In-Reply-To: <a1@kovac.test>\r\nDate: Mon, 2 Mar 2026 11:00:00 +0100\r\n\r\nStale nefunguje.\r\n";
    let (_, outcomes) = p.process_batch(&[mail(GOOD, "a"), mail(reply, "b")]).await.unwrap();
    assert_eq!(outcomes, vec![Outcome::NewTicket, Outcome::Update]);
    let mut conn = p.store().pool().acquire().await.unwrap();
    let tickets = views::tickets(&mut conn, None).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].messages, 2);
    let detail = views::ticket_detail(&mut conn, 1).await.unwrap();
    assert!(
        detail.messages.iter().any(|m| m.text.contains("Stale nefunguje")),
        "the reply's text is kept"
    );
}

/// Mail `n` from one sender, `minutes` after 10:00.
fn flood(n: usize, minutes: usize) -> Incoming {
    let raw = format!(
        "From: Script <cron@kovac.test>\r\nSubject: Alert {n}\r\nMessage-ID: <alert-{n}@kovac.test>\r\n\
Date: Mon, 2 Mar 2026 {:02}:{:02}:00 +0000\r\n\r\nDisk full.\r\n",
        10 + minutes / 60,
        minutes % 60
    );
    Incoming::new(raw.into_bytes(), format!("flood/{n}"))
}

#[tokio::test]
async fn a_sender_opening_more_than_20_tickets_an_hour_is_quarantined_until_the_hour_passes() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "")
        .await
        .with_clock(mailroom::pipeline::Clock::DateHeader);
    // 15 in one batch, 7 more in the next: all within 10:00-10:21.
    let first: Vec<Incoming> = (0..15).map(|n| flood(n, n)).collect();
    let second: Vec<Incoming> = (15..22).map(|n| flood(n, n)).collect();
    let (a, _) = p.process_batch(&first).await.unwrap();
    let (b, outcomes) = p.process_batch(&second).await.unwrap();
    assert_eq!(a.new_tickets + b.new_tickets, 20);
    assert_eq!(b.quarantined, 2);
    assert_eq!(outcomes[5..], [Outcome::Quarantined, Outcome::Quarantined]);
    let mut conn = p.store().pool().acquire().await.unwrap();
    let held = views::quarantine(&mut conn, None, false).await.unwrap();
    assert!(held.iter().all(|q| q.reason == "rate_limited"), "{held:?}");
    // An hour after the first of them, the sender may open tickets again.
    let (later, _) = p.process_batch(&[flood(22, 61)]).await.unwrap();
    assert_eq!(later.new_tickets, 1);
}

/// A mail naming tens of thousands of Message-IDs (a looping list, a
/// crafted mail) threads like any other, and neither it nor a batch
/// longer than one statement's list stops the mailbox: PostgreSQL refuses
/// a statement of more than 65,535 parameters, which a 40,000-id
/// References once reached on every retry.
#[tokio::test]
async fn a_reply_naming_forty_thousand_message_ids_threads_on_its_root() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    p.process_batch(&[mail(GOOD, "a")]).await.unwrap();
    let noise: Vec<String> = (0..40_000).map(|i| format!("<noise-{i}@list.test>")).collect();
    let reply = format!(
        "From: Ana Horvat <ana@kovac.test>\r\nSubject: Re: Linka nefunguje\r\nMessage-ID: <a2@kovac.test>\r\n\
References: <a1@kovac.test> {}\r\nDate: Mon, 2 Mar 2026 11:00:00 +0100\r\n\r\nStale nefunguje.\r\n",
        noise.join("\r\n ")
    );
    // 1,499 other senders in the same batch: every list of the batch's
    // snapshot is longer than one statement takes.
    let mut batch = vec![Incoming::new(reply.into_bytes(), "reply")];
    for n in 0..1_499 {
        let raw = format!(
            "From: <user{n}@kovac.test>\r\nSubject: Question {n}\r\nMessage-ID: <q{n}@kovac.test>\r\n\
Date: Mon, 2 Mar 2026 11:00:00 +0100\r\n\r\nHello.\r\n"
        );
        batch.push(Incoming::new(raw.into_bytes(), format!("q/{n}")));
    }
    let (summary, outcomes) = p.process_batch(&batch).await.unwrap();
    assert_eq!(outcomes[0], Outcome::Update);
    assert_eq!((summary.new_tickets, summary.contacts_created), (1_499, 1_499));

    let mut conn = p.store().pool().acquire().await.unwrap();
    let detail = views::ticket_detail(&mut conn, 1).await.unwrap();
    assert!(detail.messages.iter().any(|m| m.text.contains("Stale nefunguje")));
    // The notifications about the reply carry the root and a few recent
    // ids, not 40,000.
    let refs: Vec<String> = sqlx::query_scalar("SELECT references_ids FROM outbox WHERE ticket = 1")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let longest = refs.iter().map(|r| r.split_whitespace().count()).max().unwrap();
    assert!(longest <= mailroom::message::MAX_THREAD_IDS + 2, "{longest} ids");

    // The same batch again is a no-op, all 1,500 known by key.
    let (again, _) = p.process_batch(&batch).await.unwrap();
    assert_eq!((again.new_tickets, again.notifications), (0, 0));
}

/// Reply `n` on the thread of <loop-0@kovac.test>, from `from`, `n` × 20 s
/// after 10:00, without any auto-reply marker.
fn loop_reply(n: usize, from: &str) -> Incoming {
    let raw = format!(
        "From: {from}\r\nSubject: Re: Linka nefunguje\r\nMessage-ID: <loop-{n}@kovac.test>\r\n\
In-Reply-To: <loop-{}@kovac.test>\r\nReferences: <loop-0@kovac.test>\r\n\
Date: Mon, 2 Mar 2026 10:{:02}:{:02} +0000\r\n\r\nThank you for your message. I will answer soon.\r\n",
        n - 1,
        n * 20 / 60,
        n * 20 % 60
    );
    Incoming::new(raw.into_bytes(), format!("loop/{n}"))
}

#[tokio::test]
async fn two_responders_answering_each_other_through_a_ticket_stop_notifying() {
    // Neither marks its answers as automatic: each reply notifies the other,
    // whose responder answers, and so on. Past intake.max_replies_per_ticket
    // (5) mails from one sender on one ticket in 10 minutes, the mails are
    // still attached but notify nobody; a later mail notifies again.
    let dir = Scratch::new();
    let p = pipeline(&dir, "")
        .await
        .with_clock(mailroom::pipeline::Clock::DateHeader);
    let open = "From: Ana <ana@kovac.test>\r\nSubject: Linka nefunguje\r\nMessage-ID: <loop-0@kovac.test>\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nDobry den, linka nefunguje.\r\n";
    p.process_batch(&[Incoming::new(open.as_bytes().to_vec(), "loop/0")])
        .await
        .unwrap();
    let replies: Vec<Incoming> = (1..=16)
        .map(|n| {
            loop_reply(
                n,
                if n % 2 == 1 {
                    "Ivo <ivo@kovac.test>"
                } else {
                    "Ana <ana@kovac.test>"
                },
            )
        })
        .collect();
    // Across batches and within one.
    let mut notified = 0;
    for chunk in replies.chunks(3) {
        let (s, outcomes) = p.process_batch(chunk).await.unwrap();
        assert!(outcomes.iter().all(|o| *o == Outcome::Update), "{outcomes:?}");
        notified += s.notifications;
    }
    // Each of Ivo's 8 replies notifies Ana, the requester (whose own
    // responder would answer it): the first 5 do. Ana's notify nobody here
    // (no subscribers; she is their author).
    assert_eq!(notified, 5);
    let mut conn = p.store().pool().acquire().await.unwrap();
    let detail = views::ticket_detail(&mut conn, 1).await.unwrap();
    assert_eq!(
        detail.messages.iter().filter(|m| m.direction == "in").count(),
        17,
        "every mail kept"
    );
    assert!(
        detail
            .events
            .iter()
            .any(|e| e.detail.contains("attached without notifying")),
        "{:?}",
        detail.events
    );
    // Twenty minutes on, a reply notifies again.
    let later = "From: Ivo <ivo@kovac.test>\r\nSubject: Re: Linka nefunguje\r\nMessage-ID: <loop-late@kovac.test>\r\n\
In-Reply-To: <loop-16@kovac.test>\r\nDate: Mon, 2 Mar 2026 10:30:00 +0000\r\n\r\nIt works again.\r\n";
    let (s, _) = p
        .process_batch(&[Incoming::new(later.as_bytes().to_vec(), "late")])
        .await
        .unwrap();
    assert_eq!(s.notifications, 1);
}

#[tokio::test]
async fn one_person_sending_many_mails_in_a_row_is_not_muted() {
    // Screenshots one at a time, a forgotten attachment: nobody answers in
    // between, so it is no loop and every mail notifies.
    let dir = Scratch::new();
    let p = pipeline(&dir, "")
        .await
        .with_clock(mailroom::pipeline::Clock::DateHeader);
    let open = "From: Ana <ana@kovac.test>\r\nSubject: Linka nefunguje\r\nMessage-ID: <loop-0@kovac.test>\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nDobry den, linka nefunguje.\r\n";
    p.process_batch(&[Incoming::new(open.as_bytes().to_vec(), "loop/0")])
        .await
        .unwrap();
    let replies: Vec<Incoming> = (1..=8).map(|n| loop_reply(n, "Ivo <ivo@kovac.test>")).collect();
    let (s, _) = p.process_batch(&replies).await.unwrap();
    assert_eq!(s.notifications, 8, "each of Ivo's mails notifies Ana");
}

/// A reply to the first mail of `<a1@kovac.test>`'s thread, from `from`.
fn late_reply(n: usize, from: &str) -> Incoming {
    let raw = format!(
        "From: {from}\r\nTo: support@provider.test\r\nSubject: Re: Linka nefunguje\r\n\
Message-ID: <late{n}@kovac.test>\r\nIn-Reply-To: <a1@kovac.test>\r\nReferences: <a1@kovac.test>\r\n\r\nStale nefunguje.\r\n"
    );
    Incoming::new(raw.into_bytes(), format!("late{n}"))
}

#[tokio::test]
async fn later_late_replies_in_later_batches_join_the_follow_up_ticket() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    p.process_batch(&[mail(GOOD, "a")]).await.unwrap();
    // Closed a month ago: past the 14 days in which a reply reopens it.
    let month_ago = mailroom::store::now() - 30 * 86_400;
    p.act(1, mailroom::tickets::actions::Action::Close, month_ago)
        .await
        .unwrap();
    let (_, first) = p.process_batch(&[late_reply(1, "ana@kovac.test")]).await.unwrap();
    assert_eq!(
        first,
        vec![Outcome::NewTicket],
        "the first late reply opens the follow-up"
    );
    // Each in a batch of its own, so the follow-up is found in the store,
    // not in the batch's memory.
    let (_, second) = p
        .process_batch(&[late_reply(2, "Marko <marko@kovac.test>")])
        .await
        .unwrap();
    let (_, third) = p.process_batch(&[late_reply(3, "ana@kovac.test")]).await.unwrap();
    assert_eq!((second, third), (vec![Outcome::Update], vec![Outcome::Update]));
    let mut conn = p.store().pool().acquire().await.unwrap();
    let tickets = views::tickets(&mut conn, None).await.unwrap();
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    let messages = views::messages(&mut conn).await.unwrap();
    let on_two = messages.iter().filter(|m| m.ticket == Some(2)).count();
    assert_eq!(on_two, 3, "{messages:?}");
}

#[tokio::test]
async fn a_second_close_in_the_same_second_after_a_reopening_reply_is_notified_too() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    p.process_batch(&[mail(GOOD, "a")]).await.unwrap();
    let close = mailroom::tickets::actions::Action::Close;
    let at = mailroom::store::now() + 100;
    p.act(1, close, at).await.unwrap();
    let (_, reopened) = p.process_batch(&[late_reply(1, "ana@kovac.test")]).await.unwrap();
    assert_eq!(reopened, vec![Outcome::Update]);
    assert_eq!(p.act(1, close, at).await.unwrap(), 1, "one notice planned");
    let mut conn = p.store().pool().acquire().await.unwrap();
    let closes = views::outbox(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.event == "ticket_closed")
        .count();
    assert_eq!(
        closes, 2,
        "the second close's notice was dropped as a repeat of the first"
    );
}

/// A rule an older release stored that no longer parses (it never matched)
/// is skipped with a warning: mail goes on being processed, not quarantined.
#[tokio::test]
async fn a_stored_ignore_rule_that_no_longer_parses_does_not_stop_intake() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    let mut conn = p.store().pool().acquire().await.unwrap();
    sqlx::query("INSERT INTO ignore_rules (pattern) VALUES ('Spam <spam@x.test>')")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let (_, outcomes) = p.process_batch(&[mail(GOOD, "a")]).await.unwrap();
    assert_eq!(outcomes, vec![Outcome::NewTicket]);
}

/// Ticket 1 closed a month ago; its follow-up 2, opened by a late reply,
/// closed 20 days ago.
async fn closed_with_a_closed_follow_up(p: &mailroom::pipeline::Pipeline) {
    p.process_batch(&[mail(GOOD, "a")]).await.unwrap();
    let now = mailroom::store::now();
    let close = mailroom::tickets::actions::Action::Close;
    p.act(1, close, now - 30 * 86_400).await.unwrap();
    let (_, o) = p.process_batch(&[late_reply(1, "ana@kovac.test")]).await.unwrap();
    assert_eq!(o, vec![Outcome::NewTicket]);
    p.act(2, close, now - 20 * 86_400).await.unwrap();
}

/// Late replies to the old thread after the follow-up closed long ago too:
/// the first opens ticket 3 (following 2), the next joins 3 instead of
/// opening a ticket of its own, in one batch or in two (the chain of
/// follow-ups is followed in memory and when loaded from the store).
#[tokio::test]
async fn late_replies_follow_a_chain_of_closed_follow_ups_to_the_newest() {
    for one_batch in [true, false] {
        let dir = Scratch::new();
        let p = pipeline(&dir, "").await;
        closed_with_a_closed_follow_up(&p).await;
        let replies = [
            late_reply(2, "ana@kovac.test"),
            late_reply(3, "Marko <marko@kovac.test>"),
        ];
        let outcomes = if one_batch {
            p.process_batch(&replies).await.unwrap().1
        } else {
            let mut all = p.process_batch(&replies[..1]).await.unwrap().1;
            all.extend(p.process_batch(&replies[1..]).await.unwrap().1);
            all
        };
        assert_eq!(
            outcomes,
            vec![Outcome::NewTicket, Outcome::Update],
            "one batch: {one_batch}"
        );
        let mut conn = p.store().pool().acquire().await.unwrap();
        let tickets = views::tickets(&mut conn, None).await.unwrap();
        assert_eq!(tickets.len(), 3, "{tickets:?}");
        let on_three = views::messages(&mut conn)
            .await
            .unwrap()
            .iter()
            .filter(|m| m.ticket == Some(3))
            .count();
        assert_eq!(on_three, 2, "one batch: {one_batch}");
    }
}

/// Found by a review: a Message-ID (or sender address) longer than
/// PostgreSQL indexes take stopped its intake at that mail (the batch, the
/// mail alone and its quarantine all refused), while SQLite took it. Such
/// an id is no id (the mail is keyed by its bytes), such an address no
/// address, on both engines.
#[tokio::test]
async fn an_overlong_message_id_or_sender_stops_nothing() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    // Random-looking, so PostgreSQL cannot compress it under its limit.
    let mut seed: u64 = 42;
    let long: String = (0..350)
        .map(|_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            format!("{:08x}", seed >> 32)
        })
        .collect();
    let with_id = |id: &str, from: &str, subject: &str| {
        format!(
            "From: {from}\r\nTo: support@provider.test\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
Date: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nhello\r\n"
        )
        .into_bytes()
    };
    let batch = [
        mail(&with_id("ok1@x.test", "ok@acme.test", "before"), "1"),
        mail(&with_id(&format!("{long}@x.test"), "lm@acme.test", "long id"), "2"),
        mail(&with_id("ok3@x.test", &format!("{long}@acme.test"), "long sender"), "3"),
        mail(&with_id("ok4@x.test", "ok4@acme.test", "after"), "4"),
    ];
    let (_, outcomes) = p.process_batch(&batch).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            Outcome::NewTicket,
            Outcome::NewTicket,
            Outcome::Quarantined,
            Outcome::NewTicket
        ]
    );
    // Fetched again (a chunk after a crash): the long-id mail is known by
    // its bytes.
    let (_, again) = p.process_batch(&batch[1..2]).await.unwrap();
    assert_eq!(again, vec![Outcome::Duplicate]);
    let mut conn = p.store().pool().acquire().await.unwrap();
    let held = views::quarantine(&mut conn, None, true).await.unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].reason, "no_sender");
}

/// Found by a review: with a display name in `smtp.from`, every mail's
/// sign-off read `<Équipe Support <support@provider.test>>`.
#[tokio::test]
async fn the_sign_off_names_the_bare_support_address() {
    let dir = Scratch::new();
    let smtp = "[smtp]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\nfrom = \"Équipe Support <support@provider.test>\"\n";
    let p = pipeline(&dir, smtp).await;
    p.process_batch(&[mail(GOOD, "a")]).await.unwrap();
    let mut conn = p.store().pool().acquire().await.unwrap();
    let rows = views::outbox(&mut conn).await.unwrap();
    let body = &rows[0].body;
    assert!(body.contains("<support@provider.test>"), "{body}");
    assert!(!body.contains("<Équipe"), "{body}");
}
