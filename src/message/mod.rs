//! A received mail, parsed once into the owned facts the rest of the
//! pipeline needs.
//!
//! mail-parser borrows from the raw bytes; the pipeline keeps messages across
//! awaits and batches, so this module copies out exactly what later stages
//! use (addresses lower-cased, encoded-words decoded, Message-IDs without
//! angle brackets) and nothing else. Parsing never fails silently: a mail we
//! cannot understand comes back as a [`ParseFailure`] carrying its key, so
//! the caller quarantines it with its raw bytes.

pub mod attachments;
mod body;
pub mod bounce;
pub mod charset;
pub mod reply;

use mail_parser::{HeaderName, MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

pub use attachments::{Attachment, sanitise_file_name};
pub use bounce::{DeliveryReport, RecipientStatus, ReportKind};

/// A sender or recipient: the address (lower-case) and the display name.
///
/// The sender's address is empty only for a delivery report that names no
/// sender at all (`From: <>`, `From: MAILER-DAEMON`): such a mail always has
/// [`Message::delivery_report`] set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub address: String,
    pub name: Option<String>,
}

/// The most Message-IDs kept of a mail's `In-Reply-To` or `References`.
///
/// Threading needs the thread's root and the latest few; a header of
/// thousands of ids (a looping list, a crafted mail) would otherwise be
/// carried into every lookup and every notification's `References`.
pub const MAX_THREAD_IDS: usize = 32;

/// The first id (the thread's root, as RFC 5322 §3.6.4 keeps it when
/// trimming) and the last `MAX_THREAD_IDS - 1`.
fn capped(mut ids: Vec<String>) -> Vec<String> {
    if ids.len() > MAX_THREAD_IDS {
        ids.drain(1..ids.len() - (MAX_THREAD_IDS - 1));
    }
    ids
}

/// The parsed facts of one mail.
#[derive(Debug, Clone)]
pub struct Message {
    /// Identity for dedupe: the Message-ID, else `sha256:<hex>` of the raw bytes.
    pub key: String,
    /// The Message-ID without angle brackets, if the mail has one.
    pub message_id: Option<String>,
    /// SHA-256 of the raw bytes (hex): where the raw mail is stored.
    pub raw_sha256: String,
    pub from: Mailbox,
    /// Decoded subject, trimmed; empty when absent.
    pub subject: String,
    /// `Date:` as a unix timestamp, when present and valid.
    pub date: Option<i64>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// The readable text: the text/plain body, else the HTML converted.
    pub text: String,
    /// The new part of `text` ([`reply::new_part`]): without the quoted
    /// thread and the signature. Empty when the mail is only quotes; the
    /// full `text` is what is stored.
    pub new_text: String,
    /// Every header as (lower-case name, raw value trimmed), for classification.
    pub headers: Vec<(String, String)>,
    /// MIME type of the top-level part, lower-case (`multipart/report`, ...).
    pub content_type: String,
    /// The `report-type` parameter of a multipart/report.
    pub report_type: Option<String>,
    /// Names of the attachments (decoded), for display and classification.
    pub attachments: Vec<String>,
    /// The attachments and inline parts with their metadata and bytes
    /// (file names sanitised for storage), in part order.
    pub files: Vec<Attachment>,
    /// What a bounce (or feedback report) says, when the mail is one.
    pub delivery_report: Option<DeliveryReport>,
}

/// Why a mail could not be understood, with what identifies it anyway.
#[derive(Debug, Clone)]
pub struct ParseFailure {
    pub key: String,
    pub message_id: Option<String>,
    pub raw_sha256: String,
    /// Best-effort sender and subject, for the quarantine listing.
    pub from: Option<String>,
    pub subject: Option<String>,
    /// The sender's `Date:`, where the mail parsed: stored with it, so the
    /// same mail fetched again is told from another one reusing its
    /// Message-ID (see [`crate::store::snapshot::KeyHolder`]).
    pub sent_date: Option<i64>,
    pub reason: String,
    /// What a person looking at the quarantine must do about it.
    pub kind: FailureKind,
}

