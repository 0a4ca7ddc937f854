//! Holding a mailbox's lease while watching it, so that of several
//! instances on one database exactly one ingests each mailbox, and a
//! standby takes over within `database.mailbox_lease` when the holder dies.
//!
//! With lease time L and poll interval P = L/10: the holder writes an
//! expiry of L − P and renews it every L/5; a standby asks every P. A dead
//! holder's expiry is at most L − P after its last renewal, so a standby
//! has the mailbox within L. A holder that cannot renew (database gone)
//! stops ingesting once half its expiry has passed since the last
//! renewal, well before anyone else may take over; the message-key dedupe
//! covers even a holder frozen past its expiry.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::Store;
use crate::store::leases::instance_id;

/// This instance's claim on one mailbox.
#[derive(Debug, Clone)]
pub struct MailboxLease {
    store: Store,
    name: String,
    /// The expiry written on every renewal (L − P).
    expiry: Duration,
    renew_every: Duration,
    poll_every: Duration,
}

impl MailboxLease {
    /// The lease on mailbox `name`, with takeover time `lease`.
    pub fn new(store: Store, name: &str, lease: Duration) -> MailboxLease {
        let poll_every = (lease / 10).max(Duration::from_millis(100));
        MailboxLease {
            store,
            name: name.to_string(),
            expiry: lease.saturating_sub(poll_every),
            renew_every: lease / 5,
            poll_every,
        }
    }

    /// Waits until this instance holds the lease: at once when the mailbox
    /// is free, else as a standby until the holder releases it or dies.
    /// False if shutdown came first.
    pub async fn acquire(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut announced = false;
        loop {
            if *shutdown.borrow() {
                return false;
            }
            match self.store.hold_mailbox(&self.name, instance_id(), self.expiry).await {
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
                Err(e) => tracing::warn!(mailbox = %self.name, error = %e, "cannot reach the lease; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.poll_every) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Renews the lease; returns only once it is lost (taken by another
    /// instance, or not renewed for half its expiry). Run it beside the
    /// work the lease covers, which stops when this returns.
    pub async fn keep(&self) {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(self.renew_every).await;
            match self.store.hold_mailbox(&self.name, instance_id(), self.expiry).await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!(mailbox = %self.name, "the mailbox's lease was taken over; stopping");
                    return;
                }
                Err(e) if renewed.elapsed() >= self.expiry / 2 => {
                    tracing::warn!(mailbox = %self.name, error = %e, "cannot renew the mailbox's lease; stopping before it runs out");
                    return;
                }
                Err(e) => {
                    tracing::warn!(mailbox = %self.name, error = %e, "renewing the mailbox's lease failed; retrying")
                }
            }
        }
    }

    /// Hands the mailbox to a standby at once (on shutdown).
    pub async fn release(&self) {
        if let Err(e) = self.store.release_mailbox(&self.name, instance_id()).await {
            tracing::warn!(mailbox = %self.name, error = %e, "could not release the mailbox's lease; it runs out by itself");
        }
    }
}
