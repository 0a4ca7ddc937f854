//! `mailroom run`: the long-running service, and `mailroom status`.
//!
//! One task per mailbox, one for outbox delivery, a main loop that reports to systemd (READY=1 once
//! migrations ran and every mailbox task started, STATUS= per mailbox,
//! WATCHDOG=1 only while the store answers), and explicit shutdown: on
//! SIGTERM/SIGINT every task finishes and commits its current chunk, logs
//! out, and the process exits 0 within 10 s. SIGHUP re-reads the config and
//! the templates; an invalid config keeps the old one. A task that dies or
//! stops making progress stops the daemon or starves the watchdog, so that
//! systemd restarts it rather than a mailbox going silently unwatched.

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
use crate::liveness::{Liveness, Tasks};
use crate::notify::templates::Templates;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::store::mailboxes::MailboxState;

/// How long tasks get to finish their chunk after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(9);
/// How often STATUS= and the watchdog are refreshed.
const TICK: Duration = Duration::from_secs(2);
/// How long a task may go without beating: its longest legitimate wait is
/// one IMAP command's deadline (10 min) after an IDLE of 5 min.
const STALL_LIMIT: Duration = Duration::from_secs(16 * 60);

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
    // Fail at start, not in a retry loop, when a secret or a CA file is
    // missing (the relay was checked as the courier built it).
    super::preflight_mailboxes(config)?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| Error::io("SIGTERM handler", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Error::io("SIGINT handler", e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::io("SIGHUP handler", e))?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Tasks::default();
    let names: Vec<&str> = config.mailboxes.iter().map(|m| m.name.as_str()).collect();
    let fleet = Fleet::new(store.clone(), &names, config.database.mailbox_lease);
    // Every daemon says it runs, a sender without mailboxes too: `db copy`
    // refuses a store in use by one (a copy made while it sends would send
    // the same notifications again from the copy).
    tasks.spawn("instance heartbeat", |beat| fleet.clone().run(stopped.clone(), beat));
    for mb in &config.mailboxes {
        let (mb, pipeline, fleet, stopped) = (mb.clone(), pipeline.clone(), fleet.clone(), stopped.clone());
        tasks.spawn(&format!("mailbox {}", mb.name), |beat| {
            imap::run(mb, pipeline, fleet, stopped, beat)
        });
    }
    if let Some(courier) = courier {
        tasks.spawn("outbox delivery", |beat| {
            courier.run(pipeline.outbox_ready(), stopped.clone(), beat)
        });
    }
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
    tracing::info!(mailboxes = config.mailboxes.len(), "mailroom running");
    let names: Vec<String> = config.mailboxes.iter().map(|m| m.name.clone()).collect();
    let mut tick = tokio::time::interval(TICK);
    // A slow store must not queue reports that then crowd out a signal.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A task that ends before shutdown is a bug (a panic, say): its mailbox
    // or the delivery would stop for good while the rest looks healthy.
    // The daemon stops and exits non-zero, so systemd restarts it.
    let mut failure: Option<String> = None;
    loop {
        tokio::select! {
            biased;
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(origin.as_deref(), config, &pipeline),
            ended = tasks.ended() => {
                tracing::error!("{ended} while the daemon was running; stopping so that it is restarted");
                failure = Some(ended);
                break;
            }
            _ = tick.tick() => {
                // Never longer than a tick: signals wait while a report runs.
                if tokio::time::timeout(TICK, report(store, &names, tasks.liveness())).await.is_err() {
                    tracing::warn!("the store did not answer within {TICK:?}; withholding the watchdog");
                }
            }
        }
    }
    tracing::info!("stopping: finishing the current chunks");
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    let _ = stop.send(true);
    let finished = tasks.finish(STOP_GRACE).await;
    if finished.aborted {
        tracing::warn!("some tasks did not stop within {STOP_GRACE:?}; their uncommitted chunk will be fetched again");
    }
    if let Some(panicked) = finished.panicked {
        tracing::error!("{panicked} while stopping");
        failure.get_or_insert(panicked);
    }
    match failure {
        Some(what) => Err(Error::Daemon(format!("{what}; see the log above"))),
        None => Ok(()),
    }
}

/// Sections read only at start: a change to them waits for a restart.
const RESTART_SECTIONS: &str =
    "[database], [[mailbox]], [smtp], [outbox], and the sender address and hard-bounce limit delivery uses";

