//! The outbox as a work queue, against a real SQLite store: claims and
//! leases, retry backoff, giving up, the loop guard, the hard-bounce limit
//! and `outbox retry`. No SMTP here (tests/delivery.rs sends through a
//! real Postfix); results are recorded as a relay would report them.

#[path = "support/pipeline.rs"]
mod support;

use mailroom::pipeline::{Incoming, Pipeline};
use mailroom::store::outbox::{ClaimRules, Delivery, RecordRules};
use mailroom::store::{Store, views};
use support::{Scratch, pipeline};

/// A new ticket from `from`: queues its acknowledgement.
async fn ticket_from(p: &Pipeline, from: &str, n: u32) {
    let raw = format!(
        "From: {from}\r\nSubject: Problem {n}\r\nMessage-ID: <m{n}.{from}>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nIt broke.\r\n"
    );
    let (s, _) = p.process_batch(&[Incoming::new(raw.into_bytes(), "t")]).await.unwrap();
    assert_eq!(s.new_tickets, 1);
}

fn claim(now: i64) -> ClaimRules {
    ClaimRules {
        now,
        due_by: now,
        limit: 100,
        lease_secs: 120,
        per_ticket_limit: 10,
    }
}

fn record(now: i64) -> RecordRules {
    RecordRules {
        now,
        max_age_secs: 3 * 86_400,
        retry_min_secs: 60,
        retry_max_secs: 3_600,
        hard_bounce_limit: 3,
    }
}

async fn status_of(store: &Store, id: i64) -> (String, i64, i64, Option<String>) {
    sqlx::query_as("SELECT status, attempts, next_attempt_at, last_error FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_claimed_row_is_leased_and_transient_failures_back_off() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    ticket_from(&p, "ana@kovac.test", 1).await;
    let store = p.store();
    // Queued "now" by the wall clock: claim in the future so it is due.
    let t0 = mailroom::store::now() + 1;
    let (rows, suppressed) = store.claim_outbox(claim(t0)).await.unwrap();
    assert_eq!((rows.len(), suppressed), (1, 0));
    let id = rows[0].id;
    assert_eq!(rows[0].attempts, 1);
    assert_eq!(status_of(store, id).await.0, "sending");
    // Leased: nobody else gets it meanwhile.
    assert!(store.claim_outbox(claim(t0 + 60)).await.unwrap().0.is_empty());

    let done = store
        .record_deliveries(
            &[(rows[0].clone(), Delivery::Transient("421 try later".into()))],
            record(t0),
        )
        .await
        .unwrap();
    assert_eq!(done.deferred, 1);
    let (status, attempts, next, error) = status_of(store, id).await;
    assert_eq!((status.as_str(), attempts, next - t0), ("queued", 1, 60));
    assert_eq!(error.as_deref(), Some("421 try later"));
    assert!(
        store.claim_outbox(claim(t0 + 59)).await.unwrap().0.is_empty(),
        "not due yet"
    );
    // Due again, but for a later run than the one (`outbox send`, started
    // at t0) that deferred it.
    let same_run = ClaimRules {
        due_by: t0,
        ..claim(t0 + 60)
    };
    assert!(
        store.claim_outbox(same_run).await.unwrap().0.is_empty(),
        "not twice in one run"
    );

    // Handed back without a try (not started within the lease): due now,
    // the claim's attempt taken back, no backoff.
    let (rows, _) = store.claim_outbox(claim(t0 + 60)).await.unwrap();
    assert_eq!(rows[0].attempts, 2);
    let done = store
        .record_deliveries(
            &[(
                rows[0].clone(),
                Delivery::Unsent("not sent within the claim's lease".into()),
            )],
            record(t0 + 60),
        )
        .await
        .unwrap();
    assert_eq!(done.deferred, 1);
    let (status, attempts, next, _) = status_of(store, id).await;
    assert_eq!((status.as_str(), attempts, next), ("queued", 1, t0 + 60));

    let (rows, _) = store.claim_outbox(claim(t0 + 60)).await.unwrap();
    assert_eq!(rows[0].attempts, 2);
    store
        .record_deliveries(
            &[(rows[0].clone(), Delivery::Transient("timeout".into()))],
            record(t0 + 60),
        )
        .await
        .unwrap();
    assert_eq!(status_of(store, id).await.2 - (t0 + 60), 120, "the delay doubles");

    let (rows, _) = store.claim_outbox(claim(t0 + 180)).await.unwrap();
    let done = store
        .record_deliveries(
            &[(rows[0].clone(), Delivery::Sent("250 2.0.0 Ok: queued as ABC".into()))],
            record(t0 + 180),
        )
        .await
        .unwrap();
    assert_eq!(done.sent, 1);
    let mut conn = store.pool().acquire().await.unwrap();
    let row = &views::outbox(&mut conn).await.unwrap()[0];
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 3));
    let reply: String = sqlx::query_scalar("SELECT server_reply FROM outbox WHERE id = $1")
        .bind(id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(reply, "250 2.0.0 Ok: queued as ABC");
}

