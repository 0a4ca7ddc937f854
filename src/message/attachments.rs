//! Attachments and inline images of a mail: metadata, bytes, and a file
//! name that is safe to show and to store on disk.
//!
//! Names come from senders, so they are hostile input: `../../etc/passwd`,
//! `C:\boot.ini`, control characters that rewrite a terminal line, names of
//! kilobytes. [`sanitise_file_name`] makes every one of them a plain, short
//! file name while keeping what a person recognises (the stem, the
//! extension, non-ASCII letters).

use mail_parser::{HeaderName, MessagePart, MimeHeaders, PartType};

use super::charset;
use super::clean_header_text;

/// One attachment or inline part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Sanitised file name ([`sanitise_file_name`]); generated from the
    /// description or type when the part has none.
    pub file_name: String,
    /// MIME type, lower-case (`image/png`).
    pub content_type: String,
    /// Size of the decoded content in bytes.
    pub size: usize,
    /// `Content-ID` without angle brackets: how an HTML body refers to an
    /// inline image (`cid:`), so the image can be linked to its message.
    pub content_id: Option<String>,
    /// Shown inside the message (`Content-Disposition: inline`, or an image
    /// referred to by `Content-ID`) rather than offered as a download.
    pub inline: bool,
    /// The decoded content (a returned mail's raw bytes for message/rfc822).
    pub data: Vec<u8>,
}

/// Longest file name kept, in bytes (common file systems allow 255).
pub const MAX_FILE_NAME: usize = 150;

/// A file name safe to display and to use as one path component: no path
/// separators or `..`, control and invisible format characters replaced by
/// spaces, no leading dots or trailing dots/spaces (Windows), at most
/// [`MAX_FILE_NAME`] bytes with the extension kept; `attachment` if
/// nothing is left.
pub fn sanitise_file_name(name: &str) -> String {
    // Only the last path component: senders' clients sometimes send the
    // full local path.
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_control() || is_format_char(c) { ' ' } else { c })
        .collect();
    let mut name = cleaned.trim().to_string();
    while name.contains("..") {
        name = name.replace("..", ".");
    }
    let name = name.trim_matches(|c: char| c == '.' || c == ' ').to_string();
    let name = truncate_keeping_extension(&name, MAX_FILE_NAME);
    if name.is_empty() {
        "attachment".to_string()
    } else {
        name
    }
}

/// Bidirectional overrides and zero-width characters disguise extensions
/// (`invoice\u{202e}fdp.exe` shows as `invoiceexe.pdf`).
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !ext.is_empty() && ext.len() <= 16 && !stem.is_empty() => (stem, Some(ext)),
        _ => (name, None),
    };
    let room = max - ext.map_or(0, |e| e.len() + 1);
    let mut cut = room.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    let stem = stem[..cut].trim_end_matches([' ', '.']);
    match ext {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem.to_string(),
    }
}

