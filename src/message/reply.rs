//! The new part of a reply: the text without the quoted thread and the
//! signature, for the ticket's view (the full text stays stored).
//!
//! Each line is given a kind (text, empty, quote, delimiter, mobile
//! signature, or the start of an embedded mail: "On … wrote:" in many
//! languages, Outlook `From:/Sent:/To:` blocks, `-----Original Message-----`,
//! Gmail's dated attribution lines). The reply is what comes before the
//! first delimiter or embedded mail, less mobile signatures and a quote
//! that ends it. A reply written below the quote (bottom-posting) is the
//! text after it. Like Discourse's email_reply_trimmer, whose cases the
//! corpus test measures this against.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// "On … wrote:" and its translations: the verb, then at most a few words
/// (German Gmail: "schrieb am Fr., 28. Okt. 2016 um 12:34 Uhr:") and a colon.
///
/// These patterns spell a word boundary as a non-word character (or the
/// start or end), never `\b`: a Unicode `\b` stops the regex crate's
/// lazy DFA at the first non-ASCII byte, and every French, German or
/// Slovak line then ran on the backtracker, more than ten times slower.
/// Only `is_match` is asked of them, so consuming the neighbour instead
/// of looking at it matches the same lines.
static ATTRIBUTION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:(?:^|\W)(?:wrote|writes|a écrit|a ecrit|ha scritto|schrieb|escribió|escribio|escreveu|schreef|geschreven|napísal|napísala|napísal\(a\)|napisal|napisał|napisał\(a\)|napisała|napsal|napsala|pisze|пише|написал|написала|написав|skrev|kirjoitti)|写道|寫道)(\s+\S+){0,8}?\s*(:|：|-{2,})\s*$",
    )
    .unwrap()
});

/// Words that open an attribution line, when the verb is far from them
/// (the boundary spelled as for [`ATTRIBUTION`]).
static OPENER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[\s\-*]*(on|le|il|am|el|em|op|dňa|dna|dnia|w dniu|den|at|в|el día|в \w+)(?:$|\W)").unwrap()
});

/// Gmail's attribution in some locales: "2016-10-24 15:36 GMT+02:00 Name <a@b>:".
static DATED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:$|\W)").unwrap());
static TIME_OR_ADDRESS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d{1,2}:\d{2}|@").unwrap());

/// Separator lines that introduce a quoted or forwarded mail.
static ORIGINAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[\s*_|]*(-{2,}|_{2,})?\s*(original message|ursprüngliche nachricht|originalnachricht|message d'origine|message original|messaggio originale|mensaje original|mensagem original|oorspronkelijk bericht|origineel bericht|pôvodná správa|pôvodná zpráva|původní zpráva|forwarded message|weitergeleitete nachricht|message transféré|messaggio inoltrato|mensaje reenviado|mensagem encaminhada|doorgestuurd bericht|preposlaná správa)\s*(-{2,}|_{2,})?[\s*_]*$|(?i)^\s*(begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié|inizio messaggio inoltrato|comienzo del mensaje reenviado|início da mensagem reencaminhada|begin doorgestuurd bericht)\s*:",
    )
    .unwrap()
});

/// The first field of an Outlook-style header block.
static FROM_FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^[\s*_]*(from|von|de|da|van|od|från|fra|от)[\s*]*:[\s*]*\S").unwrap());

/// The other fields of such a block.
static OTHER_FIELD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[\s*_]*(sent|gesendet|envoyé|envoye|enviado|enviada|inviato|verzonden|verstuurd|odoslané|odesláno|skickat|sendt|date|datum|data|fecha|to|an|à|a|para|aan|komu|till|til|cc|subject|betreff|objet|oggetto|asunto|assunto|onderwerp|predmet|věc|vec|ämne|emne|reply-to|risposta|antwort an|отправлено|кому|тема|дата|копия)[\s*]*:",
    )
    .unwrap()
});

/// An attribution that ends with the author's address and a colon.
static ADDRESSED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"@[^\s]*>[\]\)]*\s*[:：]\s*$").unwrap());
static TIME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d{1,2}:\d{2}").unwrap());

