//! What an operator asks of the pipeline outside the flow of mail: a
//! quarantined mail processed again, a hand action on a ticket. Each is
//! one transaction of its own, decided by the same core as mail.

use super::{Chain, Incoming, Pipeline, Turn};
use crate::error::{Error, Result};
use crate::store;
use crate::store::apply::Batch;
use crate::store::changes::Changes;
use crate::store::snapshot::Snapshot;
use crate::tickets::plan::Outcome;

impl Pipeline {
    /// Gives a quarantined mail a second chance (after the directory or
    /// config changed); returns its new outcome, and the quarantine entry
    /// it is in now if it was quarantined again. `whole` is the whole mail
    /// of an entry quarantined as too large, of which only the headers
    /// were kept: it must be the same mail (its key), and replaces them.
    pub async fn reprocess(&self, quarantine_id: i64, whole: Option<Vec<u8>>) -> Result<(Outcome, Option<i64>)> {
        let mut conn = self.store.pool().acquire().await?;
        let row = store::views::quarantined_mail(&mut conn, quarantine_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("quarantined mail {quarantine_id}")))?;
        drop(conn);
        if row.released_at.is_some() {
            return Err(Error::Usage(format!(
                "quarantined mail {quarantine_id} was already reprocessed"
            )));
        }
        if row.reason == super::UNREADABLE {
            // Nothing of the mail is stored, only where it is.
            return Err(Error::Usage(format!(
                "quarantined mail {quarantine_id} could not be fetched from the server: nothing of it is stored; \
                 once the server can read it, move it out of its folder and back in (it comes in as a new mail), \
                 or save it as a file and `mailroom replay` it"
            )));
        }
        let too_large = row.reason == super::TOO_LARGE;
        let raw = match whole {
            // Only its headers were kept: run again, it would open a ticket
            // with an empty body and keep the rest of the mail out for good
            // (the whole mail replayed later is a duplicate of this one).
            None if too_large => {
                return Err(Error::Usage(format!(
                    "quarantined mail {quarantine_id} is too_large: only its headers were kept; give the whole mail with --eml FILE"
                )));
            }
            None => row.raw,
            Some(_) if !too_large => {
                return Err(Error::Usage(format!(
                    "quarantined mail {quarantine_id} was kept whole ({}): --eml is for too_large mail",
                    row.reason
                )));
            }
            Some(whole) => {
                let key = match crate::message::Message::parse(&whole) {
                    Ok(m) => m.key,
                    Err(f) => f.key,
                };
                if key != row.message_key {
                    return Err(Error::Usage(format!(
                        "the file is another mail ({key}), not quarantined mail {quarantine_id} ({})",
                        row.message_key
                    )));
                }
                whole
            }
        };
        let (message_row, source) = (row.message_row, row.source);
        let mail = self.prepare(vec![Incoming::new(raw, source)]);
        // In line with the daemon's batches, if this process runs any, and
        // voiding the snapshot they carry: the mail's effects are not in it.
        let Turn { mut carry, place, .. } = self.turn(&Chain::default()).await;
        place.reached().await;
        carry.kept = None;
        self.line.reset();
        let (_, outcomes) = self
            .try_batch(&mail, Some(message_row), Some(quarantine_id), None)
            .await?;
        let mut conn = self.store.pool().acquire().await?;
        let again = store::views::open_quarantine_of(&mut conn, message_row).await?;
        Ok((outcomes[0], again))
    }

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