/// The two ways a mail can fail to be understood, quarantined under
/// different reasons because they call for different actions: a mail that
/// is not a mail is looked at (or deleted), a mail with no usable sender
/// (a script's report, a broken gateway) is answered by fixing its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No header block, or the parser gave up: quarantined `unparseable`.
    Unparseable,
    /// A mail, but no valid From address and not a delivery report:
    /// quarantined `no_sender`.
    NoSender,
    /// Parsed, but processing it failed (a bug): quarantined
    /// `processing_error`.
    Processing,
}

impl FailureKind {
    /// The quarantine reason.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Unparseable => "unparseable",
            FailureKind::NoSender => crate::tickets::plan::reason::NO_SENDER,
            FailureKind::Processing => "processing_error",
        }
    }
}

/// Drops NUL characters, which a broken or hostile mail may carry in any
/// decoded text (padding, a mislabelled UTF-16 part): PostgreSQL's TEXT
/// cannot hold them, and they mean nothing to a reader. Dropped rather than
/// replaced by U+FFFD, which would claim a decoding failure where there was
/// none. The raw bytes are kept as they came.
fn scrub(s: &mut String) {
    if s.contains('\0') {
        s.retain(|c| c != '\0');
    }
}

fn scrub_all<'a>(strings: impl IntoIterator<Item = &'a mut String>) {
    strings.into_iter().for_each(scrub);
}

impl Message {
    /// Every text of the message without NULs (see [`scrub`]).
    fn without_nul(mut self) -> Message {
        scrub_all([&mut self.key, &mut self.subject, &mut self.text, &mut self.new_text]);
        scrub_all([&mut self.from.address, &mut self.content_type]);
        scrub_all(self.message_id.iter_mut().chain(self.from.name.as_mut()));
        scrub_all(self.report_type.iter_mut());
        scrub_all(self.in_reply_to.iter_mut().chain(self.references.iter_mut()));
        scrub_all(self.headers.iter_mut().flat_map(|(n, v)| [n, v]));
        scrub_all(self.attachments.iter_mut());
        for f in &mut self.files {
            scrub_all([&mut f.file_name, &mut f.content_type]);
            scrub_all(f.content_id.iter_mut());
        }
        if let Some(report) = &mut self.delivery_report {
            scrub_all(
                report
                    .reporting_mta
                    .iter_mut()
                    .chain(report.original_message_id.iter_mut()),
            );
            for r in &mut report.recipients {
                scrub(&mut r.address);
                scrub_all(r.original_address.iter_mut().chain(r.action.iter_mut()));
                scrub_all(r.status.iter_mut().chain(r.diagnostic.iter_mut()));
            }
        }
        self
    }
}

impl ParseFailure {
    /// Every text without NULs (see [`scrub`]).
    fn without_nul(mut self) -> ParseFailure {
        scrub(&mut self.key);
        scrub_all(
            self.message_id
                .iter_mut()
                .chain(self.from.iter_mut())
                .chain(self.subject.iter_mut()),
        );
        self
    }
}

/// A phrase list searched for in one pass (subjects and openings against
/// lists of dozens of phrases): `str::contains` once per phrase built a
/// fresh substring searcher for each phrase on every mail.
pub(crate) fn phrases(list: &[&str]) -> aho_corasick::AhoCorasick {
    // Only `is_match` is asked, where the match kind changes nothing;
    // leftmost-first lets aho-corasick use its SIMD searcher, about nine
    // times faster than the standard automaton over a mail's opening.
    aho_corasick::AhoCorasick::builder()
        .match_kind(aho_corasick::MatchKind::LeftmostFirst)
        .build(list)
        .expect("a few short phrases")
}

/// The key of a mail without a usable Message-ID: the SHA-256 of its raw
/// bytes, so the same bytes fetched twice are one mail.
pub fn hash_key(raw_sha256: &str) -> String {
    format!("sha256:{raw_sha256}")
}

/// SHA-256 of bytes as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    // Written out by hand: `hex::encode` collects a char iterator, about
    // ten times the work for the 64 digits every mail needs.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for byte in Sha256::digest(bytes) {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

