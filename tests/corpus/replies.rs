//! Reply trimming against the expected outputs of Discourse's
//! email_reply_trimmer (plain bodies → trimmed text) and Mailgun's talon
//! (raw replies and HTML bodies → reply text).
//!
//! A match is exact after trimming the ends (as both projects compare), or
//! equal after collapsing all white space. talon keeps signatures in its
//! expected replies ("Sent from my iPhone", a `-- ` block) where mailroom
//! drops them on purpose, so its cases are also counted against the
//! expected text with those signatures removed.

use std::path::Path;

use mailroom::message::Message;
use mailroom::message::reply::new_part;

use super::common::{corpus, parse, pct, rate};

/// Floors at the measured level. email_reply_trimmer's cases were the
/// development set of the rules, so its 100 % says little about unseen
/// mail; talon's were checked after.
const TRIMMER_EXACT: f64 = 100.0;
const TALON_MATCH: f64 = 100.0;
const TALON_RAW_MATCH: f64 = 90.4;

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[derive(Default)]
struct Score {
    total: usize,
    exact: usize,
    normalised: usize,
    wrong: Vec<String>,
}

impl Score {
    fn add(&mut self, name: &str, got: &str, expected: &str) {
        self.total += 1;
        if got.trim() == expected.trim() {
            self.exact += 1;
        }
        if squash(got) == squash(expected) {
            self.normalised += 1;
        } else {
            self.wrong.push(name.to_string());
        }
    }

    fn print(&self, set: &str) {
        eprintln!(
            "{set}: exact {}, after white-space normalisation {}; differing: {:?}",
            rate(self.exact, self.total),
            rate(self.normalised, self.total),
            self.wrong
        );
    }
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

#[test]
fn reply_trimming_matches_email_reply_trimmer_and_talon() {
    let Some(corpus) = corpus() else { return };
    let dir = corpus.join("email_reply_trimmer");
    let mut trimmer = Score::default();
    let mut names: Vec<_> = std::fs::read_dir(dir.join("emails"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in &names {
        let got = new_part(&read(&dir.join("emails").join(name)));
        trimmer.add(name, &got, &read(&dir.join("trimmed").join(name)));
    }
    trimmer.print("email_reply_trimmer");

    let dir = corpus.join("talon");
    let mut talon = Score::default();
    let mut talon_unsigned = Score::default();
    let mut names: Vec<_> = std::fs::read_dir(dir.join("standard_replies"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".eml"))
        .collect();
    names.sort();
    for name in &names {
        let msg = parse(&dir.join("standard_replies").join(name)).expect("talon reply parses");
        let stem = name.trim_end_matches(".eml");
        let expected_file = dir.join("standard_replies").join(format!("{stem}_reply_text"));
        let expected = if expected_file.is_file() {
            read(&expected_file)
        } else {
            "Hello".into()
        };
        talon.add(name, &msg.new_text, &expected);
        talon_unsigned.add(name, &msg.new_text, &new_part(&expected));
    }
    let mut html: Vec<_> = std::fs::read_dir(dir.join("html_replies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    html.sort();
    for path in &html {
        let mut raw = b"From: a@b.test\r\nSubject: Re: x\r\nContent-Type: text/html; charset=utf-8\r\n\r\n".to_vec();
        raw.extend(std::fs::read(path).unwrap());
        let msg = Message::parse(&raw).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let expected = "Hi. I am fine.\n\nThanks,\nAlex";
        talon.add(&name, &msg.new_text, expected);
        talon_unsigned.add(&name, &msg.new_text, expected);
    }
    talon.print("talon");
    talon_unsigned.print("talon, signatures removed from the expected text");

    assert!(
        pct(trimmer.exact, trimmer.total) >= TRIMMER_EXACT,
        "email_reply_trimmer exact {}",
        rate(trimmer.exact, trimmer.total)
    );
    assert!(
        pct(talon.normalised, talon.total) >= TALON_RAW_MATCH,
        "talon {}",
        rate(talon.normalised, talon.total)
    );
    assert!(
        pct(talon_unsigned.normalised, talon_unsigned.total) >= TALON_MATCH,
        "talon {}",
        rate(talon_unsigned.normalised, talon_unsigned.total)
    );
}
