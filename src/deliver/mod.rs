//! Delivery: the outbox drained over SMTP.
//!
//! A round claims the due rows (one transaction), hands them to the relay
//! over up to `smtp.connections` connections at once, and records each
//! answer as it comes back; answers that arrive while the previous record
//! is committing are committed together (group commit), so the store is
//! not the bottleneck of a fan-out. A connection starts its next mail only
//! once its previous answer is committed, so a crash can lose the record of
//! at most one mail per connection: those are the only mails that can go
//! out twice; everything else is claimed, sent and recorded exactly once.

pub mod compose;
mod in_flight;
pub mod relay;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot, watch};

use crate::config::Config;
use crate::error::Result;
use crate::liveness::Heartbeat;
use crate::store::Store;
use crate::store::outbox::{ClaimRules, Claimed, Delivery, RecordRules, Recorded};
use relay::Relay;

/// How many rows one round claims per connection.
const ROWS_PER_CONNECTION: usize = 16;
/// How long an answer waits for others to share its commit.
const GROUP_WAIT: Duration = Duration::from_micros(700);
/// Longest sleep between rounds: rows queued by another process (the CLI)
/// are picked up this fast.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// The first and the longest wait after a round the relay failed whatever
/// the mail (see [`Relay::fault`]): doubled each round it fails again.
const RELAY_PAUSE: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(300));

/// What rounds did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub sent: usize,
    pub deferred: usize,
    pub failed: usize,
    pub suppressed: usize,
    /// Contacts marked undeliverable on the way.
    pub undeliverable: usize,
}

impl Report {
    fn add(&mut self, o: Report) {
        self.sent += o.sent;
        self.deferred += o.deferred;
        self.failed += o.failed;
        self.suppressed += o.suppressed;
        self.undeliverable += o.undeliverable;
    }

    fn handled(&self) -> usize {
        self.sent + self.deferred + self.failed + self.suppressed
    }
}

impl From<Recorded> for Report {
    fn from(r: Recorded) -> Report {
        Report {
            sent: r.sent,
            deferred: r.deferred,
            failed: r.failed,
            suppressed: 0,
            undeliverable: r.undeliverable,
        }
    }
}

/// A relay's answer on its way to be recorded, with the acknowledgement
/// its sender waits for.
type Answer = (Claimed, Delivery, oneshot::Sender<()>);

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, deferred {}, failed {}, suppressed {}, contacts marked undeliverable {}",
            self.sent, self.deferred, self.failed, self.suppressed, self.undeliverable
        )
    }
}

/// Sends what the outbox holds.
#[derive(Clone)]
pub struct Courier {
    store: Store,
    relay: Relay,
    config: Arc<Config>,
    /// The next free send slot under `smtp.max_per_minute`.
    pace: Option<Arc<tokio::sync::Mutex<tokio::time::Instant>>>,
    /// The daemon's stop signal ([`Courier::run`]): a mail not started yet
    /// when it comes is handed back, not sent.
    halt: Option<watch::Receiver<bool>>,
    /// The daemon's liveness beat: a round waiting minutes for a slow
    /// relay's answers ([`in_flight`]) beats while it keeps its claims.
    heartbeat: Option<Heartbeat>,
}

impl Courier {
    /// A courier for `config`'s relay; `None` without `[smtp]`.
    pub fn new(store: Store, config: Arc<Config>) -> Result<Option<Courier>> {
        let Some(smtp) = &config.smtp else { return Ok(None) };
        let relay = Relay::new(smtp, config.support_address())?;
        let pace = smtp
            .max_per_minute
            .map(|_| Arc::new(tokio::sync::Mutex::new(tokio::time::Instant::now())));
        Ok(Some(Courier {
            store,
            relay,
            config,
            pace,
            halt: None,
            heartbeat: None,
        }))
    }

