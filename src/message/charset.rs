//! Second chance for text mail-parser could not decode.
//!
//! mail-parser decodes every declared charset it knows (with encoding_rs),
//! but replaces bytes with U+FFFD when the charset is missing or wrong: raw
//! 8-bit Latin-1 or GB2312 in `Subject:`, `From:` and file names, KOI8-R
//! bodies without a `Content-Type`, ISO-2022-JP parts labelled US-ASCII.
//! When (and only when) its result holds U+FFFD, or its label is one it
//! does not know, the original bytes are decoded again here: as UTF-8 if
//! valid (or nearly: UTF-8 with a stray byte, before a single-byte label
//! that would read anything), else with the declared charset if it decodes
//! cleanly, else with the encoding chardetng guesses. 7-bit ISO-2022-JP
//! (its `ESC $ B` escapes in ASCII) is recognised whatever the label says.

use std::borrow::Cow;

use encoding_rs::Encoding;
use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::charsets::map::charset_decoder;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{HeaderName, MessagePart, MimeHeaders};

/// Decodes bytes of unknown or doubtful charset to text.
pub fn decode_bytes(bytes: &[u8], declared: Option<&str>) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let declared = declared.and_then(|d| Encoding::for_label(d.trim().as_bytes()));
    // A single-byte label decodes any bytes without an error, so UTF-8
    // with a stray byte (a name cut inside a character, a Latin-1 word
    // pasted in) is tried first: read as windows-1252, "Картинка" became
    // "ÐšÐ°Ñ€Ñ‚Ð¸Ð½ÐºÐ°".
    if declared.is_none_or(Encoding::is_single_byte)
        && let Some(mixed) = mostly_utf8(bytes)
    {
        return mixed;
    }
    if let Some(enc) = declared {
        let (text, had_errors) = enc.decode_without_bom_handling(bytes);
        if !had_errors && enc != encoding_rs::UTF_8 {
            return text.into_owned();
        }
    }
    if let Some(mixed) = mostly_utf8(bytes) {
        return mixed;
    }
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    let (text, _) = detector.guess(None, true).decode_without_bom_handling(bytes);
    text.into_owned()
}

/// UTF-8 text with a few stray 8-bit bytes (a Latin-1 signature pasted
/// into a UTF-8 mail): the stray bytes read as windows-1252, the rest as
/// UTF-8. `None` when the bytes hold no UTF-8 multi-byte character or too
/// many invalid ones.
fn mostly_utf8(bytes: &[u8]) -> Option<String> {
    let (mut out, mut rest, mut invalid, mut multibyte) = (String::new(), bytes, 0usize, false);
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                multibyte |= !s.is_ascii();
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                let good = std::str::from_utf8(good).expect("valid up to here");
                multibyte |= !good.is_ascii();
                out.push_str(good);
                let n = e.error_len().unwrap_or(bad.len());
                invalid += n;
                out.push_str(&encoding_rs::WINDOWS_1252.decode_without_bom_handling(&bad[..n]).0);
                rest = &bad[n..];
            }
        }
    }
    (multibyte && invalid * 4 < bytes.len()).then_some(out)
}

/// 7-bit bytes holding ISO-2022-JP's escape into JIS X 0208 (`ESC $ B`
/// or `ESC $ @`), decoded as ISO-2022-JP; `None` for anything else.
pub fn iso_2022_jp(bytes: &[u8]) -> Option<String> {
    // Most text holds no escape at all: one fast scan for it first.
    if !bytes.contains(&0x1b) {
        return None;
    }
    let escapes = bytes.windows(3).any(|w| w == b"\x1b$B" || w == b"\x1b$@");
    if !escapes || !bytes.is_ascii() {
        return None;
    }
    let (text, had_errors) = encoding_rs::ISO_2022_JP.decode_without_bom_handling(bytes);
    (!had_errors).then(|| text.into_owned())
}

/// The `charset` parameter of a part, if any.
pub fn charset_of(part: &MessagePart) -> Option<String> {
    part.content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(str::to_string)
}

