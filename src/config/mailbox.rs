//! `[[mailbox]]`: an IMAP folder mailroom watches.
//!
//! Secrets and the plaintext rule are shared with `[smtp]` (see
//! [`super::secret`]); what is here is what only a watched folder has.

use std::path::PathBuf;

use serde::Deserialize;

use super::Locator;
pub use super::secret::{Secret, TlsMode};
use super::secret::{SecretSource, check_plaintext, is_loopback};
use crate::error::Result;

/// What happens on the server to a mail once its batch has committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// Flag it `\Seen` (the default: nothing disappears from the mailbox).
    Seen,
    /// Move it to this folder (MOVE, or COPY + `\Deleted` + UID EXPUNGE).
    Move(String),
    /// Delete it (`\Deleted` + UID EXPUNGE of just those UIDs).
    Delete,
    /// Leave it untouched.
    Keep,
}

/// The error for a value of `after` that is none of its forms.
pub const NOT_AN_AFTER_ACTION: &str = "not an after action (seen, move:<folder>, delete, keep)";

/// As the config spells it (`move:Done`), for messages.
impl std::fmt::Display for After {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            After::Seen => f.write_str("seen"),
            After::Move(folder) => write!(f, "move:{folder}"),
            After::Delete => f.write_str("delete"),
            After::Keep => f.write_str("keep"),
        }
    }
}

impl<'de> Deserialize<'de> for After {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "seen" => Ok(After::Seen),
            "delete" => Ok(After::Delete),
            "keep" => Ok(After::Keep),
            other => match other.strip_prefix("move:") {
                Some(folder) if !folder.trim().is_empty() => Ok(After::Move(folder.trim().to_string())),
                // The value is not repeated: errors never show one.
                _ => Err(serde::de::Error::custom(NOT_AN_AFTER_ACTION)),
            },
        }
    }
}

/// One watched IMAP folder.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    /// Name in logs, `status` and message sources (`support/UID`).
    pub name: String,
    pub host: String,
    /// Default: 993 for implicit TLS, 143 otherwise.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: TlsMode,
    /// Allow `tls = "none"` to a host that is not loopback.
    #[serde(default)]
    pub allow_insecure: bool,
    /// Extra trust anchor (PEM); the system roots are used as well.
    pub ca_file: Option<PathBuf>,
    pub username: String,
    /// File holding the password (systemd `LoadCredential=`).
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// The password itself (works, but `check-config` warns).
    pub password: Option<Secret>,
    #[serde(default = "default_folder")]
    pub folder: String,
    #[serde(default = "default_after")]
    pub after: After,
    /// Poll interval when the server has no IDLE.
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    /// In IDLE, how often (ms) to leave and re-enter it so the server
    /// looks at the folder now; 0: never (see [`MailboxConfig::idle_check`]).
    #[serde(default = "default_idle_check")]
    pub idle_check_ms: u64,
    /// Mails per fetch and per transaction.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Larger mails are quarantined with their headers, not fetched whole.
    #[serde(default = "default_max_bytes")]
    pub max_message_bytes: u64,
}

fn default_folder() -> String {
    "INBOX".into()
}
fn default_after() -> After {
    After::Seen
}
fn default_poll() -> u64 {
    60
}
fn default_idle_check() -> u64 {
    DEFAULT_IDLE_CHECK_MS
}
fn default_batch() -> usize {
    200
}
fn default_max_bytes() -> u64 {
    25_000_000
}

/// The longest poll interval, 15 minutes: a mailbox polled less often
/// than that is not being watched, whatever the config says (the task
/// beats every minute of its wait, so the watchdog is not the limit).
pub const LONGEST_POLL: u64 = 900;

/// How often IDLE is left and re-entered by default: Dovecot announces new
/// mail in IDLE only after 500 ms (`NOTIFY_DELAY_MSECS`, compiled in) but
/// at once when IDLE ends or begins, so a check every 200 ms brings a mail
/// in within ~0.2 s instead of ~0.5 s, for two short lines each way per
/// check.
pub const DEFAULT_IDLE_CHECK_MS: u64 = 200;

