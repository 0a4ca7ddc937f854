//! One task per mailbox: fetch new mail in chunks, commit, then handle it
//! on the server, then advance; wait in IDLE for more.
//!
//! Exactly-once, by construction: the store keeps UIDVALIDITY and the
//! highest UID handled. A chunk is fetched with `BODY.PEEK[]` (the server's
//! flags stay untouched), committed through the pipeline, and only then is
//! the `after` action applied and the high-water mark stored. A crash
//! anywhere in between re-fetches at restart at most the chunks in flight
//! (up to three), and the message-key dedupe turns them into no-ops. One
//! mailbox failing never touches the others: it backs off and retries on
//! its own. With several instances on one database, only the holder of
//! the mailbox's lease watches it (`ingest::lease`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::backoff::Backoff;
use super::chunk::{self, Fetched};
use super::command::{self, within};
use super::connect::{self, ConnectError, ImapSession};
use super::folder;
use super::idle::{self, Woken};
use super::refusals::{Refusals, Verdict};
use super::unreadable::{self, Trouble};
use crate::config::mailbox::{After, MailboxConfig};
use crate::ingest::lease::{Ended, Fleet, MailboxLease};
use crate::liveness::Heartbeat;
use crate::pipeline::{Chain, Pipeline, Prepared};

/// How long one IDLE lasts before it is renewed (RFC 2177 asks for < 29 min).
const IDLE_RENEW: Duration = Duration::from_secs(5 * 60);
/// How long a NOOP may take before the connection is declared dead.
const NOOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long LOGOUT is waited for.
const LOGOUT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a session may take to reach the end of its chunk once the
/// lease is lost, before it is dropped where it is.
const HANDOVER_GRACE: Duration = Duration::from_secs(10);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("{0}")]
    Store(#[from] crate::error::Error),
    #[error("the server did not answer NOOP within {0:?}")]
    Dead(Duration),
    #[error("{0}")]
    Server(String),
    /// A command the server answered `NO` or `BAD`: it works, and said no
    /// (a folder it will not create, a flag it will not set).
    #[error("{0}")]
    Refused(String),
}

