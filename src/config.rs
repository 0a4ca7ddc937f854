//! The one TOML file that configures mailroom.
//!
//! Unknown keys are refused (a typo must not silently fall back to a
//! default), and every error names the key and the line, because the person
//! reading it is an operator editing `/etc/mailroom/mailroom.toml` at 3 a.m.
//! With no file at all an embedded default runs against `./mailroom.db`, so
//! the first `mailroom replay` works with no setup.

pub mod database;
mod errors;
pub mod mailbox;
pub mod redact;

pub use database::DatabaseConfig;
pub use errors::{Locator, Seg, parse_error, parse_error_with_values};
pub use redact::redact_url;
pub mod secret;
pub mod smtp;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::directory::{ContactGroup, IgnoreRule};
use crate::error::{Error, Result};
use crate::tickets::tag::TagFormat;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub database: DatabaseConfig,
    pub mail: MailConfig,
    pub contacts: ContactsConfig,
    pub tickets: TicketsConfig,
    pub intake: IntakeConfig,
    pub notify: NotifyConfig,
    pub templates: TemplatesConfig,
    /// The IMAP folders `mailroom run` watches.
    #[serde(rename = "mailbox")]
    pub mailboxes: Vec<mailbox::MailboxConfig>,
    /// The relay notifications go out through (none: they stay queued).
    pub smtp: Option<smtp::SmtpConfig>,
    pub outbox: smtp::OutboxConfig,
}

/// Identity of the support desk in the mail it sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// The support address: `From` and `Reply-To` of every notification.
    pub from: String,
    /// Domain of the Message-IDs mailroom generates; mail coming back with
    /// such an id is recognised as our own.
    pub domain: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            from: "support@localhost".into(),
            domain: "mailroom.localhost".into(),
        }
    }
}

/// What happens with unknown senders.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContactsConfig {
    /// Create a contact for an unknown sender (else quarantine the mail).
    pub auto_create: bool,
    /// After this many permanent delivery failures a contact is marked
    /// undeliverable and planned notifications skip it.
    pub hard_bounce_limit: u32,
}

impl Default for ContactsConfig {
    fn default() -> Self {
        ContactsConfig {
            auto_create: true,
            hard_bounce_limit: 3,
        }
    }
}

/// Ticket numbering, threading and reopening.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketsConfig {
    /// Subject tag format; `{number}` stands for the ticket number.
    pub tag: String,
    /// A reply this many days after a close reopens the ticket; later ones
    /// open a new ticket that references the old one.
    pub reopen_days: u32,
    /// Let an auto-reply that does not thread open a ticket.
    pub ticket_from_auto_replies: bool,
    /// Let mailing-list traffic open tickets.
    pub ticket_from_lists: bool,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            tag: "[#{number}]".into(),
            reopen_days: 14,
            ticket_from_auto_replies: false,
            ticket_from_lists: false,
        }
    }
}

/// Intake filters applied before any ticket work.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Ignore rules on the sender address (same syntax as the directory's).
    pub ignore: Vec<String>,
    /// New tickets one sender may open per hour; further mail that would
    /// open one is quarantined as `rate_limited` (0: no limit).
    pub max_new_tickets_per_hour: u32,
    /// Mails one sender may add to one ticket within 10 minutes, while
    /// another sender answers about as often, that notify anyone; further
    /// ones are attached without notifying (two auto-responders answering
    /// each other without saying so). 0: no limit.
    pub max_replies_per_ticket: u32,
    /// Larger files given to `replay` are quarantined as `too_large` with
    /// their headers (each `[[mailbox]]` has its own `max_message_bytes`).
    pub max_message_bytes: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            ignore: Vec::new(),
            max_new_tickets_per_hour: 20,
            max_replies_per_ticket: 5,
            max_message_bytes: 25_000_000,
        }
    }
}

/// Which contact groups hear about which ticket event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Language of a notification when neither contact nor account has one.
    pub default_language: String,
    pub new_ticket: Vec<ContactGroup>,
    pub ticket_updated: Vec<ContactGroup>,
    pub ticket_closed: Vec<ContactGroup>,
    /// The groups an escalation calls in, each subscriber once the ticket
    /// reaches the level of its subscription (a group without levels: from
    /// level 1); they also hear of the ticket's later updates and close.
    pub escalation: Vec<ContactGroup>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        let reactive = vec![ContactGroup::ReactiveServiceOutage, ContactGroup::KeyContact];
        NotifyConfig {
            default_language: "en".into(),
            new_ticket: reactive.clone(),
            ticket_updated: reactive.clone(),
            ticket_closed: reactive,
            escalation: vec![ContactGroup::Escalation],
        }
    }
}

