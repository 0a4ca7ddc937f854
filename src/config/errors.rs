//! Config errors that say where: the file, the line, the key.
//!
//! Two kinds. A parse error (toml syntax, or a value of the wrong type) is
//! rendered by [`parse_error`] from toml's position and message alone:
//! toml's own rendering quotes the offending line and serde's messages
//! repeat the value, which for `password = hunter2` or a database URL is
//! the secret itself (and `check-config` runs under systemd, into the
//! journal). A validation error (a setting out of range) names its key
//! through a [`Locator`], which finds the line the key is written on.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::Error;

/// One line naming the file, line, column and key of a syntax or type
/// error, and never a value from the file: `FILE: line N, column M: KEY:
/// MESSAGE`.
pub fn parse_error(e: &toml::de::Error, text: &str, origin: &str) -> Error {
    located_error(e, text, origin, true)
}

/// [`parse_error`] for a file that holds no secrets (the directory file),
/// keeping the value at fault in the message (`unknown variant \`vip\``).
pub fn parse_error_with_values(e: &toml::de::Error, text: &str, origin: &str) -> Error {
    located_error(e, text, origin, false)
}

fn located_error(e: &toml::de::Error, text: &str, origin: &str, hide_values: bool) -> Error {
    // Even a document toml refuses is read as far as it goes, for the keys.
    let (doc, syntax) = DeTable::parse_recoverable(text);
    let mut message = one_line(e.message());
    if hide_values && syntax.is_empty() {
        // serde's words about a value: they quote it.
        message = without_values(&message);
    }
    let mut out = format!("{origin}: ");
    match e.span() {
        Some(span) => {
            let (line, column) = position(text, span.start);
            out.push_str(&format!("line {line}, column {column}: "));
            let hit = locate(doc.get_ref(), text, span.start);
            let mut at_key = hit.as_ref().is_some_and(|h| h.at_key);
            match &hit {
                Some(hit) => out.push_str(&format!("{}: ", hit.path)),
                // The second of two equal keys is not in the parsed
                // document; toml points at it, a key (never a value).
                None if message == "duplicate key" => {
                    let key = text.get(span.clone()).unwrap_or_default();
                    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                        message = format!("duplicate key {key}");
                        at_key = true;
                    }
                }
                None => {}
            }
            // Whatever toml or serde said, nothing of the value at fault
            // goes out (a key named in the message is not a value).
            let mut values = Vec::new();
            if hide_values && !at_key {
                values.push(unquoted(text.get(span.clone()).unwrap_or_default()).to_string());
                if let Some(value) = hit.as_ref().and_then(|h| h.value) {
                    strings(value, &mut values);
                }
            }
            // What follows the last `, expected` is the program's own list
            // (`starttls` holds `tls`), unless a value could have put it there.
            let said = match message.rsplit_once(", expected ") {
                Some((said, _)) if !values.iter().any(|v| v.contains(", expected ")) => said,
                _ => &message,
            };
            if !own_message(&message)
                && values
                    .iter()
                    .any(|v| v.trim().chars().count() >= 3 && said.contains(v.trim()))
            {
                message = HIDDEN.to_string();
            }
        }
        None if !hide_values || !syntax.is_empty() || known_form(&message) => {}
        None => message = HIDDEN.to_string(),
    }
    out.push_str(&message);
    Error::Config(out)
}

/// What is said instead of a message that would show a value.
const HIDDEN: &str = "invalid value (not shown: it may hold a secret); check its quoting and type";

/// serde's messages, once [`without_values`] went over them.
/// Messages of mailroom's own deserializers, which never repeat the value:
/// their list of what is allowed (`delete`) must not read as the value
/// quoted back when the value is a typo of it (`delet`), which hid the
/// message behind a hint about quoting.
fn own_message(message: &str) -> bool {
    [
        crate::config::mailbox::NOT_AN_AFTER_ACTION,
        crate::config::smtp::NOT_A_DURATION,
    ]
    .iter()
    .any(|own| message.starts_with(own))
}

