//! The one path every mail takes: parse → classify → gather facts → decide
//! → apply, one transaction per batch.
//!
//! `replay` and the IMAP daemon both hand batches of raw mails here, so a
//! fixture replayed in a test exercises exactly the code that runs in
//! production. A mail that fails anywhere is rolled back to its own
//! savepoint and quarantined with its raw bytes; the rest of the batch goes
//! on.

use std::sync::Arc;

use serde::Serialize;
use sqlx::{Acquire, SqliteConnection};

use crate::classify::classify;
use crate::config::Config;
use crate::directory::IgnoreRule;
use crate::error::{Error, Result};
use crate::message::{Message, ParseFailure};
use crate::notify::outbox::Renderer;
use crate::notify::templates::Templates;
use crate::store::apply::{Receipt, apply, record_unparseable};
use crate::store::{self, Store, directory, facts};
use crate::tickets::plan::{Outcome, Policy, decide};
use crate::tickets::tag::TagFormat;

/// One raw mail handed to the pipeline.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub raw: Vec<u8>,
    /// Where it came from: a file path, or `mailbox/UID`.
    pub source: String,
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

/// Counts of what a batch did; `replay` prints it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub processed: usize,
    pub new_tickets: usize,
    pub updates: usize,
    pub contacts_created: usize,
    pub ignored: usize,
    pub duplicates: usize,
    pub quarantined: usize,
    pub notifications: usize,
}

impl Summary {
    /// Adds another batch's counts.
    pub fn add(&mut self, o: &Summary) {
        self.processed += o.processed;
        self.new_tickets += o.new_tickets;
        self.updates += o.updates;
        self.contacts_created += o.contacts_created;
        self.ignored += o.ignored;
        self.duplicates += o.duplicates;
        self.quarantined += o.quarantined;
        self.notifications += o.notifications;
    }

    fn count(&mut self, outcome: Outcome) {
        self.processed += 1;
        match outcome {
            Outcome::NewTicket => self.new_tickets += 1,
            Outcome::Update => self.updates += 1,
            Outcome::Ignored => self.ignored += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::Quarantined => self.quarantined += 1,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "processed {}, new tickets {}, updates {}, contacts created {}, ignored {}, duplicates {}, quarantined {}, notifications queued {}",
            self.processed, self.new_tickets, self.updates, self.contacts_created, self.ignored, self.duplicates, self.quarantined, self.notifications
        )
    }
}

/// The processing pipeline with its loaded configuration.
#[derive(Clone)]
pub struct Pipeline {
    store: Store,
    config: Arc<Config>,
    templates: Arc<Templates>,
    tag: TagFormat,
    config_rules: Arc<Vec<IgnoreRule>>,
    clock: Clock,
}