    /// Rounds until nothing is due that was due when it started (`outbox
    /// send`): a row deferred in this run waits for the next one.
    pub async fn drain(&self) -> Result<Report> {
        let started = self.store.clock().await?;
        let mut total = Report::default();
        loop {
            let round = self.round(Some(started)).await?;
            let handled = round.handled();
            total.add(round);
            // A relay failing whatever the mail is not tried again in this
            // run: the rows it left untried stay queued for the next.
            if handled == 0 || self.relay.fault().is_some() {
                self.relay.close().await;
                return Ok(total);
            }
        }
    }

    /// The daemon's worker: rounds whenever rows are due, woken at once by
    /// `ready` (a batch queued notifications), until `stop` is set. The
    /// round under way when `stop` comes finishes and records first.
    pub async fn run(mut self, ready: Arc<Notify>, mut stop: watch::Receiver<bool>, heartbeat: Heartbeat) {
        self.halt = Some(stop.clone());
        self.heartbeat = Some(heartbeat.clone());
        tracing::info!(relay = %self.relay_name(), "outbox delivery running");
        let mut pause = RELAY_PAUSE.0;
        loop {
            heartbeat.beat();
            if *stop.borrow() {
                break;
            }
            let round = self.round(None).await;
            let fault = self.relay.fault();
            let (wait, paused) = match (round, fault) {
                // The rows not tried are queued again: the next round waits,
                // new notifications too.
                (Ok(r), Some(fault)) if r.handled() > 0 => {
                    tracing::warn!(%r, error = %fault, retry_in = ?pause, "the relay is failing whatever the mail; the rest of the round waits");
                    let wait = pause;
                    pause = (pause * 2).min(RELAY_PAUSE.1);
                    (wait, true)
                }
                (Ok(r), _) if r.handled() > 0 => {
                    pause = RELAY_PAUSE.0;
                    tracing::info!(%r, "outbox round");
                    continue;
                }
                (Ok(_), _) => (self.until_next_due().await, false),
                (Err(e), _) => {
                    tracing::error!(error = %e, "outbox round failed; retrying");
                    (IDLE_POLL, false)
                }
            };
            if paused {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            } else {
                tokio::select! {
                    _ = ready.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        self.relay.close().await;
        tracing::info!("outbox delivery stopped");
    }

    fn relay_name(&self) -> String {
        self.config
            .smtp
            .as_ref()
            .map_or_else(String::new, |s| format!("{}:{}", s.host, s.port()))
    }

    async fn until_next_due(&self) -> Duration {
        match (self.store.next_outbox_due().await, self.store.clock().await) {
            (Ok(Some(at)), Ok(now)) => Duration::from_secs((at - now).clamp(0, IDLE_POLL.as_secs() as i64) as u64),
            _ => IDLE_POLL,
        }
    }

    /// Claims what is due (by `due_by` if given, else now), sends it,
    /// records the answers.
    async fn round(&self, due_by: Option<i64>) -> Result<Report> {
        let smtp = self.config.smtp.as_ref().expect("a courier has [smtp]");
        let outbox = &self.config.outbox;
        // The lease runs from the time written into the claim, not from
        // when the claim committed (it may have waited for a lock): a send
        // must start before the lease another sender sees has run out.
        let claimed_at = tokio::time::Instant::now();
        // The database's clock, which every instance shares: see Store::clock.
        let now = self.store.clock().await?;
        let (rows, suppressed) = self
            .store
            .claim_outbox(ClaimRules {
                now,
                due_by: due_by.unwrap_or(now),
                limit: self.round_size(smtp),
                lease_secs: outbox.lease.as_secs() as i64,
                per_ticket_limit: outbox.per_ticket_limit,
            })
            .await?;
        let mut report = Report {
            suppressed,
            ..Report::default()
        };
        if rows.is_empty() {
            return Ok(report);
        }
        let expected = rows.len();
        // Each round tries the relay again, at most one mail per connection
        // while it fails (the rest are handed back untried).
        self.relay.forget_fault();
        let (tx, rx) = mpsc::unbounded_channel();
        self.send_all(rows, tx, claimed_at);
        report.add(self.record_answers(rx, expected).await?);
        Ok(report)
    }

    /// Sends `rows` over up to `smtp.connections` connections, each answer
    /// to `answers`. Each send holds its connection slot until its answer
    /// is committed: a connection never starts its next mail while the
    /// previous one's answer could still be lost, so a crash repeats at most
    /// one mail per connection.
    fn send_all(&self, rows: Vec<Claimed>, answers: mpsc::UnboundedSender<Answer>, claimed_at: tokio::time::Instant) {
        let smtp = self.config.smtp.as_ref().expect("a courier has [smtp]");
        let slots = Arc::new(Semaphore::new(smtp.connections as usize));
        // A send must end, and its answer be recorded, before the claim's
        // lease does, or another sender could take the row over while it is
        // still in flight: one that could not start in time is handed back
        // instead.
        let last_start = claimed_at + self.config.outbox.send_window(smtp.timeout);
        for row in rows {
            let (answers, slots, courier) = (answers.clone(), slots.clone(), self.clone());
            tokio::spawn(async move {
                // Stopping, a mail not started is handed back at once: one
                // waiting for its slot (`smtp.max_per_minute`) kept the
                // round going past the stop's grace, its row left `sending`
                // until the lease ran out (found by a review). One already
                // started is finished and recorded. The slot is held until
                // the answer is committed (see above).
                let stopping = || Delivery::Unsent("not sent: mailroom is stopping; queued again".into());
                let slot = tokio::select! {
                    slot = slots.acquire_owned() => match slot {
                        Ok(slot) => Some(slot),
                        Err(_) => return,
                    },
                    () = courier.halted() => None,
                };
                let paced = match &slot {
                    None => None,
                    Some(_) => tokio::select! {
                        go = courier.pace(last_start) => Some(go),
                        () = courier.halted() => None,
                    },
                };
                let delivery = match paced {
                    None => stopping(),
                    _ if courier.is_halted() => stopping(),
                    // Once answers are no longer recorded (the store failed),
                    // a mail sent now would go out again after the lease.
                    Some(true) if answers.is_closed() => return,
                    Some(true) => match courier.relay.fault() {
                        Some(fault) => {
                            Delivery::Unsent(format!("not tried: the relay is failing ({fault}); queued again"))
                        }
                        None => courier.send_keeping_claim(&row, claimed_at).await,
                    },
                    Some(false) => {
                        Delivery::Unsent("not sent within the claim's lease (outbox.lease); queued again".into())
                    }
                };
                let (recorded, committed) = oneshot::channel();
                if answers.send((row, delivery, recorded)).is_ok() {
                    let _ = committed.await;
                }
                drop(slot);
            });
        }
    }

    /// Records the `expected` answers as they come, acknowledging each once
    /// committed. Group commit: the other connections' answers are usually
    /// a fraction of a millisecond behind; one fsync for all of them costs
    /// less than one each.
    async fn record_answers(&self, mut answers: mpsc::UnboundedReceiver<Answer>, expected: usize) -> Result<Report> {
        let connections = self.config.smtp.as_ref().map_or(1, |s| s.connections as usize);
        let mut report = Report::default();
        let mut recorded = 0;
        while let Some(first) = answers.recv().await {
            let mut group = vec![first];
            let in_flight = connections.min(expected - recorded);
            while group.len() < in_flight {
                match tokio::time::timeout(GROUP_WAIT, answers.recv()).await {
                    Ok(Some(more)) => group.push(more),
                    _ => break,
                }
            }
            let (group, acks): (Vec<(Claimed, Delivery)>, Vec<oneshot::Sender<()>>) =
                group.into_iter().map(|(r, d, ack)| ((r, d), ack)).unzip();
            for (row, d) in &group {
                log_delivery(row, d);
            }
            recorded += group.len();
            let started = std::time::Instant::now();
            let done = self.record(&group).await?;
            tracing::debug!(answers = group.len(), took = ?started.elapsed(), "answers recorded");
            for ack in acks {
                let _ = ack.send(());
            }
            if done.stale > 0 {
                tracing::warn!(
                    stale = done.stale,
                    "answers arrived after their claim was taken over (it could not be kept: see the warnings above)"
                );
            }
            report.add(done.into());
        }
        if recorded < expected {
            tracing::error!(
                expected,
                recorded,
                "some sends ended without an answer; they are retried after the lease"
            );
        }
        Ok(report)
    }

    /// Records a group of answers, trying again (three times in all) when
    /// the store fails for the moment (a deadlock with another writer, a
    /// dropped connection): an answer that is not recorded sends its mail
    /// again after the lease.
    async fn record(&self, group: &[(Claimed, Delivery)]) -> Result<Recorded> {
        let mut tries = 0;
        loop {
            tries += 1;
            let recorded = match self.record_rules().await {
                Ok(rules) => self.store.record_deliveries(group, rules).await,
                Err(e) => Err(e),
            };
            match recorded {
                Err(e) if e.is_transient() && tries < 3 => {
                    tracing::warn!(error = %e, "recording delivery answers failed; trying again");
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                done => return done,
            }
        }
    }

    async fn record_rules(&self) -> Result<RecordRules> {
        let outbox = &self.config.outbox;
        Ok(RecordRules {
            now: self.store.clock().await?,
            max_age_secs: outbox.max_age.as_secs() as i64,
            retry_min_secs: outbox.retry_min.as_secs() as i64,
            retry_max_secs: outbox.retry_max.as_secs() as i64,
            hard_bounce_limit: self.config.contacts.hard_bounce_limit,
        })
    }

    /// Resolves once the daemon stops; never for `outbox send`.
    async fn halted(&self) {
        if let Some(mut halt) = self.halt.clone()
            && halt.wait_for(|h| *h).await.is_ok()
        {
            return;
        }
        std::future::pending().await
    }

    fn is_halted(&self) -> bool {
        self.halt.as_ref().is_some_and(|h| *h.borrow())
    }

    /// Waits for the next send slot under `smtp.max_per_minute`; false,
    /// at once and without taking a slot, when that slot (or now, without a
    /// pace) is past `last_start`: a slot booked for a mail that will not be
    /// sent would delay every mail behind it.
    async fn pace(&self, last_start: tokio::time::Instant) -> bool {
        let (Some(pace), Some(per_minute)) = (&self.pace, self.config.smtp.as_ref().and_then(|s| s.max_per_minute))
        else {
            return tokio::time::Instant::now() < last_start;
        };
        let gap = Duration::from_secs(60) / per_minute;
        let slot = {
            let mut next = pace.lock().await;
            let slot = (*next).max(tokio::time::Instant::now());
            if slot >= last_start {
                return false;
            }
            *next = slot + gap;
            slot
        };
        tokio::time::sleep_until(slot).await;
        true
    }

    /// How many rows a round claims: what its connections take, and under
    /// `smtp.max_per_minute` no more than the pace lets go out within the
    /// claim's lease (the rest would only be handed back, one attempt spent).
    fn round_size(&self, smtp: &crate::config::smtp::SmtpConfig) -> usize {
        let by_connections = smtp.connections as usize * ROWS_PER_CONNECTION;
        match smtp.max_per_minute {
            Some(per_minute) => {
                let usable = self.config.outbox.send_window(smtp.timeout).as_secs();
                let by_pace = (usable * u64::from(per_minute)).div_ceil(60).max(1);
                by_connections.min(by_pace as usize)
            }
            None => by_connections,
        }
    }
}

fn log_delivery(row: &Claimed, delivery: &Delivery) {
    match delivery {
        Delivery::Sent(reply) => {
            tracing::debug!(id = row.id, ticket = ?row.ticket, to = %row.to, %reply, "notification sent")
        }
        Delivery::Transient(e) => {
            tracing::warn!(id = row.id, ticket = ?row.ticket, to = %row.to, attempt = row.attempts, error = %e, "notification deferred")
        }
        Delivery::Unsent(e) => {
            tracing::debug!(id = row.id, ticket = ?row.ticket, to = %row.to, reason = %e, "notification handed back unsent")
        }
        Delivery::Permanent { error, .. } => {
            tracing::warn!(id = row.id, ticket = ?row.ticket, to = %row.to, error = %error, "notification failed permanently")
        }
    }
}
