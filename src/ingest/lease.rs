//! Holding a mailbox's lease while watching it, so that of several
//! instances on one database exactly one ingests each mailbox, and a
//! standby takes over within `database.mailbox_lease` when the holder dies.
//!
//! With lease time L and poll interval P = L/10: the holder writes an
//! expiry of L − P and renews it every L/5; a standby asks every P (or
//! more often, see fair shares below). A dead
//! holder's expiry is at most L − P after its last renewal, so a standby
//! has the mailbox within L. A holder that cannot renew (database gone)
//! stops ingesting once half its expiry has passed since the last
//! renewal, well before anyone else may take over; the message-key dedupe
//! covers even a holder frozen past its expiry.
//!
//! Fair shares: every instance renews a row of its own ([`Fleet`]) every B
//! (the balance interval: P, at most half a second), and holds at most
//! ⌈mailboxes / live instances watching the same mailboxes⌉ leases. An
//! instance over its share (one that started alone, before the others)
//! hands its surplus back as soon as its heartbeat (every B) sees the
//! others, and the standbys, asking every B, pick it up within B more, so
//! adding instances spreads the work within a second or two whatever the
//! lease time. (With B = P, three
//! instances started together on a 30 s lease kept one instance doing all
//! the work for the first 6 s: `bench/instances.sh`.) An
//! instance configured with other mailboxes does not count: it could not
//! take ours over, and counting it would leave a mailbox unwatched. The row
//! runs out 3P after its last renewal, so a dead instance stops counting
//! (and the standbys' shares grow) long before its leases run out: with a
//! row as long-lived as a lease, a standby already at its share waited for
//! the row, then a heartbeat, then a poll, and took the mailbox over up to
//! 2P past the lease time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::liveness::Heartbeat;
use crate::store::Store;
use crate::store::leases::instance_id;

/// This instance among the others on the database: how many mailbox
/// leases it holds, and how many it may hold.
#[derive(Debug)]
pub struct Fleet {
    store: Store,
    /// The config's mailbox names, sorted, one per line: instances with the
    /// same list share them.
    names: String,
    /// How many there are.
    mailboxes: usize,
    held: AtomicUsize,
    share: AtomicUsize,
    /// Live instances watching the same mailboxes, this one included, at
    /// the last heartbeat.
    live: AtomicUsize,
    /// Told when the share shrinks: a holder over it hands its surplus
    /// over at once, not at its next look.
    shrank: tokio::sync::Notify,
    timing: Timing,
}

/// The lease arithmetic of the module doc, from the lease time L.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// The expiry written on every renewal (L − P).
    expiry: Duration,
    /// The expiry of this instance's own row (3P, at most L − P).
    instance_expiry: Duration,
    renew_every: Duration,
    /// How often shares are recomputed, surplus is looked for and a
    /// standby asks for a free mailbox: P, at most half a second. Asking
    /// is a one-row query, and a share that waits costs the work of a
    /// whole instance meanwhile.
    balance_every: Duration,
}

/// P: how often a standby must ask for a mailbox at least.
fn poll_every(lease: Duration) -> Duration {
    (lease / 10).max(Duration::from_millis(100))
}

impl Timing {
    fn new(lease: Duration) -> Timing {
        let poll_every = poll_every(lease);
        let expiry = lease.saturating_sub(poll_every);
        Timing {
            expiry,
            instance_expiry: (poll_every * 3).min(expiry),
            renew_every: lease / 5,
            balance_every: poll_every.min(Duration::from_millis(500)),
        }
    }
}

impl Fleet {
    /// This instance, watching the mailboxes `names` with lease time
    /// `lease`. Until its first heartbeat it may hold every mailbox.
    pub fn new(store: Store, names: &[&str], lease: Duration) -> Arc<Fleet> {
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        let mailboxes = names.len();
        Arc::new(Fleet {
            store,
            names: sorted.join("\n"),
            mailboxes,
            held: AtomicUsize::new(0),
            share: AtomicUsize::new(mailboxes),
            live: AtomicUsize::new(1),
            shrank: tokio::sync::Notify::new(),
            timing: Timing::new(lease),
        })
    }

