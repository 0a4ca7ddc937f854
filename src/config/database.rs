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
    /// How long a start waits for PostgreSQL to accept connections (a
    /// server still starting, restarting or full is waited for; then the
    /// last cause is reported).
    #[serde(deserialize_with = "super::smtp::duration")]
    pub connect_timeout: std::time::Duration,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("attachments", &self.attachments)
            .field("connections", &self.connections)
            .field("mailbox_lease", &self.mailbox_lease)
            .field("connect_timeout", &self.connect_timeout)
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
            connect_timeout: std::time::Duration::from_secs(30),
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
        self.postgres_url_with(std::env::var("PGSSLMODE").ok())
    }

    /// [`DatabaseConfig::postgres_url`] with PGSSLMODE as given.
    fn postgres_url_with(&self, env_mode: Option<String>) -> Result<String> {
        if let Some(problem) = url_problem(&self.url) {
            return Err(Error::Config(format!(
                "database.url {}: {problem}",
                redact_url(&self.url)
            )));
        }
        let mut url = url::Url::parse(&self.url)
            .map_err(|e| Error::Config(format!("database.url {}: {e}", redact_url(&self.url))))?;
        // The driver also reads `ssl-mode` and PGSSLMODE: an explicit
        // choice in either must not be overridden by an added `sslmode`.
        // The driver takes a PGSSLMODE it cannot read (`verify_full`) as
        // `prefer`, which checks nothing: refused here instead.
        let in_url = url.query_pairs().any(|(k, _)| is_ssl_mode(&k));
        // An empty PGSSLMODE is no choice, as for libpq.
        let env_mode = env_mode.filter(|m| !m.is_empty());
        if let Some(mode) = env_mode.as_deref().filter(|m| !in_url && !SSL_MODES.contains(m)) {
            return Err(Error::Config(format!(
                "PGSSLMODE={mode:?} is not an sslmode ({})",
                SSL_MODES.join(", ")
            )));
        }
        if !in_url && env_mode.is_none() {
            let mode = if is_loopback(&url) { "disable" } else { "verify-full" };
            url.query_pairs_mut().append_pair("sslmode", mode);
        }
        Ok(url.to_string())
    }

    /// A warning when the explicit `sslmode` (the URL's, else PGSSLMODE's)
    /// sends data to a remote server without checking its certificate, or
    /// its name.
    pub fn tls_warning(&self) -> Option<String> {
        self.tls_warning_with(std::env::var("PGSSLMODE").ok())
    }

    /// [`DatabaseConfig::tls_warning`] with PGSSLMODE as given.
    fn tls_warning_with(&self, pgsslmode: Option<String>) -> Option<String> {
        let url = url::Url::parse(&self.url).ok()?;
        let (source, mode) = match url.query_pairs().find(|(k, _)| is_ssl_mode(k)) {
            Some((_, v)) => ("database.url: sslmode", v.into_owned()),
            None => ("PGSSLMODE", pgsslmode.filter(|m| !m.is_empty())?),
        };
        if is_loopback(&url) {
            return None;
        }
        match mode.as_str() {
            "disable" | "allow" | "prefer" | "require" => Some(format!(
                "{source}={mode} does not verify the server's certificate; verify-full does (with sslrootcert= for a private CA)"
            )),
            "verify-ca" => Some(format!(
                "{source}={mode} checks the server's certificate but not that it names the server; verify-full does both"
            )),
            _ => None,
        }
    }
}

