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
    let config = GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone);
    GeneralPurpose::new(&alphabet, config)
}

/// `name` in modified UTF-7: printable ASCII stands for itself (`&` as
/// `&-`), every run of other characters is its UTF-16 in modified base64
/// between `&` and `-`. An ASCII name comes back borrowed, unchanged, and
/// so does a name already spelled in modified UTF-7 (`Entr&AOk-e`, as
/// configs written before names were encoded had to spell them).
pub fn encode(name: &str) -> Cow<'_, str> {
    let direct = |c: char| (' '..='~').contains(&c);
    if name.chars().all(|c| direct(c) && c != '&') || is_encoded(name) {
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

/// Whether `name` is printable ASCII whose every `&` opens a well-formed
/// modified UTF-7 run: `&-`, or modified base64 of UTF-16 for characters
/// outside printable ASCII, closed by `-`. `R&D` is not (a plain `&`).
fn is_encoded(name: &str) -> bool {
    if !name.chars().all(|c| (' '..='~').contains(&c)) {
        return false;
    }
    let engine = engine();
    let mut rest = name;
    while let Some(at) = rest.find('&') {
        let after = &rest[at + 1..];
        let Some(end) = after.find('-') else {
            return false;
        };
        let run = &after[..end];
        if !run.is_empty() {
            let Ok(bytes) = engine.decode(run) else {
                return false;
            };
            if bytes.len() % 2 != 0 {
                return false;
            }
            let units: Vec<u16> = bytes.chunks(2).map(|b| u16::from_be_bytes([b[0], b[1]])).collect();
            match String::from_utf16(&units) {
                Ok(text) if text.chars().all(|c| !(' '..='~').contains(&c)) => {}
                _ => return false,
            }
        }
        rest = &after[end + 1..];
    }
    true
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
        // Spelled in modified UTF-7 already: kept as written.
        for written in ["Entr&AOk-e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-", "Clients &- co"] {
            assert_eq!(encode(written), written);
        }
        // A plain `&` in an ASCII name is not a run.
        assert_eq!(encode("R&D"), "R&-D");
        assert_eq!(encode("R&D-team"), "R&-D-team");
    }
}
