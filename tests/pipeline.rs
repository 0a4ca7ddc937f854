//! Pipeline properties that span batches: exactly-once across batches and
//! for mails that never parsed, and idempotent replays.

use std::sync::Arc;

use mailroom::config::Config;
use mailroom::notify::templates::Templates;
use mailroom::pipeline::{Incoming, Pipeline};
use mailroom::store::{Store, views};
use mailroom::tickets::plan::Outcome;

async fn pipeline(dir: &std::path::Path) -> Pipeline {
    let text = format!(
        "[database]\nurl = \"sqlite:{}\"\n[mail]\nfrom = \"support@provider.test\"\ndomain = \"provider.test\"\n",
        dir.join("m.db").display()
    );
    let config = Config::parse(&text, "test").unwrap();
    let store = Store::open(&config).await.unwrap();
    Pipeline::new(store, Arc::new(config), Arc::new(Templates::load(None).unwrap())).unwrap()
}

fn mail(raw: &[u8], source: &str) -> Incoming {
    Incoming::new(raw.to_vec(), source)
}

const GOOD: &[u8] = b"From: Ana Horvat <ana@kovac.test>\r\nTo: support@provider.test\r\nSubject: Linka nefunguje\r\n\
Message-ID: <a1@kovac.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nDobry den, linka nefunguje.\r\n";

#[tokio::test]
async fn an_unparseable_mail_seen_in_an_earlier_batch_is_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path()).await;
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
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path()).await;
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
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path()).await;
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