fn known_form(message: &str) -> bool {
    [
        "invalid type",
        "invalid value",
        "unknown value",
        "unknown field",
        "missing field",
        "duplicate field",
        "duplicate key",
        "invalid length",
    ]
    .iter()
    .any(|p| message.starts_with(p))
}

/// serde's messages with the value they quote taken out: `invalid type:
/// string "hunter2", expected u16` becomes `invalid type: string, expected
/// u16`, `unknown variant `x`, expected one of ...` becomes `unknown value,
/// expected one of ...`. What comes after `, expected` is the program's
/// own text; the last one is taken, since a value may contain the words.
fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (found, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, ""));
            let kind = found.split(['`', '"', '\'']).next().unwrap_or_default().trim();
            return match expected {
                "" => format!("{prefix}{kind}"),
                expected => format!("{prefix}{kind}, expected {expected}"),
            };
        }
    }
    if message.starts_with("unknown variant") {
        return match message.rsplit_once(", expected ") {
            Some((_, expected)) => format!("unknown value, expected {expected}"),
            None => "unknown value".to_string(),
        };
    }
    message.to_string()
}

/// The text of a value without its TOML quotes.
fn unquoted(raw: &str) -> &str {
    let raw = raw.trim();
    for q in ["\"\"\"", "'''", "\"", "'"] {
        if let Some(inner) = raw.strip_prefix(q) {
            return inner.strip_suffix(q).unwrap_or(inner);
        }
    }
    raw
}

/// Every string and scalar inside `value`, as parsed.
fn strings(value: &Spanned<DeValue<'_>>, out: &mut Vec<String>) {
    match value.get_ref() {
        DeValue::String(s) => out.push(s.to_string()),
        DeValue::Integer(i) => out.push(i.to_string()),
        DeValue::Float(f) => out.push(f.to_string()),
        DeValue::Boolean(_) => {}
        DeValue::Datetime(d) => out.push(d.to_string()),
        DeValue::Array(a) => a.iter().for_each(|v| strings(v, out)),
        DeValue::Table(t) => t.iter().for_each(|(_, v)| strings(v, out)),
    }
}

/// toml's messages may span several lines; operators and log shippers want one.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// 1-based line and column (in characters) of byte `offset`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let start = (0..=offset.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key an error is about.
struct Hit<'d, 'i> {
    /// `mailbox[0].password`.
    path: String,
    /// The error points at the key itself (an unknown or repeated key).
    at_key: bool,
    /// The value at fault, when the error points into one.
    value: Option<&'d Spanned<DeValue<'i>>>,
    /// Size of the span that matched: the smallest wins.
    size: usize,
}

/// The key whose name or value holds `offset`, the innermost one; else the
/// last value that ends before `offset` on the same line (`url = "..." x`:
/// the stray text is still about `url`).
fn locate<'d, 'i>(doc: &'d DeTable<'i>, text: &str, offset: usize) -> Option<Hit<'d, 'i>> {
    let mut best = None;
    let mut last_before: Option<(usize, String)> = None;
    walk_table(doc, "", offset, &mut best, &mut last_before);
    best.or_else(|| {
        let (end, path) = last_before?;
        let between = text.get(end..offset)?;
        (!between.contains('\n')).then_some(Hit {
            path,
            at_key: false,
            value: None,
            size: 0,
        })
    })
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

fn walk_table<'d, 'i>(
    table: &'d DeTable<'i>,
    prefix: &str,
    offset: usize,
    best: &mut Option<Hit<'d, 'i>>,
    last_before: &mut Option<(usize, String)>,
) {
    for (key, value) in table.iter() {
        let path = match prefix {
            "" => render_key(key.get_ref()),
            p => format!("{p}.{}", render_key(key.get_ref())),
        };
        if contains(&key.span(), offset) {
            consider(best, &path, true, None, key.span().len());
        }
        walk_value(value, &path, offset, best, last_before);
    }
}

fn walk_value<'d, 'i>(
    value: &'d Spanned<DeValue<'i>>,
    path: &str,
    offset: usize,
    best: &mut Option<Hit<'d, 'i>>,
    last_before: &mut Option<(usize, String)>,
) {
    let span = value.span();
    if contains(&span, offset) {
        consider(best, path, false, Some(value), span.len());
    }
    if span.end <= offset && last_before.as_ref().is_none_or(|(end, _)| span.end >= *end) {
        *last_before = Some((span.end, path.to_string()));
    }
    match value.get_ref() {
        DeValue::Table(t) => walk_table(t, path, offset, best, last_before),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                walk_value(item, &format!("{path}[{i}]"), offset, best, last_before);
            }
        }
        _ => {}
    }
}