impl Message {
    /// Parses raw RFC 5322 bytes.
    ///
    /// Never panics: mail-parser 0.11 panics on some malformed nesting (a
    /// message/rfc822 part whose content is again message/rfc822, found by
    /// fuzzing), so a panic anywhere in parsing becomes a [`ParseFailure`]
    /// and the mail is quarantined instead of taking the batch down.
    pub fn parse(raw: &[u8]) -> Result<Message, Box<ParseFailure>> {
        let parsed = std::panic::catch_unwind(|| match Message::parse_unguarded(raw) {
            Ok(msg) => Ok(msg.without_nul()),
            Err(failure) => Err(Box::new(failure.without_nul())),
        });
        parsed.unwrap_or_else(|_| {
            let raw_sha256 = sha256_hex(raw);
            Err(Box::new(ParseFailure {
                key: hash_key(&raw_sha256),
                message_id: None,
                raw_sha256,
                from: None,
                subject: None,
                sent_date: None,
                reason: "the parser failed on this mail".into(),
                kind: FailureKind::Unparseable,
            }))
        })
    }

    fn parse_unguarded(raw: &[u8]) -> Result<Message, Box<ParseFailure>> {
        let raw_sha256 = sha256_hex(raw);
        let hash_key = hash_key(&raw_sha256);
        let failure = |kind, reason: &str, mid: Option<String>, from, subject| {
            Box::new(ParseFailure {
                key: mid.clone().unwrap_or_else(|| hash_key.clone()),
                message_id: mid,
                raw_sha256: raw_sha256.clone(),
                from,
                subject,
                sent_date: None,
                reason: reason.to_string(),
                kind,
            })
        };
        let Some(parsed) = MessageParser::default().parse(skip_blank_lines(raw)) else {
            return Err(failure(FailureKind::Unparseable, "no header block", None, None, None));
        };
        let message_id = parsed.message_id().and_then(clean_id);
        let fallback_charset = body_charset(&parsed);
        let fallback = fallback_charset.as_deref();
        let subject = decoded_subject(parsed.raw_message(), &parsed, fallback).unwrap_or_default();
        // mail-parser happily parses prose as a header-less body; a mail
        // without a single structured header is not a mail.
        let has_structure = parsed.headers().iter().any(|h| {
            !matches!(h.name, mail_parser::HeaderName::Other(_))
                || h.name.as_str().chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
        let mut from = sender(&parsed);
        if let Some(f) = from.as_mut().filter(|f| f.name.is_some()) {
            let repaired = repaired_header(
                parsed.raw_message(),
                &parsed,
                HeaderName::From,
                fallback,
                f.name.as_deref(),
            );
            if let Some(name) = repaired.map(|v| display_name(&v)) {
                f.name = Some(name);
            }
        }
        let report = bounce::report(
            &parsed,
            from.as_ref().map_or("", |f| f.address.as_str()),
            &subject,
            message_id.as_deref(),
        );
        // Bounces often come from `<>` or a bare `MAILER-DAEMON`: a delivery
        // report is understood without a sender; any other mail needs one.
        let from = from.or_else(|| {
            report.as_ref().map(|_| Mailbox {
                address: String::new(),
                name: parsed
                    .header_raw("From")
                    .map(clean_header_text)
                    .filter(|n| !n.is_empty()),
            })
        });
        let Some(from) = from.filter(|_| has_structure) else {
            let (kind, reason) = if parsed.headers().is_empty() || !has_structure {
                (FailureKind::Unparseable, "no header block")
            } else {
                (FailureKind::NoSender, "no valid From address")
            };
            let from_raw = parsed.header_raw("From").map(clean_header_text);
            let subj = (!subject.is_empty()).then_some(subject);
            return Err(failure(kind, reason, message_id, from_raw, subj));
        };

        let ids = |v: &mail_parser::HeaderValue| -> Vec<String> {
            v.as_text_list()
                .map(|l| l.iter().filter_map(|s| clean_id(s)).collect())
                .unwrap_or_default()
        };
        let in_reply_to = capped(ids(parsed.in_reply_to()));
        let references = capped(ids(parsed.references()));
        let headers = parsed
            .headers_raw()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let (content_type, report_type) = match parsed.root_part().content_type() {
            Some(ct) => (
                match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                    None => ct.ctype().to_ascii_lowercase(),
                },
                ct.attribute("report-type").map(|s| s.to_ascii_lowercase()),
            ),
            None => ("text/plain".into(), None),
        };
        let attachments = parsed
            .attachments()
            .filter_map(|p| attachments::decoded_name(parsed.raw_message(), p, fallback))
            .map(|n| clean_header_text(&n))
            .collect();
        let text = body::readable_text(&parsed, fallback);
        Ok(Message {
            key: message_id.clone().unwrap_or(hash_key),
            message_id,
            raw_sha256,
            from,
            subject,
            date: parsed.date().filter(|d| d.is_valid()).map(|d| d.to_timestamp()),
            in_reply_to,
            references,
            new_text: reply::new_part(&text),
            text,
            headers,
            content_type,
            report_type,
            attachments,
            files: attachments::collect(&parsed, fallback),
            delivery_report: report,
        })
    }

    /// The raw value of the first header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The mail without leading blank lines: some archives and exports start a
/// mail with one, which would otherwise read as an empty header block.
fn skip_blank_lines(raw: &[u8]) -> &[u8] {
    let mut rest = raw;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        if !rest[..end].iter().all(u8::is_ascii_whitespace) {
            break;
        }
        rest = &rest[end + 1..];
    }
    rest
}

/// The sender: the first valid `From` address, else the first address
/// written anywhere in a `From` the parser could not read (`From: Test
/// test@example.com`, two bare addresses), else `Sender`, else the
/// `Return-Path` (the envelope sender), which is empty for bounces. The
/// author wrote the broken `From`; the envelope sender is often a web
/// server's account that nobody reads.
fn sender(parsed: &mail_parser::Message) -> Option<Mailbox> {
    let mailbox = |addr: &mail_parser::Addr| {
        let address = crate::directory::normalise_email(addr.address.as_deref()?);
        valid_address(&address).then(|| Mailbox {
            address,
            name: addr.name.as_deref().map(clean_header_text).filter(|n| !n.is_empty()),
        })
    };
    let first = |a: Option<&mail_parser::Address>| a.and_then(|a| a.iter().find_map(mailbox));
    first(parsed.from())
        .or_else(|| address_in_raw_from(parsed))
        .or_else(|| first(parsed.sender()))
        .or_else(|| {
            let address = crate::directory::normalise_email(parsed.return_address()?);
            valid_address(&address).then_some(Mailbox { address, name: None })
        })
}

/// The address in the raw `From`: the one in angle brackets, else the
/// first word that is one, leaving out quoted text and comments (a name
/// may quote someone else's address: `"ceo@customer" bob@evil`).
fn address_in_raw_from(parsed: &mail_parser::Message) -> Option<Mailbox> {
    let raw = charset::raw_header(parsed.raw_message(), parsed.headers(), HeaderName::From)?;
    let text = String::from_utf8_lossy(raw);
    let mut bare = String::with_capacity(text.len());
    // Quoted strings, kept apart: one that is an address and nothing else
    // (`From: "a@b.example"`) is the last resort before the envelope.
    let mut quotes: Vec<String> = Vec::new();
    let (mut quoted, mut comment, mut bracket) = (false, 0usize, false);
    for c in text.chars() {
        match c {
            '"' if comment == 0 && !bracket => {
                quoted = !quoted;
                if quoted {
                    quotes.push(String::new());
                }
            }
            _ if quoted => quotes.last_mut().expect("opened").push(c),
            '(' => comment += 1,
            ')' if comment > 0 => comment -= 1,
            '[' if comment == 0 => bracket = true,
            ']' if bracket => bracket = false,
            _ if comment == 0 && !bracket => bare.push(c),
            _ => {}
        }
    }
    let angled = bare
        .split('<')
        .skip(1)
        .filter_map(|s| s.split_once('>').map(|(a, _)| a));
    let words = bare.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '\''));
    angled
        .chain(words)
        .chain(quotes.iter().map(String::as_str))
        .map(crate::directory::normalise_email)
        // An encoded word glued to a domain (`=?utf-8?q?agent?=@victim`)
        // is a spoof of an agent's address, not an address.
        .find(|a| valid_address(a) && !a.contains("=?"))
        .map(|address| Mailbox { address, name: None })
}

