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
    let raw = parsed.raw_message();
    // Borrowed where mail-parser's text needs no second decoding: each
    // text is copied once, into the result.
    let decoded = |parts: Vec<&'p mail_parser::MessagePart<'p>>| -> Vec<Cow<'p, str>> {
        parts
            .into_iter()
            .filter_map(|p| Some(charset::part_text(raw, p, p.text_contents()?, fallback)))
            .collect()
    };
    let plain = decoded(parsed.text_bodies().filter(|p| !p.is_text_html()).collect());
    if plain.iter().any(|t| !t.trim().is_empty()) {
        return joined(plain.iter().map(|t| normalise_newlines(t)));
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
/// portal or SafeLinks URL cut in two no longer opens).
fn html_to_text(html: &str) -> Option<String> {
    html2text::config::plain()
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
