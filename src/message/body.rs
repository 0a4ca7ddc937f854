//! The text a person would read in a mail: what tickets show, replies are
//! trimmed from, and notifications quote.

use std::borrow::Cow;

use super::charset;

/// The body a person would read: its text/plain parts if they say
/// anything, otherwise its HTML rendered as text (mail-parser's own
/// conversion drops links).
///
/// Every inline part counts, in order: Apple Mail and iOS write a body
/// with pictures as text, picture, text, picture, and the words after the
/// first picture are as much the request as those before. An empty plain
/// alternative (web forms, some ERP and mobile clients) is no text: the
/// HTML beside it is what the sender wrote.
pub(super) fn readable_text<'p>(parsed: &'p mail_parser::Message<'p>, fallback: Option<&str>) -> String {
    let own = text_of(parsed, parsed.raw_message(), fallback);
    if !own.trim().is_empty() {
        return own;
    }
    forwarded_text(parsed, fallback).unwrap_or(own)
}

/// A forward with no words of its own, the mail attached whole
/// (message/rfc822, a digest): the forwarded mails' texts, each under a
/// line naming it, instead of a ticket with no text at all.
fn forwarded_text<'p>(parsed: &'p mail_parser::Message<'p>, fallback: Option<&str>) -> Option<String> {
    let texts: Vec<String> = parsed
        .parts
        .iter()
        .filter_map(|p| match &p.body {
            mail_parser::PartType::Message(m) => Some(m),
            _ => None,
        })
        .filter_map(|m| {
            // Its own bytes: the outer mail's for a 7- or 8-bit forward,
            // the decoded ones for a base64 or quoted-printable one.
            let text = text_of(m, m.raw_message(), fallback);
            let from = m
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default();
            let subject = m.subject().unwrap_or_default();
            (!text.trim().is_empty())
                .then(|| format!("---------- Forwarded message ----------\nFrom: {from}\nSubject: {subject}\n\n{text}"))
        })
        .collect();
    (!texts.is_empty()).then(|| texts.join("\n\n"))
}

/// The readable text of one message (the outermost or a nested one), whose
/// parts' offsets count from `raw`.
fn text_of<'p>(parsed: &'p mail_parser::Message<'p>, raw: &'p [u8], fallback: Option<&str>) -> String {
    // Borrowed where mail-parser's text needs no second decoding: each
    // text is copied once, into the result.
    let decoded = |parts: Vec<&'p mail_parser::MessagePart<'p>>| -> Vec<Cow<'p, str>> {
        parts
            .into_iter()
            .filter_map(|p| Some(charset::part_text(raw, p, p.text_contents()?, fallback)))
            .collect()
    };
    // The text bodies in order: one alternative of each
    // multipart/alternative (mail-parser picks the plain one), and every
    // inline text part beside them, HTML included. A multipart/mixed of a
    // plain part and an HTML part (a signature in one, the message in the
    // other) is two parts of one message, and the HTML one was dropped.
    // Only text: an inline picture or uuencoded file is no one's words.
    let texts: Vec<Cow<'p, str>> = parsed
        .text_bodies()
        .filter(|p| is_text(p))
        .filter_map(|p| {
            let text = charset::part_text(raw, p, p.text_contents()?, fallback);
            if p.is_text_html() {
                html_to_text(&text).map(Cow::Owned)
            } else {
                Some(text)
            }
        })
        .collect();
    if texts.iter().any(|t| !t.trim().is_empty()) {
        return joined(texts.iter().map(|t| normalise_newlines(t)));
    }
    let html = decoded(parsed.html_bodies().filter(|p| p.is_text_html()).collect());
    let rendered: Vec<String> = html.iter().filter_map(|h| html_to_text(h)).collect();
    if rendered.iter().any(|t| !t.trim().is_empty()) {
        return joined(rendered.iter().map(|t| normalise_newlines(t)));
    }
    if let Some(text) = parsed.body_html(0).and_then(|html| html_to_text(&html)) {
        return normalise_newlines(&text);
    }
    parsed.body_text(0).map(|t| normalise_newlines(&t)).unwrap_or_default()
}

/// Whether a body part is text a person wrote: no type (text/plain by
/// default), or text/plain, text/html or text/enriched.
fn is_text(part: &mail_parser::MessagePart<'_>) -> bool {
    use mail_parser::MimeHeaders;
    part.content_type().is_none_or(|ct| {
        ct.ctype().eq_ignore_ascii_case("text")
            && ct
                .subtype()
                .is_none_or(|s| ["plain", "html", "enriched"].iter().any(|t| s.eq_ignore_ascii_case(t)))
    })
}

/// Text parts one after the other, a blank line between two, empty ones
/// left out.
fn joined(parts: impl Iterator<Item = String>) -> String {
    let parts: Vec<String> = parts
        .map(|p| p.trim_end().to_string())
        .filter(|p| !p.trim().is_empty())
        .collect();
    parts.join("\n\n")
}

/// HTML as plain text: paragraphs wrapped at 100 columns, links never (a
/// portal or SafeLinks URL cut in two no longer opens), tables read cell
/// by cell (most mail tables are layout: drawn as columns with borders,
/// their words were cut across cells, `Top-Aufst│eiger`).
fn html_to_text(html: &str) -> Option<String> {
    html2text::config::plain()
        .raw_mode(true)
        .no_link_wrapping()
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), 100)
        .ok()
}

fn normalise_newlines(s: &str) -> String {
    // Trimming first is the same (a CRLF is white space on both sides of
    // the cut) and copies the text once instead of twice.
    super::reply::without_crlf(s.trim_end()).into_owned()
}

#[cfg(test)]
mod tests {
    use crate::message::Message;

