//! One batch in one transaction, everything loaded under the write lock:
//! the way every batch is processed when no carried snapshot can be
//! trusted, and the fallback when the store refuses a batch (then mail by
//! mail, so only the mail at fault is quarantined).

use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use super::carry::{BatchInput, Carry, Kept};
use super::{Incoming, Pipeline, Prepared, Settings, Summary, TOO_LARGE, UNREADABLE, panic_text, processing_failure};
use crate::directory::IgnoreRule;
use crate::error::{Error, Result};
use crate::store;
use crate::store::apply::{Batch, Receipt};
use crate::store::changes::{Changes, Writes};
use crate::store::directory;
use crate::store::snapshot::{KeyHolder, Snapshot};
use crate::store::sql::Placeholders;
use crate::tickets::plan::{Outcome, Policy, decide};

impl Pipeline {
    /// Processes a batch with everything loaded under the write lock; if
    /// the store refuses its writes, mail by mail. With `carry`, the batch
    /// leaves its snapshot there for the next one once decided, and lets
    /// it be decided while this one is written.
    pub(super) async fn process_classic(
        &self,
        batch: &Prepared,
        carry: Option<OwnedMutexGuard<Carry>>,
    ) -> Result<(Summary, Vec<Outcome>)> {
        use futures_util::FutureExt;
        let mails = batch.mails();
        let hands_on = carry.is_some();
        // A panic is a bug, but one mail must not stop every mailbox: the
        // daemon would restart, fetch the same mail and panic again, for
        // ever. Caught, it fails the batch like a refused write (its
        // transaction rolls back as it is dropped), so the mails are tried
        // one by one and only the mail that panics is quarantined.
        let attempt = std::panic::AssertUnwindSafe(self.try_batch(batch, None, None, carry))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(Error::Daemon(format!("processing panicked: {}", panic_text(&*panic)))));
        if attempt.is_err() && hands_on {
            // The next batch may have been decided on what this one left,
            // and this one did not commit as decided.
            self.line.reset();
        }
        match attempt {
            Ok(done) => Ok(done),
            // Not the mails' fault: the whole batch is tried again later
            // (the daemon backs off and fetches it again; a replay can be
            // run again), instead of each mail ending in quarantine.
            Err(e) if e.is_transient() || mails.is_empty() => Err(e),
            Err(e) if mails.len() > 1 => {
                tracing::warn!(error = %e, mails = mails.len(), "batch refused by the store; retrying mail by mail");
                let mut total = Summary::default();
                let mut outcomes = Vec::with_capacity(mails.len());
                for mail in mails {
                    let single = self.prepare(vec![mail.clone()]);
                    let (s, o) = Box::pin(self.process_classic(&single, None)).await?;
                    total.add(&s);
                    outcomes.extend(o);
                }
                Ok((total, outcomes))
            }
            Err(e) => {
                let mail = &mails[0];
                let kept = match self.quarantine_alone(mail, &e, false).await {
                    // Its own headers may be what the store refuses (a value
                    // over an index's limit): then it is kept under the hash
                    // of its bytes alone, so one mail never stops the rest.
                    Err(again) if !again.is_transient() => {
                        tracing::warn!(source = %mail.source, error = %again, "quarantine with the mail's headers refused; keeping it by its bytes");
                        self.quarantine_alone(mail, &e, true).await
                    }
                    done => done,
                };
                if kept.is_ok() {
                    tracing::warn!(source = %mail.source, error = %e, "mail could not be stored; quarantined");
                }
                kept
            }
        }
    }

    /// One transaction: load the batch's snapshot, decide and apply every
    /// mail in memory, write everything, commit; returns what was done.
    /// With `carry`, the snapshot as the batch left it goes there once the
    /// batch is decided, for the next batch to be decided on while this
    /// one is written (the caller voids it if this one fails).
    /// `reprocess` is the message row of a quarantined mail run again, and
    /// `release` its quarantine entry, marked released in the same
    /// transaction.
    pub(super) async fn try_batch(
        &self,
        batch: &Prepared,
        reprocess: Option<i64>,
        release: Option<i64>,
        carry: Option<OwnedMutexGuard<Carry>>,
    ) -> Result<(Summary, Vec<Outcome>)> {
        let started = std::time::Instant::now();
        let settings = self.settings();
        let mut tx = self.store.begin_write().await?;
        let wall = self.store.now();
        let rules = ignore_rules(&settings, &mut tx).await?;
        let input = BatchInput::of(batch, self.clock, wall);
        let snapshot = Snapshot::load(&mut tx, &input.keys, &input.ok, &settings.tag, input.since).await?;
        let mut work = Batch {
            snapshot,
            changes: Changes::start(&mut tx).await?,
        };
        let load_time = started.elapsed();
        let (summary, outcomes) = self.decide_mails(&settings, &rules, batch, &mut work, wall, reprocess)?;
        let decide_time = started.elapsed() - load_time;
        let Batch { snapshot, changes } = work;
        let ids = changes.next_ids();
        let carries_over = changes.carries_over();
        let writes = changes.into_writes(Placeholders::of_backend(self.store.backend()));
        if let Some(mut carry) = carry {
            carry.kept = carries_over.then(|| Kept {
                snapshot,
                ids,
                rules,
                settings,
                since: input.since,
                epoch: self.line.epoch(),
                at: std::time::Instant::now(),
            });
        }
        #[cfg(test)]
        if batch.parsed.len() > 1 {
            for (msg, _) in batch.parsed.iter().flatten() {
                super::tests::panic_if_asked(msg, super::tests::PANICS_WRITING_A_BATCH);
            }
        }
        let written = self
            .write_and_commit(tx, writes, release, summary.notifications)
            .await?;
        written.log(batch, load_time, decide_time, "batch committed");
        Ok((summary, outcomes))
    }

    /// Runs every mail of `batch` through the core against `work`'s
    /// snapshot, recording what to write in its changes. No I/O: the same
    /// whether the snapshot was loaded under the write lock or carried.
    pub(super) fn decide_mails(
        &self,
        settings: &Settings,
        rules: &[IgnoreRule],
        batch: &Prepared,
        work: &mut Batch,
        wall: i64,
        reprocess: Option<i64>,
    ) -> Result<(Summary, Vec<Outcome>)> {
        let renderer = settings.renderer();
        let policy = Policy {
            config: &settings.config,
            tag: &settings.tag,
            ignore_rules: rules,
            own_addresses: &settings.own_addresses,
        };
        let mut summary = Summary::default();
        let mut outcomes = Vec::with_capacity(batch.mails.len());
        for (mail, parsed) in batch.mails.iter().zip(&batch.parsed) {
            let outcome = match parsed {
                Err(failure) => {
                    let receipt = Receipt {
                        raw: &mail.raw,
                        source: &mail.source,
                        received_at: wall,
                        processed_at: wall,
                    };
                    if reprocess.is_some() {
                        // Still unparseable: leave it in quarantine as it was.
                        return Err(Error::Usage(format!(
                            "the mail still cannot be parsed: {}",
                            failure.reason
                        )));
                    }
                    let reason = if mail.oversized.is_some() {
                        TOO_LARGE
                    } else if mail.unreadable.is_some() {
                        UNREADABLE
                    } else {
                        failure.kind.as_str()
                    };
                    work.record_failure(failure, &receipt, reason)
                }
                Ok((msg, class)) => {
                    let class = *class;
                    // Another sender's mail holds its Message-ID: this is
                    // another mail, kept under its bytes' hash.
                    let rekeyed;
                    let msg = match work.snapshot.reused_key(msg) {
                        Some(key) => {
                            tracing::info!(source = %mail.source, message_id = ?msg.message_id, from = %msg.from.address, "a mail from another sender holds this Message-ID; kept under its bytes' hash");
                            rekeyed = crate::message::Message { key, ..msg.clone() };
                            &rekeyed
                        }
                        None => msg,
                    };
                    let received_at = self.clock.received_at(msg, wall);
                    let facts = work
                        .snapshot
                        .facts(msg, &settings.tag, reprocess.is_some(), received_at);
                    let plan = decide(msg, class, &facts, &policy, received_at);
                    #[cfg(test)]
                    super::tests::panic_if_asked(msg, super::tests::PANICS);
                    let receipt = Receipt {
                        raw: &mail.raw,
                        source: &mail.source,
                        received_at,
                        processed_at: wall,
                    };
                    match work.apply(msg, &plan, &receipt, &renderer, &settings.tag, reprocess) {
                        Ok(applied) => {
                            summary.contacts_created += usize::from(applied.contact_created);
                            summary.notifications += applied.notifications;
                            tracing::debug!(source = %mail.source, key = %msg.key, outcome = plan.outcome.as_str(), ticket = ?applied.ticket, "processed");
                            plan.outcome
                        }
                        Err(e) if reprocess.is_some() => {
                            // Recorded as a failure, it would meet its own
                            // key as a duplicate, write no quarantine row,
                            // and the entry would be released all the same:
                            // the mail out of the work queue. Left as it was.
                            return Err(Error::Usage(format!("the mail still cannot be processed: {e}")));
                        }
                        Err(e) => {
                            tracing::warn!(source = %mail.source, error = %e, "mail could not be processed; quarantined");
                            work.record_failure(&processing_failure(mail, &e), &receipt, "processing_error")
                        }
                    }
                }
            };
            summary.count(outcome);
            outcomes.push(outcome);
        }
        Ok((summary, outcomes))
    }

    /// Writes a decided batch (its files, then its rows), marks `release`
    /// released and commits.
    pub(super) async fn write_and_commit(
        &self,
        mut tx: store::Tx,
        mut writes: Writes,
        release: Option<i64>,
        notifications: usize,
    ) -> Result<Written> {
        let started = std::time::Instant::now();
        // A row must never name a file that is not there, so the files are
        // on disk, synced, before the commit; they are written on another
        // thread while the rows go in, since neither needs the other.
        let files = std::mem::take(&mut writes.files);
        let attachments = self.store.attachments().clone();
        let written = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            attachments
                .put_all(files.iter().map(|(sha256, data)| (sha256.as_str(), data.as_slice())))
                .map(|()| (files.len(), started.elapsed()))
        });
        let rows = writes.execute(&mut tx).await;
        let rows_time = started.elapsed();
        let (files, files_time) = written
            .await
            .map_err(|e| Error::io(self.store.attachments().root(), std::io::Error::other(e)))??;
        rows?;
        if let Some(id) = release {
            // In the batch's own transaction: two operators reprocessing the
            // same mail at once, or a crash between two commits, must not
            // open a second ticket for it.
            if !store::views::release_quarantined(&mut tx, id, self.store.now()).await? {
                return Err(Error::Usage(format!("quarantined mail {id} was already reprocessed")));
            }
        }
        let mark = self.store.writer_mark(&mut tx).await?;
        let write_time = started.elapsed();
        let generation = self.store.commit_counted(tx).await?;
        self.line.committed(generation, mark);
        if notifications > 0 {
            self.outbox_ready.notify_one();
        }
        Ok(Written {
            rows: rows_time,
            files,
            files_time,
            write: write_time,
            commit: started.elapsed() - write_time,
        })
    }

    /// Last resort for a mail whose writes the store refused: keep its raw
    /// bytes in quarantine, in a transaction of its own. `bare`: under the
    /// hash of its bytes, without what its headers say.
    async fn quarantine_alone(&self, mail: &Incoming, error: &Error, bare: bool) -> Result<(Summary, Vec<Outcome>)> {
        let mut tx = self.store.begin_write().await?;
        let wall = self.store.now();
        let mut failure = processing_failure(mail, error);
        if bare {
            failure.key = crate::message::hash_key(&failure.raw_sha256);
            failure.message_id = None;
            failure.from = None;
            failure.subject = None;
        }
        let mut snapshot = Snapshot::default();
        if crate::store::snapshot::key_is_known(&mut tx, &failure.key).await? {
            snapshot.known_keys.insert(failure.key.clone(), KeyHolder::default());
        }
        let mut batch = Batch {
            snapshot,
            changes: Changes::start(&mut tx).await?,
        };
        let receipt = Receipt {
            raw: &mail.raw,
            source: &mail.source,
            received_at: wall,
            processed_at: wall,
        };
        let outcome = batch.record_failure(&failure, &receipt, "processing_error");
        batch.changes.write(&mut tx).await?;
        self.store.commit(tx).await?;
        let mut summary = Summary::default();
        summary.count(outcome);
        Ok((summary, vec![outcome]))
    }
}