/// The charset the sender's client wrote in, for raw 8-bit headers, which
/// have no label of their own: the first multi-byte charset declared on a
/// part (a Latin-1 label decodes GB2312 bytes without error, into
/// nonsense), else the first declared.
fn body_charset(parsed: &mail_parser::Message) -> Option<String> {
    let declared: Vec<String> = parsed.parts.iter().filter_map(charset::charset_of).collect();
    let multi_byte = declared.iter().find(|c| {
        encoding_rs::Encoding::for_label(c.trim().as_bytes())
            .is_some_and(|e| !e.is_single_byte() && e != encoding_rs::UTF_8)
    });
    multi_byte.or(declared.first()).cloned()
}

/// A top-level header decoded again from its raw bytes when they are 8-bit
/// text that is not UTF-8 (instead of encoded words): mail-parser reads
/// those as Latin-1 or U+FFFD, the body's charset is the better guess.
fn repaired_header(
    top_raw: &[u8],
    parsed: &mail_parser::Message,
    name: HeaderName,
    fallback: Option<&str>,
    decoded: Option<&str>,
) -> Option<String> {
    let raw = charset::raw_header(top_raw, parsed.headers(), name)?;
    let Ok(text) = std::str::from_utf8(raw) else {
        return charset::header_text(raw, fallback).map(|t| clean_header_text(&t));
    };
    if let Some(japanese) = charset::iso_2022_jp(raw) {
        return Some(clean_header_text(&japanese));
    }
    // Encoded words decoded one by one gave U+FFFD: a character split
    // over two words, joined again here. A base64 word without its `=`
    // padding lost its last character in mail-parser, with no U+FFFD.
    let garbled = |t: &str| t.matches('\u{FFFD}').count();
    let before = garbled(decoded?);
    let unpadded = charset::has_unpadded_b_word(text);
    if (before == 0 && !unpadded) || !text.contains("=?") {
        return None;
    }
    let unfolded = text.replace("\r\n", "").replace('\n', "");
    let joined = charset::joined_encoded_words(&unfolded);
    let after = garbled(&joined);
    (after < before || (unpadded && after <= before)).then(|| clean_header_text(&joined))
}