    fn text(raw: &str) -> String {
        Message::parse(raw.replace('\n', "\r\n").as_bytes()).unwrap().text
    }

    /// A multipart/mixed of an HTML part and a plain part (Outlook's
    /// signature, some ticket gateways): both are the message, in order;
    /// an inline SVG beside them is a picture, not text.
    #[test]
    fn an_html_part_beside_a_plain_part_is_kept_and_a_picture_is_not_text() {
        let t = text(
            "From: Marie <marie@acme.fr>\nSubject: mixed\nMessage-ID: <m1@acme.fr>\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/html\n\n<p>The link is <b>down</b> since 8:00.</p>\n\
--b\nContent-Type: text/plain\n\nMarie, NOC\n--b\nContent-Type: image/svg+xml\nContent-Disposition: inline\n\n\
<svg xmlns=\"http://www.w3.org/2000/svg\"><text>logo</text></svg>\n--b--\n",
        );
        assert_eq!(t, "The link is down since 8:00.\n\nMarie, NOC");
    }

    /// A forward with no words of its own: the mail attached whole is the
    /// request, its text shown under a line naming it.
    #[test]
    fn a_forward_without_words_of_its_own_shows_the_forwarded_text() {
        let t = text(
            "From: Paul <paul@acme.fr>\nSubject: Fwd: down\nMessage-ID: <f1@acme.fr>\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: message/rfc822\n\n\
From: Marie <marie@acme.fr>\nSubject: Circuit down\nMessage-ID: <m1@acme.fr>\n\nLON/ETH/000123 is down.\n--b--\n",
        );
        assert_eq!(
            t,
            "---------- Forwarded message ----------\nFrom: marie@acme.fr\nSubject: Circuit down\n\nLON/ETH/000123 is down."
        );
    }

    /// The same forward in base64: the forwarded mail's bytes are decoded
    /// into a buffer of their own, which its parts' offsets count from.
    #[test]
    fn a_base64_forward_shows_the_forwarded_text_too() {
        use base64::Engine as _;
        let inner = "From: Marie <marie@acme.fr>\r\nSubject: Coupure\r\nMessage-ID: <m2@acme.fr>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nLa ligne est coup\u{e9}e.\r\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(inner.as_bytes());
        let raw = format!(
            "From: Paul <paul@acme.fr>\r\nSubject: Fwd\r\nMessage-ID: <f2@acme.fr>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n--b--\r\n"
        );
        let t = crate::message::Message::parse(raw.as_bytes()).unwrap().text;
        assert!(t.ends_with("Subject: Coupure\n\nLa ligne est coupée."), "{t}");
    }

    /// A layout table's cells are read one after the other, whole: drawn
    /// as bordered columns, a word was cut where a column wrapped.
    #[test]
    fn html_tables_are_read_cell_by_cell_without_borders() {
        let t = text(
            "From: Marie <marie@acme.fr>\nSubject: t\nMessage-ID: <t1@acme.fr>\nMIME-Version: 1.0\n\
Content-Type: text/html\n\n<table><tr><td>Top-Aufsteiger der Woche und Bestseller</td>\
<td>Circuit LON/ETH/000123 is down since this morning, please have a look</td></tr></table>\n",
        );
        assert!(!t.contains(['│', '─', '┼']), "{t}");
        assert!(t.contains("Top-Aufsteiger der Woche und Bestseller"), "{t}");
        assert!(t.contains("Circuit LON/ETH/000123 is down since this morning"), "{t}");
    }

    /// Apple Mail and iOS: text, picture, text, picture.
    #[test]
    fn every_text_part_between_pictures_is_kept() {
        let t = text(
            "From: Marie <marie@acme.fr>\nSubject: photos\nMessage-ID: <a1@acme.fr>\nMIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=\"B1\"\n\n--B1\nContent-Type: text/plain; charset=us-ascii\n\n\
Here is the first photo:\n\n--B1\nContent-Type: image/jpeg; name=\"IMG_0001.jpg\"\n\
Content-Disposition: inline; filename=\"IMG_0001.jpg\"\nContent-Transfer-Encoding: base64\n\n\
/9j/4AAQSkZJRgABAQAAAQABAAD/\n--B1\nContent-Type: text/plain; charset=us-ascii\n\n\
And the second one shows the broken port 24.\n\n--B1--\n",
        );
        assert_eq!(
            t,
            "Here is the first photo:\n\nAnd the second one shows the broken port 24."
        );
    }

    #[test]
    fn an_empty_plain_alternative_gives_way_to_the_html() {
        let t = text(
            "From: Marie <marie@acme.fr>\nSubject: html\nMessage-ID: <a2@acme.fr>\nMIME-Version: 1.0\n\
Content-Type: multipart/alternative; boundary=\"B1\"\n\n--B1\nContent-Type: text/plain; charset=utf-8\n\n\n\
--B1\nContent-Type: text/html; charset=utf-8\n\n\
<html><body><p>The line at site Bratislava is down since 8:00.</p></body></html>\n--B1--\n",
        );
        assert_eq!(t, "The line at site Bratislava is down since 8:00.");
    }

    #[test]
    fn a_long_link_in_html_is_not_cut() {
        let url = format!(
            "https://portal.acme.fr/tickets/view?id=123456789&token={}",
            "abcdefghij".repeat(10)
        );
        let t = text(&format!(
            "From: Marie <marie@acme.fr>\nSubject: link\nMessage-ID: <h1@acme.fr>\nMIME-Version: 1.0\n\
Content-Type: text/html; charset=utf-8\n\n<p>See the <a href=\"{}\">portal</a>.</p>\n",
            url.replace('&', "&amp;")
        ));
        assert!(t.contains(&url), "{t}");
    }
}