/// Where operator overrides of the built-in templates live.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesConfig {
    /// A directory of `<event>.<lang>.txt` files replacing built-in ones.
    pub dir: Option<PathBuf>,
}

/// The languages templates ship in; a notification in any other language
/// falls back to English.
pub const LANGUAGES: &[&str] = &["en", "fr", "it", "sk", "de"];

impl Config {
    /// Parses and validates a config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| errors::parse_error(&e, text, origin))?;
        // Parsed once more, with positions, for errors that name the line.
        let doc = toml::de::DeTable::parse(text).ok();
        config.validate(&Locator::new(origin, text, doc.as_ref().map(|d| d.get_ref())))?;
        Ok(config)
    }

    /// Reads the config: the given path, else `$MAILROOM_CONFIG`, else
    /// `./mailroom.toml`, else `/etc/mailroom/mailroom.toml`, else the
    /// embedded default. Returns the config and the file it came from.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>)> {
        let candidate = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => std::env::var_os("MAILROOM_CONFIG").map(PathBuf::from).or_else(|| {
                ["mailroom.toml", "/etc/mailroom/mailroom.toml"]
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.exists())
            }),
        };
        match candidate {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))?;
                let config = Config::parse(&text, &path.display().to_string())?;
                Ok((config, Some(path)))
            }
            None => Ok((Config::default(), None)),
        }
    }

    /// Checks what serde cannot: ranges, formats, patterns and languages.
    /// Each error names one key, and its line when it is in the file.
    fn validate(&self, at: &Locator<'_>) -> Result<()> {
        for (i, m) in self.mailboxes.iter().enumerate() {
            let label = if m.name.trim().is_empty() {
                format!("mailbox[{i}]")
            } else {
                format!("mailbox {:?}", m.name)
            };
            let section = at.section(&[Seg::Key("mailbox"), Seg::Index(i)], label, ": ");
            m.validate_in(&section)?;
            if self.mailboxes[..i].iter().any(|o| o.name == m.name) {
                return Err(section.error("name", "is used by an earlier [[mailbox]] too"));
            }
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate(&at.section(&[Seg::Key("smtp")], "smtp", "."))?;
            if self.outbox.send_window(smtp.timeout).is_zero() {
                return Err(Error::Config(format!(
                    "{} ({:?}) must be longer than smtp.timeout ({:?}) plus {:?}: a claimed notification must be sent, and its answer recorded, before its lease runs out",
                    at.key("outbox.lease"),
                    self.outbox.lease,
                    smtp.timeout,
                    crate::config::smtp::OutboxConfig::RECORD_MARGIN
                )));
            }
        }
        self.outbox
            .validate(&at.section(&[Seg::Key("outbox")], "outbox", "."))?;
        at.section(&[Seg::Key("intake")], "intake", ".")
            .at_least_one(&[("max_message_bytes", self.intake.max_message_bytes)])?;
        if self.database.mailbox_lease < std::time::Duration::from_secs(1) {
            return Err(at.error(
                "database.mailbox_lease",
                "must be at least 1s (renewals happen several times per lease)",
            ));
        }
        if self.database.connect_timeout < std::time::Duration::from_secs(1) {
            return Err(at.error("database.connect_timeout", "must be at least 1s"));
        }
        if self.database.connections == 0 {
            return Err(at.error("database.connections", "must be at least 1 (got 0)"));
        }
        // These errors name database.url themselves (its password masked).
        let url_error = |e: Error| Error::Config(format!("{}: {e}", at.place("database.url")));
        if self.database.is_postgres() {
            self.database.postgres_url().map_err(url_error)?;
        } else {
            // Anything else with a scheme is an engine we do not speak.
            self.sqlite_path().map_err(url_error)?;
        }
        if self.contacts.hard_bounce_limit == 0 {
            return Err(at.error("contacts.hard_bounce_limit", "must be at least 1 (got 0)"));
        }
        TagFormat::new(&self.tickets.tag).map_err(|e| Error::Config(format!("{}: {e}", at.key("tickets.tag"))))?;
        for (i, pattern) in self.intake.ignore.iter().enumerate() {
            IgnoreRule::parse(pattern)
                .map_err(|e| Error::Config(format!("{}: {e}", at.key(&format!("intake.ignore[{i}]")))))?;
        }
        if !LANGUAGES.contains(&self.notify.default_language.as_str()) {
            return Err(Error::Config(format!(
                "{}: {:?} is not one of {}",
                at.key("notify.default_language"),
                self.notify.default_language,
                LANGUAGES.join(", ")
            )));
        }
        if let Err(e) = sender_address(&self.mail.from) {
            return Err(Error::Config(format!("{}: {e}", at.key("mail.from"))));
        }
        if self.mail.domain.is_empty() || self.mail.domain.contains(['@', ' ', '<', '>']) {
            return Err(Error::Config(format!(
                "{}: {:?} is not a domain",
                at.key("mail.domain"),
                self.mail.domain
            )));
        }
        Ok(())
    }

    /// The address notifications come from: `smtp.from`, else `mail.from`.
    pub fn support_address(&self) -> &str {
        self.smtp
            .as_ref()
            .and_then(|s| s.from.as_deref())
            .unwrap_or(&self.mail.from)
    }

    /// The bare address of [`Config::support_address`] (`support@x.test`
    /// of `Support <support@x.test>`): what templates write between `<>`
    /// and what the intake recognises as our own.
    pub fn support_email(&self) -> String {
        bare_email(self.support_address())
    }

    /// The bare addresses mailroom sends from (`smtp.from`, `mail.from`),
    /// read as the relay reads them: a mail from one of them is our own.
    pub fn own_addresses(&self) -> Vec<String> {
        let mut own = vec![self.support_email(), bare_email(&self.mail.from)];
        own.retain(|a| !a.is_empty());
        own.dedup();
        own
    }

    /// The SQLite file behind `database.url`.
    pub fn sqlite_path(&self) -> Result<PathBuf> {
        let url = self.database.url.as_str();
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let (path, options) = path.split_once('?').unwrap_or((path, ""));
        // mailroom opens its store with settings of its own (WAL, durable
        // commits, created if missing); `mode=ro` or `cache=shared` would
        // be dropped silently, the store opened read-write all the same.
        // `mode=rwc` says what is done anyway.
        if let Some(option) = options.split('&').find(|o| !o.is_empty() && *o != "mode=rwc") {
            return Err(Error::Config(format!(
                "database.url: SQLite takes no options after `?` ({option:?} is not honoured: mailroom opens its \
                 store read-write, creating it if missing, with settings of its own); write sqlite:PATH"
            )));
        }
        let foreign_scheme = path.contains("://");
        // `postgres:/...` or `postgres//...` is a mistyped server URL, not a
        // file to create: taken as one, the store would quietly be a new
        // local file named after the server.
        let mistyped_server = !url.starts_with("sqlite:") && url.to_ascii_lowercase().starts_with("postgres");
        if path.is_empty() || self.database.is_postgres() || foreign_scheme || mistyped_server {
            return Err(Error::Config(format!(
                "database.url: {:?} is neither a SQLite location (sqlite:PATH) nor postgres://",
                redact_url(url)
            )));
        }
        Ok(PathBuf::from(path))
    }

    /// Where a SQLite store's attachment files live: `database.attachments`,
    /// else `attachments/` beside the store file.
    pub fn sqlite_attachments(&self) -> Result<PathBuf> {
        let path = self.sqlite_path()?;
        Ok(self
            .database
            .attachments
            .clone()
            .unwrap_or_else(|| path.parent().unwrap_or(Path::new("")).join("attachments")))
    }
}

/// The bare address of a configured sender (`support@x.test` of
/// `Support <support@x.test>`), read as the relay reads it; as written when
/// it does not parse (`check-config` refuses such a config).
fn bare_email(from: &str) -> String {
    from.parse::<lettre::message::Mailbox>()
        .map(|m| m.email.to_string())
        .unwrap_or_else(|_| from.trim().to_string())
}

/// Checks a sender address (`mail.from`, `smtp.from`) the way the relay
/// reads it when it starts: found here, a typo fails `check-config`
/// instead of the daemon's start, in a restart loop.
pub fn sender_address(from: &str) -> std::result::Result<(), String> {
    match from.parse::<lettre::message::Mailbox>() {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{from:?} is not an email address ({e})")),
    }
}

#[cfg(test)]
mod tests;
