//! The one path every mail takes: parse → classify → gather facts → decide
//! → apply, one transaction per batch.
//!
//! `replay` and the IMAP daemon both hand batches of raw mails here, so a
//! fixture replayed in a test exercises exactly the code that runs in
//! production. A mail that fails anywhere is rolled back to its own
//! savepoint and quarantined with its raw bytes; the rest of the batch goes
//! on.
//!
//! The per-mail work happens in memory against a snapshot of the store
//! loaded once per batch; the batch's writes go out in a few multi-row
//! statements at the end.

use std::sync::Arc;

use crate::classify::{Class, classify};
use crate::config::Config;
use crate::directory::IgnoreRule;
use crate::error::{Error, Result};
use crate::message::{FailureKind, Message, ParseFailure};
use crate::notify::outbox::Renderer;
use crate::notify::templates::Templates;
use crate::store::apply::{Batch, Receipt};
use crate::store::changes::Changes;
use crate::store::snapshot::Snapshot;
use crate::store::{self, Store};
use crate::tickets::plan::{Outcome, Policy, decide};
use crate::tickets::tag::TagFormat;

mod carry;
mod incoming;
mod summary;

use carry::{BatchInput, Carry, Kept, Line, Written, ignore_rules};
pub use carry::{Chain, Turn};
pub use incoming::Incoming;
pub use summary::Summary;

/// A mail parsed and classified, or why it could not be parsed.
type Parsed = std::result::Result<(Message, Class), Box<ParseFailure>>;

/// A batch parsed and classified ahead of its transaction.
///
/// This is the half of the work that needs no store: `replay` and the IMAP
/// daemon prepare the next batch on another core while the current one is
/// being written and committed, so the two halves overlap.
pub struct Prepared {
    mails: Vec<Incoming>,
    parsed: Vec<Parsed>,
    parse_time: std::time::Duration,
}

impl Prepared {
    /// The raw mails, in batch order.
    pub fn mails(&self) -> &[Incoming] {
        &self.mails
    }
}

/// Which time a mail is processed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// Now: the daemon and ordinary replays.
    #[default]
    Wall,
    /// The mail's own `Date:` (now when absent): replaying history, and
    /// fixtures whose reopen windows must not depend on today's date.
    DateHeader,
}

impl Clock {
    /// When `msg`, handled at `wall`, counts as received.
    pub fn received_at(self, msg: &Message, wall: i64) -> i64 {
        match self {
            Clock::DateHeader => msg.date.unwrap_or(wall),
            Clock::Wall => wall,
        }
    }
}

/// The processing pipeline with its loaded configuration.
#[derive(Clone)]
pub struct Pipeline {
    store: Store,
    /// Swapped whole on SIGHUP; a batch works with the set it started with.
    settings: Arc<std::sync::RwLock<Arc<Settings>>>,
    clock: Clock,
    /// Woken after a commit that queued notifications, so delivery starts
    /// at once instead of at its next poll.
    outbox_ready: Arc<tokio::sync::Notify>,
    /// Held by the batch deciding now (see `carry`).
    carry: Arc<tokio::sync::Mutex<Carry>>,
    /// Held by the batch writing now: batches write in the order they
    /// took their turns.
    write_turn: Arc<tokio::sync::Mutex<()>>,
    line: Arc<Line>,
}

/// What the pipeline reads from the config, checked and compiled once.
struct Settings {
    config: Arc<Config>,
    templates: Arc<Templates>,
    tag: TagFormat,
    config_rules: Vec<IgnoreRule>,
    /// The support address without its display name, for templates.
    support_email: String,
}

impl Settings {
    /// Fails on an invalid tag or ignore rule.
    fn new(config: Arc<Config>, templates: Arc<Templates>) -> Result<Settings> {
        let tag = TagFormat::new(&config.tickets.tag).map_err(|e| Error::Config(format!("tickets.tag: {e}")))?;
        let config_rules = config
            .intake
            .ignore
            .iter()
            .map(|p| IgnoreRule::parse(p).map_err(Error::Config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Settings {
            support_email: config.support_email(),
            config,
            templates,
            tag,
            config_rules,
        })
    }

    /// The renderer for outbox rows.
    fn renderer(&self) -> Renderer<'_> {
        Renderer {
            templates: &self.templates,
            // Templates write it between `<>`: `Support <s@x>` there read
            // `<Support <s@x>>` in every mail's sign-off.
            support_address: &self.support_email,
            domain: &self.config.mail.domain,
            default_language: &self.config.notify.default_language,
        }
    }
}

