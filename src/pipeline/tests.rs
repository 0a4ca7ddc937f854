//! A panic in one mail's processing, contained.

use super::*;

/// Processing a mail with this subject panics (a stand-in for a bug
/// no known input triggers).
pub(super) const PANICS: &str = "this subject makes processing panic";
/// Classifying a mail with this subject panics.
pub(super) const PANICS_CLASSIFYING: &str = "this subject makes classifying panic";

pub(super) fn panic_if_asked(msg: &Message, subject: &str) {
    if msg.subject == subject {
        panic!("a bug met {}", msg.subject);
    }
}

async fn pipeline(dir: &tempfile::TempDir) -> Pipeline {
    let text = format!(
        "[database]\nurl = \"sqlite:{}/m.db\"\n[mail]\nfrom = \"support@provider.test\"\ndomain = \"provider.test\"\n",
        dir.path().display()
    );
    let config = Config::parse(&text, "test").unwrap();
    let store = Store::open(&config).await.unwrap();
    Pipeline::new(store, Arc::new(config), Arc::new(Templates::load(None).unwrap())).unwrap()
}

/// The one quarantined mail is a processing error whose detail says `what`.
async fn assert_processing_error(pipeline: &Pipeline, what: &str) {
    let mut conn = pipeline.store().pool().acquire().await.unwrap();
    let (reason, detail): (String, Option<String>) = sqlx::query_as("SELECT reason, detail FROM quarantine")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(reason, "processing_error");
    assert!(detail.unwrap_or_default().contains(what));
}

fn mail(n: u32, subject: &str) -> Incoming {
    Incoming::new(
        format!(
            "From: Customer {n} <c{n}@acme.test>\r\nTo: support@provider.test\r\nSubject: {subject}\r\n\
             Message-ID: <m{n}@acme.test>\r\nDate: Sat, 05 Dec 2026 10:00:00 +0000\r\n\r\nHello\r\n"
        )
        .into_bytes(),
        format!("test/{n}"),
    )
}

/// A mail whose processing panics is quarantined as a processing error
/// with its bytes; the others of its batch become tickets, and the
/// pipeline goes on.
#[tokio::test]
async fn a_panic_quarantines_its_mail_and_spares_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(&dir).await;
    let batch = [mail(1, "Line 1 down"), mail(2, PANICS), mail(3, "Line 3 down")];
    let (summary, outcomes) = pipeline.process_batch(&batch).await.unwrap();
    assert_eq!((summary.new_tickets, summary.quarantined), (2, 1), "{outcomes:?}");
    assert_eq!(outcomes[1], Outcome::Quarantined);
    assert_processing_error(&pipeline, "processing panicked: a bug met").await;
    // The next batch goes through as usual.
    let (summary, _) = pipeline.process_batch(&[mail(4, "Line 4 down")]).await.unwrap();
    assert_eq!(summary.new_tickets, 1);
}

/// A panic while classifying (before the transaction) quarantines that
/// mail too, with the panic's message; the rest of the batch goes on.
#[tokio::test]
async fn a_panic_in_classifying_quarantines_its_mail() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(&dir).await;
    let batch = [mail(1, "Line 1 down"), mail(2, PANICS_CLASSIFYING)];
    let (summary, outcomes) = pipeline.process_batch(&batch).await.unwrap();
    assert_eq!((summary.new_tickets, summary.quarantined), (1, 1), "{outcomes:?}");
    assert_processing_error(&pipeline, "classifying panicked: a bug met").await;
}
