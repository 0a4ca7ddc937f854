//! The `[database]` section: which engine, where, and how the connection
//! to PostgreSQL is secured.

use std::path::PathBuf;

use serde::Deserialize;

use super::redact_url;
use crate::error::{Error, Result};

/// Where the store lives. `Debug` masks the URL's password.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite:PATH` (or a bare path), or `postgres://user@host/db` for
    /// several instances on one database (TLS when the server offers it;
    /// `?sslmode=require` insists on it).
    pub url: String,
    /// Where attachment files go. Default: `attachments/` beside the SQLite
    /// file; on PostgreSQL `attachments/` in the working directory, which
    /// instances on several machines must share (or point at one mount).
    pub attachments: Option<PathBuf>,
    /// Connections each instance keeps to PostgreSQL (SQLite uses 4).
    pub connections: u32,
    /// Longest a mailbox goes unwatched when the instance ingesting it
    /// dies, with several instances on one database: a standby takes it
    /// over within this time.
    #[serde(deserialize_with = "super::smtp::duration")]
    pub mailbox_lease: std::time::Duration,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("attachments", &self.attachments)
            .field("connections", &self.connections)
            .field("mailbox_lease", &self.mailbox_lease)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite:mailroom.db".into(),
            attachments: None,
            connections: 8,
            mailbox_lease: std::time::Duration::from_secs(30),
        }
    }
}

impl DatabaseConfig {
    /// Whether the URL names a PostgreSQL server.
    pub fn is_postgres(&self) -> bool {
        is_postgres_url(&self.url)
    }

    /// The PostgreSQL URL as connected, with the TLS policy made explicit.
    /// Without an `sslmode` the server's certificate is verified
    /// (`verify-full`: system roots, or `sslrootcert=`), except on
    /// loopback, where the connection is plain (`disable`), as with
    /// `tls = "none"` for mailboxes. An `sslmode` in the URL is the
    /// operator's explicit choice and kept; [`DatabaseConfig::tls_warning`]
    /// says when it leaves the certificate unchecked.
    pub fn postgres_url(&self) -> Result<String> {
        let unknown = unknown_params(&self.url);
        if !unknown.is_empty() {
            return Err(Error::Config(format!(
                "database.url {}: parameters PostgreSQL connections do not take: {} (known: {})",
                redact_url(&self.url),
                unknown.join(", "),
                KNOWN_PARAMS.join(", ")
            )));
        }
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| Error::Config(format!("database.url {}: {e}", redact_url(&self.url))))?;
        if !url.query_pairs().any(|(k, _)| k == "sslmode") {
            let mode = if is_loopback(&url) { "disable" } else { "verify-full" };
            url.query_pairs_mut().append_pair("sslmode", mode);
        }
        Ok(url.to_string())
    }

    /// A warning when the URL's explicit `sslmode` sends data to a remote
    /// server without checking its certificate.
    pub fn tls_warning(&self) -> Option<String> {
        let url = url::Url::parse(&self.url).ok()?;
        let mode = url
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned())?;
        let unchecked = matches!(mode.as_str(), "disable" | "allow" | "prefer" | "require");
        (unchecked && !is_loopback(&url)).then(|| {
            format!(
                "database.url: sslmode={mode} does not verify the server's certificate; verify-full does (with sslrootcert= for a private CA)"
            )
        })
    }
}

/// Whether `url` names a PostgreSQL server (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether a database URL's host is this machine (or a Unix socket).
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        None => true,
        // A postgres:// URL's host is opaque to the url crate: IPv4 comes as text.
        Some(url::Host::Domain(d)) => {
            d == "localhost" || d.starts_with('/') || d.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
    }
}

/// The URL query parameters sqlx's PostgreSQL driver understands.
pub const KNOWN_PARAMS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// The query parameters of `url` that sqlx does not know. sqlx logs each
/// one it ignores *with its value*, so a mistyped `pasword=...` would put
/// the secret on stderr: such a URL is refused before sqlx sees it.
pub fn unknown_params(url: &str) -> Vec<String> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split('=').next().unwrap_or_default())
        .filter(|k| {
            let per_setting = k.starts_with("options[") && k.ends_with(']');
            !KNOWN_PARAMS.contains(k) && !per_setting
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_url_password() {
        let shown = format!("{:?}", db("postgres://mailroom:S3cr3t@db.example/mailroom"));
        assert!(!shown.contains("S3cr3t") && shown.contains("db.example"), "{shown}");
    }

    fn db(url: &str) -> DatabaseConfig {
        DatabaseConfig {
            url: url.into(),
            ..DatabaseConfig::default()
        }
    }

    /// Remote servers get their certificate verified unless the URL says
    /// otherwise; loopback goes plain, like a loopback mailbox.
    #[test]
    fn postgres_tls_is_verified_by_default_off_loopback() {
        let remote = db("postgres://u:pw@db.internal:5432/mailroom");
        assert_eq!(
            remote.postgres_url().unwrap(),
            "postgres://u:pw@db.internal:5432/mailroom?sslmode=verify-full"
        );
        assert_eq!(remote.tls_warning(), None);
        let local = db("postgres://postgres@127.0.0.1:5432/test");
        assert!(local.postgres_url().unwrap().ends_with("?sslmode=disable"));
        assert!(
            db("postgres://u@[::1]/x")
                .postgres_url()
                .unwrap()
                .ends_with("sslmode=disable")
        );
        let explicit = db("postgres://u@db.internal/x?sslmode=require&application_name=mr");
        assert_eq!(
            explicit.postgres_url().unwrap(),
            explicit.url,
            "an explicit choice is kept"
        );
        assert!(
            explicit
                .tls_warning()
                .unwrap()
                .contains("sslmode=require does not verify")
        );
        assert_eq!(db("postgres://u@localhost/x?sslmode=disable").tls_warning(), None);
        assert!(
            db("postgres://u:pw@[oops/x")
                .postgres_url()
                .unwrap_err()
                .to_string()
                .contains("***")
        );
    }

    #[test]
    fn unknown_url_parameters_are_found_by_name() {
        assert!(unknown_params("postgres://u@h/db").is_empty());
        assert!(unknown_params("postgres://u@h/db?sslmode=require&options[search_path]=x&password=p").is_empty());
        assert_eq!(
            unknown_params("postgres://u@h/db?sslmode=require&pasword=s3cret&connect_timeout=5"),
            ["pasword", "connect_timeout"]
        );
    }
}