/// The text of a text part, re-decoded when mail-parser's reading is
/// doubtful: it has U+FFFD, or the declared charset is one mail-parser
/// falls back on Latin-1 for (an unknown label like `iso-gb2312`, or
/// `us-ascii` on 8-bit bytes, which clients use for UTF-8).
pub fn part_text<'a>(raw: &[u8], part: &'a MessagePart, text: &'a str, fallback: Option<&str>) -> Cow<'a, str> {
    // ISO-2022-JP is 7-bit: labelled US-ASCII, or not at all, it reads as
    // ASCII with escape sequences (`ESC $ B`) around the Japanese.
    if let Some(japanese) = iso_2022_jp(text.as_bytes()) {
        return Cow::Owned(japanese);
    }
    let declared = charset_of(part);
    let label = declared.as_deref().map(|d| d.trim().to_ascii_lowercase());
    // Exchange's name for UTF-7, which mail-parser does not know: the text
    // is the 7-bit bytes as they came.
    if label.as_deref() == Some("unicode-1-1-utf-7")
        && text.is_ascii()
        && let Some(utf7) = charset_decoder(b"utf-7")
    {
        return Cow::Owned(utf7(text.as_bytes()));
    }
    // Doubtful: a label neither encoding_rs nor mail-parser knows (it falls
    // back on Latin-1 then), or US-ASCII, which clients put on UTF-8.
    // UTF-7 is known to mail-parser only: its reading stands.
    let label_doubtful = label.as_deref().is_some_and(|d| {
        (Encoding::for_label(d.as_bytes()).is_none() && charset_decoder(d.as_bytes()).is_none())
            || d == "us-ascii"
            || d == "ascii"
    });
    let replacements = text.matches('\u{FFFD}').count();
    if replacements == 0 && (!label_doubtful || text.is_ascii()) {
        return Cow::Borrowed(text);
    }
    let (start, end) = (part.offset_body as usize, part.offset_end as usize);
    let Some(body) = raw.get(start..end.min(raw.len())) else {
        return Cow::Borrowed(text);
    };
    let bytes = match part.encoding {
        mail_parser::Encoding::Base64 => base64_decode(body),
        mail_parser::Encoding::QuotedPrintable => quoted_printable_decode(body),
        mail_parser::Encoding::None => Some(body.to_vec()),
    };
    let Some(bytes) = bytes else {
        return Cow::Borrowed(text);
    };
    let label = if label_doubtful {
        None
    } else {
        declared.as_deref().or(fallback)
    };
    let redone = decode_bytes(&bytes, label);
    let better = redone.matches('\u{FFFD}').count();
    if better < replacements || (label_doubtful && better <= replacements) {
        Cow::Owned(redone)
    } else {
        Cow::Borrowed(text)
    }
}

/// A header value's RFC 2047 encoded words decoded, adjacent words of one
/// charset joined as bytes before decoding.
///
/// Mailers that cut encoded words at a byte count split a character over
/// two words (`=?UTF-8?Q?Ren=C3?= =?UTF-8?Q?=A9?=`); decoded word by word,
/// each half is invalid and "René" became "Ren��". Readers (Thunderbird,
/// Gmail, Python's `email.header`) join the bytes first, as here.
pub fn joined_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut pending: Option<(String, Vec<u8>)> = None;
    let mut last = 0;
    let flush = |out: &mut String, pending: &mut Option<(String, Vec<u8>)>| {
        if let Some((charset, bytes)) = pending.take() {
            out.push_str(&decode_word_bytes(&bytes, &charset));
        }
    };
    for m in ENCODED_WORD.captures_iter(value) {
        let whole = m.get(0).expect("whole match");
        let between = &value[last..whole.start()];
        // RFC 2047: white space between two encoded words is not text.
        let adjacent = pending.is_some() && between.trim().is_empty();
        // `charset*language` (RFC 2231) names the same charset.
        let charset = m[1].split('*').next().unwrap_or("").to_ascii_lowercase();
        let bytes = if m[2].eq_ignore_ascii_case("b") {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(m[3].trim_end_matches('='))
                .unwrap_or_else(|_| m[3].as_bytes().to_vec())
        } else {
            q_decoded(&m[3])
        };
        match pending.as_mut() {
            Some((c, held)) if adjacent && *c == charset => held.extend(bytes),
            _ => {
                flush(&mut out, &mut pending);
                if !adjacent {
                    out.push_str(between);
                }
                pending = Some((charset, bytes));
            }
        }
        last = whole.end();
    }
    flush(&mut out, &mut pending);
    out.push_str(&value[last..]);
    out
}

/// Whether `value` holds a base64 (`B`) encoded word whose text is not a
/// whole number of base64 quads (its `=` padding left out).
pub fn has_unpadded_b_word(value: &str) -> bool {
    ENCODED_WORD
        .captures_iter(value)
        .any(|m| m[2].eq_ignore_ascii_case("b") && !m[3].len().is_multiple_of(4))
}

/// An RFC 2047 encoded word: charset, `Q` or `B`, text.
static ENCODED_WORD: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=").unwrap());

/// The bytes of a `Q` encoded word: `_` a space, `=XX` a byte.
fn q_decoded(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'_', _) => out.push(b' '),
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    out
}

/// Joined word bytes in their declared charset (ISO-2022-JP included),
/// else as any other header bytes.
fn decode_word_bytes(bytes: &[u8], charset: &str) -> String {
    if let Some(enc) = Encoding::for_label(charset.as_bytes()) {
        let (text, had_errors) = enc.decode_without_bom_handling(bytes);
        if !had_errors {
            return text.into_owned();
        }
    }
    decode_bytes(bytes, Some(charset))
}

/// The raw bytes of a header's value in `headers`.
pub fn raw_header<'r>(raw: &'r [u8], headers: &[mail_parser::Header], name: HeaderName) -> Option<&'r [u8]> {
    let h = headers.iter().find(|h| h.name == name)?;
    raw.get(h.offset_start as usize..(h.offset_end as usize).min(raw.len()))
}

