//! The one TOML file that configures mailroom.
//!
//! Unknown keys are refused (a typo must not silently fall back to a
//! default), and every error names the key and the line, because the person
//! reading it is an operator editing `/etc/mailroom/mailroom.toml` at 3 a.m.
//! With no file at all an embedded default runs against `./mailroom.db`, so
//! the first `mailroom replay` works with no setup.

pub mod database;
pub mod mailbox;
pub mod redact;

pub use database::DatabaseConfig;
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
    /// Larger files given to `replay` are quarantined as `too_large` with
    /// their headers (each `[[mailbox]]` has its own `max_message_bytes`).
    pub max_message_bytes: u64,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            ignore: Vec::new(),
            max_new_tickets_per_hour: 20,
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
}

impl Default for NotifyConfig {
    fn default() -> Self {
        let reactive = vec![ContactGroup::ReactiveServiceOutage, ContactGroup::KeyContact];
        NotifyConfig {
            default_language: "en".into(),
            new_ticket: reactive.clone(),
            ticket_updated: reactive.clone(),
            ticket_closed: reactive,
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
        let config: Config = toml::from_str(text).map_err(|e| parse_error(&e, text, origin))?;
        config.validate(origin)?;
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

    /// Checks what serde cannot: formats, patterns and languages.
    fn validate(&self, origin: &str) -> Result<()> {
        for (i, m) in self.mailboxes.iter().enumerate() {
            m.validate(&format!("{origin}: mailbox[{i}] ({})", m.name))?;
            if self.mailboxes[..i].iter().any(|o| o.name == m.name) {
                return Err(Error::Config(format!(
                    "{origin}: mailbox[{i}]: the name {:?} is used twice",
                    m.name
                )));
            }
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate(&format!("{origin}: smtp"))?;
            if self.outbox.lease <= smtp.timeout {
                return Err(Error::Config(format!(
                    "{origin}: outbox.lease ({:?}) must be longer than smtp.timeout ({:?}): a claimed notification must be sent before its lease runs out",
                    self.outbox.lease, smtp.timeout
                )));
            }
        }
        self.outbox.validate(&format!("{origin}: outbox"))?;
        if self.database.mailbox_lease < std::time::Duration::from_secs(1) {
            return Err(Error::Config(format!(
                "{origin}: database.mailbox_lease must be at least 1s (renewals happen several times per lease)"
            )));
        }
        if self.database.connections == 0 {
            return Err(Error::Config(format!(
                "{origin}: database.connections must be at least 1"
            )));
        }
        if self.database.is_postgres() {
            self.database
                .postgres_url()
                .map_err(|e| Error::Config(format!("{origin}: {e}")))?;
        } else {
            // Anything else with a scheme is an engine we do not speak.
            self.sqlite_path()
                .map_err(|e| Error::Config(format!("{origin}: {}", e.to_string().trim_start_matches("config: "))))?;
        }
        if self.contacts.hard_bounce_limit == 0 {
            return Err(Error::Config(format!(
                "{origin}: contacts.hard_bounce_limit must be at least 1"
            )));
        }
        TagFormat::new(&self.tickets.tag).map_err(|e| Error::Config(format!("{origin}: tickets.tag: {e}")))?;
        for (i, pattern) in self.intake.ignore.iter().enumerate() {
            IgnoreRule::parse(pattern).map_err(|e| Error::Config(format!("{origin}: intake.ignore[{i}]: {e}")))?;
        }
        if !LANGUAGES.contains(&self.notify.default_language.as_str()) {
            return Err(Error::Config(format!(
                "{origin}: notify.default_language: {:?} is not one of {}",
                self.notify.default_language,
                LANGUAGES.join(", ")
            )));
        }
        if !self.mail.from.contains('@') {
            return Err(Error::Config(format!(
                "{origin}: mail.from: {:?} is not an email address",
                self.mail.from
            )));
        }
        if self.mail.domain.is_empty() || self.mail.domain.contains(['@', ' ', '<', '>']) {
            return Err(Error::Config(format!(
                "{origin}: mail.domain: {:?} is not a domain",
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

    /// The SQLite file behind `database.url`.
    pub fn sqlite_path(&self) -> Result<PathBuf> {
        let url = self.database.url.as_str();
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let path = path.split('?').next().unwrap_or(path);
        let foreign_scheme = path.contains("://");
        if path.is_empty() || self.database.is_postgres() || foreign_scheme {
            return Err(Error::Config(format!(
                "database.url: {:?} is neither a SQLite location (sqlite:PATH) nor postgres://",
                redact_url(url)
            )));
        }
        Ok(PathBuf::from(path))
    }
}

/// One line naming the file, line, column and key of a syntax or type
/// error, and never a value from the file: toml's own rendering quotes the
/// offending line and serde's messages repeat the value, which for
/// `password = hunter2` or a database URL is the secret itself (and
/// `check-config` runs under systemd, into the journal).
fn parse_error(e: &toml::de::Error, text: &str, origin: &str) -> Error {
    let mut out = format!("{origin}: ");
    // Whether the key is known and holds no secret.
    let mut harmless = false;
    if let Some(span) = e.span() {
        let start = (0..=span.start.min(text.len()))
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        out.push_str(&format!("line {line}, column {column}: "));
        let line_text = text.lines().nth(line - 1).unwrap_or_default();
        if let Some((key, value)) = line_text.split_once('=') {
            let key = key.trim().trim_matches('"');
            if !key.is_empty() && !key.starts_with('[') {
                out.push_str(&format!("{key}: "));
                // An inline table's keys are not the line's key.
                harmless = !holds_secret(key) && !value.contains(['=', '{']);
            }
        }
    }
    let message = one_line(e.message());
    if !harmless && quotes_the_value(&message) {
        out.push_str("invalid value (not shown: it may hold a secret); check its quoting and type");
    } else {
        out.push_str(&message);
    }
    Error::Config(out)
}

/// Keys whose values are secrets or may carry one (a URL's password).
fn holds_secret(key: &str) -> bool {
    let key = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    ["password", "secret", "token", "url"].iter().any(|k| key.contains(k))
}

/// serde quotes the value it could not take (`invalid type: integer
/// `1234`, expected ...`): such a message is withheld unless the key is
/// known to hold no secret. toml's syntax messages quote no value.
fn quotes_the_value(message: &str) -> bool {
    message.starts_with("invalid type") || message.starts_with("invalid value")
}

/// toml's messages may span several lines; operators and log shippers want one.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_file() {
        let c = Config::parse("", "t").unwrap();
        assert_eq!(c.tickets.reopen_days, 14);
        assert!(c.contacts.auto_create);
        assert_eq!(c.notify.new_ticket.len(), 2);
    }

    #[test]
    fn unknown_key_is_named_with_line() {
        let err = Config::parse("[tickets]\nreopen_days = 3\nreopen_dayz = 4\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("reopen_dayz"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn a_parse_error_names_line_and_key_but_never_shows_a_value() {
        let cases = [
            "[database]\nurl = \"postgres://u:S3cr3t@db.example/m\" x\n",
            "[[mailbox]]\nname = \"s\"\nhost = \"h\"\nusername = \"u\"\npassword = S3cr3t\n",
            "[[mailbox]]\nname = \"s\"\nhost = \"h\"\nusername = \"u\"\npassword = 123456789\n",
            "[smtp]\nhost = \"h\"\npassword = [\"S3cr3t\"]\n",
            "[database]\nurl = 42\n",
            "smtp = { host = \"h\", password = 123456789 }\n",
        ];
        for text in cases {
            let err = Config::parse(text, "m.toml").unwrap_err().to_string();
            assert!(!err.contains("S3cr3t") && !err.contains("123456789"), "{err}");
            assert!(err.starts_with("m.toml: line "), "{err}");
            assert!(["password", "url", "smtp"].iter().any(|k| err.contains(k)), "{err}");
        }
        let err = Config::parse("[[mailbox]]\nname = \"s\"\nport = \"imap\"\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("port"), "{err}");
    }

    #[test]
    fn each_bad_mailbox_setting_is_named_on_its_own() {
        let mailbox = |extra: &str| {
            format!(
                "[[mailbox]]\nname = \"support\"\nhost = \"127.0.0.1\"\ntls = \"none\"\nusername = \"u\"\npassword_env = \"PW\"\n{extra}\n"
            )
        };
        let err = |extra: &str| Config::parse(&mailbox(extra), "m.toml").unwrap_err().to_string();
        assert!(Config::parse(&mailbox(""), "m.toml").is_ok());
        let e = err("poll_seconds = 0");
        assert!(
            e.contains("poll_seconds must be at least 1 (got 0)") && !e.contains("batch"),
            "{e}"
        );
        assert!(err("batch = 0").contains("batch must be at least 1"));
        assert!(err("port = 0").contains("port must be at least 1"));
        assert!(err("folder = \" \"").contains("folder is empty"));
        let e = err("after = \"move:inbox\"");
        assert!(e.contains("into the watched folder itself"), "{e}");
        let e = err("folder = \"Support\"\nafter = \"move:Support\"");
        assert!(e.contains("into the watched folder itself"), "{e}");
        assert!(Config::parse(&mailbox("folder = \"Support\"\nafter = \"move:support\""), "m.toml").is_ok());
        let e = Config::parse(
            "[[mailbox]]\nname = \"s\"\nhost = \"\"\nusername = \"u\"\npassword = \"p\"\n",
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("host is empty"), "{e}");
    }

    #[test]
    fn a_duration_over_a_year_is_refused_not_wrapped() {
        let e = Config::parse("[outbox]\nlease = \"99999999999d\"\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than a year") && e.contains("lease"), "{e}");
        assert!(Config::parse("[outbox]\nlease = \"10m\"\n", "m.toml").is_ok());
    }

    #[test]
    fn bad_group_and_bad_pattern_are_named() {
        let err = Config::parse("[notify]\nnew_ticket = [\"vip\"]\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("vip"), "{err}");
        let err = Config::parse("[intake]\nignore = [\"regex:(\"]\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("intake.ignore[0]"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../config.example.toml");
        let c = Config::parse(text, "config.example.toml").unwrap();
        assert_eq!(c.mail.domain, "provider.example");
        assert_eq!(c.intake.ignore.len(), 4);
    }

    #[test]
    fn a_lease_shorter_than_the_smtp_timeout_is_refused() {
        let err = Config::parse("[smtp]\nhost = \"127.0.0.1\"\ntimeout = \"3m\"\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("outbox.lease") && err.contains("smtp.timeout"), "{err}");
        assert!(
            Config::parse(
                "[smtp]\nhost = \"127.0.0.1\"\ntimeout = \"3m\"\n[outbox]\nlease = \"5m\"\n",
                "m"
            )
            .is_ok()
        );
    }

    #[test]
    fn tag_without_number_is_refused() {
        let err = Config::parse("[tickets]\ntag = \"[ticket]\"\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tickets.tag"), "{err}");
    }
}