/// The range of `idle_check_ms` besides 0: more often than every 50 ms
/// would keep the server busy for nothing; past a minute it saves nothing.
pub const IDLE_CHECK_MS: std::ops::RangeInclusive<u64> = 50..=60_000;

/// IMAP folder names are case-sensitive, except INBOX (RFC 3501 5.1).
fn same_folder(a: &str, b: &str) -> bool {
    a == b || (a.eq_ignore_ascii_case("INBOX") && b.eq_ignore_ascii_case("INBOX"))
}

impl MailboxConfig {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or(if self.tls == TlsMode::Implicit { 993 } else { 143 })
    }

    /// Is the host this machine? Plaintext is only allowed there by default.
    pub fn host_is_loopback(&self) -> bool {
        is_loopback(&self.host)
    }

    /// Checks the rules serde cannot, for a mailbox made outside a config
    /// file; `at` begins each error (`at: batch must be at least 1`).
    pub fn validate(&self, at: &str) -> Result<()> {
        self.validate_in(&Locator::new(at, "", None))
    }

    /// Checks the rules serde cannot; `at` names the mailbox and its keys
    /// (with their lines) in errors, one key each.
    pub fn validate_in(&self, at: &Locator<'_>) -> Result<()> {
        if self.name.trim().is_empty() || self.name.contains(['/', ' ']) {
            return Err(at.error("name", "must be non-empty, without spaces or '/'"));
        }
        for (key, value) in [
            ("host", &self.host),
            ("username", &self.username),
            ("folder", &self.folder),
        ] {
            if value.trim().is_empty() {
                return Err(at.error(key, "is empty"));
            }
        }
        check_plaintext(self.tls, &self.host, self.allow_insecure, "the password").map_err(|m| at.section_error(m))?;
        match self.secret().count() {
            1 => {}
            0 => return Err(at.section_error("needs a password: password_file, password_env or password")),
            _ => return Err(at.section_error("name only one of password_file, password_env, password")),
        }
        if let After::Move(target) = &self.after
            && same_folder(target, &self.folder)
        {
            // Each move would give the mail a new UID above the high-water
            // mark: fetched again, moved again, for ever.
            return Err(at.error(
                "after",
                format!("= \"move:{target}\" moves mail into the watched folder itself; name another folder"),
            ));
        }
        at.at_least_one(&[
            ("port", u64::from(self.port.unwrap_or(1))),
            ("batch", self.batch as u64),
            ("poll_seconds", self.poll_seconds),
            ("max_message_bytes", self.max_message_bytes),
        ])?;
        if self.idle_check_ms != 0 && !IDLE_CHECK_MS.contains(&self.idle_check_ms) {
            return Err(at.error(
                "idle_check_ms",
                format!(
                    "must be 0 (no checks) or from {} to {} (got {})",
                    IDLE_CHECK_MS.start(),
                    IDLE_CHECK_MS.end(),
                    self.idle_check_ms
                ),
            ));
        }
        if self.poll_seconds > LONGEST_POLL {
            return Err(at.error(
                "poll_seconds",
                format!(
                    "must be at most {LONGEST_POLL} (got {}): a mailbox silent for 16 minutes is taken for stuck",
                    self.poll_seconds
                ),
            ));
        }
        Ok(())
    }

    /// How often IDLE is left and re-entered to make the server look at
    /// the folder, if at all.
    pub fn idle_check(&self) -> Option<std::time::Duration> {
        (self.idle_check_ms > 0).then(|| std::time::Duration::from_millis(self.idle_check_ms))
    }

    /// Reads the password from where the config says. The error names the
    /// source, never the secret.
    pub fn password(&self) -> Result<Secret> {
        self.secret().read(&format!("mailbox {}", self.name))
    }

    /// Where the password comes from.
    pub fn secret(&self) -> SecretSource<'_> {
        SecretSource {
            file: self.password_file.as_ref(),
            env: self.password_env.as_ref(),
            inline: self.password.as_ref(),
        }
    }
}
