//! Robustness on real mail: every file of the public test corpus beside the
//! project (`../shared/corpus`, ~1,450 mails from other projects' suites) is
//! parsed, classified and replayed. Nothing may panic or hang, every mail
//! must get a recorded outcome, and the raw bytes of every one are kept.
//!
//! Without the corpus the test says so and passes; with
//! `MAILROOM_REQUIRE_CORPUS=1` (set by CI) a missing corpus fails it.

#[path = "corpus/auto_replies.rs"]
mod auto_replies;
#[path = "corpus/bounces.rs"]
mod bounces;
#[path = "corpus/charsets.rs"]
mod charsets;
#[path = "corpus/common.rs"]
mod common;
#[path = "corpus/mutations.rs"]
mod mutations;
#[path = "corpus/replies.rs"]
mod replies;
#[path = "support/store.rs"]
mod scratch;
#[path = "corpus/zammad.rs"]
mod zammad;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mailroom::classify::classify;
use mailroom::config::Config;
use mailroom::ingest::replay::{mail_files, read_file};
use mailroom::message::Message;
use mailroom::notify::templates::Templates;
use mailroom::pipeline::{Incoming, Pipeline};
use mailroom::store::Store;

/// What one mail may take to parse and classify: a guard against a
/// runaway (a quadratic scan, a backtracking regex), not a speed target,
/// which lives in bench/; wide enough for a debug build sharing 2 cores
/// with the other corpus tests.
const BUDGET: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_public_corpus_replays_with_an_outcome_for_every_mail() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let mut mails: Vec<Incoming> = Vec::new();
    for file in mail_files(&[corpus]).unwrap() {
        mails.extend(read_file(&file).unwrap());
    }
    assert!(mails.len() > 1000, "only {} mails found", mails.len());

    for mail in &mails {
        let started = Instant::now();
        if let Ok(msg) = Message::parse(&mail.raw) {
            classify(&msg, "provider.test");
        }
        assert!(
            started.elapsed() < BUDGET,
            "{} took {:?} to parse and classify",
            mail.source,
            started.elapsed()
        );
    }

    let dir = scratch::Scratch::new();
    let text = dir.database_toml();
    let config = Config::parse(&text, "test").unwrap();
    let store = Store::open(&config).await.unwrap();
    let pipeline = Pipeline::new(
        store.clone(),
        Arc::new(config),
        Arc::new(Templates::load(None).unwrap()),
    )
    .unwrap();
    let mut outcomes = 0;
    for chunk in mails.chunks(200) {
        let (summary, o) = pipeline.process_batch(chunk).await.unwrap();
        assert_eq!(summary.processed, chunk.len());
        outcomes += o.len();
    }
    assert_eq!(outcomes, mails.len());

    let (rows, with_raw): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM message_content WHERE raw IS NOT NULL)",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(rows as usize, mails.len(), "every mail has a message row");
    assert_eq!(with_raw, rows, "every mail's raw bytes are kept");
    let lost: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM quarantine q LEFT JOIN message_content c ON c.message_row = q.message_row WHERE c.raw IS NULL",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(lost, 0, "every quarantined mail keeps its raw bytes");
    // A mail the store refused (PostgreSQL rejecting a NUL in a text, say)
    // would be quarantined as a processing error instead of handled.
    let refused: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT reason, detail FROM quarantine WHERE reason = 'processing_error'")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(refused.is_empty(), "mails refused by the store: {refused:?}");
    eprintln!("corpus: {} mails replayed", mails.len());
}

/// mimekit's mbox files split into the messages its own suite finds in
/// them: where a `-summary.txt` lists them (one `From ` line each), that
/// many; `simple.mbox` holds three separated by bare `From - ` lines with
/// no blank line before them, `unmunged.mbox` two behind a byte order
/// mark, with an unescaped "From Russia with love" in a body.
#[test]
fn mimekit_mbox_files_split_into_their_messages() {
    let Some(corpus) = common::corpus() else { return };
    let dir = corpus.join("mimekit/mbox");
    let count = |name: &str| {
        read_file(&dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .len()
    };
    for (mbox, summary) in [
        ("content-length.mbox.txt", "content-length-summary.txt"),
        ("issue1189.mbox.txt", "issue1189-summary.txt"),
    ] {
        let listed = std::fs::read_to_string(dir.join(summary))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("From "))
            .count();
        assert!(listed > 1, "{summary}");
        assert_eq!(count(mbox), listed, "{mbox}");
    }
    assert_eq!(count("simple.mbox.txt"), 3);
    assert_eq!(count("unmunged.mbox.txt"), 2);
}