/// Watches one mailbox until `shutdown` turns true, while this instance
/// holds the mailbox's lease; stands by while another instance does.
pub async fn run(
    mb: MailboxConfig,
    pipeline: Pipeline,
    fleet: Arc<Fleet>,
    mut shutdown: watch::Receiver<bool>,
    heartbeat: Heartbeat,
) {
    let store = pipeline.store().clone();
    let lease = MailboxLease::new(&fleet, &mb.name);
    while lease.acquire(&mut shutdown, &heartbeat).await {
        match watch_while_held(&mb, &pipeline, &lease, &fleet, &shutdown, &heartbeat).await {
            Held::Shutdown => {
                // Shut down while holding: say so, and hand the mailbox over.
                let _ = store.set_mailbox_state(&mb.name, "stopped", None).await;
                lease.release().await;
                tracing::info!(mailbox = %mb.name, "stopped");
                return;
            }
            // Lost the lease: the new holder reports the mailbox's state now.
            Held::Lost => {}
            Held::GaveUp => {
                lease.release().await;
                tokio::select! {
                    _ = tokio::time::sleep(SIT_OUT) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
    tracing::info!(mailbox = %mb.name, "stopped (standby)");
}

/// Why [`watch_while_held`] returned.
enum Held {
    Shutdown,
    /// The lease is another instance's now (or surplus, handed over).
    Lost,
    /// This instance could not reach the mailbox while others might: the
    /// lease is to be released, and not taken again for [`SIT_OUT`].
    GaveUp,
}

/// Sessions failed in a row (the server unreachable or refusing this
/// instance, 1 + 2 + 4 + 8 s of backoff) after which a holder hands the
/// mailbox to the other live instances. A holder whose own path to the
/// server was broken (its address banned, a stale password file, a
/// route) renewed its lease for ever while healthy standbys waited, the
/// mailbox unwatched (found by a review).
const GIVE_UP_AFTER: u32 = 4;

/// How long an instance that gave a mailbox up leaves it to the others:
/// if they fail too (the server is down for everyone) it comes back here
/// no later than the backoff's own 5 minutes would have tried again.
const SIT_OUT: Duration = Duration::from_secs(120);

/// Sessions with backoff until shutdown (false) or the lease is lost
/// (true). One renewal future lives across sessions, so failing sessions
/// do not delay renewals.
///
/// Losing the lease stops the session the way a shutdown does, at the end
/// of its chunk: dropped in the middle, a `move` without MOVE could leave a
/// mail copied but not expunged, to be copied again by the next holder.
async fn watch_while_held(
    mb: &MailboxConfig,
    pipeline: &Pipeline,
    lease: &MailboxLease,
    fleet: &Fleet,
    shutdown: &watch::Receiver<bool>,
    heartbeat: &Heartbeat,
) -> Held {
    let store = pipeline.store().clone();
    let mut shutdown = shutdown.clone();
    // What the session watches: set on shutdown or when the lease is lost.
    let (halt, halted) = watch::channel(false);
    let keeper = lease.keep();
    tokio::pin!(keeper);
    let mut backoff = Backoff::default();
    // Fetches failing at one mark, and the server refusing the `after`
    // action, across sessions (see `unreadable` and `refusals`).
    let trouble = std::sync::Mutex::new(Trouble::default());
    let refusals = std::sync::Mutex::new(Refusals::default());
    // Whether the lease ended as surplus (still ours, to hand over once the
    // session has stopped) rather than lost.
    let mut surplus = false;
    loop {
        heartbeat.beat();
        if *shutdown.borrow() {
            return Held::Shutdown;
        }
        let _ = store.set_mailbox_state(&mb.name, "connecting", None).await;
        let mut halted = halted.clone();
        let (outcome, lost) = {
            let troubles = Troubles {
                fetches: &trouble,
                after: &refusals,
            };
            let run = session(mb, pipeline, &mut halted, &mut backoff, troubles, heartbeat);
            tokio::pin!(run);
            let mut handover: Option<tokio::time::Instant> = None;
            let outcome = loop {
                tokio::select! {
                    outcome = &mut run => break Some(outcome),
                    ended = &mut keeper, if handover.is_none() => {
                        let _ = halt.send(true);
                        handover = Some(tokio::time::Instant::now() + HANDOVER_GRACE);
                        surplus = ended == Ended::Surplus;
                    }
                    r = shutdown.changed(), if !*halt.borrow() => {
                        if r.is_err() || *shutdown.borrow() {
                            let _ = halt.send(true);
                        }
                    }
                    () = tokio::time::sleep_until(handover.unwrap_or_else(tokio::time::Instant::now)), if handover.is_some() => break None,
                }
            };
            (outcome, handover.is_some())
        };
        if lost {
            if outcome.is_none() {
                tracing::warn!(mailbox = %mb.name, "the session did not stop within {HANDOVER_GRACE:?} of losing the lease; its chunk is fetched again by the new holder");
            }
            if surplus {
                lease.hand_over().await;
            }
            return Held::Lost;
        }
        match outcome {
            Some(Ok(())) | None => return Held::Shutdown,
            Some(Err(e)) => {
                if *shutdown.borrow() {
                    // Failed while stopping: nothing to retry.
                    tracing::warn!(mailbox = %mb.name, error = %e, "mailbox failed while stopping");
                    return Held::Shutdown;
                }
                let delay = backoff.next_delay();
                // The store failing is everyone's trouble, not this
                // instance's way to the server.
                let ours = !matches!(e, WatchError::Store(_));
                if ours && backoff.in_a_row() >= GIVE_UP_AFTER && fleet.others_live() {
                    tracing::warn!(mailbox = %mb.name, error = %e, failures = backoff.in_a_row(), sit_out = ?SIT_OUT,
                        "cannot work the mailbox from here; handing it to another instance");
                    let _ = store.set_mailbox_state(&mb.name, "backoff", Some(&e.to_string())).await;
                    return Held::GaveUp;
                }
                tracing::warn!(mailbox = %mb.name, error = %e, retry_in = ?delay, "mailbox failed; retrying");
                let _ = store.set_mailbox_state(&mb.name, "backoff", Some(&e.to_string())).await;
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => {}
                    ended = &mut keeper => {
                        if ended == Ended::Surplus {
                            lease.hand_over().await;
                        }
                        return Held::Lost;
                    }
                }
            }
        }
    }
}

/// One connection's life: drain, wait (IDLE or poll), repeat. Returns Ok
/// only on shutdown.
async fn session(
    mb: &MailboxConfig,
    pipeline: &Pipeline,
    shutdown: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
    troubles: Troubles<'_>,
    heartbeat: &Heartbeat,
) -> Result<(), WatchError> {
    let password = mb.password()?;
    let mut s = connect::open(mb, password.expose()).await?;
    drop(password);
    let caps = within("CAPABILITY", s.capabilities()).await?;
    let can_idle = caps.has_str("IDLE");
    let can_move = caps.has_str("MOVE");
    let has_uidplus = caps.has_str("UIDPLUS");
    if matches!(mb.after, After::Delete | After::Move(_))
        && !has_uidplus
        && !(can_move && matches!(mb.after, After::Move(_)))
    {
        return Err(WatchError::Server(format!(
            "after = \"{}\" needs UIDPLUS (or MOVE) so only our mails are expunged; the server has neither",
            mb.after
        )));
    }
    if let After::Move(folder) = &mb.after {
        // Creating an existing folder fails harmlessly; a folder the server
        // will not create shows when the first move is refused.
        if let Err(e) = within("CREATE", s.create(folder::encode(folder))).await {
            tracing::debug!(mailbox = %mb.name, folder = %folder, error = %e, "CREATE answered");
        }
    }
    tracing::info!(mailbox = %mb.name, host = %mb.host, idle = can_idle, "connected");
    // Off for the rest of the connection once the server refuses IDLE.
    let mut can_idle = can_idle;
    let store = pipeline.store().clone();
    // Until the server refuses IDLE on a check (`Woken::ChecksRefused`).
    let mut check = mb.idle_check();
    loop {
        heartbeat.beat();
        let selected = within("SELECT", s.select(folder::encode(&mb.folder))).await?;
        let uidvalidity = selected.uid_validity.unwrap_or(0);
        let marking = Marking {
            store: &store,
            mb,
            uidvalidity,
            can_move,
            troubles,
            heartbeat,
        };
        drain(&mut s, pipeline, marking, shutdown).await?;
        backoff.drained();
        if *shutdown.borrow() {
            log_out(&mut s).await;
            return Ok(());
        }
        if can_idle {
            store
                .set_mailbox_state(&mb.name, "idle", troubles.after_shown().as_deref())
                .await?;
            // Renewed on our own clock: servers send "* OK Still here" every
            // few minutes, which must not keep one IDLE open for ever.
            let wait = idle::Wait {
                renew: IDLE_RENEW,
                check,
                answer: NOOP_TIMEOUT,
            };
            match idle::idle(&mut s, wait, shutdown).await? {
                Woken::Stop => {
                    log_out(&mut s).await;
                    return Ok(());
                }
                Woken::ChecksRefused => check = None,
                Woken::Refused(text) => {
                    tracing::warn!(mailbox = %mb.name, every_s = mb.poll_seconds, "the server refused IDLE ({text}); polling on this connection instead");
                    can_idle = false;
                }
                Woken::News | Woken::Renew => {}
            }
        } else {
            store
                .set_mailbox_state(&mb.name, "polling", troubles.after_shown().as_deref())
                .await?;
            poll_wait(Duration::from_secs(mb.poll_seconds), shutdown, heartbeat).await;
        }
        heartbeat.beat();
        match tokio::time::timeout(NOOP_TIMEOUT, s.noop()).await {
            Ok(r) => r?,
            Err(_) => return Err(WatchError::Dead(NOOP_TIMEOUT)),
        }
        // Healthy only once a whole round went through (drain, wait, NOOP):
        // a failure after login (a misspelled folder, a refused FETCH, the
        // store down, a server that drops every IDLE) must back off further
        // each time, not log in again every second.
        backoff.reset();
    }
}

/// Waits `poll` between polls, or until shutdown, beating as it waits: a
/// long `poll_seconds` is a healthy wait, not a stalled task for the
/// watchdog.
async fn poll_wait(poll: Duration, shutdown: &mut watch::Receiver<bool>, heartbeat: &Heartbeat) {
    let until = tokio::time::Instant::now() + poll;
    while !*shutdown.borrow() {
        let now = tokio::time::Instant::now();
        if now >= until {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep((until - now).min(Duration::from_secs(60))) => {}
            changed = shutdown.changed() => if changed.is_err() { return },
        }
        heartbeat.beat();
    }
}

/// LOGOUT, without waiting long: the server may be what is failing, and a
/// shutdown has a deadline.
async fn log_out(s: &mut ImapSession) {
    if tokio::time::timeout(LOGOUT_TIMEOUT, s.logout()).await.is_err() {
        tracing::debug!("no answer to LOGOUT within {LOGOUT_TIMEOUT:?}; closing the connection");
    }
}

/// Fetches, commits and handles every mail above the high-water mark.
async fn drain(
    s: &mut ImapSession,
    pipeline: &Pipeline,
    marking: Marking<'_>,
    shutdown: &watch::Receiver<bool>,
) -> Result<(), WatchError> {
    let Marking {
        store, mb, uidvalidity, ..
    } = marking;
    let state = store.mailbox_state(&mb.name).await?;
    let mut last = match state.uidvalidity {
        Some(v) if v == i64::from(uidvalidity) => state.last_uid as u32,
        Some(v) => {
            tracing::warn!(mailbox = %mb.name, old = v, new = uidvalidity, "UIDVALIDITY changed: rescanning the folder (already processed mails are recognised)");
            0
        }
        None => 0,
    };
    // How often in a row an empty SEARCH that came with an EXISTS is run
    // again: a server announcing EXISTS with every answer must not spin us.
    let mut regrown = 0;
    loop {
        let found = command::uid_search(s, &format!("UID {}:*", last + 1)).await?;
        tracing::trace!(found = found.uids.len(), "searched");
        let uids: Vec<u32> = found.uids.into_iter().filter(|u| *u > last).collect();
        if uids.is_empty() {
            if found.grew && regrown < 3 {
                regrown += 1;
                continue;
            }
            if state.uidvalidity != Some(i64::from(uidvalidity)) && last == 0 {
                // A new (or renewed) folder with nothing in it: remember its
                // UIDVALIDITY now, or every pass would warn of a change again.
                store.advance_mailbox(&mb.name, uidvalidity, 0, 0).await?;
            }
            return Ok(());
        }
        regrown = 0;
        store.set_mailbox_state(&mb.name, "fetching", None).await?;
        // Sizes first, for the whole backlog (a line per mail): chunks are
        // cut by bytes as well as by count, so a backlog of large mails is
        // never held in memory 200 at a time.
        // By range, not by list: a backlog with many gaps would make a list
        // longer than the server takes on one line.
        let sizes: Vec<(u32, u32)> = command::uid_fetch(s, &format!("{}:*", last + 1), "(UID RFC822.SIZE)")
            .await?
            .into_iter()
            .filter_map(|f| f.uid.zip(f.size))
            .filter(|(uid, _)| *uid > last)
            .collect();
        let sized = chunk::backlog(sizes, &uids);
        tracing::trace!("sized");
        // Suspects of a failing fetch go one at a time, to find the one
        // the server cannot hand over (see `unreadable`).
        let one_by_one = marking
            .troubles
            .fetches
            .lock()
            .ok()
            .and_then(|t| t.one_by_one(uidvalidity, last));
        let chunks = chunk::chunks_within(&sized, mb.batch, chunk::CHUNK_BYTES, mb.max_message_bytes, one_by_one);
        let first = fetch_or_pass(s, pipeline, &marking, last, &chunks[0]).await;
        let mut next = Some(first.inspect_err(|e| marking.fetch_failed(last, &chunks[0], e))?);
        // The chunk ahead: processing on its task, settled once committed.
        let mut ahead: Option<InFlight> = None;
        // This drain's chunks commit in order or not at all (see Chain).
        let chain = Chain::default();
        for i in 0..chunks.len() {
            // Only a shutdown leaves a chunk unfetched before its turn.
            let Some((batch, current)) = next.take().filter(|_| !*shutdown.borrow()) else {
                break;
            };
            // The chunk is processed on a task of its own, so it runs on the
            // other core while this one reads and decodes the next chunk's
            // FETCH response and then settles the chunk ahead. It takes its
            // turn first: it is decided while the chunk ahead is written,
            // and commits after it. Fetching before settling keeps the
            // next chunk parsed and ready when this one's turn to be
            // decided ends, instead of waiting for the chunk ahead to
            // commit first. If this session is dropped meanwhile (lost
            // lease, shutdown), the task still ends its transaction:
            // committed or rolled back whole, never cut in the middle. A
            // prefetched chunk that is never committed is simply fetched
            // again later; only a committed chunk is marked on the server.
            let count = batch.mails().len();
            let turn = pipeline.turn(&chain).await;
            let processing = tokio::spawn({
                let pipeline = pipeline.clone();
                async move { pipeline.process_in_turn(turn, &batch).await.map(|_| ()) }
            });
            let this = InFlight {
                processing,
                chunk: current,
                count,
            };
            let following = chunks.get(i + 1).filter(|_| !*shutdown.borrow());
            let fetched = match following {
                Some(c) => fetch_or_pass(s, pipeline, &marking, last, c).await.map(Some),
                None => Ok(None),
            };
            let settled = match ahead.take() {
                Some(chunk) => chunk.settle(s, &marking, last).await,
                None => Ok(last),
            };
            match (settled, fetched) {
                (Ok(top), Ok(f)) => {
                    last = top;
                    next = f;
                }
                (Ok(top), Err(e)) => {
                    // The chunk processing now is settled if it commits: the
                    // session may still work (the fetch failed on a mail).
                    let mark = this.settle(s, &marking, top).await.unwrap_or(top);
                    marking.fetch_failed(mark, &chunks[i + 1], &e);
                    return Err(e);
                }
                (Err(e), fetched) => {
                    // Its commit stands whatever happens to the session.
                    let _ = this.processing.await;
                    // A fetch that failed first (a broken connection, say)
                    // is what made the settling fail: that is the cause.
                    if let Err(f) = &fetched {
                        marking.fetch_failed(last, &chunks[i + 1], f);
                    }
                    return Err(fetched.err().unwrap_or(e));
                }
            }
            ahead = Some(this);
        }
        if let Some(chunk) = ahead {
            last = chunk.settle(s, &marking, last).await?;
        }
        if *shutdown.borrow() {
            return Ok(());
        }
    }
}

impl Marking<'_> {
    /// Counts a fetch of `chunk` that failed with the mailbox at `mark`.
    fn fetch_failed(&self, mark: u32, chunk: &[(u32, u32)], error: &WatchError) {
        let uids: Vec<u32> = chunk.iter().map(|(uid, _)| *uid).collect();
        if let Ok(mut trouble) = self.troubles.fetches.lock() {
            trouble.fetch_failed(self.uidvalidity, mark, &uids, &error.to_string());
        }
    }
}

/// Where and how a drain marks committed chunks.
#[derive(Clone, Copy)]
struct Marking<'a> {
    store: &'a crate::store::Store,
    mb: &'a MailboxConfig,
    uidvalidity: u32,
    can_move: bool,
    troubles: Troubles<'a>,
    heartbeat: &'a Heartbeat,
}

/// What a mailbox task remembers across sessions of what went wrong.
#[derive(Clone, Copy)]
struct Troubles<'a> {
    fetches: &'a std::sync::Mutex<Trouble>,
    after: &'a std::sync::Mutex<Refusals>,
}

