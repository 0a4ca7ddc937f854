//! The machine-readable parts: `message/delivery-status` (RFC 3464) and
//! `message/feedback-report` (RFC 5965), read as groups of header-like
//! fields, plus the status-code rules both kinds of report share.

use super::{ADDRESS, RecipientStatus, SMTP_CODE, STATUS};

/// Headers-like `Name: value` fields with folded lines joined, split into
/// blank-line separated groups.
fn field_groups(body: &str) -> Vec<Vec<(String, String)>> {
    let mut groups: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in body.lines() {
        if line.trim().is_empty() {
            if !groups.last().is_some_and(Vec::is_empty) {
                groups.push(Vec::new());
            }
            continue;
        }
        let group = groups.last_mut().expect("never empty");
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = group.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    groups.retain(|g| !g.is_empty());
    groups
}

/// The value after an RFC 3464 type prefix (`rfc822; a@b` → `a@b`).
fn typed_value(v: &str) -> &str {
    match v.split_once(';') {
        Some((ty, rest)) if !ty.contains(char::is_whitespace) && !ty.contains('@') => rest.trim(),
        _ => v.trim(),
    }
}

fn clean_address(v: &str) -> String {
    let v = typed_value(v);
    let v = ADDRESS.find(v).map_or(v, |m| m.as_str());
    v.trim_matches(|c: char| c == '<' || c == '>' || c == '"' || c.is_whitespace())
        .to_lowercase()
}

/// Reads a `message/delivery-status` body: the per-message group, then one
/// group per recipient. Malformed reports (no blank lines between
/// recipients) are split at each `Final-Recipient`.
pub(super) fn parse_dsn(body: &str) -> (Option<String>, Vec<RecipientStatus>) {
    let mut mta = None;
    let mut recipients: Vec<RecipientStatus> = Vec::new();
    for group in field_groups(body) {
        let mut current: Option<RecipientStatus> = None;
        let (mut seen_final, mut seen_original) = (false, false);
        for (name, value) in group {
            match name.as_str() {
                "reporting-mta" => mta = Some(typed_value(&value).to_string()),
                "final-recipient" | "original-recipient" => {
                    let address = clean_address(&value);
                    let is_final = name == "final-recipient";
                    // A field already seen in this entry starts the next one.
                    if seen_final && (is_final || seen_original) {
                        recipients.extend(current.take());
                        (seen_final, seen_original) = (false, false);
                    }
                    let r = current.get_or_insert_with(empty_status);
                    if is_final {
                        seen_final = true;
                        r.address = address;
                    } else {
                        seen_original = true;
                        r.original_address = Some(address);
                    }
                }
                "action" => current.get_or_insert_with(empty_status).action = Some(value.to_ascii_lowercase()),
                "status" => current.get_or_insert_with(empty_status).status = status_code(&value),
                "diagnostic-code" => {
                    let d = typed_value(&value).to_string();
                    current.get_or_insert_with(empty_status).diagnostic = (!d.is_empty()).then_some(d);
                }
                _ => {}
            }
        }
        recipients.extend(current);
    }
    recipients.retain(|r| !r.address.is_empty() || r.original_address.is_some());
    for r in &mut recipients {
        if r.address.is_empty() {
            r.address = r.original_address.take().unwrap_or_default();
        }
        if r.original_address.as_ref() == Some(&r.address) {
            r.original_address = None;
        }
        refine_status(r);
    }
    (mta, recipients)
}

pub(super) fn empty_status() -> RecipientStatus {
    RecipientStatus {
        address: String::new(),
        original_address: None,
        action: None,
        status: None,
        diagnostic: None,
        permanent: false,
    }
}

/// A generic `X.0.0` status says less than the code in the diagnostic of
/// the same class; a missing one is derived from the diagnostic.
fn refine_status(r: &mut RecipientStatus) {
    let from_diag = r.diagnostic.as_deref().and_then(status_in_text);
    r.status = match (r.status.take(), from_diag) {
        (Some(s), Some(d)) if s.ends_with(".0.0") && s[..1] == d[..1] => Some(d),
        (Some(s), _) => Some(s),
        (None, d) => d,
    };
}

/// The first enhanced status code (RFC 3463) in `v`; one that is part of
/// a longer dotted number (an IP address, a version such as 10.2.4.5) is not.
pub(super) fn status_code(v: &str) -> Option<String> {
    let bytes = v.as_bytes();
    STATUS
        .find_iter(v)
        .find(|m| {
            let before = bytes[..m.start()].ends_with(b".") && m.start() >= 2 && bytes[m.start() - 2].is_ascii_digit();
            let after = bytes[m.end()..].starts_with(b".") && bytes.get(m.end() + 1).is_some_and(u8::is_ascii_digit);
            !before && !after
        })
        .map(|m| m.as_str().to_string())
}

/// An enhanced status code in text, else one derived from an SMTP reply code.
pub(super) fn status_in_text(text: &str) -> Option<String> {
    if let Some(c) = status_code(text) {
        return Some(c);
    }
    SMTP_CODE.captures(text).map(|c| format!("{}.0.0", &c[1][..1]))
}

/// Permanent when the status says 5, or, without a status, the action
/// failed and nothing in the words suggests a retry.
pub(super) fn is_permanent(r: &RecipientStatus) -> bool {
    match r.status.as_deref().map(|s| s.as_bytes()[0]) {
        Some(b'5') => !matches!(
            r.action.as_deref(),
            Some("delayed" | "delivered" | "relayed" | "expanded")
        ),
        Some(_) => false,
        None => {
            matches!(r.action.as_deref(), Some("failed"))
                || r.diagnostic.as_deref().is_some_and(|d| {
                    let d = d.to_lowercase();
                    (d.contains("permanent") || d.contains("user unknown") || d.contains("does not exist"))
                        && !d.contains("temporar")
                })
        }
    }
}

/// ARF: the complained-about recipient (`Original-Rcpt-To`), never permanent.
pub(super) fn parse_feedback(body: &str) -> Vec<RecipientStatus> {
    field_groups(body)
        .into_iter()
        .flatten()
        .filter(|(n, _)| n == "original-rcpt-to" || n == "removal-recipient")
        .map(|(_, v)| RecipientStatus {
            address: clean_address(&v),
            action: Some("feedback".into()),
            ..empty_status()
        })
        .collect()
}