/// SIGHUP: a valid new config, with its templates, replaces the old one for
/// every batch from now on: ignore rules, intake, tickets, contacts,
/// notification groups, mail and templates. Changes to the sections that
/// hold connections are named and wait for a restart.
fn reload(origin: Option<&std::path::Path>, running: &Config, pipeline: &Pipeline) {
    let loaded = Config::load(origin).and_then(|(config, _)| {
        let templates = Templates::load(config.templates.dir.as_deref())?;
        Ok((config, templates))
    });
    let (config, templates) = match loaded {
        Ok(pair) => pair,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the new config is invalid; keeping the old one");
            return;
        }
    };
    let waiting = restart_needed(running, &config);
    if let Err(e) = pipeline.reload(config, templates) {
        tracing::error!(error = %e, "SIGHUP: the new config is invalid; keeping the old one");
        return;
    }
    tracing::info!("SIGHUP: config and templates reloaded (the directory is read from the store on every batch)");
    if !waiting.is_empty() {
        tracing::warn!(
            sections = %waiting.join(", "),
            "SIGHUP: these sections changed and take effect only at restart ({RESTART_SECTIONS} are read at start)"
        );
    }
}

/// The start-only sections that differ between the running config and a
/// new one (compared through their Debug forms, which redact secrets: a
/// changed password alone is not noticed).
fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    // By value, not by the redacted Debug text: a changed plain password
    // must be reported too.
    let mut out = Vec::new();
    if running.database != new.database {
        out.push("[database]");
    }
    if running.mailboxes != new.mailboxes {
        out.push("[[mailbox]]");
    }
    if running.smtp != new.smtp {
        out.push("[smtp]");
    }
    if running.outbox != new.outbox {
        out.push("[outbox]");
    }
    // Delivery builds its relay, with its From address, and its bounce
    // rule at start; batches take the new values at once.
    if running.support_address() != new.support_address() {
        out.push("smtp.from / mail.from (the From of notifications sent)");
    }
    if running.contacts.hard_bounce_limit != new.contacts.hard_bounce_limit {
        out.push("contacts.hard_bounce_limit (for refusals by the relay)");
    }
    out
}

/// STATUS= with each mailbox's state; WATCHDOG=1 only if the store answered
/// and every task beat recently.
async fn report(store: &Store, names: &[String], liveness: &Liveness) {
    let stalled = liveness.stalled(STALL_LIMIT);
    match store.mailbox_states().await {
        Ok(states) => {
            let now = store.now();
            let mut parts: Vec<String> = names
                .iter()
                .map(|n| match states.iter().find(|s| &s.name == n) {
                    Some(s) => summary(s, now),
                    None => format!("{n}: starting"),
                })
                .collect();
            if let Ok((waiting, failed)) = store.outbox_backlog().await {
                parts.push(format!("outbox: {waiting} waiting, {failed} failed"));
            }
            for (task, silent) in &stalled {
                parts.push(format!("{task}: stuck for {}s", silent.as_secs()));
            }
            let status = parts.join("; ");
            if stalled.is_empty() {
                let _ = sd_notify::notify(false, &[NotifyState::Status(&status), NotifyState::Watchdog]);
            } else {
                tracing::error!(tasks = ?stalled, "tasks made no progress for {STALL_LIMIT:?}; withholding the watchdog so that systemd restarts the daemon");
                let _ = sd_notify::notify(false, &[NotifyState::Status(&status)]);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mailbox_password: &str, poll: u32) -> Config {
        let text = format!(
            "[[mailbox]]\nname = \"support\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\n\
             password = \"{mailbox_password}\"\npoll_seconds = {poll}\n[tickets]\nreopen_days = {poll}\n"
        );
        Config::parse(&text, "m.toml").unwrap()
    }

    /// A reload names what it cannot apply, a changed password included
    /// (whose Debug text is masked, so it must be compared by value).
    #[test]
    fn a_reload_names_the_sections_that_need_a_restart() {
        let running = config("old-secret", 30);
        assert!(restart_needed(&running, &config("old-secret", 30)).is_empty());
        assert_eq!(restart_needed(&running, &config("new-secret", 30)), vec!["[[mailbox]]"]);
        assert_eq!(restart_needed(&running, &config("old-secret", 31)), vec!["[[mailbox]]"]);
        let mut tickets_only = running.clone();
        tickets_only.tickets.reopen_days = 3;
        assert!(restart_needed(&running, &tickets_only).is_empty());
        // Delivery's sender and bounce rule are fixed at start too.
        let mut mail = running.clone();
        mail.mail.from = "desk@provider.test".into();
        mail.contacts.hard_bounce_limit += 1;
        assert_eq!(
            restart_needed(&running, &mail),
            vec![
                "smtp.from / mail.from (the From of notifications sent)",
                "contacts.hard_bounce_limit (for refusals by the relay)"
            ]
        );
    }
}