impl Pipeline {
    /// Builds a pipeline; fails on an invalid tag or ignore rule.
    pub fn new(store: Store, config: Arc<Config>, templates: Arc<Templates>) -> Result<Pipeline> {
        Ok(Pipeline {
            store,
            settings: Arc::new(std::sync::RwLock::new(Arc::new(Settings::new(config, templates)?))),
            clock: Clock::Wall,
            outbox_ready: Arc::new(tokio::sync::Notify::new()),
            carry: Default::default(),
            write_turn: Default::default(),
            line: Default::default(),
        })
    }

    /// Uses another clock (see [`Clock`]).
    pub fn with_clock(mut self, clock: Clock) -> Pipeline {
        self.clock = clock;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.settings().config.clone()
    }

    /// Notified whenever a commit queued notifications.
    pub fn outbox_ready(&self) -> Arc<tokio::sync::Notify> {
        self.outbox_ready.clone()
    }

    /// Puts a new config and templates in force (SIGHUP): batches under way
    /// finish with the old ones. An invalid tag or ignore rule keeps the
    /// old ones and is returned.
    pub fn reload(&self, config: Config, templates: Templates) -> Result<()> {
        let settings = Settings::new(Arc::new(config), Arc::new(templates))?;
        let mut slot = self.settings.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Arc::new(settings);
        Ok(())
    }