    /// Renews this instance's row and recomputes its share until shutdown,
    /// then removes the row, so the others' shares grow at once.
    pub async fn run(self: Arc<Fleet>, mut shutdown: watch::Receiver<bool>, heartbeat: Heartbeat) {
        if let Err(e) = self.store.forget_stale_instances().await {
            tracing::warn!(error = %e, "could not clear old instance rows");
        }
        let mut warnings = Warnings::default();
        loop {
            heartbeat.beat();
            match self
                .store
                .instance_heartbeat(instance_id(), &self.names, self.timing.instance_expiry)
                .await
            {
                Ok(live) => {
                    let live = usize::try_from(live.max(1)).unwrap_or(1);
                    self.live.store(live, Ordering::Relaxed);
                    let share = self.mailboxes.div_ceil(live).max(1);
                    if self.share.swap(share, Ordering::Relaxed) > share {
                        self.shrank.notify_waiters();
                    }
                }
                Err(e) => {
                    if let Some(quiet) = warnings.due() {
                        tracing::warn!(error = %e, repeats_not_logged = quiet, "instance heartbeat failed; retrying");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timing.balance_every) => {}
                _ = shutdown.changed() => break,
            }
        }
        let _ = self.store.instance_gone(instance_id()).await;
    }

    /// Whether another live instance watches the same mailboxes: one that
    /// could take a mailbox this one cannot work.
    pub fn others_live(&self) -> bool {
        self.live.load(Ordering::Relaxed) > 1
    }

    /// Takes a slot for one more lease if under the share.
    fn reserve(&self) -> bool {
        let share = self.share.load(Ordering::Relaxed);
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < share).then_some(held + 1)
            })
            .is_ok()
    }

    /// Gives a slot back if over the share (true: this lease is surplus).
    fn shed(&self) -> bool {
        let share = self.share.load(Ordering::Relaxed);
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held > share).then(|| held - 1)
            })
            .is_ok()
    }

    fn unreserve(&self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How often a loop that keeps failing the same way says so.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// A loop's warnings of a failing database, one per [`WARN_EVERY`]: with a
/// look every half second per mailbox, a database down for a minute wrote
/// hundreds of lines.
#[derive(Debug, Default)]
struct Warnings {
    last: Option<Instant>,
    quiet: u32,
}

impl Warnings {
    /// Whether to log this failure, with how many were not logged since.
    fn due(&mut self) -> Option<u32> {
        self.due_at(Instant::now())
    }

    fn due_at(&mut self, now: Instant) -> Option<u32> {
        if self.last.is_some_and(|at| now.duration_since(at) < WARN_EVERY) {
            self.quiet += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.quiet))
    }
}

/// Why [`MailboxLease::keep`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Taken over, or not renewed in time: no longer this instance's.
    Lost,
    /// Still held, but more than this instance's share: stop the work under
    /// it, then [`MailboxLease::hand_over`].
    Surplus,
}

/// This instance's claim on one mailbox.
#[derive(Debug, Clone)]
pub struct MailboxLease {
    store: Store,
    fleet: Arc<Fleet>,
    name: String,
    /// The fleet's lease arithmetic (the same for every mailbox).
    timing: Timing,
}

impl MailboxLease {
    /// The lease on mailbox `name` for this instance of `fleet`.
    pub fn new(fleet: &Arc<Fleet>, name: &str) -> MailboxLease {
        MailboxLease {
            store: fleet.store.clone(),
            fleet: fleet.clone(),
            name: name.to_string(),
            timing: fleet.timing,
        }
    }

