//! Database URLs with their passwords blanked out, for anything a person or
//! a log shipper will read.
//!
//! A PostgreSQL URL may carry its password (`postgres://user:secret@host/db`
//! or `?password=secret`). Errors and reports name the database they are
//! about, so they print [`redact_url`]'s form, never the URL as given:
//! terminal scrollback, CI logs and journald keep everything forever.

use super::database::KNOWN_PARAMS;

/// What a password is replaced with.
const MASK: &str = "***";

/// `url` with the password of its user-info part and the value of every
/// query parameter that is not a known harmless setting (`sslmode`, `host`,
/// ...; so `password=` and any misspelling of it) replaced by `***`;
/// everything else kept, so the result still says which server, database
/// and user are meant.
///
/// When in doubt it hides more, never less: an unencoded `@` or `/` in a
/// password is taken as part of it (the user-info ends at the *last* `@`),
/// so at worst some of the host is masked too.
pub fn redact_url(url: &str) -> String {
    redact_query(&redact_userinfo(url))
}

/// `url` with the password between `user:` and the last `@` masked.
/// A server's answer with `secret` (`user`'s password) taken out, plain
/// and in the base64 forms SMTP AUTH sends it (LOGIN: the password; PLAIN:
/// `\0user\0password`): a server quoting a refused login back must not
/// put the password into logs, errors or stored rows (`last_error`).
/// Escaped forms too: IMAP sends a password with `"` or `\` as a quoted
/// string (`pa\\ss`), and async-imap's error text escapes the server's
/// words once more, as Rust's `{:?}` does (`pa\\\\ss`).
pub fn without_secret(text: &str, user: &str, secret: &str) -> String {
    use base64::Engine as _;
    if secret.is_empty() {
        return text.to_string();
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let quoted = secret.replace('\\', "\\\\").replace('"', "\\\"");
    let debug = |s: &str| {
        let shown = format!("{s:?}");
        shown[1..shown.len() - 1].to_string()
    };
    let mut forms = vec![
        b64.encode(format!("\0{user}\0{secret}")),
        b64.encode(secret),
        debug(&quoted),
        debug(secret),
        quoted,
        secret.to_string(),
    ];
    // The most escaped first: masking a shorter form inside a longer one
    // would leave the rest of the longer one readable.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let mut out = text.to_string();
    for form in forms {
        out = out.replace(&form, MASK);
    }
    out
}

fn redact_userinfo(url: &str) -> String {
    // `sqlite:path` has no user-info.
    if url.starts_with("sqlite:") {
        return url.to_string();
    }
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return redact_mistyped_userinfo(url);
    };
    let (scheme, rest) = url.split_at(scheme_end);
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    match rest[..at].split_once(':') {
        Some((user, password)) if !password.is_empty() => format!("{scheme}{user}:{MASK}{}", &rest[at..]),
        _ => url.to_string(),
    }
}

/// `url` that is not `scheme://...` (a mistyped `postgres:/u:pw@h/db` or
/// `postgres//u:pw@h`) with whatever may be a password masked: what stands
/// between the last `/` before the last `@` and that `@` is taken as
/// `user:password`, or, with no `/`, all after the first `:`. It may hide
/// more than the password; never less.
fn redact_mistyped_userinfo(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_string();
    };
    let head = &url[..at];
    let start = head.rfind('/').map_or(0, |i| i + 1);
    match head[start..].find(':') {
        Some(colon) if start + colon + 1 < at => format!("{}:{MASK}{}", &url[..start + colon], &url[at..]),
        _ => url.to_string(),
    }
}

/// Whether a query parameter's value says nothing secret: PostgreSQL's
/// connection settings ([`KNOWN_PARAMS`] but the password) and SQLite's.
/// Every other value is masked, so a mistyped `pasword=` is hidden as well
/// as `password=`.
fn is_plain(key: &str) -> bool {
    const SQLITE_PARAMS: &[&str] = &["mode", "cache", "immutable", "vfs"];
    (KNOWN_PARAMS.contains(&key) && key != "password") || SQLITE_PARAMS.contains(&key)
}

