//! `mailroom run`: the long-running service, and `mailroom status`.
//!
//! One task per mailbox, one for outbox delivery, a main loop that reports to systemd (READY=1 once
//! migrations ran and every mailbox task started, STATUS= per mailbox,
//! WATCHDOG=1 only while the store answers), and explicit shutdown: on
//! SIGTERM/SIGINT every task finishes and commits its current chunk, logs
//! out, and the process exits 0 within 10 s. SIGHUP re-reads the config and
//! reloads the templates; an invalid config keeps the old one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::output::print_list;
use crate::config::Config;
use crate::deliver::Courier;
use crate::error::{Error, Result};
use crate::ingest::imap::watch as imap;
use crate::ingest::lease::Fleet;
use crate::notify::templates::Templates;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::store::mailboxes::MailboxState;

/// How long tasks get to finish their chunk after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(9);
/// How often STATUS= and the watchdog are refreshed.
const TICK: Duration = Duration::from_secs(2);

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(config: &Config, origin: Option<PathBuf>, store: &Store, pipeline: Pipeline) -> Result<()> {
    if config.mailboxes.is_empty() && config.smtp.is_none() {
        return Err(Error::Config(
            "no [[mailbox]] and no [smtp] in the config: nothing to watch or send (see config.example.toml); `mailroom replay` processes files".into(),
        ));
    }
    let courier = Courier::new(store.clone(), Arc::new(config.clone()))?;
    if courier.is_none() {
        tracing::warn!("no [smtp] in the config: notifications stay queued (see `mailroom outbox list`)");
    }
    for mb in &config.mailboxes {
        // Fail at start, not in a retry loop, when a secret is missing.
        mb.password()?;
    }
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::io("SIGINT handler", e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::io("SIGHUP handler", e))?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let names: Vec<&str> = config.mailboxes.iter().map(|m| m.name.as_str()).collect();
    let fleet = Fleet::new(store.clone(), &names, config.database.mailbox_lease);
    if !config.mailboxes.is_empty() {
        tasks.spawn(fleet.clone().run(stopped.clone()));
    }
    for mb in &config.mailboxes {
        tasks.spawn(imap::run(mb.clone(), pipeline.clone(), fleet.clone(), stopped.clone()));
    }
    if let Some(courier) = courier {
        tasks.spawn(courier.run(pipeline.outbox_ready(), stopped.clone()));
    }
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
    tracing::info!(mailboxes = config.mailboxes.len(), "mailroom running");
    let names: Vec<String> = config.mailboxes.iter().map(|m| m.name.clone()).collect();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(origin.as_deref(), &pipeline),
            _ = tick.tick() => report(store, &names).await,
        }
    }
    tracing::info!("stopping: finishing the current chunks");
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    let _ = stop.send(true);
    let finished = tokio::time::timeout(STOP_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        tracing::warn!(
            "some mailboxes did not stop within {STOP_GRACE:?}; their uncommitted chunk will be fetched again"
        );
        tasks.abort_all();
    }
    Ok(())
}

/// SIGHUP: a valid new config's templates replace the old ones.
fn reload(origin: Option<&std::path::Path>, pipeline: &Pipeline) {
    let loaded = Config::load(origin).and_then(|(config, _)| Templates::load(config.templates.dir.as_deref()));
    match loaded {
        Ok(templates) => {
            pipeline.reload_templates(templates);
            tracing::info!("SIGHUP: templates reloaded (the directory is read from the store on every batch)");
        }
        Err(e) => tracing::error!(error = %e, "SIGHUP: the new config is invalid; keeping the old one"),
    }
}

/// STATUS= with each mailbox's state; WATCHDOG=1 only if the store answered.
async fn report(store: &Store, names: &[String]) {
    match store.mailbox_states().await {
        Ok(states) => {
            let now = crate::store::now();
            let parts: Vec<String> = names
                .iter()
                .map(|n| match states.iter().find(|s| &s.name == n) {
                    Some(s) => summary(s, now),
                    None => format!("{n}: starting"),
                })
                .collect();
            let mut parts = parts;
            if let Ok((waiting, failed)) = store.outbox_backlog().await {
                parts.push(format!("outbox: {waiting} waiting, {failed} failed"));
            }
            let _ = sd_notify::notify(false, &[NotifyState::Status(&parts.join("; ")), NotifyState::Watchdog]);
        }
        Err(e) => tracing::warn!(error = %e, "the store does not answer; withholding the watchdog"),
    }
}

/// `support: idle, 3214 mails, last 2s ago`
fn summary(s: &MailboxState, now: i64) -> String {
    let mut out = format!("{}: {}, {} mails", s.name, s.state, s.ingested);
    if s.holder
        .as_deref()
        .is_some_and(|h| h != crate::store::leases::instance_id())
    {
        // Another instance ingests it; this one stands by.
        out.push_str(" (standby here)");
    }
    if let Some(at) = s.last_mail_at {
        out.push_str(&format!(", last {}s ago", (now - at).max(0)));
    }
    out
}

/// `mailroom status`: every mailbox's progress from the store.
pub async fn status(store: &Store, config: &Config, json: bool) -> Result<()> {
    let mut states = store.mailbox_states().await?;
    for mb in &config.mailboxes {
        if !states.iter().any(|s| s.name == mb.name) {
            states.push(MailboxState {
                name: mb.name.clone(),
                state: "never started".into(),
                ..Default::default()
            });
        }
    }
    print_list(
        &states,
        json,
        &[
            "name",
            "state",
            "uidvalidity",
            "last_uid",
            "ingested",
            "last_mail_at",
            "last_error",
            "holder",
        ],
    )
}