/// The subject, decoded again from raw 8-bit bytes when needed. `top_raw`
/// is the whole mail's bytes: header offsets of nested messages count from
/// its start.
pub(crate) fn decoded_subject(top_raw: &[u8], parsed: &mail_parser::Message, fallback: Option<&str>) -> Option<String> {
    repaired_header(top_raw, parsed, HeaderName::Subject, fallback, parsed.subject())
        .or_else(|| parsed.subject().map(clean_header_text))
}

/// The display name of a From value: before the `<` that opens the
/// address (not one inside the quoted name: `"René <Support>" <r@x>`), or,
/// in the old comment form `rene@x (René Dupont)`, the comment.
fn display_name(value: &str) -> String {
    let value = value.trim();
    let mut quoted = false;
    let mut opens = None;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => opens = Some(i),
            _ => {}
        }
    }
    let name = match (opens, value.find('('), value.rfind(')')) {
        (Some(i), _, _) => &value[..i],
        (None, Some(l), Some(r)) if l < r => &value[l + 1..r],
        _ => value,
    };
    name.trim().trim_matches('"').trim().to_string()
}

/// Message-IDs compare without brackets and surrounding space; an empty or
/// space-containing id is garbage, not an identity, and so is one longer
/// than [`MAX_ID_BYTES`]: a mail with such an id is keyed by its bytes.
pub(crate) fn clean_id(s: &str) -> Option<String> {
    let s = s.trim().trim_start_matches('<').trim_end_matches('>').trim();
    (!s.is_empty() && s.len() <= MAX_ID_BYTES && !s.contains(char::is_whitespace)).then(|| s.to_string())
}

/// The longest Message-ID taken as one. Real ids are under 250 bytes; the
/// ids are indexed, and PostgreSQL refuses an index entry over 2,704 bytes:
/// a 2,800-byte id stopped a PostgreSQL store's intake at that mail, while
/// SQLite took it.
pub const MAX_ID_BYTES: usize = 512;

/// Header text with control characters (CR/LF included) removed and runs of
/// white space collapsed: such text ends up in outgoing headers and logs.
pub fn clean_header_text(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A usable mailbox address: one `@`, something on each side, no spaces,
/// and as SMTP can carry it: RFC 5321 limits a path to 254 bytes, so a
/// longer one is no one's (and would overflow PostgreSQL's index on
/// contact emails).
pub fn valid_address(a: &str) -> bool {
    if a.len() > 254 {
        return false;
    }
    match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !a.contains(|c: char| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests;
