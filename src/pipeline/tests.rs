//! A panic in one mail's processing, contained.

use super::*;

/// Processing a mail with this subject panics (a stand-in for a bug
/// no known input triggers).
pub(super) const PANICS: &str = "this subject makes processing panic";
/// Classifying a mail with this subject panics.
pub(super) const PANICS_CLASSIFYING: &str = "this subject makes classifying panic";
/// A batch of several mails, one with this subject, panics once decided
/// under the write lock, before it writes (alone, the mail goes through).
pub(super) const PANICS_WRITING_A_BATCH: &str = "this subject makes writing a batch panic";

pub(super) fn panic_if_asked(msg: &Message, subject: &str) {
    if msg.subject == subject {
        panic!("a bug met {}", msg.subject);
    }
}

/// The test's store: SQLite in `dir`, or in CI's PostgreSQL pass
/// (`MAILROOM_TEST_STORE=postgres`) a fresh database on
/// `MAILROOM_TEST_POSTGRES_URL`, as the integration tests get from
/// tests/support/store.rs (which a unit test cannot reach): the fallback
/// after a panic rolls back and retries, and the engines roll back apart.
pub(super) struct TestStore {
    pub pipeline: Pipeline,
    pub config: Config,
    /// PostgreSQL: the server's URL and the database to drop.
    drop: Option<(String, String)>,
}

impl TestStore {
    pub async fn new(dir: &tempfile::TempDir, name: &str) -> TestStore {
        let server = std::env::var("MAILROOM_TEST_POSTGRES_URL").ok();
        let on_postgres = std::env::var("MAILROOM_TEST_STORE").as_deref() == Ok("postgres");
        // As tests/support/store.rs: a PostgreSQL pass without a server must
        // not quietly test SQLite instead.
        assert!(
            !on_postgres || server.is_some(),
            "MAILROOM_TEST_STORE=postgres needs MAILROOM_TEST_POSTGRES_URL"
        );
        let (url, drop) = match server.filter(|_| on_postgres) {
            Some(server) => {
                let db = format!("mailroom_unit_{name}_{}", std::process::id());
                let admin = |sql: String| {
                    let server = server.clone();
                    async move {
                        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
                            .await
                            .unwrap();
                        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await
                            .unwrap();
                    }
                };
                admin(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
                admin(format!("CREATE DATABASE {db}")).await;
                let mut url = url::Url::parse(&server).unwrap();
                url.set_path(&db);
                (url.to_string(), Some((server, db)))
            }
            None => return TestStore::sqlite(dir).await,
        };
        TestStore::open(&url, drop).await
    }

    /// A SQLite store in `dir` whatever the pass, for what only SQLite does.
    pub async fn sqlite(dir: &tempfile::TempDir) -> TestStore {
        TestStore::open(&format!("sqlite:{}/m.db", dir.path().display()), None).await
    }

    async fn open(url: &str, drop: Option<(String, String)>) -> TestStore {
        let text = format!(
            "[database]\nurl = \"{url}\"\n[mail]\nfrom = \"support@provider.test\"\ndomain = \"provider.test\"\n"
        );
        let config = Config::parse(&text, "test").unwrap();
        let store = Store::open(&config).await.unwrap();
        let pipeline = Pipeline::new(
            store,
            Arc::new(config.clone()),
            Arc::new(Templates::load(None).unwrap()),
        )
        .unwrap();
        TestStore { pipeline, config, drop }
    }

    /// Closes the store and drops its PostgreSQL database.
    pub async fn end(self) {
        self.pipeline.store().close().await;
        if let Some((server, db)) = self.drop {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
                .await
                .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
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
    // Kept with the sender's Date:, so the same mail fetched again is
    // told from another reusing its Message-ID by the date, not by when it
    // arrived (see store::snapshot::KeyHolder).
    let sent: Option<i64> = sqlx::query_scalar("SELECT sent_date FROM messages WHERE outcome = 'quarantined'")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(sent, Some(1_796_464_800), "Sat, 05 Dec 2026 10:00:00 +0000");
}

pub(super) fn mail(n: u32, subject: &str) -> Incoming {
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
    let store = TestStore::new(&dir, "panic").await;
    let pipeline = &store.pipeline;
    let batch = [mail(1, "Line 1 down"), mail(2, PANICS), mail(3, "Line 3 down")];
    let (summary, outcomes) = pipeline.process_batch(&batch).await.unwrap();
    assert_eq!((summary.new_tickets, summary.quarantined), (2, 1), "{outcomes:?}");
    assert_eq!(outcomes[1], Outcome::Quarantined);
    assert_processing_error(pipeline, "processing panicked: a bug met").await;
    // The next batch goes through as usual.
    let (summary, _) = pipeline.process_batch(&[mail(4, "Line 4 down")]).await.unwrap();
    assert_eq!(summary.new_tickets, 1);
    store.end().await;
}

/// A panic while classifying (before the transaction) quarantines that
/// mail too, with the panic's message; the rest of the batch goes on.
#[tokio::test]
async fn a_panic_in_classifying_quarantines_its_mail() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(&dir, "classify").await;
    let pipeline = &store.pipeline;
    let batch = [mail(1, "Line 1 down"), mail(2, PANICS_CLASSIFYING)];
    let (summary, outcomes) = pipeline.process_batch(&batch).await.unwrap();
    assert_eq!((summary.new_tickets, summary.quarantined), (1, 1), "{outcomes:?}");
    assert_processing_error(pipeline, "classifying panicked: a bug met").await;
    store.end().await;
}
