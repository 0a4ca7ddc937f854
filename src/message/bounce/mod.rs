//! Delivery reports: what a bounce says about which recipient failed, how,
//! and which of our mails it returns.
//!
//! Two shapes exist in the wild. RFC 3464 DSNs carry a machine-readable
//! `message/delivery-status` part; everything else (qmail, Exim without DSN,
//! old Sendmail, Exchange 2003, webmail providers) only has prose written for
//! people. The structured part is read field by field; the prose is scraped
//! for addresses and status codes near them. Either way the original
//! Message-ID is looked for in the returned message (or its headers), since
//! that is how a bounce finds the notification and the ticket it is about.
//!
//! Everything here is pure and bounded: it only looks at the parsed parts of
//! one mail and at most [`SCAN_LIMIT`] bytes of its text.

use std::sync::LazyLock;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use regex::Regex;

use super::clean_id;

mod dsn;
mod prose;
#[cfg(test)]
mod tests;

use dsn::{is_permanent, parse_dsn, parse_feedback};
use prose::{Signals, failure_text, scrape_recipients};

/// The delivery-status facts of one bounce (or feedback report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub kind: ReportKind,
    /// The MTA that wrote the report (`Reporting-MTA`), when stated.
    pub reporting_mta: Option<String>,
    /// One entry per recipient the report is about, in report order.
    pub recipients: Vec<RecipientStatus>,
    /// Message-ID (without brackets) of the mail that was returned: the key
    /// to the notification, and so the ticket, the report is about.
    pub original_message_id: Option<String>,
    /// Whether the returned mail (its headers, quoted or attached) carries
    /// our `X-Mailroom-Ticket` header: it is one of our notifications even
    /// when a relay (Amazon SES) gave it a Message-ID of its own.
    pub returns_ticket_header: bool,
    /// Whether a mail system wrote it, by its form (a DSN part, a declared
    /// report, `X-Failed-Recipients`) or its sender (mailer-daemon,
    /// postmaster, the null sender). False when only its words say so: a
    /// bounce's subject, failure phrases and a status code, which a person
    /// writing *about* a delivery problem uses too.
    pub by_mail_system: bool,
    /// A mail system only by its sender's address (`postmaster@`): nothing
    /// in its form (a report part, `X-Failed-Recipients`, the null sender,
    /// a mailer-daemon) says so, and a person reading that mailbox at a
    /// customer writes about delivery problems the same way.
    pub by_address_only: bool,
}

