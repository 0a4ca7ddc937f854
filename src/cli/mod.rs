//! The command line: a stable interface that scripts and tests rely on.
//!
//! Each subcommand opens the store with the loaded config and does one
//! thing. Errors come back as [`crate::error::Error`]; `main` prints them as
//! one sentence on stderr and exits 2 for usage/config errors, 1 otherwise.

mod accounts;
mod contacts;
mod db;
mod directory;
mod ignore;
mod mail;
mod outbox;
mod output;
mod run;
mod subscriptions;
mod tickets;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{Config, redact_url};
use crate::error::Result;
use crate::notify::templates::Templates;
use crate::pipeline::Pipeline;
use crate::store::Store;

/// mailroom: support mailboxes in, tickets and notifications out.
#[derive(Debug, Parser)]
#[command(name = "mailroom", version, about)]
pub struct Cli {
    /// Config file (default: $MAILROOM_CONFIG, ./mailroom.toml, /etc/mailroom/mailroom.toml, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Feed .eml files, directories of them and mbox files through the pipeline.
    Replay(mail::ReplayArgs),
    /// Import or export the directory file.
    #[command(subcommand)]
    Directory(directory::DirectoryCmd),
    /// List, show, close, escalate and approve tickets.
    #[command(subcommand)]
    Tickets(tickets::TicketsCmd),
    /// Contacts: list, show, their subscriptions, add, update, ignore, remove.
    #[command(subcommand)]
    Contacts(contacts::ContactsCmd),
    /// Customer accounts.
    #[command(subcommand)]
    Accounts(accounts::AccountsCmd),
    /// Services of accounts.
    #[command(subcommand)]
    Services(accounts::ServicesCmd),
    /// Billing accounts (BCN) of accounts.
    #[command(subcommand)]
    Billing(accounts::BillingCmd),
    /// Subscriptions of contacts to contact groups.
    #[command(subcommand)]
    Subscriptions(subscriptions::SubscriptionsCmd),
    /// Ignore rules: the directory's, and the config file's (listed).
    #[command(subcommand)]
    Ignore(ignore::IgnoreCmd),
    /// Notifications: list, send what is due, retry a failed one.
    #[command(subcommand)]
    Outbox(outbox::OutboxCmd),
    /// Mail that needs a person.
    #[command(subcommand)]
    Quarantine(mail::QuarantineCmd),
    /// Every processed mail.
    #[command(subcommand)]
    Messages(mail::MessagesCmd),
    /// Create or upgrade the database schema.
    Migrate,
    /// The store as a whole: copy it to PostgreSQL.
    #[command(subcommand)]
    Db(db::DbCmd),
    /// Check the config file and print the effective settings.
    CheckConfig,
    /// Watch the configured IMAP mailboxes until SIGTERM (the systemd service).
    Run,
    /// Per mailbox: state, UIDVALIDITY, last UID, mails ingested, last error.
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let (config, origin) = Config::load(cli.config.as_deref())?;
    let command = match cli.command {
        Command::CheckConfig => return check_config(&config, origin),
        // Before Store::open, which would create or migrate the store.
        Command::Db(cmd) => return db::db(cmd, &config).await,
        command => command,
    };
    if reads_existing_store(&command) && !config.database.is_postgres() {
        let path = config.sqlite_path()?;
        if !path.exists() {
            return Err(crate::error::Error::Usage(format!(
                "no store at {} (database.url; relative to the working directory {}): \
                 `mailroom migrate` creates an empty one, and `run`, `replay` and `directory import` fill it",
                path.display(),
                std::env::current_dir().map_or_else(|_| "?".into(), |d| d.display().to_string())
            )));
        }
    }
    let store = Store::open(&config).await?;
    let result = match command {
        Command::Run => run::run(&config, origin, &store, pipeline(&config, &store)?).await,
        command => dispatch(command, &config, &store).await,
    };
    store.close().await;
    result
}

/// Whether `command` only acts on what a store already holds (tickets,
/// mails, notifications, mailbox state): pointed at a store that does not
/// exist (a typo in `database.url`, the wrong working directory), it must
/// say so rather than create an empty one and report nothing. Commands
/// that build the directory or ingest mail may start a store.
fn reads_existing_store(command: &Command) -> bool {
    matches!(
        command,
        Command::Tickets(_)
            | Command::Outbox(_)
            | Command::Quarantine(_)
            | Command::Messages(_)
            | Command::Status { .. }
    )
}

async fn dispatch(command: Command, config: &Config, store: &Store) -> Result<()> {
    match command {
        Command::Replay(args) => mail::replay(args, pipeline(config, store)?).await,
        Command::Directory(cmd) => directory::directory(cmd, store).await,
        Command::Tickets(cmd) => tickets::tickets(cmd, pipeline(config, store)?).await,
        Command::Contacts(cmd) => contacts::contacts(cmd, store).await,
        Command::Accounts(cmd) => accounts::accounts(cmd, store).await,
        Command::Services(cmd) => accounts::services(cmd, store).await,
        Command::Billing(cmd) => accounts::billing(cmd, store).await,
        Command::Subscriptions(cmd) => subscriptions::subscriptions(cmd, store).await,
        Command::Ignore(cmd) => ignore::ignore(cmd, config, store).await,
        Command::Outbox(cmd) => outbox::outbox(cmd, config, store).await,
        Command::Quarantine(cmd) => mail::quarantine(cmd, pipeline(config, store)?).await,
        Command::Messages(cmd) => mail::messages(cmd, store).await,
        Command::Migrate => {
            store.migrate().await?;
            println!("database is up to date ({})", redact_url(&config.database.url));
            Ok(())
        }
        Command::Status { json } => run::status(store, config, json).await,
        Command::CheckConfig | Command::Run | Command::Db(_) => unreachable!("handled in run()"),
    }
}

