//! Bounces written for people: recognising them (sender, subject, words)
//! and scraping the failed addresses and status codes out of the prose.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use mail_parser::PartType;

use super::dsn::{status_code, status_in_text};
use super::{ADDRESS, RecipientStatus, SCAN_LIMIT, content_type_of};

/// Subjects of bounces, lower-case, in the languages MTAs localise into.
const BOUNCE_SUBJECTS: &[&str] = &[
    "undeliver",
    "undelivered",
    "delivery status notification",
    "delivery notification",
    "delivery failure",
    "delivery failed",
    "delivery has failed",
    "delivery problem",
    "failed delivery",
    "failure delivery",
    "permanent delivery failure",
    "failure notice",
    "returned mail",
    "returned to sender",
    "returning message to sender",
    "mail delivery",
    "could not be delivered",
    "not delivered",
    "non-delivery",
    "nondeliverable",
    "mail system error",
    "delayed",
    "could not send",
    "error sending your mail",
    "delivery status",
    "mail failure",
    "bounce notification",
    "unzustellbar",
    "nicht zustellbar",
    "fehlgeschlagen",
    "non remis",
    "non distribuable",
    "échec de la remise",
    "non recapitabile",
    "mancato recapito",
    "onbestelbaar",
    "niet afgeleverd",
    "no se pudo entregar",
    "no entregado",
    "não entregue",
    "nedoručiteľn",
    "nedoručen",
];

/// Every mail's subject is looked at: one pass for all the phrases instead
/// of a substring searcher built per phrase.
static BOUNCE_SUBJECT: LazyLock<AhoCorasick> = LazyLock::new(|| crate::message::phrases(BOUNCE_SUBJECTS));

/// Phrases of bounce bodies, lower-case.
const BOUNCE_PHRASES: &[&str] = &[
    "could not be delivered",
    "couldn't be delivered",
    "could not deliver",
    "wasn't able to deliver",
    "was not able to deliver",
    "unable to deliver",
    "undeliverable",
    "undelivered",
    "delivery to the following recipient",
    "delivery has failed",
    "delivery failed",
    "delivery failure",
    "failed permanently",
    "permanent error",
    "permanent fatal error",
    "fatal error",
    "not be delivered",
    "was not delivered",
    "has not been delivered",
    "not yet been delivered",
    "hasn't been delivered",
    "message not delivered",
    "did not reach",
    "user unknown",
    "unknown user",
    "no such user",
    "mailbox unavailable",
    "mailbox is full",
    "recipient address rejected",
    "address(es) failed",
    "addresses failed",
    "returned to the sender",
    "smtp error",
    "delivery attempts",
    "could not be sent",
    "rejected your message",
    "message was rejected",
    "your message was rejected",
    "has been rejected",
    "error occurred while",
    "failed recipient",
    "delivery to the following",
    "invalid recipient",
    "does not exist",
    "not a valid user",
    "invalid user",
];

/// Local parts that only mail systems send from.
const SYSTEM_SENDERS: &[&str] = &[
    "mailer-daemon",
    "mailerdaemon",
    "mailer_daemon",
    "postmaster",
    "post_master",
    "poostmaster",
    "mail.delivery.system",
    "mail-daemon",
    "mdaemon",
];

/// Lines after which a bounce quotes the returned message instead of
/// describing the failure.
const RETURNED_MARKERS: &[&str] = &[
    "original message",
    "returned message",
    "copy of the message",
    "copy of your message",
    "undelivered message",
    "message headers follow",
    "headers of the original",
    "original headers",
    "below this line",
    "message follows",
    "rfc822",
];

/// The prose of the report: its text parts (HTML rendered), without the
/// returned message, cut where the returned message starts, bounded.
pub(super) fn failure_text(parsed: &mail_parser::Message) -> String {
    let mut out = String::new();
    for part in &parsed.parts {
        let text = match &part.body {
            PartType::Text(t) if !content_type_of(part).contains("headers") => t.to_string(),
            PartType::Html(h) => html2text::config::plain()
                .string_from_read(&h.as_bytes()[..h.len().min(SCAN_LIMIT)], 100)
                .unwrap_or_default(),
            _ => continue,
        };
        out.push_str(&text);
        out.push('\n');
        if out.len() > SCAN_LIMIT {
            break;
        }
    }
    if out.trim().is_empty() {
        // Broken MIME (a multipart without its boundary) leaves no parts:
        // the raw body is still the prose a person would read.
        let body = &parsed.raw_message()[parsed.root_part().raw_body_offset() as usize..];
        out = String::from_utf8_lossy(&body[..body.len().min(SCAN_LIMIT)]).into_owned();
    }
    let mut cut = out.len();
    for (pos, line) in line_starts(&out) {
        let l = line.to_lowercase();
        let dashes = l.trim_start().starts_with("---") || l.trim_start().starts_with("===");
        if (dashes && RETURNED_MARKERS.iter().any(|m| l.contains(m)))
            || l.starts_with("received: ")
            || l.starts_with("return-path: ")
        {
            cut = pos;
            break;
        }
    }
    let mut end = cut.min(SCAN_LIMIT);
    while !out.is_char_boundary(end) {
        end -= 1;
    }
    out.truncate(end);
    out
}

fn line_starts(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = 0;
    s.split_inclusive('\n').map(move |l| {
        let start = pos;
        pos += l.len();
        (start, l)
    })
}

/// What the headers say about a possible prose bounce, before the body is
/// rendered: most mail has none of these and is never scanned.
pub(super) struct Signals {
    daemon: bool,
    system_sender: bool,
    null_sender: bool,
    bounce_subject: bool,
}