impl Troubles<'_> {
    /// What a caught-up mailbox reports as its error: the server's refusal
    /// of the `after` action on mails the mark passed, while it lasts.
    fn after_shown(&self) -> Option<String> {
        self.after.lock().ok().and_then(|r| r.shown())
    }
}

/// A chunk being processed, with what to mark on the server once it commits.
struct InFlight {
    processing: tokio::task::JoinHandle<crate::error::Result<()>>,
    chunk: Fetched,
    count: usize,
}

impl InFlight {
    /// Waits for the chunk's commit, then marks its mails on the server
    /// and records the new high-water mark, which it returns.
    async fn settle(self, s: &mut ImapSession, to: &Marking<'_>, last: u32) -> Result<u32, WatchError> {
        let Marking {
            store,
            mb,
            uidvalidity,
            can_move,
            troubles,
            heartbeat,
            ..
        } = *to;
        match self.processing.await {
            Ok(done) => done?,
            // Processing catches a panic in a mail's own handling and
            // quarantines that mail (Pipeline::process); one that gets
            // here is elsewhere, a bug that stops the daemon, which says so.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(WatchError::Server(format!("processing a chunk was cancelled: {e}"))),
        }
        // The chunk's mails are tickets already: a refusal that lasts lets
        // the mark pass them (see `refusals`).
        let acts = mb.after != After::Keep && !(self.chunk.whole.is_empty() && self.chunk.oversized.is_empty());
        match chunk::settle(s, mb, &self.chunk, can_move).await {
            Ok(()) if acts => {
                if let Ok(mut r) = troubles.after.lock() {
                    r.accepted();
                }
            }
            Ok(()) => {}
            Err(WatchError::Refused(text)) => {
                let shown = format!(
                    "after = \"{}\": {text} (the mails are stored and stay in {})",
                    mb.after, mb.folder
                );
                let verdict = troubles.after.lock().map(|mut r| r.refused(&text, shown));
                if verdict.ok() != Some(Verdict::Pass) {
                    return Err(WatchError::Refused(text));
                }
                tracing::warn!(mailbox = %mb.name, mails = self.count, error = %text, "the server refused the after action; the mails are stored and stay in the folder");
            }
            Err(e) => return Err(e),
        }
        let top = self.chunk.top.max(last);
        store.advance_mailbox(&mb.name, uidvalidity, top, self.count).await?;
        tracing::debug!(mailbox = %mb.name, mails = self.count, last_uid = top, "chunk committed");
        heartbeat.beat();
        Ok(top)
    }
}