fn consider<'d, 'i>(
    best: &mut Option<Hit<'d, 'i>>,
    path: &str,
    at_key: bool,
    value: Option<&'d Spanned<DeValue<'i>>>,
    size: usize,
) {
    if best.as_ref().is_none_or(|b| size <= b.size) {
        *best = Some(Hit {
            path: path.to_string(),
            at_key,
            value,
            size,
        });
    }
}

/// A key as written in TOML: bare when it can be, else quoted.
fn render_key(key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// Names a setting in a validation error: the file, the line the setting
/// is written on (else the line of its section, where it would go) and the
/// setting: `mailroom.toml: line 9: mailbox "support": batch`.
#[derive(Clone)]
pub struct Locator<'a> {
    origin: &'a str,
    text: &'a str,
    doc: Option<&'a DeTable<'a>>,
    /// The section, as a path of keys and array indices.
    section: Vec<Seg<'a>>,
    /// How the section is named (`smtp`, `mailbox "support"`); empty at
    /// the top level.
    label: String,
    /// Between the label and a key: `.` (`smtp.port`) or `: `.
    joiner: &'static str,
}

/// A step of a path into the file.
#[derive(Clone, Copy, Debug)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl<'a> Locator<'a> {
    /// The top level of the file `origin`, whose text is `text` and parsed
    /// form `doc` (none: lines are not named).
    pub fn new(origin: &'a str, text: &'a str, doc: Option<&'a DeTable<'a>>) -> Locator<'a> {
        Locator {
            origin,
            text,
            doc,
            section: Vec::new(),
            label: String::new(),
            joiner: ".",
        }
    }

    /// A section below this one, named `label` in messages; its keys are
    /// joined to the label with `joiner`.
    pub fn section(&self, path: &[Seg<'a>], label: impl Into<String>, joiner: &'static str) -> Locator<'a> {
        let mut section = self.section.clone();
        section.extend_from_slice(path);
        Locator {
            section,
            label: label.into(),
            joiner,
            ..self.clone()
        }
    }

    /// `FILE: line N: LABEL<joiner>KEY`; `key` may be dotted
    /// (`tickets.tag`) and end in an index (`intake.ignore[0]`).
    pub fn key(&self, key: &str) -> String {
        let name = match self.label.as_str() {
            "" => key.to_string(),
            label => format!("{label}{}{key}", self.joiner),
        };
        format!("{}: {name}", self.place(key))
    }

    /// `FILE: line N` for `key`, for messages that name the key themselves.
    pub fn place(&self, key: &str) -> String {
        let mut path = self.section.clone();
        for part in key.split('.') {
            match part.split_once('[') {
                Some((name, index)) => {
                    path.push(Seg::Key(name));
                    if let Ok(i) = index.trim_end_matches(']').parse() {
                        path.push(Seg::Index(i));
                    }
                }
                None => path.push(Seg::Key(part)),
            }
        }
        self.place_of(&path)
    }

    /// `FILE: line N: LABEL`, the section itself.
    pub fn here(&self) -> String {
        match self.label.as_str() {
            "" => self.place_of(&self.section),
            label => format!("{}: {label}", self.place_of(&self.section)),
        }
    }

    /// The error `KEY MESSAGE` (`batch must be at least 1`).
    /// One error per setting that must be positive and is not, naming the
    /// first such: `batch must be at least 1 (got 0)`.
    pub fn at_least_one(&self, settings: &[(&str, u64)]) -> Result<(), Error> {
        match settings.iter().find(|(_, v)| *v == 0) {
            Some((key, v)) => Err(self.error(key, format!("must be at least 1 (got {v})"))),
            None => Ok(()),
        }
    }

    pub fn error(&self, key: &str, message: impl std::fmt::Display) -> Error {
        Error::Config(format!("{} {message}", self.key(key)))
    }

    /// The error `SECTION: MESSAGE`.
    pub fn section_error(&self, message: impl std::fmt::Display) -> Error {
        Error::Config(format!("{}: {message}", self.here()))
    }

    fn place_of(&self, path: &[Seg<'_>]) -> String {
        match self.line_of(path) {
            Some(line) => format!("{}: line {line}", self.origin),
            None => self.origin.to_string(),
        }
    }

    /// The line of the deepest step of `path` that is written in the file.
    fn line_of(&self, path: &[Seg<'_>]) -> Option<usize> {
        let doc = self.doc?;
        let mut found = None;
        let mut here: Option<&Spanned<DeValue<'_>>> = None;
        for seg in path {
            let step = match (seg, here.map(Spanned::get_ref)) {
                (Seg::Key(k), None) => entry(doc, k),
                (Seg::Key(k), Some(DeValue::Table(t))) => entry(t, k),
                (Seg::Index(i), Some(DeValue::Array(a))) => a.get(*i).map(|item| (item.span().start, item)),
                _ => None,
            };
            let Some((offset, value)) = step else { break };
            found = Some(offset);
            here = Some(value);
        }
        found.map(|offset| position(self.text, offset).0)
    }
}

/// Where `key` is written in `table`, and its value.
fn entry<'d, 'i>(table: &'d DeTable<'i>, key: &str) -> Option<(usize, &'d Spanned<DeValue<'i>>)> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(k, v)| (k.span().start, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_the_value_they_quote() {
        assert_eq!(
            without_values("invalid type: string \"hunter2\", expected u16"),
            "invalid type: string, expected u16"
        );
        assert_eq!(
            without_values("invalid value: integer `123456789`, expected u16"),
            "invalid value: integer, expected u16"
        );
        assert_eq!(
            without_values("unknown variant `hunter2, expected x`, expected one of `implicit`, `none`"),
            "unknown value, expected one of `implicit`, `none`"
        );
        assert_eq!(without_values("missing field `host`"), "missing field `host`");
    }

    #[test]
    fn the_line_of_a_key_is_found_under_its_section() {
        let text = "[tickets]\nreopen_days = 3\n\n[[mailbox]]\nname = \"a\"\n[[mailbox]]\nname = \"b\"\nbatch = 0\n";
        let doc = DeTable::parse(text).unwrap();
        let root = Locator::new("m.toml", text, Some(doc.get_ref()));
        assert_eq!(root.key("tickets.reopen_days"), "m.toml: line 2: tickets.reopen_days");
        let mb = root.section(&[Seg::Key("mailbox"), Seg::Index(1)], "mailbox \"b\"", ": ");
        assert_eq!(mb.key("batch"), "m.toml: line 8: mailbox \"b\": batch");
        // Not written: the section's line, where it would go.
        assert_eq!(mb.key("poll_seconds"), "m.toml: line 6: mailbox \"b\": poll_seconds");
        assert_eq!(mb.here(), "m.toml: line 6: mailbox \"b\"");
        let smtp = root.section(&[Seg::Key("smtp")], "smtp", ".");
        assert_eq!(smtp.key("port"), "m.toml: smtp.port");
        let bare = Locator::new("bench", "", None);
        assert_eq!(bare.key("batch"), "bench: batch");
        assert_eq!(bare.here(), "bench");
    }
}