/// A header value (`Subject`, a display name) whose raw bytes were 8-bit
/// instead of RFC 2047 encoded words, decoded again.
pub fn header_text(raw_value: &[u8], fallback: Option<&str>) -> Option<String> {
    if let Some(japanese) = iso_2022_jp(raw_value) {
        return Some(japanese);
    }
    if raw_value.is_ascii() || raw_value.windows(2).any(|w| w == b"=?") {
        // Plain ASCII or encoded words: mail-parser's reading stands.
        return None;
    }
    if std::str::from_utf8(raw_value).is_err() {
        // A header's charset is the body's only by habit; a multi-byte
        // encoding chardetng recognises (GB2312 under a Latin-1 body) wins,
        // since Latin-1 decodes any bytes without complaint.
        let mut detector = chardetng::EncodingDetector::new();
        detector.feed(raw_value, true);
        let guess = detector.guess(None, false);
        if !guess.is_single_byte() {
            let (text, had_errors) = guess.decode_without_bom_handling(raw_value);
            if !had_errors {
                return Some(text.into_owned());
            }
        }
    }
    Some(decode_bytes(raw_value, fallback))
}

/// An RFC 2231 file name split into `filename*0*=`, `filename*1*=` …
/// segments, joined as bytes before decoding: mail-parser decodes each
/// segment alone and breaks a character cut between two of them.
pub fn rfc2231_file_name(raw_value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw_value);
    let mut segments: Vec<(u32, String)> = Vec::new();
    for param in text.split(';') {
        let Some((key, value)) = param.trim().split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let Some(rest) = key.strip_prefix("filename*").or_else(|| key.strip_prefix("name*")) else {
            continue;
        };
        let index = rest.trim_end_matches('*').parse::<u32>().unwrap_or(0);
        segments.push((index, value.trim().trim_matches('"').to_string()));
    }
    if segments.len() < 2 {
        return None;
    }
    segments.sort_by_key(|(i, _)| *i);
    let joined: String = segments.into_iter().map(|(_, v)| v).collect();
    let (charset, encoded) = match joined.splitn(3, '\'').collect::<Vec<_>>()[..] {
        [charset, _lang, encoded] => (Some(charset.to_string()), encoded.to_string()),
        _ => (None, joined),
    };
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut it = encoded.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex: Vec<u8> = it.by_ref().take(2).collect();
            match std::str::from_utf8(&hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(v) => bytes.push(v),
                None => bytes.extend_from_slice(&hex),
            }
        } else {
            bytes.push(b);
        }
    }
    Some(decode_bytes(&bytes, charset.as_deref()))
}

/// The file name parameter of raw `Content-Disposition`/`Content-Type` bytes
/// holding 8-bit text (`filename="Fröschе.txt"` sent unencoded).
pub fn raw_file_name(raw_value: &[u8], fallback: Option<&str>) -> Option<String> {
    let text = header_text(raw_value, fallback)?;
    let lower = text.to_lowercase();
    let at = lower
        .find("filename=")
        .map(|i| i + 9)
        .or_else(|| lower.find("name=").map(|i| i + 5))?;
    let rest = text[at..].trim_start();
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or(""),
        None => rest.split([';', '\r', '\n']).next().unwrap_or("").trim(),
    };
    (!value.is_empty()).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_decode_by_validity_then_label_then_guess() {
        assert_eq!(decode_bytes("Zürich".as_bytes(), Some("iso-8859-1")), "Zürich");
        assert_eq!(decode_bytes(b"Z\xfcrich", Some("iso-8859-1")), "Zürich");
        assert_eq!(decode_bytes(b"Z\xfcrich", None), "Zürich");
        // KOI8-R without a label: "Привет, как дела? Всё хорошо."
        let koi8 = b"\xf0\xd2\xc9\xd7\xc5\xd4, \xcb\xc1\xcb \xc4\xc5\xcc\xc1? \xf7\xd3\xa3 \xc8\xcf\xd2\xcf\xdb\xcf.";
        assert_eq!(decode_bytes(koi8, None), "Привет, как дела? Всё хорошо.");
    }

    #[test]
    fn split_rfc2231_names_join_as_bytes() {
        let v = b"attachment;\r\n filename*0*=UTF-8''%66%C3;\r\n filename*1*=%A4.txt";
        assert_eq!(rfc2231_file_name(v).as_deref(), Some("f\u{e4}.txt"));
    }

    #[test]
    fn mixed_utf8_and_latin1() {
        let bytes = b"Here - \xc3\xa4\xc3\xb6 - and Latin-1 \xe4\xf6 here, the rest is long enough";
        assert_eq!(
            decode_bytes(bytes, None),
            "Here - äö - and Latin-1 äö here, the rest is long enough"
        );
    }

    #[test]
    fn raw_file_names() {
        let v = b"attachment; filename=\"Hasen und Fr\xf6sche.txt\"";
        assert_eq!(raw_file_name(v, None).as_deref(), Some("Hasen und Frösche.txt"));
        assert_eq!(raw_file_name(b"attachment; filename=\"a.txt\"", None), None);
    }
}