    /// Waits until this instance holds the lease: at once when the mailbox
    /// is free, else as a standby until the holder releases it or dies.
    /// False if shutdown came first.
    pub async fn acquire(&self, shutdown: &mut watch::Receiver<bool>, heartbeat: &Heartbeat) -> bool {
        let mut announced = false;
        let mut warnings = Warnings::default();
        loop {
            heartbeat.beat();
            if *shutdown.borrow() {
                return false;
            }
            // Over this instance's fair share, leave the mailbox to others.
            // A slot is reserved only for a mailbox that looks free: tasks
            // of mailboxes still held elsewhere must not fill the share for
            // a moment and make a free one wait a whole poll.
            let free = self
                .store
                .mailbox_is_free(&self.name, instance_id())
                .await
                .unwrap_or(true);
            if free && self.fleet.reserve() {
                match self
                    .store
                    .hold_mailbox(&self.name, instance_id(), self.timing.expiry)
                    .await
                {
                    Ok(true) => {
                        if announced {
                            tracing::info!(mailbox = %self.name, "took the mailbox over");
                        }
                        return true;
                    }
                    Ok(false) if !announced => {
                        tracing::info!(mailbox = %self.name, "another instance holds the mailbox; standing by");
                        announced = true;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        if let Some(quiet) = warnings.due() {
                            tracing::warn!(mailbox = %self.name, error = %e, repeats_not_logged = quiet, "cannot reach the lease; retrying");
                        }
                    }
                }
                self.fleet.unreserve();
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timing.balance_every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Renews the lease; returns only once it is lost (taken by another
    /// instance, not renewed for half its expiry) or is surplus (this
    /// instance holds more than its share). Run it beside the work the
    /// lease covers, which stops when this returns.
    pub async fn keep(&self) -> Ended {
        let mut renewed = Instant::now();
        let mut warnings = Warnings::default();
        loop {
            // Surplus is looked for every B and when the share shrinks,
            // renewals happen every L/5.
            tokio::select! {
                _ = tokio::time::sleep(self.timing.balance_every) => {}
                _ = self.fleet.shrank.notified() => {}
            }
            if self.fleet.shed() {
                tracing::info!(mailbox = %self.name, "more mailboxes here than this instance's share; handing this one over");
                return Ended::Surplus;
            }
            if renewed.elapsed() < self.timing.renew_every {
                continue;
            }
            match self
                .store
                .hold_mailbox(&self.name, instance_id(), self.timing.expiry)
                .await
            {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!(mailbox = %self.name, "the mailbox's lease was taken over; stopping");
                    self.fleet.unreserve();
                    return Ended::Lost;
                }
                Err(e) if renewed.elapsed() >= self.timing.expiry / 2 => {
                    tracing::warn!(mailbox = %self.name, error = %e, "cannot renew the mailbox's lease; stopping before it runs out");
                    self.fleet.unreserve();
                    return Ended::Lost;
                }
                Err(e) => {
                    if let Some(quiet) = warnings.due() {
                        tracing::warn!(mailbox = %self.name, error = %e, repeats_not_logged = quiet, "renewing the mailbox's lease failed; retrying");
                    }
                }
            }
        }
    }

    /// Hands the mailbox to a standby at once (on shutdown).
    pub async fn release(&self) {
        self.fleet.unreserve();
        self.hand_over().await;
    }

    /// Hands a surplus mailbox (see [`Ended::Surplus`]) to a standby, once
    /// the session under it has stopped: released earlier, the next holder
    /// would work the mailbox beside the session still ending its chunk.
    pub async fn hand_over(&self) {
        if let Err(e) = self.store.release_mailbox(&self.name, instance_id()).await {
            tracing::warn!(mailbox = %self.name, error = %e, "could not release the mailbox's lease; it runs out by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by a review: with looks every half second, every failing
    /// look logged a warning.
    #[test]
    fn a_failing_loop_warns_once_every_thirty_seconds_with_a_count() {
        let start = Instant::now();
        let at = |looks: u32| start + Duration::from_millis(500) * looks;
        let mut w = Warnings::default();
        assert_eq!(w.due_at(at(0)), Some(0));
        for look in 1..60 {
            assert_eq!(w.due_at(at(look)), None, "look {look}");
        }
        assert_eq!(w.due_at(at(60)), Some(59), "the next one says how many were not logged");
        assert_eq!(w.due_at(at(61)), None);
    }

    /// A dead instance's row runs out, and a heartbeat of a standby already
    /// at its share counts it gone, before the dead instance's leases run
    /// out; a poll later the mailbox is taken over, within the lease time.
    #[test]
    fn a_dead_instance_stops_counting_before_its_leases_run_out() {
        for seconds in [1, 3, 30, 600] {
            let lease = Duration::from_secs(seconds);
            let t = Timing::new(lease);
            let poll = poll_every(lease);
            assert!(
                t.instance_expiry + poll <= t.expiry,
                "{lease:?}: share grows {:?} after death, lease runs out after {:?}",
                t.instance_expiry + poll,
                t.expiry
            );
            assert!(t.expiry + poll <= lease, "{lease:?}: {t:?}");
            // Two heartbeats may be missed before a live instance stops counting.
            assert!(t.instance_expiry >= poll * 3, "{lease:?}: {t:?}");
            assert!(t.balance_every <= poll && t.balance_every <= Duration::from_millis(500));
            assert!(t.instance_expiry >= t.balance_every * 3, "{lease:?}: {t:?}");
        }
    }
}