/// Where the facts of a [`DeliveryReport`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// A `message/delivery-status` part (RFC 3464).
    Dsn,
    /// Scraped from a human-readable bounce without a DSN part.
    Text,
    /// An abuse/opt-out feedback report (RFC 5965 ARF): no delivery failed,
    /// but the recipient does not want the mail.
    Feedback,
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    /// The final recipient, lower-case (may be empty when a report names none).
    pub address: String,
    /// `Original-Recipient`, when the report gives it and it differs.
    pub original_address: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed`, `expanded` (lower-case).
    pub action: Option<String>,
    /// Enhanced status code (`5.1.1`), or one derived from the SMTP reply
    /// (`550` → `5.0.0`).
    pub status: Option<String>,
    /// The remote server's words (`Diagnostic-Code` or the scraped line).
    pub diagnostic: Option<String>,
    /// A permanent failure (5.x.x): the address should not be mailed again.
    pub permanent: bool,
}

impl DeliveryReport {
    /// The recipients whose delivery failed for good.
    pub fn permanent_failures(&self) -> impl Iterator<Item = &RecipientStatus> {
        self.recipients.iter().filter(|r| r.permanent)
    }

    /// True when at least one recipient failed permanently.
    pub fn is_permanent(&self) -> bool {
        self.recipients.iter().any(|r| r.permanent)
    }
}

/// How much of a bounce's text is scraped: reports put the failure first,
/// and a returned multi-megabyte message must not cost regex time.
pub const SCAN_LIMIT: usize = 64 * 1024;

pub(super) static STATUS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b").unwrap());
pub(super) static SMTP_CODE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?:^|[\s:(\[-])([45][0-5][0-9])[\s-]").unwrap());
pub(super) static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
        .unwrap()
});
static MESSAGE_ID_LINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?im)^[ \t>]*message-id:[ \t]*(?:\r?\n[ \t]+)?<?([^\s<>]+@[^\s<>]+)>?").unwrap());

/// Whether a `Return-Path` value is the null reverse path (`<>`): the
/// envelope sender of bounces and of anything that takes no answer (RFC
/// 5321 §4.5.5, RFC 3834 §2).
pub fn is_null_path(value: &str) -> bool {
    value.trim().trim_matches(['<', '>']).trim().is_empty()
}

/// The facts of a bounce, if `parsed` is one. `from` is the sender address
/// (lower-case, possibly empty), `own_id` the bounce's own Message-ID.
pub fn report(
    parsed: &mail_parser::Message,
    from: &str,
    subject: &str,
    own_id: Option<&str>,
) -> Option<DeliveryReport> {
    let root_type = content_type_of(parsed.root_part());
    let report_type = parsed
        .root_part()
        .content_type()
        .and_then(|ct| ct.attribute("report-type"))
        .map(|s| s.to_ascii_lowercase());
    let mut dsn_body = None;
    let mut feedback_body = None;
    for part in &parsed.parts {
        match content_type_of(part).as_str() {
            "message/delivery-status" | "message/global-delivery-status" => {
                dsn_body.get_or_insert_with(|| String::from_utf8_lossy(part.contents()).into_owned());
            }
            "message/feedback-report" => {
                feedback_body.get_or_insert_with(|| String::from_utf8_lossy(part.contents()).into_owned());
            }
            _ => {}
        }
    }
    let dsn_declared = root_type == "multipart/report" && report_type.as_deref() == Some("delivery-status");
    let mut by_mail_system = true;
    let mut by_address_only = false;
    let (kind, mut recipients, reporting_mta) = if let Some(body) = dsn_body {
        let (mta, recipients) = parse_dsn(&body);
        (ReportKind::Dsn, recipients, mta)
    } else if let Some(body) = feedback_body {
        (ReportKind::Feedback, parse_feedback(&body), None)
    } else if root_type == "multipart/report" && report_type.as_deref() == Some("feedback-report") {
        (ReportKind::Feedback, Vec::new(), None)
    } else {
        let failed_header = parsed.header_raw("X-Failed-Recipients").map(str::to_string);
        let certain = dsn_declared || failed_header.is_some();
        let signals = Signals::of(parsed, from, subject);
        if !certain && !signals.any() {
            return None;
        }
        let text = failure_text(parsed);
        if !certain && !signals.confirmed_by(&text) {
            return None;
        }
        by_mail_system = certain || signals.sent_by_mail_system();
        by_address_only = !certain && signals.by_address_only();
        let recipients = scrape_recipients(parsed, from, subject, failed_header.as_deref(), &text);
        (
            if dsn_declared {
                ReportKind::Dsn
            } else {
                ReportKind::Text
            },
            recipients,
            None,
        )
    };
    if kind != ReportKind::Feedback {
        for r in &mut recipients {
            r.permanent = is_permanent(r);
        }
    }
    Some(DeliveryReport {
        kind,
        reporting_mta,
        recipients,
        original_message_id: original_message_id(parsed, own_id),
        returns_ticket_header: returns_ticket_header(parsed),
        by_mail_system,
        by_address_only,
    })
}

/// `type/subtype` of a part, lower-case; `text/plain` when absent.
pub(super) fn content_type_of(part: &mail_parser::MessagePart) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => "text/plain".into(),
    }
}

/// The Message-ID of the returned mail: from a `message/rfc822` part, a
/// `text/rfc822-headers` part, else the first `Message-ID:` line quoted in
/// the body that is not the bounce's own.
fn original_message_id(parsed: &mail_parser::Message, own_id: Option<&str>) -> Option<String> {
    let not_own = |id: &String| own_id != Some(id.as_str());
    for part in &parsed.parts {
        let found = match &part.body {
            PartType::Message(m) => m.message_id().and_then(clean_id),
            _ if content_type_of(part).contains("headers") => MessageParser::default()
                .parse_headers(part.contents())
                .and_then(|m| m.message_id().and_then(clean_id)),
            _ => None,
        };
        if let Some(id) = found.filter(not_own) {
            return Some(id);
        }
    }
    for part in parsed.parts.iter().skip(1) {
        let bytes = match &part.body {
            PartType::Text(t) | PartType::Html(t) => t.as_bytes(),
            PartType::Binary(b) | PartType::InlineBinary(b) => b.as_ref(),
            _ => continue,
        };
        if let Some(id) = scan_message_id(bytes).filter(not_own) {
            return Some(id);
        }
    }
    // A single-part bounce quotes the original in its own body.
    let body = &parsed.raw_message()[parsed.root_part().raw_body_offset() as usize..];
    scan_message_id(body).filter(not_own)
}

/// Whether the body of the report (what follows its own headers) holds an
/// `X-Mailroom-Ticket:` header line.
fn returns_ticket_header(parsed: &mail_parser::Message) -> bool {
    let body = &parsed.raw_message()[parsed.root_part().raw_body_offset() as usize..];
    let body = &body[..body.len().min(4 * SCAN_LIMIT)];
    body.windows(18).any(|w| w.eq_ignore_ascii_case(b"\nx-mailroom-ticket"))
}

fn scan_message_id(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(4 * SCAN_LIMIT)]);
    MESSAGE_ID_LINE.captures(&text).and_then(|c| clean_id(&c[1]))
}
