//! The subject a new ticket is filed under.
//!
//! "RE: AW: [#12] Fwd: Panne" is how subjects arrive after a few hops; the
//! team wants "Panne" in the ticket list, and notifications re-add the tag.

use super::tag::TagFormat;

/// Reply and forward prefixes of the mail clients our customers use
/// (en, fr, it, sk, de, nl, es, pt, nordic).
const PREFIXES: &[&str] = &[
    "re", "fw", "fwd", "tr", "aw", "wg", "r", "rif", "i", "odp", "re", "sv", "vs", "antw", "doorst", "rv", "enc", "fyi",
];

/// The subject of a ticket whose mail had none; notifications say it in
/// the recipient's language (see `notify::outbox`).
pub const NO_SUBJECT: &str = "(no subject)";

/// Strips reply/forward prefixes and ticket tags; [`NO_SUBJECT`] if nothing is left.
pub fn ticket_subject(subject: &str, tag: &TagFormat) -> String {
    let mut s = tag.strip(subject).split_whitespace().collect::<Vec<_>>().join(" ");
    while let Some((head, rest)) = s.split_once(':') {
        let word = head
            .trim()
            .trim_end_matches(|c: char| c.is_ascii_digit() || c == '[' || c == ']');
        if head.len() <= 8 && PREFIXES.contains(&word.to_lowercase().as_str()) {
            s = rest.trim().to_string();
        } else {
            break;
        }
    }
    if s.is_empty() { NO_SUBJECT.to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_prefixes_and_tags() {
        let t = TagFormat::new("[#{number}]").unwrap();
        assert_eq!(ticket_subject("RE: AW: [#12] Fwd:  Panne  totale", &t), "Panne totale");
        assert_eq!(ticket_subject("R: Guasto", &t), "Guasto");
        assert_eq!(ticket_subject("Odp: Porucha", &t), "Porucha");
        assert_eq!(ticket_subject("Ticket: 4 ports down", &t), "Ticket: 4 ports down");
        assert_eq!(ticket_subject("", &t), "(no subject)");
        assert_eq!(ticket_subject("Re: [#3]", &t), "(no subject)");
    }
}