#[tokio::test]
async fn a_dead_claimers_rows_are_taken_over_and_its_late_answers_ignored() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    ticket_from(&p, "ana@kovac.test", 1).await;
    let store = p.store();
    let t0 = mailroom::store::now() + 1;
    let (first, _) = store.claim_outbox(claim(t0)).await.unwrap();
    // The claimer "dies": after the lease the row is due again; not a
    // second before its end (the clock's whole second is rounded up).
    let (early, _) = store.claim_outbox(claim(t0 + 120)).await.unwrap();
    assert!(early.is_empty(), "taken over before the lease ran out");
    let (second, _) = store.claim_outbox(claim(t0 + 121)).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(first[0].token, second[0].token);
    let late = store
        .record_deliveries(
            &[(first[0].clone(), Delivery::Sent("250 late".into()))],
            record(t0 + 122),
        )
        .await
        .unwrap();
    assert_eq!((late.sent, late.stale), (0, 1));
    let done = store
        .record_deliveries(
            &[(second[0].clone(), Delivery::Sent("250 ok".into()))],
            record(t0 + 122),
        )
        .await
        .unwrap();
    assert_eq!(done.sent, 1);
}

#[tokio::test]
async fn transient_failures_past_max_age_give_up() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    ticket_from(&p, "ana@kovac.test", 1).await;
    let store = p.store();
    let late = mailroom::store::now() + 3 * 86_400 + 5;
    let (rows, _) = store.claim_outbox(claim(late)).await.unwrap();
    store
        .record_deliveries(
            &[(rows[0].clone(), Delivery::Transient("connection refused".into()))],
            record(late),
        )
        .await
        .unwrap();
    let (status, _, _, error) = status_of(store, rows[0].id).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("gave up after 1 attempts: connection refused"));

    assert_eq!(store.outbox_backlog().await.unwrap(), (0, 1), "waiting, failed");
    // `outbox retry` queues it again with a fresh allowance, its backoff
    // started over (not an hour after its first try).
    store.retry_outbox(rows[0].id, late).await.unwrap();
    let (status, attempts, _, _) = status_of(store, rows[0].id).await;
    assert_eq!((status.as_str(), attempts), ("queued", 0));
    assert_eq!(store.outbox_backlog().await.unwrap(), (1, 0));
    let err = store.retry_outbox(rows[0].id, late).await.unwrap_err().to_string();
    assert!(err.contains("is queued"), "{err}");
    let err = store.retry_outbox(999, late).await.unwrap_err().to_string();
    assert!(err.contains("outbox row 999 not found"), "{err}");
}

/// Found by a review: three notifications refused in one round by one
/// full mailbox counted three bounces and marked the contact undeliverable
/// for good, and bounces years apart added up whatever went through in
/// between. One bounce per contact a round; a delivery clears the count.
#[tokio::test]
async fn bounces_in_one_round_count_once_and_a_delivery_clears_the_count() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    let store = p.store();
    let count = |store: mailroom::store::Store| async move {
        let (n, undeliverable): (i64, i64) = sqlx::query_as(
            "SELECT hard_bounces, CASE WHEN undeliverable THEN 1 ELSE 0 END FROM contacts WHERE email = 'full@kovac.test'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        (n, undeliverable == 1)
    };
    for n in 1..=3 {
        ticket_from(&p, "full@kovac.test", n).await;
    }
    let t = mailroom::store::now() + 1;
    let (rows, _) = store.claim_outbox(claim(t)).await.unwrap();
    assert_eq!(rows.len(), 3, "one acknowledgement a ticket");
    let bounce = Delivery::Permanent {
        error: "552 5.2.2 <full@kovac.test>: Mailbox full".into(),
        bounce: true,
    };
    let results: Vec<_> = rows.iter().map(|r| (r.clone(), bounce.clone())).collect();
    let done = store.record_deliveries(&results, record(t)).await.unwrap();
    assert_eq!((done.failed, done.undeliverable), (3, 0));
    assert_eq!(count(store.clone()).await, (1, false), "one incident, one bounce");

    ticket_from(&p, "full@kovac.test", 4).await;
    let (rows, _) = store.claim_outbox(claim(t + 1)).await.unwrap();
    assert_eq!(rows.len(), 1);
    store
        .record_deliveries(&[(rows[0].clone(), Delivery::Sent("250 ok".into()))], record(t + 1))
        .await
        .unwrap();
    assert_eq!(count(store.clone()).await, (0, false), "the mailbox works again");
}