/// How long a batch's writing took, for the debug log.
pub(super) struct Written {
    pub rows: Duration,
    pub files: usize,
    pub files_time: Duration,
    pub write: Duration,
    pub commit: Duration,
}

impl Written {
    pub fn log(&self, batch: &Prepared, load: Duration, decide: Duration, what: &'static str) {
        tracing::debug!(
            mails = batch.mails.len(),
            parse = ?batch.parse_time,
            load = ?load,
            decide = ?decide,
            write = ?self.write,
            rows = ?self.rows,
            files = self.files,
            files_time = ?self.files_time,
            commit = ?self.commit,
            "{what}"
        );
    }
}

/// The config's ignore rules and the store's; a stored rule that cannot
/// match anything is skipped and named once.
pub(super) async fn ignore_rules(settings: &Settings, conn: &mut sqlx::AnyConnection) -> Result<Vec<IgnoreRule>> {
    let mut rules = settings.config_rules.clone();
    for (pattern, rule) in directory::ignore_rules(conn).await? {
        match rule {
            Ok(rule) => rules.push(rule),
            Err(e) if first_sighting(&pattern) => tracing::warn!(
                pattern = %pattern,
                error = %e,
                "stored ignore rule skipped (it can match nothing); remove it with `mailroom ignore remove`"
            ),
            Err(_) => {}
        }
    }
    Ok(rules)
}

/// Whether this process has not warned of `pattern` yet: a bad stored
/// rule is named once, not with every batch.
fn first_sighting(pattern: &str) -> bool {
    static WARNED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if warned.iter().any(|p| p == pattern) {
        return false;
    }
    warned.push(pattern.to_string());
    true
}