/// `text` with the value of every query parameter that is not
/// [`is_plain`] masked.
fn redact_query(text: &str) -> String {
    let Some(q) = text.find('?') else {
        return text.to_string();
    };
    let (head, query) = text.split_at(q + 1);
    let (query, fragment) = match query.find('#') {
        Some(f) => query.split_at(f),
        None => (query, ""),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, value)) if !is_plain(&key.to_ascii_lowercase()) && !value.is_empty() => {
                format!("{key}={MASK}")
            }
            _ => param.to_string(),
        })
        .collect();
    format!("{head}{}{fragment}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::{redact_url, without_secret};

    /// Found by a review: IMAP and SMTP servers quoting a refused login
    /// back put the password into logs, last_error and status.
    #[test]
    fn a_server_quoting_the_login_back_shows_no_password() {
        let said = "NO [AUTHENTICATIONFAILED] LOGIN support Hunter2-secret refused";
        assert_eq!(
            without_secret(said, "support", "Hunter2-secret"),
            "NO [AUTHENTICATIONFAILED] LOGIN support *** refused"
        );
        // AUTH PLAIN and AUTH LOGIN send it in base64.
        let plain = "535 5.7.8 bad credentials AHN1cHBvcnQASHVudGVyMi1zZWNyZXQ=";
        assert_eq!(
            without_secret(plain, "support", "Hunter2-secret"),
            "535 5.7.8 bad credentials ***"
        );
        let login = "535 5.7.8 bad credentials SHVudGVyMi1zZWNyZXQ=";
        assert_eq!(
            without_secret(login, "support", "Hunter2-secret"),
            "535 5.7.8 bad credentials ***"
        );
    }

    /// Found by an audit: a password with `\` or `"` reached the log and
    /// `status` in its escaped forms.
    #[test]
    fn escaped_forms_of_the_password_are_masked_too() {
        let secret = r#"pa\ss"99"#;
        // The LOGIN line as sent (an IMAP quoted string), quoted back by
        // the server, then Debug-escaped by async-imap's error.
        let sent = r#"A0001 LOGIN "u" "pa\\ss\"99""#;
        for said in [
            format!("NO you said: {sent}"),
            format!("no response: code: None, info: Some({:?})", format!("you said: {sent}")),
            format!("NO raw {secret} and {secret:?}"),
        ] {
            let shown = without_secret(&said, "u", secret);
            assert!(!shown.contains("ss"), "{said} -> {shown}");
            assert!(shown.contains("***"), "{shown}");
        }
    }

    #[test]
    fn the_password_of_the_user_info_is_masked() {
        assert_eq!(
            redact_url("postgres://mailroom:s3cret@db.example:5432/mailroom"),
            "postgres://mailroom:***@db.example:5432/mailroom"
        );
        assert_eq!(
            redact_url("postgresql://u:p%40ss@h/db?sslmode=require"),
            "postgresql://u:***@h/db?sslmode=require"
        );
    }

    /// Found by a review: a URL mistyped without its `//` was printed whole.
    #[test]
    fn a_mistyped_url_shows_no_password() {
        assert_eq!(redact_url("postgres:/u:s3cret@db/x"), "postgres:/u:***@db/x");
        assert_eq!(redact_url("postgres//u:s3cret@db/x"), "postgres//u:***@db/x");
        assert_eq!(redact_url("postgres:u:s3cret@db/x"), "postgres:***@db/x");
        assert_eq!(redact_url("postgres:/u@db/x"), "postgres:/u@db/x");
    }

    #[test]
    fn urls_without_a_password_are_unchanged() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgres://127.0.0.1/test",
            "postgres://u:@h/db",
            "sqlite:/var/lib/mailroom/mailroom.db",
            "mailroom.db",
            "",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn unencoded_separators_in_a_password_are_still_masked() {
        assert_eq!(redact_url("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u:pa/ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u:pa?ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u:pa:ss@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn a_password_is_masked_whole_whatever_it_holds() {
        for password in ["a?b#c/d@e", "a%3Fb%23c%2Fd%40e", "a?b=c&d", "a@b/c?sslmode=disable"] {
            for tail in ["", "?sslmode=require", "#x"] {
                let url = format!("postgres://u:{password}@h/db{tail}");
                assert_eq!(redact_url(&url), format!("postgres://u:***@h/db{tail}"), "{url}");
            }
        }
    }

    #[test]
    fn password_query_parameters_are_masked() {
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=s3cret&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://u:a@h/db?PASSWORD=b#frag"),
            "postgres://u:***@h/db?PASSWORD=***#frag"
        );
        assert_eq!(redact_url("sqlite:x.db?password=k"), "sqlite:x.db?password=***");
        assert_eq!(
            redact_url("postgres://h/db?pasword=k&sslmode=require&options[search_path]=x"),
            "postgres://h/db?pasword=***&sslmode=require&options[search_path]=***"
        );
        assert_eq!(redact_url("sqlite:x.db?mode=ro"), "sqlite:x.db?mode=ro");
    }

    #[test]
    fn no_form_of_the_secret_survives() {
        for url in [
            "postgres://u:topsecret@h/db",
            "postgres://u:topsecret@h/db?password=topsecret",
            "postgres://u:top@secret@h/db",
            "postgres://h/db?application_name=x&password=topsecret",
            "postgres://h/db?application_name=x@y&password=topsecret",
        ] {
            let shown = redact_url(url);
            assert!(!shown.contains("secret"), "{url} -> {shown}");
        }
    }
}