    /// The settings in force now.
    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Parses and classifies a batch: pure CPU work, no store. Run it on a
    /// blocking thread to overlap it with another batch's transaction.
    pub fn prepare(&self, mails: Vec<Incoming>) -> Prepared {
        let started = std::time::Instant::now();
        let settings = self.settings();
        let parsed = mails
            .iter()
            .map(|mail| {
                let msg = parse_incoming(mail)?;
                // Parsing guards itself; a panic in classifying (a bug)
                // quarantines this mail instead of failing the whole chunk
                // at every fetch.
                let class = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    #[cfg(test)]
                    tests::panic_if_asked(&msg, tests::PANICS_CLASSIFYING);
                    classify(&msg, &settings.config.mail.domain)
                }))
                .map_err(|panic| {
                    let error = Error::Daemon(format!("classifying panicked: {}", panic_text(&*panic)));
                    Box::new(processing_failure(mail, &error))
                })?;
                Ok((msg, class))
            })
            .collect();
        Prepared {
            mails,
            parsed,
            parse_time: started.elapsed(),
        }
    }

    /// Prepares and processes a batch (see [`Pipeline::process`]).
    pub async fn process_batch(&self, mails: &[Incoming]) -> Result<(Summary, Vec<Outcome>)> {
        self.process(&self.prepare(mails.to_vec())).await
    }

    /// Processes a prepared batch in one transaction; returns what it did
    /// in total and per mail. Only a failure of the store itself is an
    /// error: if the batch's writes are refused, each mail is retried on
    /// its own so one bad mail cannot hold back the others.
    pub async fn process(&self, batch: &Prepared) -> Result<(Summary, Vec<Outcome>)> {
        let turn = self.turn(&Chain::default()).await;
        self.process_in_turn(turn, batch).await
    }

    /// Takes the next place in line for a batch of `chain`. Batches are
    /// decided and committed in the order they take their turns; the next
    /// turn is given out as soon as this batch is decided, so a caller that
    /// takes it and spawns [`Pipeline::process_in_turn`] has the next batch
    /// decided while this one is written (see `carry`).
    pub async fn turn(&self, chain: &Chain) -> Turn {
        Turn(self.carry.clone().lock_owned().await, chain.clone())
    }

    /// Processes a batch in the place `turn` holds (see [`Pipeline::process`]).
    pub async fn process_in_turn(&self, turn: Turn, batch: &Prepared) -> Result<(Summary, Vec<Outcome>)> {
        let Turn(mut carry, chain) = turn;
        let early = self.decide_carried(&mut carry, batch).await;
        let _writing = self.write_turn.clone().lock_owned().await;
        // Declared after the write turn, so dropped before it is given on:
        // unless the batch commits, the ones behind it in its chain must
        // not commit before it, even if it panics out of here.
        let mut failing = carry::Failing::new(&chain, &self.line);
        let done = self.in_write_turn(carry, early, &chain, batch).await;
        if done.is_ok() {
            failing.disarm();
        }
        done
    }

    /// The rest of [`Pipeline::process_in_turn`], in the batch's write turn.
    async fn in_write_turn(
        &self,
        carry: tokio::sync::OwnedMutexGuard<Carry>,
        early: Option<carry::Decided>,
        chain: &Chain,
        batch: &Prepared,
    ) -> Result<(Summary, Vec<Outcome>)> {
        // A batch decided on the carry lets the next one decide now; one to
        // be decided under the write lock keeps it, to leave its snapshot.
        let mut carry = match early {
            Some(_) => {
                drop(carry);
                None
            }
            None => Some(carry),
        };
        if chain.broken() {
            return Err(Error::Deferred("a batch ahead of it failed".into()));
        }
        if let Some(decided) = early {
            use futures_util::FutureExt;
            match std::panic::AssertUnwindSafe(self.write_carried(decided, batch))
                .catch_unwind()
                .await
            {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(carry::Unwritten::Stale(why))) => {
                    tracing::debug!(
                        why,
                        "carried snapshot out of date; deciding the batch again under the write lock"
                    )
                }
                Ok(Err(carry::Unwritten::Failed(e))) if e.is_transient() => return Err(e),
                // Refused or panicked: decided again below, where a refused
                // batch is tried mail by mail and a panic quarantines its mail.
                Ok(Err(carry::Unwritten::Failed(e))) => {
                    tracing::debug!(error = %e, "batch decided on the carried snapshot refused; deciding it again")
                }
                Err(_) => tracing::debug!("batch decided on the carried snapshot panicked; deciding it again"),
            }
            // What the batches after it were decided on is wrong now.
            self.line.reset();
        }
        if let Some(c) = carry.as_mut() {
            c.kept = None;
        }
        self.process_classic(batch, carry.as_deref_mut()).await
    }

    /// Processes a batch with everything loaded under the write lock; if
    /// the store refuses its writes, mail by mail. With `carry`, a batch
    /// that commits whole leaves its snapshot there for the next one.
    async fn process_classic(&self, batch: &Prepared, carry: Option<&mut Carry>) -> Result<(Summary, Vec<Outcome>)> {
        use futures_util::FutureExt;
        let mails = batch.mails();
        // A panic is a bug, but one mail must not stop every mailbox: the
        // daemon would restart, fetch the same mail and panic again, for
        // ever. Caught, it fails the batch like a refused write (its
        // transaction rolls back as it is dropped), so the mails are tried
        // one by one and only the mail that panics is quarantined.
        let attempt = std::panic::AssertUnwindSafe(self.try_batch(batch, None, None))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(Error::Daemon(format!("processing panicked: {}", panic_text(&*panic)))));
        match attempt {
            Ok((summary, outcomes, kept)) => {
                if let Some(c) = carry {
                    c.kept = kept;
                }
                Ok((summary, outcomes))
            }
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
    /// mail in memory, write everything, commit; returns what was done and
    /// the snapshot as the batch left it, to carry to the next one.
    /// `reprocess` is the message row of a quarantined mail run again, and
    /// `release` its quarantine entry, marked released in the same
    /// transaction.
    async fn try_batch(
        &self,
        batch: &Prepared,
        reprocess: Option<i64>,
        release: Option<i64>,
    ) -> Result<(Summary, Vec<Outcome>, Option<Kept>)> {
        let wall = store::now();
        let started = std::time::Instant::now();
        let settings = self.settings();
        let mut tx = self.store.begin_write().await?;
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
        let writer = self.store.writer_mark(&mut tx).await?;
        let Batch { snapshot, changes } = work;
        let ids = changes.next_ids();
        let carries_over = changes.carries_over();
        let written = self
            .write_and_commit(tx, changes, release, summary.notifications)
            .await?;
        written.log(batch, load_time, decide_time, "batch committed");
        let kept = writer
            .filter(|_| reprocess.is_none() && carries_over)
            .map(|writer| Kept {
                snapshot,
                ids,
                rules,
                settings,
                writer,
                since: input.since,
                epoch: self.line.epoch(),
                at: std::time::Instant::now(),
            });
        Ok((summary, outcomes, kept))
    }

    /// Runs every mail of `batch` through the core against `work`'s
    /// snapshot, recording what to write in its changes. No I/O: the same
    /// whether the snapshot was loaded under the write lock or carried.
    fn decide_mails(
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
                    } else {
                        failure.kind.as_str()
                    };
                    work.record_failure(failure, &receipt, reason)
                }
                Ok((msg, class)) => {
                    let class = *class;
                    let received_at = self.clock.received_at(msg, wall);
                    let facts = work
                        .snapshot
                        .facts(msg, &settings.tag, reprocess.is_some(), received_at);
                    let plan = decide(msg, class, &facts, &policy, received_at);
                    #[cfg(test)]
                    tests::panic_if_asked(msg, tests::PANICS);
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
    async fn write_and_commit(
        &self,
        mut tx: store::Tx,
        mut changes: Changes,
        release: Option<i64>,
        notifications: usize,
    ) -> Result<Written> {
        let started = std::time::Instant::now();
        // A row must never name a file that is not there, so the files are
        // on disk, synced, before the commit; they are written on another
        // thread while the rows go in, since neither needs the other.
        let files = std::mem::take(&mut changes.files);
        let attachments = self.store.attachments().clone();
        let written = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            attachments
                .put_all(files.iter().map(|(sha256, data)| (sha256.as_str(), data.as_slice())))
                .map(|()| (files.len(), started.elapsed()))
        });
        let rows = changes.write(&mut tx).await;
        let rows_time = started.elapsed();
        let (files, files_time) = written
            .await
            .map_err(|e| Error::io(self.store.attachments().root(), std::io::Error::other(e)))??;
        rows?;
        if let Some(id) = release {
            // In the batch's own transaction: two operators reprocessing the
            // same mail at once, or a crash between two commits, must not
            // open a second ticket for it.
            if !store::views::release_quarantined(&mut tx, id, store::now()).await? {
                return Err(Error::Usage(format!("quarantined mail {id} was already reprocessed")));
            }
        }
        let write_time = started.elapsed();
        let generation = self.store.commit_counted(tx).await?;
        self.line.committed(generation);
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
        let wall = store::now();
        let mut tx = self.store.begin_write().await?;
        let mut failure = processing_failure(mail, error);
        if bare {
            failure.key = format!("sha256:{}", failure.raw_sha256);
            failure.message_id = None;
            failure.from = None;
            failure.subject = None;
        }
        let mut snapshot = Snapshot::default();
        if crate::store::snapshot::key_is_known(&mut tx, &failure.key).await? {
            snapshot.known_keys.insert(failure.key.clone());
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

    /// Gives a quarantined mail a second chance (after the directory or
    /// config changed); returns its new outcome, and the quarantine entry
    /// it is in now if it was quarantined again.
    pub async fn reprocess(&self, quarantine_id: i64) -> Result<(Outcome, Option<i64>)> {
        let mut conn = self.store.pool().acquire().await?;
        let row = store::views::quarantined_mail(&mut conn, quarantine_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("quarantined mail {quarantine_id}")))?;
        drop(conn);
        let (message_row, source, raw, released) = row;
        if released.is_some() {
            return Err(Error::Usage(format!(
                "quarantined mail {quarantine_id} was already reprocessed"
            )));
        }
        let mail = self.prepare(vec![Incoming::new(raw, source)]);
        // In line with the daemon's batches, if this process runs any, and
        // voiding the snapshot they carry: the mail's effects are not in it.
        let Turn(mut carry, _) = self.turn(&Chain::default()).await;
        let _writing = self.write_turn.clone().lock_owned().await;
        carry.kept = None;
        self.line.reset();
        let (_, outcomes, _) = self.try_batch(&mail, Some(message_row), Some(quarantine_id)).await?;
        let mut conn = self.store.pool().acquire().await?;
        let again = store::views::open_quarantine_of(&mut conn, message_row).await?;
        Ok((outcomes[0], again))
    }
}

