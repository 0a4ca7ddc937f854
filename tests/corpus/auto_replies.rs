//! Auto-reply detection: every vacation/auto-reply/challenge-response sample
//! of the corpus is classed `auto_reply`, and none of notmuch's mailing-list
//! mails is classed `auto_reply` or `bounce`.

use std::collections::BTreeMap;

use mailroom::classify::{Class, classify};
use mailroom::ingest::replay::{mail_files, read_file};
use mailroom::message::Message;

use super::common::{corpus, parse, rate};

/// The automatic answers of the corpus, by path under the corpus root.
const AUTO_REPLIES: &[&str] = &[
    "bounceparser/corpus/aol-vacation.msg",
    "bounceparser/corpus/autoreply.msg",
    "bounceparser/corpus/polish-autoreply.msg",
    "bounceparser/corpus/warning-6.msg",
    "bounceparser/corpus/bluebottle.msg",
    "bounceparser/corpus/boxbe-cr.msg",
    "bounceparser/corpus/boxbe-cr2.msg",
    "bounceparser/corpus/whitelist.msg",
    "discourse-fixtures/emails/auto_reply.eml",
    "discourse-fixtures/emails/auto_generated_header.eml",
    "gitlab-fixtures/emails/auto_reply.eml",
];

#[test]
fn every_auto_reply_sample_is_an_auto_reply() {
    let Some(corpus) = corpus() else { return };
    let mut samples: Vec<std::path::PathBuf> = AUTO_REPLIES.iter().map(|p| corpus.join(p)).collect();
    let sisimai = corpus.join("sisimai-set-of-emails/maildir/bsd");
    for entry in std::fs::read_dir(&sisimai).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("rfc3834-") {
            samples.push(path);
        }
    }
    samples.sort();
    let mut wrong = Vec::new();
    for path in &samples {
        let class = parse(path).map(|m| classify(&m, "provider.test"));
        if class != Some(Class::AutoReply) {
            wrong.push(format!("{} ({class:?})", path.display()));
        }
    }
    eprintln!(
        "auto-reply samples classed auto_reply: {}",
        rate(samples.len() - wrong.len(), samples.len())
    );
    assert!(wrong.is_empty(), "not classed auto_reply: {wrong:?}");
}

#[test]
fn notmuch_list_mail_is_never_an_auto_reply_or_a_bounce() {
    let Some(corpus) = corpus() else { return };
    let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut total = 0;
    for file in mail_files(&[corpus.join("notmuch")]).unwrap() {
        for mail in read_file(&file).unwrap() {
            let Ok(msg) = Message::parse(&mail.raw) else {
                *classes.entry("unparseable").or_default() += 1;
                continue;
            };
            total += 1;
            let class = classify(&msg, "provider.test");
            *classes.entry(class.as_str()).or_default() += 1;
            if matches!(class, Class::AutoReply | Class::Bounce) {
                wrong.push(format!("{} ({})", mail.source, class.as_str()));
            }
        }
    }
    eprintln!("notmuch: {total} mails, classes {classes:?}");
    assert!(total >= 210, "only {total} notmuch mails parsed");
    assert!(classes.get("list").copied().unwrap_or(0) >= 210, "{classes:?}");
    assert!(wrong.is_empty(), "classed auto_reply or bounce: {wrong:?}");
}