#[tokio::test]
async fn permanent_failures_mark_the_contact_undeliverable_at_the_limit() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    let store = p.store();
    for n in 1..=4 {
        ticket_from(&p, "gone@kovac.test", n).await;
        let t = mailroom::store::now() + 1;
        let (rows, _) = store.claim_outbox(claim(t)).await.unwrap();
        if n == 4 {
            assert!(rows.is_empty(), "an undeliverable contact gets no acknowledgement");
            break;
        }
        assert_eq!(rows.len(), 1, "mail {n}");
        let bounce = Delivery::Permanent {
            error: "550 5.1.1 <gone@kovac.test>: Recipient address rejected".into(),
            bounce: true,
        };
        let done = store
            .record_deliveries(&[(rows[0].clone(), bounce)], record(t))
            .await
            .unwrap();
        assert_eq!(done.failed, 1);
        assert_eq!(done.undeliverable, usize::from(n == 3), "mail {n}");
        let (status, attempts, _, _) = status_of(store, rows[0].id).await;
        assert_eq!((status.as_str(), attempts), ("failed", 1), "never retried");
    }
    let mut conn = store.pool().acquire().await.unwrap();
    let contact = &views::contacts(&mut conn, Some("gone@kovac.test")).await.unwrap()[0];
    assert!(contact.undeliverable);
    // Retrying one of its rows would only have it suppressed again: refused,
    // naming what clears the mark.
    let failed: i64 = sqlx::query_scalar("SELECT MIN(id) FROM outbox WHERE status = 'failed'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let err = store
        .retry_outbox(failed, mailroom::store::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("contacts deliverable gone@kovac.test"), "{err}");
    assert_eq!(status_of(store, failed).await.0, "failed");
    // Nothing more was claimed: the failed rows stay failed.
    assert!(
        store
            .claim_outbox(claim(mailroom::store::now() + 10_000))
            .await
            .unwrap()
            .0
            .is_empty()
    );
}

#[tokio::test]
async fn the_loop_guard_suppresses_past_the_per_ticket_limit() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    ticket_from(&p, "ana@kovac.test", 1).await;
    let store = p.store();
    let t0 = mailroom::store::now() + 1;
    // Eleven more notifications to Ana about ticket 1 (as a reply storm would queue).
    for i in 0..11 {
        sqlx::query(
            "INSERT INTO outbox (ticket, event, to_addr, language, subject, body, message_id, next_attempt_at, created_at, queued_at)
             VALUES (1, 'ticket_updated', 'Ana@kovac.test', 'en', 's', 'b', $1, $2, $2, $2)",
        )
        .bind(format!("storm{i}@provider.test"))
        .bind(t0 - 1)
        .execute(store.pool())
        .await
        .unwrap();
    }
    let (rows, suppressed) = store.claim_outbox(claim(t0)).await.unwrap();
    assert_eq!((rows.len(), suppressed), (10, 2));
    let answers: Vec<_> = rows.into_iter().map(|r| (r, Delivery::Sent("250".into()))).collect();
    store.record_deliveries(&answers, record(t0)).await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let all = views::outbox(&mut conn).await.unwrap();
    let suppressed: Vec<_> = all.iter().filter(|r| r.status == "suppressed").collect();
    assert_eq!(suppressed.len(), 2);
    assert!(suppressed[0].last_error.as_deref().unwrap().contains("loop guard"));
    // Within the window, even a new row for the same pair is suppressed...
    sqlx::query(
        "INSERT INTO outbox (ticket, event, to_addr, language, subject, body, message_id, next_attempt_at, created_at, queued_at)
         VALUES (1, 'ticket_updated', 'ana@kovac.test', 'en', 's', 'b', 'later@provider.test', $1, $1, $1)",
    )
    .bind(t0 + 60)
    .execute(store.pool())
    .await
    .unwrap();
    let (rows, newly_suppressed) = store.claim_outbox(claim(t0 + 60)).await.unwrap();
    assert_eq!((rows.len(), newly_suppressed), (0, 1));
    // ... and once the window has passed, a retried one goes out.
    let id = suppressed[0].id;
    store.retry_outbox(id, t0 + 700).await.unwrap();
    let (rows, suppressed) = store.claim_outbox(claim(t0 + 700)).await.unwrap();
    assert_eq!((rows.len(), suppressed), (1, 0));
}

