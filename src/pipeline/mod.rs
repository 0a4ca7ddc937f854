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
use crate::store::Store;
use crate::tickets::plan::Outcome;
use crate::tickets::tag::TagFormat;

mod carry;
mod incoming;
mod operator;
mod summary;
mod transaction;
mod write_order;

use carry::{Carry, Line};
pub use carry::{Chain, Turn};
pub use incoming::{HEADER_BYTES, Incoming, header_block};
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
    /// Places in line to write: batches write in the order they took
    /// their turns.
    write_order: Arc<write_order::WriteOrder>,
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
    /// The addresses a mail from which is our own (see `tickets::plan`).
    own_addresses: Vec<String>,
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
            own_addresses: config.own_addresses(),
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
            write_order: Default::default(),
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
        let carry = self.carry.clone().lock_owned().await;
        Turn {
            carry,
            chain: chain.clone(),
            place: self.write_order.place(),
        }
    }

    /// Processes a batch in the place `turn` holds (see [`Pipeline::process`]).
    pub async fn process_in_turn(&self, turn: Turn, batch: &Prepared) -> Result<(Summary, Vec<Outcome>)> {
        let Turn {
            mut carry,
            chain,
            place,
        } = turn;
        // Declared after the place, so dropped before the write turn is
        // given on: unless the batch commits, the ones behind it in its
        // chain must not commit before it, however it leaves (a panic
        // building its statements, cancelled while waiting for its turn).
        let mut failing = carry::Failing::new(&chain, &self.line);
        let early = self.decide_carried(&mut carry, batch).await;
        // A batch decided on the carry lets the next one decide now, and
        // builds its statements meanwhile; one to be decided under the
        // write lock keeps it, to leave its snapshot.
        let (carry, early) = match early {
            Some((mut decided, changes)) => {
                drop(carry);
                let writes = self.build_carried(&mut decided, changes);
                (None, Some((decided, writes)))
            }
            None => (Some(carry), None),
        };
        place.reached().await;
        let done = self.in_write_turn(carry, early, &chain, batch).await;
        if done.is_ok() {
            failing.disarm();
        }
        done
    }

    /// The rest of [`Pipeline::process_in_turn`], in the batch's write turn.
    async fn in_write_turn(
        &self,
        mut carry: Option<tokio::sync::OwnedMutexGuard<Carry>>,
        early: Option<(carry::Decided, crate::store::changes::Writes)>,
        chain: &Chain,
        batch: &Prepared,
    ) -> Result<(Summary, Vec<Outcome>)> {
        if chain.broken() {
            return Err(Error::Deferred("a batch ahead of it failed".into()));
        }
        if let Some((decided, writes)) = early {
            use futures_util::FutureExt;
            match std::panic::AssertUnwindSafe(self.write_carried(decided, writes, batch))
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
        self.process_classic(batch, carry).await
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
    if let Some(said) = &mail.unreadable {
        let raw_sha256 = crate::message::sha256_hex(&mail.raw);
        return Err(Box::new(ParseFailure {
            key: crate::message::hash_key(&raw_sha256),
            message_id: None,
            raw_sha256,
            from: None,
            subject: Some(format!("(the server could not hand over {})", mail.source)),
            sent_date: None,
            reason: format!("{UNREADABLE}: the server failed every fetch of it ({said}); it is still in the folder"),
            kind: FailureKind::Unparseable,
        }));
    }
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
            sent_date: m.date,
            reason,
            kind: FailureKind::Unparseable,
        }),
        Err(mut f) => {
            f.reason = reason;
            f
        }
    })
}

/// Quarantine reason (and failure prefix) of mails over the size limit.
const TOO_LARGE: &str = "too_large";

/// Quarantine reason of mails the server could not hand over.
const UNREADABLE: &str = "unreadable";

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
            .map_or_else(|| crate::message::hash_key(&sha), |m| m.key.clone()),
        message_id: parsed.as_ref().and_then(|m| m.message_id.clone()),
        raw_sha256: sha,
        from: parsed
            .as_ref()
            .map(|m| m.from.address.clone())
            .filter(|a| !a.is_empty()),
        sent_date: parsed.as_ref().and_then(|m| m.date),
        subject: parsed.map(|m| m.subject).filter(|s| !s.is_empty()),
        reason: format!("processing failed: {error}"),
        kind: FailureKind::Processing,
    }
}

#[cfg(test)]
mod tests;