impl Pipeline {
    /// Builds a pipeline; fails on an invalid tag or ignore rule.
    pub fn new(store: Store, config: Arc<Config>, templates: Arc<Templates>) -> Result<Pipeline> {
        let tag = TagFormat::new(&config.tickets.tag).map_err(|e| Error::Config(format!("tickets.tag: {e}")))?;
        let config_rules = config
            .intake
            .ignore
            .iter()
            .map(|p| IgnoreRule::parse(p).map_err(Error::Config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Pipeline { store, config, templates, tag, config_rules: Arc::new(config_rules), clock: Clock::Wall })
    }

    /// Uses another clock (see [`Clock`]).
    pub fn with_clock(mut self, clock: Clock) -> Pipeline {
        self.clock = clock;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn tag(&self) -> &TagFormat {
        &self.tag
    }

    /// The renderer for outbox rows.
    pub fn renderer(&self) -> Renderer<'_> {
        Renderer {
            templates: &self.templates,
            support_address: &self.config.mail.from,
            domain: &self.config.mail.domain,
            default_language: &self.config.notify.default_language,
        }
    }

    /// Processes a batch in one transaction; returns what it did per mail
    /// and in total. Only a failure of the transaction itself is an error.
    pub async fn process_batch(&self, mails: &[Incoming]) -> Result<(Summary, Vec<Outcome>)> {
        let mut tx = self.store.begin().await?;
        let mut rules = self.config_rules.as_ref().clone();
        rules.extend(directory::ignore_rules(&mut tx).await?.into_iter().map(|(_, r)| r));
        let mut summary = Summary::default();
        let mut outcomes = Vec::with_capacity(mails.len());
        for mail in mails {
            let mut sp = tx.begin().await?;
            let result = self.process_one(&mut sp, mail, &rules, None, &mut summary).await;
            let outcome = match result {
                Ok(outcome) => {
                    sp.commit().await?;
                    outcome
                }
                Err(e) => {
                    sp.rollback().await?;
                    tracing::warn!(source = %mail.source, error = %e, "mail could not be processed; quarantined");
                    self.quarantine_failed(&mut tx, mail, &e).await?
                }
            };
            summary.count(outcome);
            outcomes.push(outcome);
        }
        tx.commit().await?;
        Ok((summary, outcomes))
    }

    /// Gives a quarantined mail a second chance (after the directory or
    /// config changed); returns its new outcome.
    pub async fn reprocess(&self, quarantine_id: i64) -> Result<Outcome> {
        let mut tx = self.store.begin().await?;
        let row = sqlx::query_as::<_, (i64, String, Vec<u8>, Option<i64>)>(
            "SELECT m.id, m.source, r.bytes, q.released_at FROM quarantine q JOIN messages m ON m.id = q.message_row
             JOIN raw_mail r ON r.sha256 = m.raw_sha256 WHERE q.id = $1",
        )
        .bind(quarantine_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| Error::NotFound(format!("quarantined mail {quarantine_id}")))?;
        let (message_row, source, raw, released) = row;
        if released.is_some() {
            return Err(Error::Usage(format!("quarantined mail {quarantine_id} was already reprocessed")));
        }
        sqlx::query("UPDATE quarantine SET released_at = $2 WHERE id = $1")
            .bind(quarantine_id)
            .bind(store::now())
            .execute(&mut *tx)
            .await?;
        let mut rules = self.config_rules.as_ref().clone();
        rules.extend(directory::ignore_rules(&mut tx).await?.into_iter().map(|(_, r)| r));
        let mail = Incoming { raw, source };
        let mut summary = Summary::default();
        let outcome = self.process_one(&mut tx, &mail, &rules, Some(message_row), &mut summary).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn process_one(
        &self,
        conn: &mut SqliteConnection,
        mail: &Incoming,
        rules: &[IgnoreRule],
        reprocess: Option<i64>,
        summary: &mut Summary,
    ) -> Result<Outcome> {
        let wall = store::now();
        let msg = match Message::parse(&mail.raw) {
            Ok(m) => m,
            Err(failure) => return self.unparseable(conn, mail, &failure, wall, reprocess).await,
        };
        let received_at = match self.clock {
            Clock::DateHeader => msg.date.unwrap_or(wall),
            Clock::Wall => wall,
        };
        let class = classify(&msg, &self.config.mail.domain);
        let facts = facts::gather(conn, &msg, &self.tag, reprocess.is_some()).await?;
        let policy = Policy { config: &self.config, tag: &self.tag, ignore_rules: rules };
        let plan = decide(&msg, class, &facts, &policy, received_at);
        let receipt = Receipt { raw: &mail.raw, source: &mail.source, received_at, processed_at: wall };
        let applied = apply(conn, &msg, &plan, &receipt, &self.renderer(), &self.tag, reprocess).await?;
        summary.contacts_created += usize::from(applied.contact_created);
        summary.notifications += applied.notifications;
        tracing::debug!(source = %mail.source, key = %msg.key, outcome = plan.outcome.as_str(), ticket = ?applied.ticket, "processed");
        Ok(plan.outcome)
    }

    async fn unparseable(
        &self,
        conn: &mut SqliteConnection,
        mail: &Incoming,
        failure: &ParseFailure,
        wall: i64,
        reprocess: Option<i64>,
    ) -> Result<Outcome> {
        if let Some(row) = reprocess {
            // Still unparseable: put it back in quarantine as it was.
            sqlx::query("UPDATE quarantine SET released_at = NULL WHERE message_row = $1").bind(row).execute(conn).await?;
            return Ok(Outcome::Quarantined);
        }
        let receipt = Receipt { raw: &mail.raw, source: &mail.source, received_at: wall, processed_at: wall };
        record_unparseable(conn, failure, &receipt, "unparseable").await
    }

    /// A mail whose processing failed: keep it, quarantined, outside the
    /// rolled-back savepoint.
    async fn quarantine_failed(&self, conn: &mut SqliteConnection, mail: &Incoming, error: &Error) -> Result<Outcome> {
        let sha = crate::message::sha256_hex(&mail.raw);
        let failure = ParseFailure {
            key: format!("sha256:{sha}"),
            message_id: None,
            raw_sha256: sha,
            from: None,
            subject: None,
            reason: format!("processing failed: {error}"),
        };
        let wall = store::now();
        let receipt = Receipt { raw: &mail.raw, source: &mail.source, received_at: wall, processed_at: wall };
        record_unparseable(conn, &failure, &receipt, "processing_error").await
    }
}

impl Pipeline {
    /// Applies a hand action to ticket `number` at time `at` (close,
    /// escalate, approve) and queues its notifications in the same
    /// transaction; returns how many were queued.
    pub async fn act(&self, number: i64, action: crate::tickets::actions::Action, at: i64) -> Result<usize> {
        let mut tx = self.store.begin().await?;
        let ticket = facts::ticket_facts(&mut tx, number)
            .await?
            .ok_or_else(|| Error::NotFound(format!("ticket {number}")))?;
        let subs = match ticket.scope.account {
            Some(a) => facts::subscriptions_of(&mut tx, a).await?,
            None => Vec::new(),
        };
        let plan = crate::tickets::actions::decide_action(&ticket, action, &subs, &self.config)?;
        let queued = crate::store::apply::apply_action(&mut tx, number, action, &plan, at, &self.renderer(), &self.tag).await?;
        tx.commit().await?;
        Ok(queued)
    }
}
