//! A send in flight: its claim kept while the relay takes its time, and
//! what is recorded of it when the daemon stops before the relay answered.
//!
//! A relay that filters mail before it answers the end of it (a
//! before-queue content filter, a milter) may take minutes
//! ([`END_OF_MAIL_WAIT`]). The row's claim would run out meanwhile, and
//! another sender (another instance, the next round) take it over and send
//! the mail again; so the claim is renewed while the answer is awaited.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Courier;
use super::relay::END_OF_MAIL_WAIT;
use crate::store::outbox::{Claimed, Delivery};

/// What a send still in flight gets after SIGTERM: its answer is then
/// recorded well within the stop's grace (9 s).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The longest one renewal of a claim may take: a store busy for longer
/// (SQLite's writer in a long batch) is tried again a second later, not a
/// third of a lease later, and the send's answer is not left unread.
const RENEWAL_WAIT: Duration = Duration::from_secs(2);

impl Courier {
    /// Sends `row`, keeping its claim while the send is in flight: from a
    /// third of the lease after the claim, the claim is renewed for another
    /// lease every third of one. Each renewal beats the daemon's liveness,
    /// since the round waits for this answer. Stopping, a send still in
    /// flight gets [`STOP_WAIT`] more; then, if the relay had the whole
    /// mail, it is recorded as maybe delivered and retried, else handed
    /// back unsent, instead of staying `sending` until its lease ran out
    /// after the process was gone.
    pub(super) async fn send_keeping_claim(&self, row: &Claimed, claimed_at: tokio::time::Instant) -> Delivery {
        let lease = self.config.outbox.lease;
        let every = lease / 3;
        let renewal_wait = RENEWAL_WAIT.min(every / 2);
        let handed_over = AtomicBool::new(false);
        let send = self.relay.send(row, END_OF_MAIL_WAIT, &handed_over);
        tokio::pin!(send);
        let stopping = async {
            self.halted().await;
            tokio::time::sleep(STOP_WAIT).await;
        };
        tokio::pin!(stopping);
        let mut renew_at = Some(claimed_at + every);
        loop {
            let renewal = async {
                match renew_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                delivery = &mut send => return delivery,
                () = &mut stopping => {
                    return if handed_over.load(Ordering::SeqCst) {
                        Delivery::Transient(
                            "mailroom stopped before the relay answered the end of the mail: it may have been delivered; queued again"
                                .into(),
                        )
                    } else {
                        Delivery::Unsent("not sent: mailroom stopped while the relay was being reached; queued again".into())
                    };
                }
                () = renewal => {
                    if let Some(beat) = &self.heartbeat {
                        beat.beat();
                    }
                    let kept = tokio::time::timeout(renewal_wait, self.store.keep_claim(row.id, &row.token, lease)).await;
                    renew_at = match kept {
                        Ok(Ok(true)) => {
                            tracing::debug!(id = row.id, "claim kept while the relay takes its time");
                            Some(tokio::time::Instant::now() + every)
                        }
                        Ok(Ok(false)) => {
                            tracing::warn!(id = row.id, "the claim on a notification in flight was taken over; its answer will not be recorded");
                            None
                        }
                        failed => {
                            let error = match failed {
                                Ok(Err(e)) => e.to_string(),
                                _ => format!("no answer from the store within {renewal_wait:?}"),
                            };
                            tracing::warn!(id = row.id, %error, "could not keep the claim on a notification in flight; trying again in a second");
                            Some(tokio::time::Instant::now() + Duration::from_secs(1))
                        }
                    };
                }
            }
        }
    }
}