fn pipeline(config: &Config, store: &Store) -> Result<Pipeline> {
    let templates = Templates::load(config.templates.dir.as_deref())?;
    Pipeline::new(store.clone(), Arc::new(config.clone()), Arc::new(templates))
}

/// What `run` would otherwise find wrong only once it uses it: each secret
/// is read (and dropped), each mailbox's CA file loaded, and the relay
/// built (its From address, CA file, credentials). `check-config` and `run`
/// both do it, so a unit's `ExecStartPre` check catches what would
/// otherwise fail at start in a restart loop, or in a mailbox's retries.
fn preflight(config: &Config) -> Result<()> {
    preflight_mailboxes(config)?;
    if let Some(smtp) = &config.smtp {
        crate::deliver::relay::Relay::new(smtp, config.support_address())?;
    }
    Ok(())
}

/// The mailboxes' part of [`preflight`]: `run` builds its relay anyway.
pub(crate) fn preflight_mailboxes(config: &Config) -> Result<()> {
    for mb in &config.mailboxes {
        mb.password()?;
        if mb.tls != crate::config::secret::TlsMode::None {
            crate::tls::client_config(mb.ca_file.as_deref())
                .map_err(|e| crate::error::Error::Config(format!("mailbox {}: {e}", mb.name)))?;
        }
    }
    Ok(())
}

/// Validates the config (parsing already did) and the templates, then
/// prints the effective settings, naming where secrets come from, never
/// the secrets.
fn check_config(config: &Config, origin: Option<PathBuf>) -> Result<()> {
    Templates::load(config.templates.dir.as_deref())?;
    preflight(config)?;
    match origin {
        Some(p) => println!("{}: ok", p.display()),
        None => println!("no config file: built-in defaults"),
    }
    if config.database.is_postgres() {
        println!("database.url = {:?}", redact_url(&config.database.postgres_url()?));
        if let Some(warning) = config.database.tls_warning() {
            println!("warning: {warning}");
        }
    } else {
        println!("database.url = {:?}", redact_url(&config.database.url));
    }
    println!(
        "mail.from = {:?}, mail.domain = {:?}",
        config.mail.from, config.mail.domain
    );
    println!("contacts.auto_create = {}", config.contacts.auto_create);
    println!(
        "tickets.tag = {:?}, tickets.reopen_days = {}, ticket_from_auto_replies = {}, ticket_from_lists = {}",
        config.tickets.tag,
        config.tickets.reopen_days,
        config.tickets.ticket_from_auto_replies,
        config.tickets.ticket_from_lists
    );
    println!("intake.ignore = {:?}", config.intake.ignore);
    let groups = |g: &[crate::directory::ContactGroup]| g.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", ");
    println!("notify.default_language = {:?}", config.notify.default_language);
    println!("notify.new_ticket = [{}]", groups(&config.notify.new_ticket));
    println!("notify.ticket_updated = [{}]", groups(&config.notify.ticket_updated));
    println!("notify.ticket_closed = [{}]", groups(&config.notify.ticket_closed));
    println!(
        "contacts.hard_bounce_limit = {}, outbox: max_age={:?} retry_min={:?} retry_max={:?} per_ticket_limit={} lease={:?}",
        config.contacts.hard_bounce_limit,
        config.outbox.max_age,
        config.outbox.retry_min,
        config.outbox.retry_max,
        config.outbox.per_ticket_limit,
        config.outbox.lease
    );
    match &config.smtp {
        Some(s) => {
            println!(
                "smtp: {}:{} tls={:?} user={} from={:?} connections={} pool={} max_per_minute={:?} timeout={:?} secret from {}",
                s.host,
                s.port(),
                s.tls,
                s.username.as_deref().unwrap_or("(no login)"),
                config.support_address(),
                s.connections,
                s.pool,
                s.max_per_minute,
                s.timeout,
                s.secret().describe()
            );
            if s.password.is_some() {
                eprintln!(
                    "warning: smtp: the password is written in the config file; prefer password_file (systemd LoadCredential=) or password_env"
                );
            }
        }
        None => println!("smtp: none (notifications stay queued)"),
    }
    for mb in &config.mailboxes {
        // Where the secret comes from, never the secret itself.
        let secret = mb.secret().describe();
        println!(
            "mailbox {}: {}:{} tls={:?} user={} folder={} after={:?} poll={}s idle_check={} batch={} max_message_bytes={} secret from {secret}",
            mb.name,
            mb.host,
            mb.port(),
            mb.tls,
            mb.username,
            mb.folder,
            mb.after,
            mb.poll_seconds,
            mb.idle_check()
                .map_or_else(|| "off".to_string(), |d| format!("{}ms", d.as_millis())),
            mb.batch,
            mb.max_message_bytes
        );
        if mb.password.is_some() {
            eprintln!(
                "warning: mailbox {}: the password is written in the config file; prefer password_file (systemd LoadCredential=) or password_env",
                mb.name
            );
        }
    }
    Ok(())
}