fn is_field(line: &str) -> bool {
    FROM_FIELD.is_match(line) || OTHER_FIELD.is_match(line)
}

/// Quoted lines: `>`, or Supercite-style initials (`JD>`).
static QUOTE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*([A-Za-z]{1,3})?>").unwrap());

/// Lines that only separate (`--`, `-- `, `____`, `====`, `***`).
static DELIMITER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*(--\s*|[-_=~*+#]{3,}\s*|—)$").unwrap());

/// A run of `=`/`-` (and the like) that can underline the line above it;
/// `--` (RFC 3676's signature separator) and `___` (Outlook's) cannot.
static UNDERLINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\s*([=~*+#]{3,}|-{3,})\s*$").unwrap());

/// "Sent from my iPhone" and the other lines mobile clients append (the
/// boundary after the preposition spelled as for [`ATTRIBUTION`]).
static MOBILE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^[\s(<\[]*(sent|envoyé|envoye|enviado|inviato|odoslané|odoslane|odesláno|verzonden|verstuurd|wysłane|gesendet|skickat|sendt|get outlook)( from| via| with| by| depuis| de| desde| da| do| z| od| met| von| mit| från| fra| for)(?:$|[^\w\n].{0,99}$)|(?i)^[\s(<]*(get \[?outlook for|von meinem|diese nachricht wurde von meinem|from my (iphone|ipad|android|mobile|phone|samsung|galaxy|blackberry|iphone \d+)|[\w ]{0,30} from mobile\s*$|從我的|从我的)",
    )
    .unwrap()
});

/// No marker line is longer than this; longer lines are text (and are not
/// run through the regexes, which keeps huge one-line HTML renderings fast).
const MAX_MARKER_LINE: usize = 400;

/// Only the start of a long text is examined: the new part of a reply is at
/// the top, and the rest is kept whole.
const MAX_SCAN: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Text,
    Quote,
    Delimiter,
    Mobile,
    /// First line of an embedded mail marker (attribution, separator,
    /// header block); `usize` is how many lines the marker spans.
    Marker(usize),
}

/// Rules over the line pattern (one letter per line: `t`ext, `e`mpty,
/// `q`uote, `b` embedded-mail marker), in email_reply_trimmer's order.
static BOTTOM_POSTED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^(b[^t]+)*b[bqe]+(t[te]*)$").unwrap());
static MARKER_WITHOUT_QUOTE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"te*b[^q]*$").unwrap());
static MARKER_AND_QUOTE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"te*b[eqb]*([te]*)$").unwrap());
static QUOTE_AT_END: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"te*[qbe]+$").unwrap());

/// The new part of `text`: what the author wrote in this mail. Empty when
/// the mail is nothing but quoted thread.
pub fn new_part(text: &str) -> String {
    let mut end = text.len().min(MAX_SCAN);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = without_crlf(&text[..end]);
    let all: Vec<&str> = text.split('\n').collect();
    let kinds = classify_lines(&all);
    // Everything after the first delimiter goes (signatures, footers), and
    // mobile signatures go wherever they are.
    let cut = kinds.iter().position(|k| *k == Kind::Delimiter).unwrap_or(all.len());
    let (mut lines, mut pattern): (Vec<&str>, String) = all[..cut]
        .iter()
        .zip(&kinds[..cut])
        .filter(|(_, k)| **k != Kind::Mobile)
        .map(|(l, k)| (*l, k.letter()))
        .unzip();

    if !pattern.contains('t') && pattern.contains('b') {
        // Nothing but quoted thread.
        return String::new();
    }
    if let Some(c) = BOTTOM_POSTED.captures(&pattern) {
        // The reply is below the quote (or a bare forward's content below
        // its header block).
        let start = c.get(2).expect("group 2 always matches").start();
        lines.drain(..start);
        pattern.drain(..start);
    }
    let keep_through = |at: usize, lines: &mut Vec<&str>, pattern: &mut String| {
        lines.truncate(at + 1);
        pattern.truncate(at + 1);
    };
    if let Some(at) = MARKER_WITHOUT_QUOTE.find(&pattern).map(|m| m.start()) {
        keep_through(at, &mut lines, &mut pattern);
    }
    if let Some(c) = MARKER_AND_QUOTE.captures(&pattern) {
        // A marker and quote followed by a few more lines (a footer, a
        // signature without delimiter): all of it is the thread. Many
        // lines after it mean the author answered between the quotes.
        if c[1].matches('t').count() < 7 {
            let at = c.get(0).expect("whole match").start();
            keep_through(at, &mut lines, &mut pattern);
        }
    }
    if let Some(at) = QUOTE_AT_END.find(&pattern).map(|m| m.start()) {
        keep_through(at, &mut lines, &mut pattern);
    }
    // Markers left between interleaved answers are noise.
    let lines: Vec<&str> = lines
        .into_iter()
        .zip(pattern.chars())
        .filter(|(_, k)| *k != 'b')
        .map(|(l, _)| l)
        .collect();
    let first = lines.iter().position(|l| !is_blank(l)).unwrap_or(lines.len());
    let last = lines.iter().rposition(|l| !is_blank(l)).map_or(first, |p| p + 1);
    lines[first..last.max(first)].join("\n")
}

