//! `[smtp]` (the relay notifications go out through) and `[outbox]` (how
//! long and how often a notification is tried, and the loop guard).
//!
//! Durations are written the way operators say them (`"90s"`, `"1m"`,
//! `"3d"`), because a bare number of seconds for "three days" is where
//! typos hide.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::Locator;
use super::secret::{Secret, SecretSource, TlsMode, check_plaintext};
use crate::error::Result;

/// The SMTP relay.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 465 for implicit TLS, 587 for STARTTLS, 25 without TLS.
    pub port: Option<u16>,
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    /// Allow `tls = "none"` to a host that is not loopback.
    #[serde(default)]
    pub allow_insecure: bool,
    /// Extra trust anchor (PEM); the system roots are used as well.
    pub ca_file: Option<PathBuf>,
    /// Log in with this user (no AUTH when absent).
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub password: Option<Secret>,
    /// `From`/`Reply-To` of every notification; default `mail.from`.
    pub from: Option<String>,
    /// EHLO name; default this machine's host name.
    pub hello_name: Option<String>,
    /// A global cap on notifications sent per minute (none by default).
    pub max_per_minute: Option<u32>,
    /// Connections kept open to the relay, and notifications in flight.
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// Reuse connections (the pool). `false` opens one connection per
    /// notification, for relays that limit messages per connection.
    #[serde(default = "yes")]
    pub pool: bool,
    /// How long a send may take to connect, set up its session and reach
    /// `DATA`; the mail and the answer to its end have longer (see
    /// [`crate::deliver::relay::Relay::send`]).
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn default_tls() -> TlsMode {
    TlsMode::Starttls
}
fn default_connections() -> u32 {
    8
}
fn yes() -> bool {
    true
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl SmtpConfig {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Implicit => 465,
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        })
    }

    /// Where the password comes from (nothing when there is no login).
    pub fn secret(&self) -> SecretSource<'_> {
        SecretSource {
            file: self.password_file.as_ref(),
            env: self.password_env.as_ref(),
            inline: self.password.as_ref(),
        }
    }

    /// Checks the rules serde cannot; `at` names the section and its keys
    /// in errors, one key each.
    pub fn validate(&self, at: &Locator<'_>) -> Result<()> {
        if self.host.trim().is_empty() {
            return Err(at.error("host", "is empty"));
        }
        let what = if self.username.is_some() {
            "the password"
        } else {
            "every notification"
        };
        check_plaintext(self.tls, &self.host, self.allow_insecure, what).map_err(|m| at.section_error(m))?;
        match (self.username.is_some(), self.secret().count()) {
            (true, 1) | (false, 0) => {}
            (true, 0) => {
                return Err(at.section_error("username needs a password: password_file, password_env or password"));
            }
            (false, _) => return Err(at.section_error("a password without a username: add username")),
            (true, _) => return Err(at.section_error("name only one of password_file, password_env, password")),
        }
        if let Some(username) = &self.username
            && username.trim().is_empty()
        {
            return Err(at.error("username", "is empty"));
        }
        if let Some(from) = &self.from
            && let Err(e) = super::sender_address(from)
        {
            return Err(at.error("from", e));
        }
        if let Some(name) = &self.hello_name
            && !is_hello_name(name)
        {
            return Err(at.error(
                "hello_name",
                format!("{name:?} is not a host name or an address literal: EHLO sends it as one word"),
            ));
        }
        let mut positive = vec![
            ("connections", u64::from(self.connections)),
            ("timeout", self.timeout.as_secs()),
            ("port", u64::from(self.port.unwrap_or(1))),
        ];
        if let Some(n) = self.max_per_minute {
            positive.push(("max_per_minute", u64::from(n)));
        }
        at.at_least_one(&positive)
    }
}

/// Whether `name` can follow EHLO as one word: a host name (underscores,
/// a trailing dot and IDN labels included, as relays take them) or an
/// address literal. Only what would break the command line is refused.
fn is_hello_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Delivery policy for queued notifications.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// A notification still not delivered this long after it was queued
    /// is given up (`failed`).
    #[serde(deserialize_with = "duration")]
    pub max_age: Duration,
    /// First retry after a transient failure; doubles each time...
    #[serde(deserialize_with = "duration")]
    pub retry_min: Duration,
    /// ... up to this.
    #[serde(deserialize_with = "duration")]
    pub retry_max: Duration,
    /// At most this many notifications per recipient per ticket in 10
    /// minutes; more are recorded as `suppressed`.
    pub per_ticket_limit: u32,
    /// How long a claimed notification stays with the process that claimed
    /// it; after that (the process died) another send picks it up.
    #[serde(deserialize_with = "duration")]
    pub lease: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_age: Duration::from_secs(3 * 86_400),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(3_600),
            per_ticket_limit: 10,
            lease: Duration::from_secs(120),
        }
    }
}

