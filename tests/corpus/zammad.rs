//! Parsed fields against Zammad's expected parser output (`mailNNN.yml`):
//! sender address, display name, subject and attachment names.
//!
//! Values are compared after collapsing white space (mailroom cleans
//! header text on purpose) and addresses without case (mailroom lowercases
//! them). Zammad lists its own renderings too (`message.html`, the HTML
//! body kept as a file); those are not attachments here and are left out.

use std::path::Path;

use super::common::{corpus, parse, pct, rate};

/// Floor over the mails mailroom accepts: the target. Mails with
/// a From no parser can read (`From: Test test@example.com`) are accepted
/// under the address written in it since 2026-12-06, where they were
/// quarantined; Zammad's own readings of those (`test test@example.com`)
/// count as misses, which took the rate over accepted mails from 96.3 %
/// to 95.0 %, and the rate over all mails from 90.4 % to 91.7 %.
const AGREEMENT: f64 = 95.0;
/// Floor over all mails, a quarantined one counting as four misses: the
/// measured level.
const OVERALL: f64 = 91.5;
/// Mails quarantined for a malformed From, at most (spam, and two spoofs
/// of an agent's address in encoded words).
const QUARANTINED: usize = 4;

/// A YAML scalar starting at `rest` (the text after `key: `) on line `i`,
/// possibly continued on the next lines: plain, 'single' or "double" quoted.
fn scalar(lines: &[&str], i: usize, rest: &str) -> String {
    let rest = rest.trim_start();
    let mut text = rest.to_string();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"');
    if let Some(q) = quote {
        let mut j = i + 1;
        while !closed(&text, q) && j < lines.len() {
            text.push('\n');
            text.push_str(lines[j].trim());
            j += 1;
        }
        return if q == '\'' { single(&text) } else { double(&text) };
    }
    text.trim().to_string()
}

fn closed(text: &str, q: char) -> bool {
    let body = &text[1..];
    if q == '\'' {
        body.replace("''", "").contains('\'')
    } else {
        let mut escaped = false;
        for c in body.chars() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return true,
                _ => escaped = false,
            }
        }
        false
    }
}

fn fold(s: &str) -> String {
    s.split('\n').collect::<Vec<_>>().join(" ")
}

fn single(text: &str) -> String {
    let inner = &text[1..text.rfind('\'').unwrap_or(text.len())];
    fold(&inner.replace("''", "'"))
}

fn double(text: &str) -> String {
    let inner = &text[1..];
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\n' => out.push(' '),
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('\n') => {}
                Some(e @ ('x' | 'u' | 'U')) => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = chars.by_ref().take(n).collect();
                    let code = u32::from_str_radix(&hex, 16).unwrap_or(0xFFFD);
                    // Ruby dumps raw bytes as \xNN: keep them as Latin-1
                    // characters; such values rarely compare equal anyway.
                    out.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                }
                Some(other) => out.push(other),
                None => {}
            },
            c => out.push(c),
        }
    }
    out
}

struct Expected {
    from_email: Option<String>,
    display_name: Option<String>,
    subject: Option<String>,
    attachments: Vec<String>,
}

fn expected(path: &Path) -> Expected {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut e = Expected {
        from_email: None,
        display_name: None,
        subject: None,
        attachments: Vec::new(),
    };
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("from_email:") {
            e.from_email = Some(scalar(&lines, i, rest));
        } else if let Some(rest) = line.strip_prefix("from_display_name:") {
            e.display_name = Some(scalar(&lines, i, rest));
        } else if let Some(rest) = line.strip_prefix("subject:") {
            e.subject = Some(scalar(&lines, i, rest));
        } else if let Some(rest) = line
            .strip_prefix("  filename:")
            .or_else(|| line.strip_prefix("- filename:"))
        {
            let name = scalar(&lines, i, rest);
            if name != "message.html" {
                e.attachments.push(name);
            }
        }
    }
    e
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn parsed_fields_agree_with_zammad() {
    let Some(corpus) = corpus() else { return };
    let mut pairs = Vec::new();
    for dir in ["zammad/mail", "zammad/mail-upstream-2026"] {
        for entry in std::fs::read_dir(corpus.join(dir)).unwrap() {
            let yml = entry.unwrap().path();
            if yml.extension().is_some_and(|e| e == "yml") && yml.with_extension("box").is_file() {
                pairs.push(yml);
            }
        }
    }
    pairs.sort();
    let (mut checks, mut agree) = (0, 0);
    let mut per_field = [(0, 0); 4];
    let mut wrong = Vec::new();
    let mut quarantined = Vec::new();
    for yml in &pairs {
        let e = expected(yml);
        let name = yml.file_stem().unwrap().to_string_lossy().into_owned();
        let Some(msg) = parse(&yml.with_extension("box")) else {
            // A From that names no usable address: quarantined by design.
            quarantined.push(name);
            continue;
        };
        let mut got_files: Vec<String> = msg.files.iter().map(|f| f.file_name.clone()).collect();
        got_files.sort();
        let mut want_files = e.attachments.clone();
        want_files.sort();
        let fields = [
            (
                "from",
                // In mailroom's one spelling of an address: Zammad keeps a
                // trailing dot (`claudia.shu@yahoo.com.`), which is the
                // same mailbox.
                e.from_email
                    .map(|v| (mailroom::directory::normalise_email(&v), msg.from.address.clone())),
            ),
            (
                "display name",
                e.display_name
                    .map(|v| (squash(&v), squash(msg.from.name.as_deref().unwrap_or("")))),
            ),
            ("subject", e.subject.map(|v| (squash(&v), squash(&msg.subject)))),
            ("attachments", Some((want_files.join(" | "), got_files.join(" | ")))),
        ];
        for (k, (field, pair)) in fields.into_iter().enumerate() {
            let Some((want, got)) = pair else { continue };
            checks += 1;
            per_field[k].1 += 1;
            if want == got {
                agree += 1;
                per_field[k].0 += 1;
            } else {
                wrong.push(format!("{name} {field}: want {want:?} got {got:?}"));
            }
        }
    }
    eprintln!(
        "zammad: {} mails; field agreement {} over the {} mails mailroom accepts; {} over all \
(the {} quarantined for a From without a usable address count as 4 misses each: {quarantined:?})",
        pairs.len(),
        rate(agree, checks),
        pairs.len() - quarantined.len(),
        rate(agree, checks + 4 * quarantined.len()),
        quarantined.len()
    );
    for (k, field) in ["from", "display name", "subject", "attachment names"]
        .iter()
        .enumerate()
    {
        eprintln!("zammad: {field} {}", rate(per_field[k].0, per_field[k].1));
    }
    for w in &wrong {
        eprintln!("zammad: differs: {w}");
    }
    assert!(pairs.len() >= 110, "only {} yml/box pairs", pairs.len());
    assert!(pct(agree, checks) >= AGREEMENT, "agreement {}", rate(agree, checks));
    let all = checks + 4 * quarantined.len();
    assert!(pct(agree, all) >= OVERALL, "agreement over all {}", rate(agree, all));
    assert!(quarantined.len() <= QUARANTINED, "quarantined {quarantined:?}");
}