/// [`fetch_prepared`], except for the one mail the server could not hand
/// over (`unreadable`): what stands in for it is committed in its place,
/// with nothing to settle on the server, and the mark passes it.
async fn fetch_or_pass(
    s: &mut ImapSession,
    pipeline: &Pipeline,
    m: &Marking<'_>,
    mark: u32,
    chunk: &[(u32, u32)],
) -> Result<(Prepared, Fetched), WatchError> {
    let culprit = match chunk {
        [(uid, _)] => m.troubles.fetches.lock().ok().and_then(|t| {
            t.culprit(m.uidvalidity, mark, *uid)
                .map(|said| (*uid, said.to_string()))
        }),
        _ => None,
    };
    let Some((uid, said)) = culprit else {
        let fetched = fetch_prepared(s, m.mb, pipeline, m.uidvalidity, chunk).await?;
        if let Ok(mut trouble) = m.troubles.fetches.lock() {
            trouble.fetched(chunk.len());
        }
        return Ok(fetched);
    };
    tracing::warn!(mailbox = %m.mb.name, uid, error = %said, "the server failed every fetch of this mail, alone and with others: quarantined as unreadable and passed; it stays in the folder");
    if let Ok(mut trouble) = m.troubles.fetches.lock() {
        trouble.passed(uid);
    }
    let placeholder = unreadable::placeholder(m.mb, m.uidvalidity, uid, &said);
    let passed = Fetched {
        mails: Vec::new(),
        whole: Vec::new(),
        oversized: Vec::new(),
        top: uid,
    };
    Ok((pipeline.prepare(vec![placeholder]), passed))
}

/// Fetches a chunk and parses it on a blocking thread; with what to settle
/// on the server once it commits (its mails moved into the batch).
async fn fetch_prepared(
    s: &mut ImapSession,
    mb: &MailboxConfig,
    pipeline: &Pipeline,
    uidvalidity: u32,
    chunk: &[(u32, u32)],
) -> Result<(Prepared, Fetched), WatchError> {
    let mut fetched = chunk::fetch(s, mb, uidvalidity, chunk).await?;
    let mails = std::mem::take(&mut fetched.mails);
    tracing::trace!(mails = mails.len(), "fetched");
    let parser = pipeline.clone();
    let batch = tokio::task::spawn_blocking(move || parser.prepare(mails))
        .await
        .map_err(|e| WatchError::Server(format!("parsing a fetched chunk failed: {e}")))?;
    Ok((batch, fetched))
}