/// `text` with CRLF line ends as LF, copied only when it has a CR: most
/// texts reach here already normalised.
pub(super) fn without_crlf(text: &str) -> Cow<'_, str> {
    if !text.contains('\r') {
        return Cow::Borrowed(text);
    }
    // `replace("\r\n", "\n")` restarts the general substring searcher at
    // every line; a CR is found with memchr.
    let mut out = String::with_capacity(text.len());
    let mut kept = 0;
    for (at, _) in text.match_indices('\r') {
        if text[at + 1..].starts_with('\n') {
            out.push_str(&text[kept..at]);
            kept = at + 1;
        }
    }
    out.push_str(&text[kept..]);
    Cow::Owned(out)
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Empty => 'e',
            Kind::Text => 't',
            Kind::Quote => 'q',
            Kind::Delimiter => 'd',
            Kind::Mobile => 's',
            Kind::Marker(_) => 'b',
        }
    }
}

/// Blank, or only invisible characters (Gmail's `ᐧ` tracking mark, zero-width spaces).
fn is_blank(line: &str) -> bool {
    line.chars()
        .all(|c| c.is_whitespace() || matches!(c, 'ᐧ' | '\u{200b}' | '\u{200c}' | '\u{200d}' | '\u{feff}'))
}

fn classify_lines(lines: &[&str]) -> Vec<Kind> {
    let mut kinds = Vec::with_capacity(lines.len());
    let mut in_code = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code || line.trim_start().starts_with("```") {
            kinds.push(if is_blank(line) { Kind::Empty } else { Kind::Text });
            i += 1;
            continue;
        }
        let kind = if is_blank(line) {
            Kind::Empty
        } else if let Some(span) = marker_at(lines, i) {
            Kind::Marker(span)
        } else if QUOTE.is_match(line) {
            Kind::Quote
        } else if DELIMITER.is_match(line) {
            // `Site A` over `======` is a heading's underline, not a
            // signature's separator: cutting there lost the rest of the
            // message from update notices.
            if kinds.last() == Some(&Kind::Text) && UNDERLINE.is_match(line) {
                Kind::Text
            } else {
                Kind::Delimiter
            }
        } else if line.len() < 140 && MOBILE.is_match(line.trim()) {
            Kind::Mobile
        } else {
            Kind::Text
        };
        kinds.push(kind);
        if let Kind::Marker(span) = kind {
            // The marker's other lines are part of it.
            for _ in 1..span {
                kinds.push(Kind::Marker(0));
            }
            i += span;
        } else {
            i += 1;
        }
    }
    kinds.truncate(lines.len());
    // "Sent from my iPhone" ends what its author wrote; a line in those
    // words with the author's text after it ("Sent by DHL on Monday,
    // tracking 1Z99…") is text.
    let mut text_follows = false;
    for kind in kinds.iter_mut().rev() {
        match *kind {
            Kind::Mobile if text_follows => *kind = Kind::Text,
            Kind::Text => text_follows = true,
            Kind::Empty | Kind::Mobile => {}
            _ => text_follows = false,
        }
    }
    kinds
}