impl OutboxConfig {
    /// What a claim's lease keeps after its last send's answer, for that
    /// answer to be recorded: the wait to group answers into one commit, the
    /// record's retries (0.3 s) and the commit itself, with room. Without
    /// it, a relay answering at the very end of `smtp.timeout` would leave
    /// the row to another sender, which sends it again.
    pub const RECORD_MARGIN: Duration = Duration::from_secs(2);

    /// How long after a claim its sends may still start: its lease less
    /// the longest a send may take and [`Self::RECORD_MARGIN`].
    pub fn send_window(&self, smtp_timeout: Duration) -> Duration {
        self.lease
            .saturating_sub(smtp_timeout)
            .saturating_sub(Self::RECORD_MARGIN)
    }

    /// Checks the rules serde cannot; `at` names the section and its keys
    /// in errors, one key each.
    pub fn validate(&self, at: &Locator<'_>) -> Result<()> {
        at.at_least_one(&[
            ("max_age", self.max_age.as_secs()),
            ("retry_min", self.retry_min.as_secs()),
            ("per_ticket_limit", u64::from(self.per_ticket_limit)),
            ("lease", self.lease.as_secs()),
        ])?;
        if self.retry_max < self.retry_min {
            return Err(at.error(
                "retry_max",
                format!(
                    "({:?}) must be at least retry_min ({:?})",
                    self.retry_max, self.retry_min
                ),
            ));
        }
        Ok(())
    }
}

/// How every refused duration begins; never followed by the value.
pub const NOT_A_DURATION: &str = "not a duration";

/// `"90s"`, `"15m"`, `"2h"`, `"3d"` (or a bare number of seconds).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{NOT_A_DURATION} (e.g. \"90s\", \"15m\", \"2h\", \"3d\")"))?;
    let factor = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        // The value is not repeated: a secret typed on the wrong line
        // would be in it.
        _ => return Err(format!("{NOT_A_DURATION}: unknown unit (s, m, h or d)")),
    };
    Ok(Duration::from_secs(n.saturating_mul(factor)))
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    let d = match Raw::deserialize(d)? {
        Raw::Seconds(n) => Duration::from_secs(n),
        Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom)?,
    };
    if d > LONGEST {
        return Err(serde::de::Error::custom(
            "longer than a year (366d): no setting needs that much",
        ));
    }
    Ok(d)
}

/// The longest duration a setting takes: every one of them ends up as
/// seconds in SQL arithmetic or a timer, where a saturated value would wrap.
const LONGEST: Duration = Duration::from_secs(366 * 86_400);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("3d").unwrap(), Duration::from_secs(259_200));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("3 weeks").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("soon").is_err());
    }

    fn smtp(text: &str) -> Result<SmtpConfig> {
        let c: SmtpConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        c.validate(&Locator::new("t", "", None).section(&[], "smtp", "."))?;
        Ok(c)
    }

    #[test]
    fn plaintext_login_to_a_remote_relay_is_refused() {
        let err = smtp("host = \"relay.example\"\ntls = \"none\"\nusername = \"u\"\npassword_env = \"P\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("in clear"), "{err}");
        assert!(smtp("host = \"127.0.0.1\"\ntls = \"none\"\n").is_ok());
    }

    #[test]
    fn login_needs_exactly_one_secret() {
        let err = smtp("host = \"relay.example\"\nusername = \"u\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a password"), "{err}");
        let err = smtp("host = \"relay.example\"\npassword_env = \"P\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("without a username"), "{err}");
    }

    #[test]
    fn default_ports_follow_tls() {
        assert_eq!(smtp("host = \"r.example\"\n").unwrap().port(), 587);
        assert_eq!(smtp("host = \"r.example\"\ntls = \"implicit\"\n").unwrap().port(), 465);
    }
}
