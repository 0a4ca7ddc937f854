//! Folder names as IMAP servers spell them: modified UTF-7 (RFC 3501
//! §5.1.3).
//!
//! The config holds names as people write them (`folder = "Entrée"`,
//! `after = "move:Traité"`), but IMAP4rev1 carries folder names in
//! 7-bit: sent as UTF-8, Dovecot refuses the name, so the mailbox backed
//! off for ever (or, on a lenient server, a move made a folder with a
//! garbled name nobody finds). Every name sent to the server goes through
//! [`encode`].

use std::borrow::Cow;

use base64::Engine;
use base64::alphabet::Alphabet;
use base64::engine::{GeneralPurpose, GeneralPurposeConfig};

/// Base64 with `,` for `/` and no padding, as RFC 3501 asks.
fn engine() -> GeneralPurpose {
    // The alphabet is a constant the crate checks; it cannot fail.
    let alphabet = Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")
        .expect("the modified UTF-7 alphabet");
    GeneralPurpose::new(&alphabet, GeneralPurposeConfig::new().with_encode_padding(false))
}

/// `name` in modified UTF-7: printable ASCII stands for itself (`&` as
/// `&-`), every run of other characters is its UTF-16 in modified base64
/// between `&` and `-`. An ASCII name comes back borrowed, unchanged.
pub fn encode(name: &str) -> Cow<'_, str> {
    let direct = |c: char| (' '..='~').contains(&c);
    if name.chars().all(|c| direct(c) && c != '&') {
        return Cow::Borrowed(name);
    }
    let engine = engine();
    let mut out = String::with_capacity(name.len() * 2);
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&engine.encode(bytes));
        out.push('-');
        run.clear();
    };
    for c in name.chars() {
        if direct(c) {
            flush(&mut run, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut units = [0u16; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut run, &mut out);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn names_are_spelled_in_modified_utf7() {
        // RFC 3501 §5.1.3's own example.
        assert_eq!(encode("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(encode("Entrée"), "Entr&AOk-e");
        assert_eq!(encode("Traité/Clients & co"), "Trait&AOk-/Clients &- co");
        // Outside the BMP: a surrogate pair in one run.
        assert_eq!(encode("Tickets 📨"), "Tickets &2D3c6A-");
        assert!(matches!(encode("INBOX/Done"), std::borrow::Cow::Borrowed("INBOX/Done")));
    }
}
