//! Passwords and the connection rules shared by every server mailroom logs
//! in to (IMAP mailboxes, the SMTP relay).
//!
//! Secrets never print: not in `Debug`, not in errors, not in
//! `check-config`. An error names where the secret was supposed to come
//! from, never what it is. Plaintext to anything but loopback must be asked
//! for by name, per connection, so a typo cannot send a password in clear.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// How a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAP 993, SMTP 465).
    #[default]
    Implicit,
    /// Plain connection upgraded with STARTTLS before login (IMAP 143, SMTP 587).
    Starttls,
    /// No TLS: loopback only unless `allow_insecure`.
    None,
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

/// Where a password comes from: exactly one of the three.
#[derive(Debug, Clone, Copy)]
pub struct SecretSource<'a> {
    /// File holding the password (systemd `LoadCredential=`).
    pub file: Option<&'a PathBuf>,
    /// Environment variable holding the password.
    pub env: Option<&'a String>,
    /// The password itself (works, but `check-config` warns).
    pub inline: Option<&'a Secret>,
}

impl SecretSource<'_> {
    /// How many sources are named (must be one where a login is needed).
    pub fn count(&self) -> usize {
        [self.file.is_some(), self.env.is_some(), self.inline.is_some()]
            .iter()
            .filter(|s| **s)
            .count()
    }

    /// Where the secret comes from, for `check-config`; never the secret.
    pub fn describe(&self) -> String {
        match (self.file, self.env, self.inline) {
            (Some(p), _, _) => format!(
                "password_file {}",
                credential_path(p, credentials_dir().as_deref()).display()
            ),
            (_, Some(v), _) => format!("password_env {v}"),
            (_, _, Some(_)) => "password (inline)".to_string(),
            _ => "none".to_string(),
        }
    }

    /// Reads the password; `owner` names the config section in errors. An
    /// empty one is refused here, not by the server after a login attempt.
    pub fn read(&self, owner: &str) -> Result<Secret> {
        self.read_in(owner, credentials_dir().as_deref())
    }

    fn read_in(&self, owner: &str, credentials: Option<&Path>) -> Result<Secret> {
        let secret = if let Some(p) = self.inline {
            p.clone()
        } else if let Some(var) = self.env {
            std::env::var(var)
                .map(Secret::new)
                .map_err(|_| Error::Config(format!("{owner}: environment variable {var} is not set")))?
        } else if let Some(given) = self.file {
            let path = credential_path(given, credentials);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                // Outside systemd a credential's bare name is looked for
                // in the working directory: say why.
                let hint = if given.is_relative() && credentials.is_none() {
                    " (a relative password_file is a systemd credential: $CREDENTIALS_DIRECTORY is not set)"
                } else {
                    ""
                };
                Error::Config(format!("{owner}: password_file {}: {e}{hint}", path.display()))
            })?;
            Secret::new(text.trim_end_matches(['\r', '\n']))
        } else {
            return Err(Error::Config(format!("{owner}: no password configured")));
        };
        if secret.expose().is_empty() {
            return Err(Error::Config(format!(
                "{owner}: the password from {} is empty",
                self.describe()
            )));
        }
        // No server takes one in a login line: refused here, where
        // check-config sees it, not in a retry loop at every connection.
        if secret.expose().contains(['\r', '\n', '\0']) {
            return Err(Error::Config(format!(
                "{owner}: the password from {} has a line break or NUL inside it (a password is one line)",
                self.describe()
            )));
        }
        Ok(secret)
    }
}

/// systemd's `$CREDENTIALS_DIRECTORY` (`LoadCredential=`), when set.
fn credentials_dir() -> Option<PathBuf> {
    std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from)
}

/// A relative `password_file` names a systemd credential: it is looked up
/// in `$CREDENTIALS_DIRECTORY` when systemd set one, so the config does not
/// hard-code the unit's name (`/run/credentials/<unit>/`). Otherwise it is
/// relative to the working directory, as any path.
fn credential_path(path: &Path, credentials: Option<&Path>) -> PathBuf {
    match credentials {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Is the host this machine? Plaintext is only allowed there by default.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses `tls = "none"` to a remote host unless `allow_insecure`.
pub fn check_plaintext(tls: TlsMode, host: &str, allow_insecure: bool, what: &str) -> std::result::Result<(), String> {
    if tls == TlsMode::None && !is_loopback(host) && !allow_insecure {
        return Err(format!(
            "tls = \"none\" to {host} would send {what} in clear; use implicit or starttls, or set allow_insecure = true"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"***\"");
        let inline = Secret::new("hunter2");
        let src = SecretSource {
            file: None,
            env: None,
            inline: Some(&inline),
        };
        assert!(!src.describe().contains("hunter2"));
    }

    #[test]
    fn missing_env_names_the_variable_not_a_value() {
        let var = "MAILROOM_TEST_SURELY_UNSET_VAR".to_string();
        let src = SecretSource {
            file: None,
            env: Some(&var),
            inline: None,
        };
        let err = src.read("smtp").unwrap_err().to_string();
        assert!(
            err.contains("MAILROOM_TEST_SURELY_UNSET_VAR") && err.contains("smtp"),
            "{err}"
        );
    }

    #[test]
    fn a_relative_password_file_is_a_systemd_credential_and_empty_is_refused() {
        let dir = std::env::temp_dir().join(format!("mailroom-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("imap-support"), "s3cret\n").unwrap();
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let name = PathBuf::from("imap-support");
        let src = SecretSource {
            file: Some(&name),
            env: None,
            inline: None,
        };
        assert_eq!(src.read_in("mailbox support", Some(&dir)).unwrap().expose(), "s3cret");
        // Without systemd, the same name is a path of its own (not there).
        let err = src.read_in("mailbox support", None).unwrap_err().to_string();
        assert!(
            err.contains("password_file imap-support") && err.contains("$CREDENTIALS_DIRECTORY is not set"),
            "{err}"
        );
        let absolute = dir.join("imap-support");
        let src = SecretSource {
            file: Some(&absolute),
            env: None,
            inline: None,
        };
        let elsewhere = std::env::temp_dir();
        assert_eq!(src.read_in("m", Some(&elsewhere)).unwrap().expose(), "s3cret");
        let empty = PathBuf::from("empty");
        let src = SecretSource {
            file: Some(&empty),
            env: None,
            inline: None,
        };
        let err = src.read_in("smtp", Some(&dir)).unwrap_err().to_string();
        assert!(err.contains("smtp") && err.contains("is empty"), "{err}");
        // Two lines: refused at once, naming the source, showing neither.
        std::fs::write(dir.join("two"), "first-line\nsecond-line\n").unwrap();
        let two = PathBuf::from("two");
        let src = SecretSource {
            file: Some(&two),
            env: None,
            inline: None,
        };
        let err = src.read_in("mailbox a", Some(&dir)).unwrap_err().to_string();
        assert!(
            err.contains("mailbox a") && err.contains("line break") && !err.contains("line-"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plaintext_only_to_loopback() {
        assert!(check_plaintext(TlsMode::None, "127.0.0.1", false, "x").is_ok());
        assert!(check_plaintext(TlsMode::None, "[::1]", false, "x").is_ok());
        assert!(check_plaintext(TlsMode::None, "mail.example", false, "x").is_err());
        assert!(check_plaintext(TlsMode::None, "mail.example", true, "x").is_ok());
        assert!(check_plaintext(TlsMode::Starttls, "mail.example", false, "x").is_ok());
    }
}