/// What a panic said, for the log and the quarantine.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Parses a mail; an oversized one (headers only) becomes a failure that
/// keeps its identity, so it is quarantined and recognised if re-fetched.
fn parse_incoming(mail: &Incoming) -> std::result::Result<Message, Box<ParseFailure>> {
    let Some(size) = mail.oversized else {
        return Message::parse(&mail.raw);
    };
    let reason = format!("{TOO_LARGE}: {size} bytes, over max_message_bytes; only the headers were fetched");
    Err(match Message::parse(&mail.raw) {
        Ok(m) => Box::new(ParseFailure {
            key: m.key,
            message_id: m.message_id,
            raw_sha256: m.raw_sha256,
            from: Some(m.from.address),
            subject: Some(m.subject),
            reason,
            kind: FailureKind::Unparseable,
        }),
        Err(mut f) => {
            f.reason = reason;
            f
        }
    })
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

/// Quarantine reason (and failure prefix) of mails over the size limit.
const TOO_LARGE: &str = "too_large";

/// The record of a mail whose processing failed, with the error as the
/// reason. Keyed as the mail would have been (its Message-ID, else its
/// bytes), so the same mail fetched again, from a second mailbox or after
/// a UIDVALIDITY reset with other headers added, is a duplicate of the one
/// in quarantine instead of a new ticket beside it.
fn processing_failure(mail: &Incoming, error: &Error) -> ParseFailure {
    let sha = crate::message::sha256_hex(&mail.raw);
    // The mail parsed (it failed later), so the quarantine listing can
    // show who sent it and about what.
    let parsed = crate::message::Message::parse(&mail.raw).ok();
    ParseFailure {
        key: parsed
            .as_ref()
            .map_or_else(|| format!("sha256:{sha}"), |m| m.key.clone()),
        message_id: parsed.as_ref().and_then(|m| m.message_id.clone()),
        raw_sha256: sha,
        from: parsed
            .as_ref()
            .map(|m| m.from.address.clone())
            .filter(|a| !a.is_empty()),
        subject: parsed.map(|m| m.subject).filter(|s| !s.is_empty()),
        reason: format!("processing failed: {error}"),
        kind: FailureKind::Processing,
    }
}

impl Pipeline {
    /// Applies a hand action to ticket `number` at time `at` (close,
    /// escalate, approve) and queues its notifications in the same
    /// transaction; returns how many were queued.
    pub async fn act(&self, number: i64, action: crate::tickets::actions::Action, at: i64) -> Result<usize> {
        let mut tx = self.store.begin_write().await?;
        let mut snapshot = Snapshot::default();
        snapshot.load_tickets(&mut tx, vec![number]).await?;
        let ticket = snapshot
            .tickets
            .get(&number)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("ticket {number}")))?;
        snapshot
            .load_accounts(&mut tx, ticket.account_id.into_iter().collect())
            .await?;
        let subs = ticket
            .account_id
            .and_then(|a| snapshot.subscriptions.get(&a).cloned())
            .unwrap_or_default();
        let settings = self.settings();
        let plan = crate::tickets::actions::decide_action(&ticket.facts(), action, &subs, &settings.config)?;
        let mut batch = Batch {
            snapshot,
            changes: Changes::start(&mut tx).await?,
        };
        let opening = match action {
            crate::tickets::actions::Action::Approve => store::views::opening_text(&mut tx, number).await?,
            _ => None,
        };
        let hand = crate::store::apply::HandAction {
            number,
            action,
            at,
            opening,
        };
        let queued = batch.apply_action(hand, &plan, &settings.renderer(), &settings.tag)?;
        batch.changes.write(&mut tx).await?;
        self.store.commit(tx).await?;
        if queued > 0 {
            self.outbox_ready.notify_one();
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests;
