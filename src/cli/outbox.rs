//! `mailroom outbox …`: what is queued, sending, sent, failed or
//! suppressed, and the hand actions on it.

use std::sync::Arc;

use clap::Subcommand;

use super::output::print_list;
use crate::config::Config;
use crate::deliver::Courier;
use crate::error::{Error, Result};
use crate::store::{Store, views};

/// `mailroom outbox …`
#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    /// Notifications with their status, attempts, next attempt and last error.
    List {
        /// Only rows with this status (queued, sending, sent, failed, suppressed).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Send everything due now over [smtp], then exit (cron-style use).
    Send,
    /// Queue a failed or suppressed notification again.
    Retry {
        /// The row's id (from `outbox list`).
        id: i64,
    },
}

const STATUSES: &[&str] = &["queued", "sending", "sent", "failed", "suppressed"];

pub async fn outbox(cmd: OutboxCmd, config: &Config, store: &Store) -> Result<()> {
    match cmd {
        OutboxCmd::List { status, json } => {
            if let Some(s) = &status
                && !STATUSES.contains(&s.as_str())
            {
                return Err(Error::Usage(format!(
                    "--status {s:?} is not one of {}",
                    STATUSES.join(", ")
                )));
            }
            let mut conn = store.pool().acquire().await?;
            let rows: Vec<_> = views::outbox(&mut conn)
                .await?
                .into_iter()
                .filter(|r| status.as_deref().is_none_or(|s| r.status == s))
                .collect();
            print_list(
                &rows,
                json,
                &[
                    "id",
                    "ticket",
                    "event",
                    "to",
                    "status",
                    "attempts",
                    "next_attempt",
                    "last_error",
                    "subject",
                ],
            )
        }
        OutboxCmd::Send => {
            let courier = Courier::new(store.clone(), Arc::new(config.clone()))?.ok_or_else(|| {
                Error::Config("no [smtp] section in the config: nowhere to send notifications to".into())
            })?;
            let report = courier.drain().await?;
            println!("{report}");
            Ok(())
        }
        OutboxCmd::Retry { id } => {
            store.retry_outbox(id, store.now()).await?;
            println!("outbox row {id} queued again");
            Ok(())
        }
    }
}