/// The attachments of a parsed mail, in part order.
pub(crate) fn collect(parsed: &mail_parser::Message, fallback_charset: Option<&str>) -> Vec<Attachment> {
    let raw = parsed.raw_message();
    parsed
        .attachments()
        // A multipart here is broken MIME (a lost boundary), not a file.
        .filter(|part| !part.is_multipart() && !type_of(part).starts_with("multipart/"))
        .map(|part| {
            let content_type = type_of(part);
            let content_id = part
                .content_id()
                .map(|id| id.trim().trim_start_matches('<').trim_end_matches('>').to_string())
                .filter(|id| !id.is_empty());
            let disposition_inline = part.content_disposition().is_some_and(|d| d.is_inline());
            let is_attachment = part.content_disposition().is_some_and(|d| d.is_attachment());
            let inline = disposition_inline || (!is_attachment && content_id.is_some());
            let data = match &part.body {
                PartType::Message(m) => m.raw_message().to_vec(),
                _ => part.contents().to_vec(),
            };
            let name = decoded_name(raw, part, fallback_charset)
                .or_else(|| content_id.as_deref().and_then(file_name_in_content_id))
                .unwrap_or_else(|| generated_name(raw, part, &content_type, fallback_charset));
            Attachment {
                file_name: sanitise_file_name(&name),
                content_type,
                size: data.len(),
                content_id,
                inline,
                data,
            }
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold(Vec::new(), numbered)
}

/// Adds `a` to `done`, numbered (`image-2.jpg`) when an earlier file of
/// the mail has its name but other bytes: two files saved side by side
/// must not overwrite each other.
fn numbered(mut done: Vec<Attachment>, mut a: Attachment) -> Vec<Attachment> {
    let taken = |name: &str| done.iter().any(|d| d.file_name == name);
    if done.iter().any(|d| d.file_name == a.file_name && d.data != a.data) {
        let (stem, ext) = match a.file_name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => (stem.to_string(), format!(".{ext}")),
            _ => (a.file_name.clone(), String::new()),
        };
        let mut n = 2;
        while taken(&format!("{stem}-{n}{ext}")) {
            n += 1;
        }
        a.file_name = format!("{stem}-{n}{ext}");
    }
    done.push(a);
    done
}

/// Outlook names inline pictures only in their Content-ID
/// (`<image001.jpg@01D2A3B4.C5D6E7F0>`): its local part, when it reads as
/// a file name.
fn file_name_in_content_id(id: &str) -> Option<String> {
    let local = id.split('@').next()?;
    let (stem, ext) = local.rsplit_once('.')?;
    let plausible = !stem.is_empty()
        && (1..=5).contains(&ext.len())
        && ext.chars().all(|c| c.is_ascii_alphanumeric())
        && ext.chars().any(|c| c.is_ascii_alphabetic())
        && !local.contains(char::is_whitespace);
    plausible.then(|| local.to_string())
}

/// The part's own file name, unsanitised (RFC 2231/2047 decoded by
/// mail-parser; raw 8-bit names and split RFC 2231 segments decoded again).
pub(crate) fn decoded_name(raw: &[u8], part: &MessagePart, fallback_charset: Option<&str>) -> Option<String> {
    let name = part.attachment_name().filter(|n| !n.trim().is_empty())?;
    if !name.contains('\u{FFFD}') {
        return Some(name.to_string());
    }
    let charset = charset::charset_of(part);
    let charset = charset.as_deref().or(fallback_charset);
    [HeaderName::ContentDisposition, HeaderName::ContentType]
        .into_iter()
        .filter_map(|h| charset::raw_header(raw, &part.headers, h))
        .find_map(|bytes| charset::rfc2231_file_name(bytes).or_else(|| charset::raw_file_name(bytes, charset)))
        .or_else(|| Some(name.to_string()))
}

/// A name for a part that has none: a returned mail's subject, else its
/// description, else one for its type (`image.png`, `delivery-status.txt`).
fn generated_name(raw: &[u8], part: &MessagePart, content_type: &str, fallback_charset: Option<&str>) -> String {
    let (kind, ext) = match content_type {
        "message/rfc822" | "message/global" => ("message", "eml"),
        "message/delivery-status" | "message/global-delivery-status" => ("delivery-status", "txt"),
        "text/rfc822-headers" | "message/rfc822-headers" => ("headers", "txt"),
        "text/plain" => ("text", "txt"),
        "text/html" => ("document", "html"),
        "text/calendar" => ("invite", "ics"),
        "application/pdf" => ("document", "pdf"),
        t if t.starts_with("image/") => ("image", image_extension(t)),
        t if t.starts_with("video/") => ("video", media_extension(t).unwrap_or("bin")),
        t if t.starts_with("audio/") => ("audio", media_extension(t).unwrap_or("bin")),
        t => ("attachment", media_extension(t).unwrap_or("bin")),
    };
    let stem = match &part.body {
        PartType::Message(m) => super::decoded_subject(raw, m, fallback_charset),
        _ => None,
    }
    .or_else(|| part.content_description().map(clean_header_text))
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| kind.into());
    // A subject is no path: "Invoice 2024/05 overdue" must not be cut to
    // its last component ("05 overdue") when the name is made safe.
    let stem = stem.replace(['/', '\\'], "-");
    format!("{stem}.{ext}")
}

/// The usual extension of a type that is no image, so a generated name
/// opens with the right program (`video.mov`, not `attachment.bin`).
fn media_extension(content_type: &str) -> Option<&'static str> {
    Some(match content_type {
        "video/quicktime" => "mov",
        "video/mp4" => "mp4",
        "video/mpeg" => "mpg",
        "video/x-msvideo" => "avi",
        "video/webm" => "webm",
        "audio/mpeg" => "mp3",
        "audio/wav" | "audio/x-wav" => "wav",
        "audio/ogg" => "ogg",
        "audio/mp4" => "m4a",
        "application/zip" | "application/x-zip-compressed" => "zip",
        "application/gzip" | "application/x-gzip" => "gz",
        "application/msword" => "doc",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "application/vnd.oasis.opendocument.text" => "odt",
        "application/vnd.oasis.opendocument.spreadsheet" => "ods",
        "application/vnd.ms-outlook" => "msg",
        "application/json" => "json",
        "application/xml" | "text/xml" => "xml",
        "text/csv" => "csv",
        "text/vcard" | "text/x-vcard" => "vcf",
        "application/pkcs7-signature" | "application/x-pkcs7-signature" => "p7s",
        "application/pgp-signature" => "asc",
        _ => return None,
    })
}

fn image_extension(content_type: &str) -> &'static str {
    match content_type {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => "jpg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/svg+xml" => "svg",
        "image/bmp" => "bmp",
        "image/tiff" => "tif",
        _ => "png",
    }
}

fn type_of(part: &MessagePart) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => "application/octet-stream".into(),
    }
}

#[cfg(test)]
#[path = "attachments_tests.rs"]
mod tests;
