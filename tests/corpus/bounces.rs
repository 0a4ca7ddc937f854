//! Bounce detection against the expected tables of two bounce corpora:
//! sisimai's set-of-emails (`expected-go-sisimai.tsv`) and Perl's
//! Mail::DeliveryStatus::BounceParser (`expected-from-tests.tsv`).
//!
//! Recall counts the mails the tables call bounces that we class `bounce`;
//! the false positives are the auto-replies and normal mails of those sets
//! classed `bounce` (target: none). Delay warnings are delivery reports too
//! and are counted apart.

use std::collections::BTreeMap;

use mailroom::classify::{Class, classify};

use super::common::{col, corpus, parse, pct, rate, tsv};

/// Recall floors, at the level measured (the target is 95 %). The
/// sisimai misses are Amazon SES JSON notifications, fml list errors and
/// a KDDI notice in Japanese; the bounceparser misses are three spam mails
/// with no report in them that its tests list as bounces.
const SISIMAI_RECALL: f64 = 98.7;
const BOUNCEPARSER_RECALL: f64 = 97.4;

/// Listed as "not a bounce" but is one: a postmaster's "email bounce
/// notification" for a full mailbox (sisimai keeps it for a parser bug).
const KNOWN_DISAGREEMENT: &str = "sisimai not/rb-issue-368-bug.eml";

#[test]
fn bounces_are_detected_and_auto_replies_are_not() {
    let Some(corpus) = corpus() else { return };
    let dir = corpus.join("sisimai-set-of-emails");
    let mut by_file: BTreeMap<String, Vec<Vec<(String, String)>>> = BTreeMap::new();
    for row in tsv(&dir.join("expected-go-sisimai.tsv")) {
        by_file.entry(col(&row, "file").to_string()).or_default().push(row);
    }
    let (mut positives, mut hits, mut misses) = (0, 0, Vec::new());
    let (mut statuses, mut status_hits) = (0, 0);
    let (mut with_original, mut feedback, mut feedback_hits) = (0, 0, 0);
    let mut not_bounces = Vec::new();
    // Every listed file is read: one that went missing would lower the
    // counts, not the rates, and the floors would still pass.
    let mut missing = Vec::new();
    for (file, rows) in &by_file {
        let path = dir.join("maildir/bsd").join(file);
        if !path.is_file() {
            missing.push(path);
            continue;
        }
        let msg = parse(&path);
        let class = msg.as_ref().map(|m| classify(m, "provider.test"));
        let reasons: Vec<&str> = rows.iter().map(|r| col(r, "reason")).collect();
        if reasons.iter().all(|r| *r == "vacation") {
            not_bounces.push((format!("sisimai {file}"), class));
            continue;
        }
        if reasons.iter().all(|r| *r == "feedback") {
            feedback += 1;
            feedback_hits += usize::from(class == Some(Class::Bounce));
            continue;
        }
        positives += 1;
        if class == Some(Class::Bounce) {
            hits += 1;
        } else {
            misses.push(format!("{file} ({class:?})"));
        }
        let report = msg.as_ref().and_then(|m| m.delivery_report.as_ref());
        with_original += usize::from(report.is_some_and(|r| r.original_message_id.is_some()));
        for row in rows {
            let expected = col(row, "dsn_status");
            if expected.is_empty() {
                continue;
            }
            statuses += 1;
            let got = report.is_some_and(|r| r.recipients.iter().any(|x| x.status.as_deref() == Some(expected)));
            status_hits += usize::from(got);
        }
    }
    for entry in std::fs::read_dir(dir.join("maildir/not")).unwrap() {
        let path = entry.unwrap().path();
        let class = parse(&path).map(|m| classify(&m, "provider.test"));
        not_bounces.push((
            format!("sisimai not/{}", path.file_name().unwrap().to_string_lossy()),
            class,
        ));
    }
    eprintln!("sisimai: bounce recall {}", rate(hits, positives));
    eprintln!("sisimai: misses {misses:?}");
    eprintln!(
        "sisimai: status code (e.g. 5.1.1) as expected {}",
        rate(status_hits, statuses)
    );
    eprintln!("sisimai: original Message-ID found {}", rate(with_original, positives));
    eprintln!(
        "sisimai: ARF feedback reports classed bounce {}",
        rate(feedback_hits, feedback)
    );

    let dir = corpus.join("bounceparser");
    let (mut bp_pos, mut bp_hits, mut bp_misses) = (0, 0, Vec::new());
    let mut warnings = Vec::new();
    for row in tsv(&dir.join("expected-from-tests.tsv")) {
        let file = col(&row, "file");
        let path = dir.join("corpus").join(file);
        if !path.is_file() {
            missing.push(path);
            continue;
        }
        let class = parse(&path).map(|m| classify(&m, "provider.test"));
        match col(&row, "is_bounce") {
            "1" => {
                bp_pos += 1;
                if class == Some(Class::Bounce) {
                    bp_hits += 1;
                } else {
                    bp_misses.push(format!("{file} ({class:?})"));
                }
            }
            "0" if col(&row, "note").contains("transient") => warnings.push((file.to_string(), class)),
            "0" => not_bounces.push((format!("bounceparser {file}"), class)),
            _ => {}
        }
    }
    eprintln!("bounceparser: bounce recall {}", rate(bp_hits, bp_pos));
    eprintln!("bounceparser: misses {bp_misses:?}");
    eprintln!("bounceparser: transient warnings (not bounces there) {warnings:?}");
    let false_positives: Vec<&(String, Option<Class>)> = not_bounces
        .iter()
        .filter(|(n, c)| *c == Some(Class::Bounce) && n != KNOWN_DISAGREEMENT)
        .collect();
    eprintln!(
        "auto-replies/normal mail of both sets classed bounce: {} {false_positives:?}",
        rate(false_positives.len(), not_bounces.len())
    );
    eprintln!("their classes: {not_bounces:?} ({KNOWN_DISAGREEMENT} is a bounce and classed so)");

    assert!(missing.is_empty(), "listed corpus files missing: {missing:?}");
    assert!(
        pct(hits, positives) >= SISIMAI_RECALL,
        "sisimai recall {}",
        rate(hits, positives)
    );
    assert!(
        pct(bp_hits, bp_pos) >= BOUNCEPARSER_RECALL,
        "bounceparser recall {}",
        rate(bp_hits, bp_pos)
    );
    assert!(false_positives.is_empty(), "classed bounce: {false_positives:?}");
}
