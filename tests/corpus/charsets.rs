//! Every charset of the corpus decodes: no mail's text, subject, sender
//! name or attachment name holds U+FFFD or UTF-8-read-as-Latin-1 mojibake,
//! except the few whose bytes are broken at the source (listed with why).

use mailroom::ingest::replay::{mail_files, read_file};
use mailroom::message::Message;

use super::common::corpus;

/// Mails that cannot decode cleanly, by path suffix.
const BROKEN_AT_SOURCE: &[&str] = &[
    // The file itself holds U+FFFD bytes in the attachment name.
    "flanker/outlook-express.eml",
    // `name*=iso-2022-jp'ja'…%8a…`: a byte that is not ISO-2022-JP.
    "mikel-mail/emails/attachment_emails/attachment_with_encoded_name.eml",
    "mikel-mail/emails/plain_emails/raw_email8.eml",
    // The file holds U+FFFD bytes in Subject and From (a test of exactly that).
    "mikel-mail/emails/error_emails/must_supply_encoding.eml",
    // The file's Subject is Big5 text already read as Latin-1 and saved as
    // UTF-8 (`±Ð¾Ç`): mojibake in the file itself.
    "mikel-mail/emails/error_emails/content_transfer_encoding_empty.eml",
];

/// Byte pairs of UTF-8 text decoded as Latin-1/windows-1252 (Latin and
/// Cyrillic letters), and ISO-2022-JP's escape left undecoded.
const MOJIBAKE: &[&str] = &[
    "Ã©", "Ã¤", "Ã¶", "Ã¼", "â€", "Ã¨", "Å¡", "Ã\u{9f}", "Ð°", "Ð¾", "\u{1b}$B",
];

fn problems(m: &Message) -> Vec<String> {
    let name = m.from.name.clone().unwrap_or_default();
    let mut fields: Vec<(&str, &str)> = vec![("text", &m.text), ("subject", &m.subject), ("sender name", &name)];
    fields.extend(m.files.iter().map(|f| ("attachment name", f.file_name.as_str())));
    fields
        .into_iter()
        .filter(|(_, t)| t.contains('\u{FFFD}') || MOJIBAKE.iter().any(|p| t.contains(p)))
        .map(|(what, _)| what.to_string())
        .collect()
}

#[test]
fn every_charset_in_the_corpus_decodes() {
    let Some(corpus) = corpus() else { return };
    let (mut mails, mut broken, mut unexpected) = (0, Vec::new(), Vec::new());
    for file in mail_files(std::slice::from_ref(&corpus)).unwrap() {
        let path = file.to_string_lossy().into_owned();
        // Expected outputs and bare bodies, not mail.
        if ["_decoded", "email_reply_trimmer/", "talon/signature/"]
            .iter()
            .any(|s| path.contains(s))
        {
            continue;
        }
        for mail in read_file(&file).unwrap() {
            let Ok(m) = Message::parse(&mail.raw) else { continue };
            mails += 1;
            let found = problems(&m);
            if found.is_empty() {
                continue;
            }
            if BROKEN_AT_SOURCE.iter().any(|s| path.ends_with(s)) {
                broken.push(path.clone());
            } else {
                unexpected.push(format!("{} {found:?}", mail.source));
            }
        }
    }
    eprintln!(
        "charsets: {mails} mails; {} with undecodable bytes at the source; others with U+FFFD or mojibake: {unexpected:?}",
        broken.len()
    );
    assert!(unexpected.is_empty(), "{unexpected:?}");
    // A waiver that no longer applies hides nothing: it must go, so the
    // file is held to the same standard as the rest.
    let cured: Vec<&&str> = BROKEN_AT_SOURCE
        .iter()
        .filter(|s| !broken.iter().any(|b| b.ends_with(**s)))
        .collect();
    assert!(
        cured.is_empty(),
        "these decode cleanly now; remove them from BROKEN_AT_SOURCE: {cured:?}"
    );
}