/// Whether the first non-blank line from `from` on is quoted (`>`).
fn quote_follows(lines: &[&str], from: usize) -> bool {
    lines
        .iter()
        .skip(from)
        .find(|l| !is_blank(l))
        .is_some_and(|l| QUOTE.is_match(l))
}

/// If an embedded mail starts at line `i`, how many lines its marker spans.
fn marker_at<'a>(lines: &[&'a str], i: usize) -> Option<usize> {
    if lines[i].len() > MAX_MARKER_LINE {
        return None;
    }
    let unquoted = |l: &'a str| l.trim_start_matches(|c: char| c == '>' || c.is_whitespace());
    let first = unquoted(lines[i]);
    if ORIGINAL.is_match(first) {
        return Some(1);
    }
    // An attribution may be wrapped over a few lines (and, in some
    // webmails' plain text, split by blank lines). It starts with an
    // opener ("On", "Le", "Am" …) or with the author's address.
    let opens = OPENER.is_match(first);
    let starts =
        opens || first.contains('<') || DATED.is_match(first) || first.starts_with(|c: char| c.is_ascii_digit());
    let mut window = String::new();
    let mut span = 0;
    for line in lines[i..].iter().take(6) {
        span += 1;
        // "<address\n>:" and "<\nmailto:…\n> wrote:" wrap the closing bracket.
        let tail = line.trim();
        let wrapped_tail = span > 1 && tail.starts_with('>') && tail.len() <= 20 && tail.ends_with(':');
        let piece = if wrapped_tail { tail } else { unquoted(line) };
        if piece.is_empty() {
            if span == 1 || !opens {
                break;
            }
            continue;
        }
        if span > 1 && !wrapped_tail && (tail.starts_with('>') != lines[i].trim_start().starts_with('>')) {
            break;
        }
        if !window.is_empty() {
            window.push(' ');
        }
        window.push_str(piece);
        // Cheap test first: an attribution ends with a colon (or dashes).
        let end = window.trim_end();
        if (end.ends_with([':', '：']) || end.ends_with("--")) && ATTRIBUTION.is_match(&window) {
            // Clients write a date or an address into an attribution. An
            // opener alone ("Le", "Il" are also articles) makes one only
            // when a quote follows: "Le technicien a écrit :" in the
            // middle of a reply is the customer's own sentence.
            let dated = window.contains('@') || window.chars().any(|c| c.is_ascii_digit());
            let credible = dated || (opens && quote_follows(lines, i + span));
            return (credible && (span == 1 || starts)).then_some(span);
        }
        if window.len() > 300 || (span > 1 && !starts) {
            break;
        }
    }
    if DATED.is_match(first) {
        // "2016-03-03 17:21 GMT+01:00 Some One", possibly with the address
        // (and a colon) on the next line.
        let next = lines.get(i + 1).map_or("", |l| unquoted(l));
        if TIME_OR_ADDRESS.is_match(first) {
            let span = if !next.is_empty() && (next.ends_with(">:") || next.ends_with(':') && next.contains('@')) {
                2
            } else {
                1
            };
            return Some(span);
        }
    }
    // "Thu, 26 Jun 2014 14:00:51 +0400 от Alexander L <abc@example.com>:"
    if ADDRESSED.is_match(first) && TIME.is_match(first) {
        return Some(1);
    }
    if !lines[i].trim_start().starts_with('>') && is_field(lines[i]) {
        // An Outlook header block: a From: field among Sent:/Date:/To:/Subject:.
        let block: Vec<&str> = lines[i..].iter().take_while(|l| !is_blank(l)).copied().collect();
        let fields = block.iter().take(7).take_while(|l| is_field(l)).count();
        let has_from = block.iter().take(fields).any(|l| FROM_FIELD.is_match(l));
        if fields >= 2 && has_from {
            return Some(block.len());
        }
    }
    None
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
