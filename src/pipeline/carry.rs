//! Deciding a batch while the one ahead of it is still being written.
//!
//! A batch's work has two halves: deciding (load what the store knows, run
//! every mail through the core, render the notifications) and writing (the
//! rows, the files, the commit's fsync). Done one after the other under the
//! write lock, the writer sat idle while a batch was decided and the core
//! deciding sat idle while it was written. Instead the next batch is
//! decided on the snapshot the batch ahead of it left, which holds that
//! batch's own effects, committed or not, topped up from the last committed
//! state with what it lacks, while that batch writes.
//!
//! What the snapshot lacks the batch ahead did not touch, so the committed
//! state is right for it, as long as nobody else wrote. That is checked
//! in the batch's write turn, under the write lock:
//! - nobody else committed a change of facts since this pipeline's last
//!   batch ([`Store::writer_mark`]: SQLite's `PRAGMA data_version` on the
//!   writer, which counts a CLI command's or another daemon's commits on
//!   the same file; PostgreSQL's `facts_version`, which every statement on
//!   a table a snapshot reads moves, whoever runs it);
//! - nothing else in this process committed a change of facts (a hand
//!   action, a hard bounce counted by delivery): [`Store::facts_generation`];
//! - no batch in between was refused, failed or decided again (the epoch).
//!
//! A batch that fails the check is decided again the plain way, with
//! everything loaded under the write lock, and leaves a fresh snapshot.
//! When the check fails because another writer committed, nothing is
//! carried for a while ([`MAX_IDLE`]): several instances on one
//! PostgreSQL database take turns writing, and every snapshot carried
//! between them would be out of date, decided for nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::write_order::Place;
use super::{Pipeline, Prepared, Settings, Summary};
use crate::directory::IgnoreRule;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::store::WriterMark;
use crate::store::apply::Batch;
use crate::store::changes::{Changes, NextIds, Writes};
use crate::store::snapshot::Snapshot;
use crate::store::sql::Placeholders;
use crate::tickets::plan::Outcome;

/// How long a carried snapshot is trusted without a batch committing: past
/// a pause, the next batch loads afresh.
const MAX_IDLE: Duration = Duration::from_secs(2);

/// A place in the line of batches (see [`Pipeline::turn`]): the carry,
/// held while the batch is decided, and its place in line to write.
pub struct Turn {
    pub(super) carry: tokio::sync::OwnedMutexGuard<Carry>,
    pub(super) chain: Chain,
    pub(super) place: Place,
}

/// One caller's sequence of batches (a replay, one mailbox's drain), whose
/// order matters: a reply must not commit before the mail it answers.
/// Once one of its batches fails, the ones behind it, decided already,
/// refuse to commit ([`Error::Deferred`]); the caller stops and starts
/// again from that batch with a new chain.
#[derive(Debug, Clone, Default)]
pub struct Chain(Arc<AtomicBool>);

impl Chain {
    pub(super) fn broken(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    pub(super) fn break_off(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// What the last batch decided left for the next; held by the batch
/// deciding now.
#[derive(Default)]
pub struct Carry {
    pub(super) kept: Option<Kept>,
}

/// A batch's snapshot as its decisions left it, with what else the next
/// batch needs to decide on it.
pub(super) struct Kept {
    pub snapshot: Snapshot,
    pub ids: NextIds,
    /// The ignore rules, from the config and the store.
    pub rules: Vec<IgnoreRule>,
    /// The settings the batch ran with: a reload starts afresh.
    pub settings: Arc<Settings>,
    /// The earliest time the snapshot's windows (rate limits) cover.
    pub since: i64,
    pub epoch: u64,
    pub at: Instant,
}

/// Held by a batch in its write turn: unless disarmed (the batch
/// committed), dropping it breaks the batch's chain and voids carried
/// snapshots, however the batch left (an error, a panic). Dropped before
/// the write turn is given on, so the next batch sees it.
pub(super) struct Failing<'a> {
    chain: &'a Chain,
    line: &'a Line,
    armed: bool,
}

impl<'a> Failing<'a> {
    pub fn new(chain: &'a Chain, line: &'a Line) -> Failing<'a> {
        Failing {
            chain,
            line,
            armed: true,
        }
    }

    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Failing<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.chain.break_off();
            self.line.reset();
        }
    }
}