/// Whether `url` names a PostgreSQL server (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The values of `sslmode` (and PGSSLMODE) PostgreSQL's clients know.
const SSL_MODES: &[&str] = &["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];

/// A query key that sets the TLS mode.
fn is_ssl_mode(key: &str) -> bool {
    key == "sslmode" || key == "ssl-mode"
}

/// Whether the server a database URL reaches is this machine (or a Unix
/// socket). The driver connects to a `host`/`hostaddr` of the query, or
/// for a URL without a host to PGHOST/PGHOSTADDR: such a remote host was
/// taken for a local one and got `sslmode=disable`, so the password went
/// out in clear.
fn is_loopback(url: &url::Url) -> bool {
    let local = |h: &str| {
        let h = h.trim().trim_start_matches('[').trim_end_matches(']');
        h.is_empty()
            || h == "localhost"
            || h.starts_with('/')
            || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    };
    if url
        .query_pairs()
        .any(|(k, v)| (k == "host" || k == "hostaddr") && !local(&v))
    {
        return false;
    }
    match url.host() {
        None => ["PGHOST", "PGHOSTADDR"]
            .iter()
            .all(|e| std::env::var(e).map_or(true, |h| local(&h))),
        // A postgres:// URL's host is opaque to the url crate: IPv4 comes as text.
        Some(url::Host::Domain(d)) => local(d),
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

/// What makes a PostgreSQL URL unsafe to hand to sqlx, if anything (said
/// without quoting the URL: callers name it by [`redact_url`]):
///
/// - an `@` after a `/`, `?` or `#`. [`redact_url`] takes everything up to
///   the last `@` for the user-info, so it masks a password holding those
///   characters unencoded whole; a URL parser ends the authority at the
///   first of them, so the rest of such a password would become a database
///   name or query parameters, quoted back in errors and sqlx's logs. The
///   same text could also be an `@` in a parameter value: percent-encoding
///   says which was meant. (An unencoded `@` alone is not ambiguous:
///   parsers, like [`redact_url`], split at the last one.)
/// - query parameters sqlx does not know: it logs each one it ignores *with
///   its value*, so a mistyped `pasword=...` would put the secret on stderr.
pub fn url_problem(url: &str) -> Option<String> {
    if at_after_delimiter(url) {
        return Some(
            "an `@` follows a `/`, `?` or `#`, which makes the URL ambiguous (a password holding them, \
             or an `@` in the database name or a parameter): percent-encode them \
             (`/` %2F, `?` %3F, `#` %23, `@` %40)"
                .into(),
        );
    }
    let unknown = unknown_params(url);
    (!unknown.is_empty()).then(|| {
        format!(
            "parameters PostgreSQL connections do not take: {} (known: {})",
            unknown.join(", "),
            KNOWN_PARAMS.join(", ")
        )
    })
}

/// Whether an `@` comes after the first `/`, `?` or `#` past the scheme:
/// where [`redact_url`]'s user-info (up to the last `@`) and a URL
/// parser's authority (up to the first of those) disagree.
fn at_after_delimiter(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    rest.find(['/', '?', '#']).is_some_and(|end| rest[end..].contains('@'))
}

/// The query parameters of `url` that sqlx does not know (see
/// [`url_problem`]). Only meaningful once [`at_after_delimiter`] is
/// false: then the query is what follows the first `?`.
fn unknown_params(url: &str) -> Vec<String> {
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

    /// Found by a review: a remote host named in the query was taken for
    /// a local one (`sslmode=disable` added: the password in clear), and an
    /// explicit `ssl-mode` was overridden.
    #[test]
    fn a_remote_host_in_the_query_or_an_ssl_mode_spelling_is_respected() {
        let hidden = db("postgres:///mailroom?host=db.example.com&user=u");
        assert!(
            hidden.postgres_url().unwrap().ends_with("sslmode=verify-full"),
            "{}",
            hidden.postgres_url().unwrap()
        );
        let addr = db("postgres://u:pw@localhost/mailroom?hostaddr=192.0.2.7");
        assert!(addr.postgres_url().unwrap().ends_with("sslmode=verify-full"));
        let socket = db("postgres:///mailroom?host=/run/postgresql");
        assert!(socket.postgres_url().unwrap().ends_with("sslmode=disable"));
        let spelled = db("postgres://u@db.example.com/x?ssl-mode=verify-full");
        assert_eq!(spelled.postgres_url().unwrap(), spelled.url);
        assert!(
            db("postgres://u@db.example.com/x?ssl-mode=require")
                .tls_warning()
                .is_some()
        );
    }

    /// Found by an audit: PGSSLMODE replaced verify-full unseen, and a
    /// typo in it (taken by the driver as `prefer`) checked nothing.
    #[test]
    fn pgsslmode_is_checked_and_warned_of_like_the_urls_sslmode() {
        let remote = db("postgres://u:pw@db.example.com/x");
        let env = |m: &str| Some(m.to_string());
        let err = remote.postgres_url_with(env("verify_full")).unwrap_err().to_string();
        assert!(err.contains("PGSSLMODE=\"verify_full\" is not an sslmode"), "{err}");
        assert_eq!(remote.postgres_url_with(env("disable")).unwrap(), remote.url);
        // The URL's own sslmode is what the driver uses: PGSSLMODE is not
        // looked at then; an empty one is none at all.
        let explicit = db("postgres://u:pw@db.example.com/x?sslmode=verify-full");
        assert_eq!(explicit.postgres_url_with(env("verify_full")).unwrap(), explicit.url);
        assert!(
            remote
                .postgres_url_with(env(""))
                .unwrap()
                .ends_with("sslmode=verify-full")
        );
        let warning = remote.tls_warning_with(env("disable")).unwrap();
        assert!(warning.starts_with("PGSSLMODE=disable does not verify"), "{warning}");
        assert!(
            remote
                .tls_warning_with(env("verify-ca"))
                .unwrap()
                .contains("not that it names")
        );
        assert_eq!(remote.tls_warning_with(env("verify-full")), None);
        assert_eq!(remote.tls_warning_with(None), None);
        // The URL's own sslmode wins over PGSSLMODE, as in the driver.
        let explicit = db("postgres://u:pw@db.example.com/x?sslmode=verify-full");
        assert_eq!(explicit.tls_warning_with(env("disable")), None);
        // Loopback goes plain whatever is asked.
        assert_eq!(db("postgres://u@127.0.0.1/x").tls_warning_with(env("disable")), None);
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

    /// Passwords holding URL delimiters, typed as they are or
    /// percent-encoded: no fragment of one reaches a message, whether the
    /// URL is refused, connected to, or only shown.
    #[test]
    fn no_fragment_of_a_password_with_delimiters_is_shown() {
        const PARTS: [&str; 4] = ["Kq7v", "Vx2w", "Wm9z", "Zp4j"];
        for sep in ["?", "#", "/", "@", "%3F", "%23", "%2F", "%40", "?a=", "&", ":"] {
            let password = PARTS.join(sep);
            for tail in ["", "?sslmode=require", "?application_name=mr&sslmode=disable"] {
                let url = format!("postgres://mailroom:{password}@db.example:5432/mailroom{tail}");
                let config = db(&url);
                let mut shown = vec![redact_url(&url), format!("{config:?}")];
                shown.push(match config.postgres_url() {
                    Ok(connected) => redact_url(&connected),
                    Err(e) => e.to_string(),
                });
                shown.extend(url_problem(&url));
                for text in &shown {
                    for part in PARTS {
                        assert!(!text.contains(part), "{url} shows {part}: {text}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_ambiguous_url_is_refused_with_the_encoding_to_use() {
        let err = db("postgres://u:ab?cd@h/db").postgres_url().unwrap_err().to_string();
        assert!(err.contains("%3F") && err.contains("u:***@h/db"), "{err}");
        assert!(url_problem("postgres://u:ab/cd@h/db").is_some());
        assert!(url_problem("postgres://u:ab#cd@h/db").is_some());
        // An `@` in a parameter cannot be told from a password's `?`.
        assert!(url_problem("postgres://u@h/db?application_name=a@b").is_some());
        // Encoded, or an `@` alone: what a parser reads is what redact_url masks.
        assert_eq!(
            url_problem("postgres://u:ab%3Fcd%2F%23@h/db?application_name=a%40b"),
            None
        );
        assert_eq!(url_problem("postgres://u:p@ss@h/db"), None);
        assert_eq!(
            db("postgres://u:p@ss@db.internal/x").postgres_url().unwrap(),
            "postgres://u:p%40ss@db.internal/x?sslmode=verify-full"
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
