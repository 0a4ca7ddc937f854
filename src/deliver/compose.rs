//! Turning an outbox row into the mail that goes out.
//!
//! Everything in a header may have come from a customer's mail (the
//! subject, names, addresses), so control characters are removed before
//! anything reaches a header: a subject carrying `\r\nBcc: victim` stays
//! one line of text. The headers make the mail thread back to its ticket
//! (Message-ID on our domain, In-Reply-To, References) and tell other
//! machines not to answer it (RFC 3834 Auto-Submitted, Microsoft's
//! X-Auto-Response-Suppress, Precedence).

use lettre::Message;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, SinglePart};

use crate::notify::Event;
use crate::store::outbox::Claimed;

/// The header naming the ticket a notification is about; mail carrying it
/// that comes back in is recognised as our own.
pub const TICKET_HEADER: &str = "X-Mailroom-Ticket";

/// Text safe for a header: control characters (CR, LF, NUL, ..., and the
/// Unicode line and paragraph separators) become spaces, runs of spaces
/// collapse, and the ends are trimmed.
pub fn header_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        let c = if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if !space && !out.is_empty() {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// A Message-ID as it goes in a header: `<id>`, nothing that could break
/// out of the header.
fn angle(id: &str) -> String {
    let id: String = id
        .chars()
        .filter(|c| !c.is_control() && !c.is_whitespace() && *c != '<' && *c != '>')
        .collect();
    format!("<{id}>")
}

/// Whether `id` (from an incoming mail) can name a parent in `In-Reply-To`
/// or `References`: a non-ASCII id would be sent as an encoded word, which
/// no mail client matches against the parent's `Message-ID`, and one too
/// long for a header line (998 octets, RFC 5322) would be cut by a relay
/// or refuse the mail, so either is left out rather than sent in a form
/// that threads nothing.
fn usable_id(id: &&str) -> bool {
    !id.is_empty() && id.is_ascii() && id.len() <= MAX_PARENT_ID
}

/// The longest parent Message-ID sent on: with `In-Reply-To: <` and `>`
/// it still fits a header line.
const MAX_PARENT_ID: usize = 900;

/// The longest word a subject keeps whole (in characters). Headers are
/// folded only between words, so a longer one (a pasted URL or log line)
/// would make a header line over 998 octets, which strict relays refuse
/// and others cut in the middle; such a word is cut short with "…".
const MAX_SUBJECT_WORD: usize = 200;

/// A subject as it goes out: [`header_text`], each word at most
/// [`MAX_SUBJECT_WORD`] characters.
fn subject_text(s: &str) -> String {
    let words: Vec<String> = header_text(s)
        .split(' ')
        .map(|w| match w.char_indices().nth(MAX_SUBJECT_WORD) {
            Some((cut, _)) => format!("{}…", &w[..cut]),
            None => w.to_string(),
        })
        .collect();
    words.join(" ")
}

/// A body as it may go out: LF line ends (lettre sends them as CRLF), and
/// no other control character but tab. A lone CR (old Mac line ends, `=0D`
/// in a customer's quoted-printable) or a NUL quoted from a customer's
/// mail is forbidden on the wire (RFC 5321 2.3.8): relays hardened against
/// SMTP smuggling refuse such a mail at DATA, which would fail it for every
/// subscriber. A lone CR becomes a line end, the others go.
fn body_text(s: &str) -> String {
    s.replace("\r\n", "\n")
        .chars()
        .filter_map(|c| match c {
            '\r' => Some('\n'),
            '\n' | '\t' => Some(c),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Builds the mail for `row` from `from` (also `Reply-To`).
pub fn compose(row: &Claimed, from: &Mailbox) -> Result<Message, String> {
    let to: Mailbox = header_text(&row.to)
        .parse()
        .map_err(|e| format!("recipient {:?} is not a usable address: {e}", row.to))?;
    let auto_submitted = Event::parse(&row.event).map_or("auto-generated", |e| e.auto_submitted());
    let mut builder = Message::builder()
        .from(from.clone())
        .reply_to(from.clone())
        .to(to)
        .subject(subject_text(&row.subject))
        .message_id(Some(angle(&row.message_id)))
        .raw_header(raw("Auto-Submitted", auto_submitted))
        .raw_header(raw("X-Auto-Response-Suppress", "All"))
        // Older helpdesks (OTRS) and vacation(1)-style responders read only
        // this: without it, a customer's NOC queue answered every notice.
        .raw_header(raw("Precedence", "bulk"));
    if let Some(ticket) = row.ticket {
        builder = builder.raw_header(raw(TICKET_HEADER, &ticket.to_string()));
    }
    if let Some(parent) = row.in_reply_to.as_deref().filter(usable_id) {
        builder = builder.in_reply_to(angle(parent));
    }
    let references: Vec<String> = row
        .references_ids
        .split_whitespace()
        .filter(usable_id)
        .map(angle)
        .collect();
    if !references.is_empty() {
        // One header: a second `.references()` would replace the first.
        builder = builder.references(references.join(" "));
    }
    // 7bit when the text allows it (ASCII, no line of 76 characters or
    // more), else quoted-printable. Naming 7bit for a text that breaks its
    // line limit makes lettre panic, and a panicking send never answers:
    // the row would be claimed and lost again at every lease.
    let text = body_text(&row.body);
    let body = Body::new_with_encoding(text.clone(), ContentTransferEncoding::SevenBit)
        .or_else(|_| Body::new_with_encoding(text, ContentTransferEncoding::QuotedPrintable))
        .map_err(|_| "cannot encode the body as quoted-printable".to_string())?;
    let body = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(body);
    builder
        .singlepart(body)
        .map_err(|e| format!("cannot build the mail: {e}"))
}

fn raw(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), header_text(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: &str) -> Claimed {
        Claimed {
            id: 1,
            ticket: Some(42),
            event: "new_ticket".into(),
            contact_id: Some(1),
            to: "anna@acme.test".into(),
            subject: subject.into(),
            body: "Bonjour Anna,\nvotre ticket a été ouvert.\n".into(),
            message_id: "mailroom.42.abc@support.test".into(),
            in_reply_to: Some("cause@acme.test".into()),
            references_ids: "root@acme.test cause@acme.test".into(),
            attempts: 1,
            queued_at: 0,
            status: "queued".into(),
            token: "t".into(),
        }
    }

    fn formatted(r: &Claimed) -> String {
        let from: Mailbox = "Support <support@support.test>".parse().unwrap();
        String::from_utf8(compose(r, &from).unwrap().formatted()).unwrap()
    }

    #[test]
    fn threading_and_auto_submitted_headers() {
        let text = formatted(&row("[#42] Panne"));
        for expected in [
            "Message-ID: <mailroom.42.abc@support.test>",
            "In-Reply-To: <cause@acme.test>",
            "References: <root@acme.test> <cause@acme.test>",
            "Auto-Submitted: auto-generated",
            "X-Auto-Response-Suppress: All",
            "Precedence: bulk",
            "X-Mailroom-Ticket: 42",
            "Reply-To: Support <support@support.test>",
            "To: anna@acme.test",
            "Content-Transfer-Encoding: quoted-printable",
            "a =C3=A9t=C3=A9 ouvert",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn a_hostile_subject_cannot_add_headers() {
        let text = formatted(&row(
            "[#42] hi\r\nBcc: victim@evil.test\r\n\r\nfake body\u{2028}X-Evil: 1",
        ));
        let headers = text.split("\r\n\r\n").next().unwrap();
        assert!(!headers.lines().any(|l| l.starts_with("Bcc:")), "{headers}");
        assert!(!headers.lines().any(|l| l.starts_with("X-Evil:")), "{headers}");
        assert!(
            headers.contains("Subject: [#42] hi Bcc: victim@evil.test fake body X-Evil: 1"),
            "{headers}"
        );
    }

    #[test]
    fn acknowledgements_are_auto_replied() {
        let mut r = row("x");
        r.event = "acknowledgement".into();
        assert!(formatted(&r).contains("Auto-Submitted: auto-replied"));
    }

    #[test]
    fn an_unusable_recipient_is_an_error_not_a_panic() {
        let mut r = row("x");
        r.to = "not an address".into();
        let from: Mailbox = "support@support.test".parse().unwrap();
        assert!(compose(&r, &from).unwrap_err().contains("not a usable address"));
    }

    #[test]
    fn an_ascii_body_with_long_lines_goes_quoted_printable_and_short_lines_7bit() {
        let mut r = row("x");
        let long = format!(
            "Marie Dupont has opened a new ticket [#42] for account Acme SA (OCN-1001). {}",
            "word ".repeat(20)
        );
        r.body = format!("Hello,\n\n{long}\n");
        let text = formatted(&r);
        assert!(text.contains("Content-Transfer-Encoding: quoted-printable"), "{text}");
        // Soft line breaks keep every line within the limit, and decoding gives the text back.
        let body = text.split_once("\r\n\r\n").unwrap().1;
        assert!(body.lines().all(|l| l.len() <= 76), "{body}");
        assert!(body.replace("=\r\n", "").contains(long.trim_end()), "{body}");

        r.body = "Hello,\nyour ticket is open.\n".into();
        assert!(formatted(&r).contains("Content-Transfer-Encoding: 7bit"));
    }

    #[test]
    fn non_ascii_parent_ids_are_left_out_of_the_threading_headers() {
        let mut r = row("x");
        r.in_reply_to = Some("café@acme.test".into());
        r.references_ids = "root@acme.test café@acme.test".into();
        let text = formatted(&r);
        let headers = text.split("\r\n\r\n").next().unwrap();
        assert!(
            !headers.contains("In-Reply-To:") && !headers.contains("=?"),
            "{headers}"
        );
        assert!(headers.contains("References: <root@acme.test>\r\n"), "{headers}");
    }

    /// A lone CR or a NUL quoted from a customer's mail never reaches the
    /// wire: the CR ends its line, the NUL goes.
    #[test]
    fn a_lone_cr_or_nul_in_the_body_is_not_sent() {
        let mut r = row("x");
        r.body = "Hello,\n  line one\rline two\0end\r\nbye\x0c\n".into();
        let text = formatted(&r);
        let body = text.split_once("\r\n\r\n").unwrap().1;
        assert!(
            body.starts_with("Hello,\r\n  line one\r\nline twoend\r\nbye\r\n"),
            "{body:?}"
        );
        assert!(
            !body.contains('\0') && !body.replace("\r\n", "").contains('\r'),
            "{body:?}"
        );
        assert!(text.contains("Content-Transfer-Encoding: 7bit"), "{text}");
    }

    /// No header line over 998 octets: a subject's overlong word is cut
    /// short, an overlong parent id left out.
    #[test]
    fn every_header_line_fits_the_line_limit() {
        let mut r = row(&format!("[#42] Panne é {}", "x".repeat(1_500)));
        r.in_reply_to = Some(format!("{}@acme.test", "a".repeat(1_200)));
        r.references_ids = format!("root@acme.test {}@acme.test", "b".repeat(1_200));
        let text = formatted(&r);
        let headers = text.split("\r\n\r\n").next().unwrap();
        assert!(headers.lines().all(|l| l.len() <= 998), "{headers}");
        assert!(!headers.contains("In-Reply-To:"), "{headers}");
        assert!(headers.contains("References: <root@acme.test>\r\n"), "{headers}");
        assert!(headers.contains("Subject: [#42] Panne"), "{headers}");
        assert_eq!(
            subject_text(&format!("[#1] {}", "y".repeat(300))),
            format!("[#1] {}…", "y".repeat(200))
        );
        assert_eq!(subject_text("[#1] short words stay"), "[#1] short words stay");
    }

    #[test]
    fn header_text_collapses_controls() {
        assert_eq!(header_text(" a\r\n\tb\0c "), "a b c");
        assert_eq!(header_text("\r\n"), "");
    }
}