/// What voids carried snapshots, shared by the pipeline's clones.
#[derive(Debug, Default)]
pub(super) struct Line {
    /// Moved whenever a carried snapshot may be wrong: a snapshot from an
    /// earlier epoch is not used.
    epoch: AtomicU64,
    /// [`Store::facts_generation`] after this pipeline's last commit.
    own_generation: AtomicU64,
    /// [`Store::writer_mark`] as this pipeline's last batch left it.
    own_mark: Mutex<Option<WriterMark>>,
    /// When a carried batch last found another writer's commit in its way:
    /// while writers keep taking turns with this process (several
    /// instances on one PostgreSQL database), a snapshot carried is out of
    /// date by the time it is used, so none is for a while.
    contended: Mutex<Option<Instant>>,
    /// Batches committed as decided on a carried snapshot.
    carried: AtomicU64,
}

impl Line {
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Every carried snapshot is out of date.
    pub fn reset(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// A batch committed, bringing the store's counts to these.
    pub fn committed(&self, generation: u64, mark: WriterMark) {
        self.own_generation.store(generation, Ordering::SeqCst);
        *self.own_mark.lock().unwrap_or_else(|e| e.into_inner()) = Some(mark);
    }

    fn own_mark(&self) -> Option<WriterMark> {
        *self.own_mark.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn contended_now(&self) {
        *self.contended.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn contended_lately(&self) -> bool {
        self.contended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() <= MAX_IDLE)
    }
}

/// A batch decided on a carried snapshot, waiting for its write turn;
/// its changes go beside it, as decided and then as statements.
pub(super) struct Decided {
    /// Whether the next batch may be decided on what this one left.
    carries_over: bool,
    summary: Summary,
    outcomes: Vec<Outcome>,
    epoch: u64,
    load: Duration,
    decide: Duration,
}

/// Why a batch decided on a carried snapshot was not committed.
pub(super) enum Unwritten {
    /// The snapshot may be out of date.
    Stale(&'static str),
    Failed(Error),
}

impl From<Error> for Unwritten {
    fn from(e: Error) -> Unwritten {
        Unwritten::Failed(e)
    }
}

impl From<sqlx::Error> for Unwritten {
    fn from(e: sqlx::Error) -> Unwritten {
        Unwritten::Failed(e.into())
    }
}

/// What a batch looks up, whichever way it is decided.
pub(super) struct BatchInput<'a> {
    /// The key of every mail, parsed or not.
    pub keys: Vec<&'a str>,
    pub ok: Vec<&'a Message>,
    /// The earliest receipt time in the batch: it bounds what the rate
    /// limits need.
    pub since: i64,
}

impl<'a> BatchInput<'a> {
    pub fn of(batch: &'a Prepared, clock: super::Clock, wall: i64) -> BatchInput<'a> {
        let ok: Vec<&Message> = batch
            .parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().map(|(m, _)| m))
            .collect();
        let keys = batch
            .parsed
            .iter()
            .map(|p| match p {
                Ok((m, _)) => m.key.as_str(),
                Err(f) => f.key.as_str(),
            })
            .collect();
        let since = ok.iter().map(|m| clock.received_at(m, wall)).min().unwrap_or(wall);
        BatchInput { keys, ok, since }
    }
}

impl Pipeline {
    /// Decides `batch` on the carried snapshot, if there is one it can
    /// trust, leaving the snapshot as the batch's decisions leave it;
    /// `None` when the batch is to be decided under the write lock.
    pub(super) async fn decide_carried(&self, carry: &mut Carry, batch: &Prepared) -> Option<(Decided, Changes)> {
        use futures_util::FutureExt;
        let kept = carry.kept.take()?;
        let settings = self.settings();
        let wall = self.store.now();
        let input = BatchInput::of(batch, self.clock, wall);
        let usable = !self.line.contended_lately()
            && Arc::ptr_eq(&kept.settings, &settings)
            && kept.epoch == self.line.epoch()
            && input.since >= kept.since
            && kept.at.elapsed() <= MAX_IDLE
            && kept.snapshot.size() <= self.store.carried_snapshot_limit();
        if !usable {
            return None;
        }
        // A failure or panic here (a query, a bug) only costs the carry:
        // the batch is decided again under the write lock, where a panic
        // quarantines its mail.
        let attempt = std::panic::AssertUnwindSafe(self.decide_on(kept, batch, &input, wall))
            .catch_unwind()
            .await;
        match attempt {
            Ok(Ok((decided, changes, kept))) => {
                carry.kept = Some(kept).filter(|_| decided.carries_over);
                Some((decided, changes))
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "deciding on the carried snapshot failed; deciding under the write lock");
                None
            }
            Err(_) => None,
        }
    }

    async fn decide_on(
        &self,
        mut kept: Kept,
        batch: &Prepared,
        input: &BatchInput<'_>,
        wall: i64,
    ) -> Result<(Decided, Changes, Kept)> {
        let started = Instant::now();
        let mut conn = self.store.pool().acquire().await?;
        kept.snapshot
            .extend(&mut conn, &input.keys, &input.ok, &kept.settings.tag, input.since)
            .await?;
        drop(conn);
        let load = started.elapsed();
        let mut work = Batch {
            snapshot: std::mem::take(&mut kept.snapshot),
            changes: Changes::resume(kept.ids),
        };
        let (summary, outcomes) = self.decide_mails(&kept.settings, &kept.rules, batch, &mut work, wall, None)?;
        let Batch { snapshot, changes } = work;
        kept.snapshot = snapshot;
        kept.ids = changes.next_ids();
        kept.since = input.since;
        kept.at = Instant::now();
        let carries_over = changes.carries_over();
        let decided = Decided {
            carries_over,
            summary,
            outcomes,
            epoch: kept.epoch,
            load,
            decide: started.elapsed() - load,
        };
        Ok((decided, changes, kept))
    }

    /// Builds the statements of a batch decided on a carried snapshot: off
    /// the writer's path, and after the next batch may be decided.
    /// The time it takes counts as deciding.
    pub(super) fn build_carried(&self, decided: &mut Decided, changes: Changes) -> Writes {
        let started = Instant::now();
        let writes = changes.into_writes(Placeholders::of_backend(self.store.backend()));
        decided.decide += started.elapsed();
        writes
    }

    /// Writes a batch decided on a carried snapshot, if nobody else wrote
    /// since the snapshot was loaded.
    pub(super) async fn write_carried(
        &self,
        decided: Decided,
        writes: Writes,
        batch: &Prepared,
    ) -> std::result::Result<(Summary, Vec<Outcome>), Unwritten> {
        let mut tx = self.store.begin_write().await?;
        if decided.epoch != self.line.epoch() {
            return Err(Unwritten::Stale("a batch ahead of it was decided again"));
        }
        if self.store.facts_generation() != self.line.own_generation.load(Ordering::SeqCst) {
            return Err(Unwritten::Stale("this process changed facts in between"));
        }
        if Some(self.store.writer_mark(&mut tx).await?) != self.line.own_mark() {
            self.line.contended_now();
            return Err(Unwritten::Stale("another connection committed in between"));
        }
        let Decided {
            summary,
            outcomes,
            load,
            decide,
            ..
        } = decided;
        let written = self.write_and_commit(tx, writes, None, summary.notifications).await?;
        self.line.carried.fetch_add(1, Ordering::SeqCst);
        written.log(batch, load, decide, "carried batch committed");
        Ok((summary, outcomes))
    }
}

#[cfg(test)]
mod tests;