#[tokio::test]
async fn claims_are_timed_by_the_database_clock_in_unix_seconds() {
    // The courier claims and records on the database's clock, shared by
    // every instance; it must be the same unit and epoch as the rows'
    // own times (written by the pipeline from the wall clock).
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    let before = mailroom::store::now();
    let db = p.store().clock().await.unwrap();
    let after = mailroom::store::now();
    assert!(
        (before - 2..=after + 2).contains(&db),
        "database clock {db} outside [{before}, {after}] ± 2 s"
    );
}

#[tokio::test]
async fn queued_mail_to_a_contact_since_ignored_or_undeliverable_is_withheld() {
    let dir = Scratch::new();
    let p = pipeline(&dir, "").await;
    ticket_from(&p, "ana@kovac.test", 1).await;
    ticket_from(&p, "ivo@kovac.test", 2).await;
    ticket_from(&p, "eva@kovac.test", 3).await;
    let store = p.store();
    let mut conn = store.writer().acquire().await.unwrap();
    mailroom::store::directory::set_contact_ignore(&mut conn, "ana@kovac.test", true)
        .await
        .unwrap();
    sqlx::query("UPDATE contacts SET undeliverable = TRUE WHERE email = 'ivo@kovac.test'")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let t0 = mailroom::store::now() + 1;
    let (rows, suppressed) = store.claim_outbox(claim(t0)).await.unwrap();
    let to: Vec<&str> = rows.iter().map(|r| r.to.as_str()).collect();
    assert_eq!(to, ["eva@kovac.test"], "only the contact still reachable");
    assert_eq!(suppressed, 2);
    let withheld: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT to_addr, status, last_error FROM outbox WHERE to_addr <> 'eva@kovac.test' ORDER BY to_addr",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(withheld.len(), 2);
    for ((to, status, error), why) in withheld.iter().zip(["ignored", "undeliverable"]) {
        assert_eq!(status, "suppressed", "{to}");
        assert!(error.as_deref().is_some_and(|e| e.contains(why)), "{to}: {error:?}");
    }
}

#[tokio::test]
async fn history_replayed_by_its_date_headers_queues_its_notifications_now() {
    // `replay --date-from-header`: the mail of 2 March counts as received
    // then, but its notifications are queued now; they must not be past
    // outbox.max_age before their first attempt.
    let dir = Scratch::new();
    let p = pipeline(&dir, "")
        .await
        .with_clock(mailroom::pipeline::Clock::DateHeader);
    ticket_from(&p, "ana@kovac.test", 1).await;
    let store = p.store();
    let before = mailroom::store::now();
    let (created, queued, next): (i64, i64, i64) =
        sqlx::query_as("SELECT created_at, queued_at, next_attempt_at FROM outbox")
            .fetch_one(store.pool())
            .await
            .unwrap();
    let march_2 = 1_772_442_000; // Mon, 2 Mar 2026 10:00:00 +0100
    assert_eq!(created, march_2, "created when the mail says");
    assert!(
        queued >= before - 5 && next >= before - 5,
        "queued now: {queued}, {next}"
    );
    let t0 = before + 1;
    let (rows, _) = store.claim_outbox(claim(t0)).await.unwrap();
    let done = store
        .record_deliveries(
            &[(rows[0].clone(), Delivery::Transient("421 try later".into()))],
            record(t0),
        )
        .await
        .unwrap();
    assert_eq!(done.deferred, 1, "retried, not given up: {done:?}");
}
