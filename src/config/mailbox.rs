//! `[[mailbox]]`: an IMAP folder mailroom watches.
//!
//! Secrets are never in the struct's `Debug` output or in errors, and a
//! plaintext connection to anything but loopback must be asked for by name
//! (`allow_insecure = true`), per mailbox: a typo must not send a password
//! in clear over the internet.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (port 993).
    #[default]
    Implicit,
    /// Plain connection upgraded with STARTTLS before login (port 143).
    Starttls,
    /// No TLS: loopback only unless `allow_insecure`.
    None,
}

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

impl<'de> Deserialize<'de> for After {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "seen" => Ok(After::Seen),
            "delete" => Ok(After::Delete),
            "keep" => Ok(After::Keep),
            other => match other.strip_prefix("move:") {
                Some(folder) if !folder.trim().is_empty() => Ok(After::Move(folder.trim().to_string())),
                _ => Err(serde::de::Error::custom(format!(
                    "{other:?} is not an after action (seen, move:<folder>, delete, keep)"
                ))),
            },
        }
    }
}

/// A password that never prints.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

/// One watched IMAP folder.
#[derive(Debug, Clone, Deserialize)]
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
fn default_batch() -> usize {
    200
}
fn default_max_bytes() -> u64 {
    25_000_000
}

impl MailboxConfig {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or(if self.tls == TlsMode::Implicit { 993 } else { 143 })
    }

    /// Is the host this machine? Plaintext is only allowed there by default.
    pub fn host_is_loopback(&self) -> bool {
        let h = self.host.trim_start_matches('[').trim_end_matches(']');
        h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Checks the rules serde cannot; `at` names the mailbox in errors.
    pub fn validate(&self, at: &str) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("{at}: {m}")));
        if self.name.trim().is_empty() || self.name.contains(['/', ' ']) {
            return bad(format!("name {:?} must be non-empty, without spaces or '/'", self.name));
        }
        if self.tls == TlsMode::None && !self.host_is_loopback() && !self.allow_insecure {
            return bad(format!(
                "tls = \"none\" to {} would send the password in clear; use implicit or starttls, or set allow_insecure = true",
                self.host
            ));
        }
        let secrets = [
            self.password_file.is_some(),
            self.password_env.is_some(),
            self.password.is_some(),
        ];
        match secrets.iter().filter(|s| **s).count() {
            1 => {}
            0 => return bad("needs a password: password_file, password_env or password".into()),
            _ => return bad("name only one of password_file, password_env, password".into()),
        }
        if self.batch == 0 || self.poll_seconds == 0 || self.max_message_bytes == 0 {
            return bad("batch, poll_seconds and max_message_bytes must be at least 1".into());
        }
        Ok(())
    }

    /// Reads the password from where the config says. The error names the
    /// source, never the secret.
    pub fn password(&self) -> Result<Secret> {
        if let Some(p) = &self.password {
            return Ok(p.clone());
        }
        if let Some(var) = &self.password_env {
            return std::env::var(var)
                .map(Secret::new)
                .map_err(|_| Error::Config(format!("mailbox {}: environment variable {var} is not set", self.name)));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("mailbox {}: password_file {}: {e}", self.name, path.display())))?;
            return Ok(Secret::new(text.trim_end_matches(['\r', '\n'])));
        }
        Err(Error::Config(format!("mailbox {}: no password configured", self.name)))
    }
}