impl Signals {
    pub(super) fn of(parsed: &mail_parser::Message, from: &str, subject: &str) -> Signals {
        let subject = subject.to_lowercase();
        let from_raw = parsed.header_raw("From").unwrap_or("").to_lowercase();
        let from_raw = from_raw.trim_matches(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '"');
        let local = from.split('@').next().unwrap_or("");
        Signals {
            daemon: local.starts_with("mailer") && local.contains("daemon"),
            system_sender: SYSTEM_SENDERS.contains(&local)
                || (from.is_empty() && (from_raw.is_empty() || from_raw.contains("mailer-daemon")))
                || from_raw.contains("mail delivery s"),
            // The envelope sender of bounces is empty (RFC 5321 §4.5.5).
            null_sender: parsed.header_raw("Return-Path").is_some_and(super::is_null_path),
            bounce_subject: BOUNCE_SUBJECT.is_match(&subject),
        }
    }

    /// Sent by a mail system, not a person.
    pub(super) fn sent_by_mail_system(&self) -> bool {
        self.daemon || self.system_sender || self.null_sender
    }

    /// A mail system by the sender's address alone: not a mailer-daemon,
    /// not the null sender.
    pub(super) fn by_address_only(&self) -> bool {
        self.system_sender && !self.daemon && !self.null_sender
    }

    /// Worth reading the body for.
    pub(super) fn any(&self) -> bool {
        self.daemon || self.system_sender || self.null_sender || self.bounce_subject
    }

    /// A human-readable bounce: sent by a mail system (or nobody) with a
    /// bounce's subject or words, or with both the subject and the words.
    pub(super) fn confirmed_by(&self, text: &str) -> bool {
        let body = text.to_lowercase();
        let bounce_body = BOUNCE_PHRASES.iter().any(|p| body.contains(p));
        self.daemon
            || (self.system_sender && (self.bounce_subject || bounce_body))
            || (self.null_sender && bounce_body)
            || (self.bounce_subject && bounce_body && status_code(&body).is_some())
    }
}

/// Recipients of a prose bounce: `X-Failed-Recipients` when present, else
/// the addresses the failure text names (not the bounce's own parties).
pub(super) fn scrape_recipients(
    parsed: &mail_parser::Message,
    from: &str,
    subject: &str,
    failed: Option<&str>,
    text: &str,
) -> Vec<RecipientStatus> {
    let mut excluded: Vec<String> = vec![from.to_string()];
    for addr in parsed.to().into_iter().flat_map(|a| a.iter()) {
        if let Some(a) = addr.address.as_deref() {
            excluded.push(a.to_lowercase());
        }
    }
    let mut addresses: Vec<String> = Vec::new();
    let push = |a: String, addresses: &mut Vec<String>| {
        let local = a.split('@').next().unwrap_or("");
        if !a.is_empty() && !SYSTEM_SENDERS.contains(&local) && !addresses.contains(&a) {
            addresses.push(a);
        }
    };
    if let Some(h) = failed {
        for a in ADDRESS.find_iter(h) {
            push(a.as_str().to_lowercase(), &mut addresses);
        }
    }
    if addresses.is_empty() {
        for line in text.lines() {
            let l = line.trim_start().to_lowercase();
            if [
                "message-id:",
                "from:",
                "sender:",
                "reply-to:",
                "return-path:",
                "references:",
            ]
            .iter()
            .any(|h| l.starts_with(h))
            {
                continue;
            }
            for a in ADDRESS.find_iter(line) {
                let a = a.as_str().to_lowercase();
                if !excluded.contains(&a) {
                    push(a, &mut addresses);
                }
            }
        }
    }
    let whole_status = status_in_text(text);
    let delayed = is_delay(subject, text);
    let lines: Vec<&str> = text.lines().collect();
    addresses
        .into_iter()
        .map(|address| {
            let context = context_of(&lines, &address);
            let status = status_in_text(&context).or_else(|| whole_status.clone());
            let diagnostic = context.split_whitespace().collect::<Vec<_>>().join(" ");
            let diagnostic: String = diagnostic.chars().take(500).collect();
            RecipientStatus {
                address,
                original_address: None,
                action: Some(if delayed { "delayed" } else { "failed" }.into()),
                status,
                diagnostic: (!diagnostic.is_empty()).then_some(diagnostic),
                permanent: false,
            }
        })
        .collect()
}

/// A warning that delivery is still being tried, not a failure.
fn is_delay(subject: &str, text: &str) -> bool {
    let subject = subject.to_lowercase();
    let text = text.to_lowercase();
    subject.contains("delay")
        || subject.starts_with("warning")
        || [
            "will be retried",
            "still trying",
            "not yet been delivered",
            "will keep trying",
            "retry timeout not",
        ]
        .iter()
        .any(|p| text.contains(p))
}

/// The line naming `address` and the few after it, up to a blank line that
/// follows some text: where MTAs put the remote server's answer.
fn context_of(lines: &[&str], address: &str) -> String {
    let Some(start) = lines.iter().position(|l| l.to_lowercase().contains(address)) else {
        return String::new();
    };
    let mut out = String::new();
    for (i, line) in lines[start..].iter().take(8).enumerate() {
        if line.trim().is_empty() {
            if i > 1 || out.len() > address.len() + 8 {
                break;
            }
            continue;
        }
        if i > 0 && ADDRESS.is_match(line) && !line.to_lowercase().contains(address) && status_code(line).is_none() {
            let l = line.trim_start();
            if l.starts_with('<') || l.contains(':') && l.len() < address.len() + 20 {
                break;
            }
        }
        out.push_str(line.trim());
        out.push('\n');
    }
    out
}
