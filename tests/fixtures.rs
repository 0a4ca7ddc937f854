//! Golden tests: every scenario under `fixtures/` is replayed through the
//! pipeline (the code `mailroom replay` runs) and the store is compared with
//! the scenario's `expected.toml`. See `fixtures/README.md` for the format.

#[path = "support/store.rs"]
mod scratch;

use scratch::Scratch;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mailroom::config::Config;
use mailroom::directory::file::DirectoryFile;
use mailroom::ingest::replay::read_file;
use mailroom::notify::templates::Templates;
use mailroom::pipeline::{Clock, Incoming, Pipeline, Summary};
use mailroom::store::{Store, directory, views};
use mailroom::tickets::actions::Action;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    summary: Summary2,
    #[serde(default, rename = "message")]
    messages: Vec<ExpMessage>,
    #[serde(default, rename = "ticket")]
    tickets: Vec<ExpTicket>,
    #[serde(default, rename = "contact")]
    contacts: Vec<ExpContact>,
    #[serde(default)]
    outbox: Vec<ExpOutbox>,
    #[serde(default)]
    quarantine: Vec<ExpQuarantine>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Summary2 {
    processed: usize,
    new_tickets: usize,
    updates: usize,
    contacts_created: usize,
    ignored: usize,
    duplicates: usize,
    quarantined: usize,
    notifications: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpMessage {
    file: String,
    outcome: String,
    ticket: Option<i64>,
    class: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpTicket {
    number: i64,
    subject: String,
    status: String,
    requester: String,
    account: Option<String>,
    service: Option<String>,
    messages: i64,
    related: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpContact {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    account: Option<String>,
    created_by: Option<String>,
    language: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpOutbox {
    to: String,
    event: String,
    language: String,
    ticket: Option<i64>,
    subject: Option<String>,
    body_contains: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpQuarantine {
    reason: String,
    from: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Steps {
    action: Vec<Step>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    close: Option<i64>,
    escalate: Option<i64>,
    level: Option<u8>,
    approve: Option<i64>,
    at: String,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The scenario's config: defaults, the test support identity, its own
/// overrides, and a database in `tmp`.
fn scenario_config(dir: &Path, tmp: &Scratch) -> Config {
    let mut table: toml::Table = match std::fs::read_to_string(dir.join("config.toml")) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|e| panic!("{}: config.toml: {e}", dir.display())),
        Err(_) => toml::Table::new(),
    };
    let mail = table
        .entry("mail")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let mail = mail.as_table_mut().unwrap();
    mail.entry("from").or_insert_with(|| "support@provider.test".into());
    mail.entry("domain").or_insert_with(|| "provider.test".into());
    let db: toml::Table = tmp.database_toml_at("mailroom.db").parse().unwrap();
    table.insert("database".into(), db["database"].clone());
    Config::parse(&toml::to_string(&table).unwrap(), &dir.display().to_string()).unwrap()
}

/// Processes the mails gathered so far as one batch.
async fn flush(
    pipeline: &Pipeline,
    batch: &mut Vec<Incoming>,
    names: &mut Vec<String>,
    total: &mut Summary,
    outcomes: &mut Vec<(String, String)>,
) {
    if batch.is_empty() {
        return;
    }
    let (s, o) = pipeline.process_batch(batch).await.unwrap();
    total.add(&s);
    outcomes.extend(names.drain(..).zip(o.iter().map(|o| o.as_str().to_string())));
    batch.clear();
}

async fn run_scenario(dir: &Path) -> Vec<String> {
    let tmp = Scratch::new();
    let config = scenario_config(dir, &tmp);
    let store = Store::open(&config).await.unwrap();
    let dir_text = std::fs::read_to_string(dir.join("directory.toml")).unwrap();
    let file = DirectoryFile::parse(&dir_text, "directory.toml").unwrap();
    let mut tx = store.begin().await.unwrap();
    directory::import(&mut tx, &file).await.unwrap();
    tx.commit().await.unwrap();
    let templates = Templates::load(None).unwrap();
    let pipeline = Pipeline::new(store.clone(), Arc::new(config), Arc::new(templates))
        .unwrap()
        .with_clock(Clock::DateHeader);

    let mut steps: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.as_bytes().first().is_some_and(u8::is_ascii_digit)
                && (name.ends_with(".eml") || name.ends_with(".toml"))
        })
        .collect();
    steps.sort();
    let mut total = Summary::default();
    let mut outcomes: Vec<(String, String)> = Vec::new();
    let mut batch: Vec<Incoming> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for step in &steps {
        let name = step.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".eml") {
            batch.extend(read_file(step).unwrap());
            names.push(name);
            continue;
        }
        flush(&pipeline, &mut batch, &mut names, &mut total, &mut outcomes).await;
        let steps: Steps =
            toml::from_str(&std::fs::read_to_string(step).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for s in steps.action {
            let at = chrono::DateTime::parse_from_rfc3339(&s.at).unwrap().timestamp();
            let (number, action) = match (s.close, s.escalate, s.approve) {
                (Some(n), None, None) => (n, Action::Close),
                (None, Some(n), None) => (n, Action::Escalate(s.level.expect("escalate needs level"))),
                (None, None, Some(n)) => (n, Action::Approve),
                _ => panic!("{name}: one of close, escalate, approve per action"),
            };
            pipeline
                .act(number, action, at)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    flush(&pipeline, &mut batch, &mut names, &mut total, &mut outcomes).await;

    let expected: Expected = toml::from_str(&std::fs::read_to_string(dir.join("expected.toml")).unwrap())
        .unwrap_or_else(|e| panic!("{}: expected.toml: {e}", dir.display()));
    let mut conn = store.pool().acquire().await.unwrap();
    let mut errors = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            errors.push(what);
        }
    };

    let s = &expected.summary;
    let got = Summary2 {
        processed: total.processed,
        new_tickets: total.new_tickets,
        updates: total.updates,
        contacts_created: total.contacts_created,
        ignored: total.ignored,
        duplicates: total.duplicates,
        quarantined: total.quarantined,
        notifications: total.notifications,
    };
    check(&got == s, format!("summary: expected {s:?}, got {got:?}"));

    let messages = views::messages(&mut conn).await.unwrap();
    check(
        expected.messages.is_empty() || expected.messages.len() == messages.len(),
        format!(
            "messages: expected {} rows, got {}",
            expected.messages.len(),
            messages.len()
        ),
    );
    for (exp, got) in expected.messages.iter().zip(&messages) {
        let ok = got.source.ends_with(&exp.file)
            && got.outcome == exp.outcome
            && got.ticket == exp.ticket
            && exp.class.as_ref().is_none_or(|c| got.class.as_ref() == Some(c));
        check(
            ok,
            format!(
                "message {}: expected {}/{:?}/{:?}, got {} {}/{:?}/{:?} ({:?})",
                exp.file,
                exp.outcome,
                exp.ticket,
                exp.class,
                got.source,
                got.outcome,
                got.ticket,
                got.class,
                got.reason
            ),
        );
    }

    let tickets = views::tickets(&mut conn, None).await.unwrap();
    check(
        tickets.len() == expected.tickets.len(),
        format!(
            "tickets: expected {}, got {}: {:?}",
            expected.tickets.len(),
            tickets.len(),
            tickets.iter().map(|t| (t.number, &t.subject)).collect::<Vec<_>>()
        ),
    );
    for exp in &expected.tickets {
        match tickets.iter().find(|t| t.number == exp.number) {
            None => check(false, format!("ticket {} missing", exp.number)),
            Some(t) => {
                let ok = t.subject == exp.subject
                    && t.status == exp.status
                    && t.requester == exp.requester.to_lowercase()
                    && t.account == exp.account
                    && t.service == exp.service
                    && t.messages == exp.messages
                    && t.related == exp.related;
                check(ok, format!("ticket {}: expected {exp:?}, got {t:?}", exp.number));
            }
        }
    }

    let contacts = views::contacts(&mut conn, None).await.unwrap();
    let emails: Vec<&str> = contacts.iter().map(|c| c.email.as_str()).collect();
    let mut exp_emails: Vec<String> = expected.contacts.iter().map(|c| c.email.to_lowercase()).collect();
    exp_emails.sort();
    check(
        emails == exp_emails,
        format!("contacts: expected {exp_emails:?}, got {emails:?}"),
    );
    for exp in &expected.contacts {
        if let Some(c) = contacts.iter().find(|c| c.email == exp.email.to_lowercase()) {
            let ok = exp.first_name.as_ref().is_none_or(|v| &c.first_name == v)
                && exp.last_name.as_ref().is_none_or(|v| &c.last_name == v)
                && exp.account.as_ref().is_none_or(|v| c.account.as_ref() == Some(v))
                && exp.created_by.as_ref().is_none_or(|v| &c.created_by == v)
                && exp.language.as_ref().is_none_or(|v| c.language.as_ref() == Some(v));
            check(ok, format!("contact {}: expected {exp:?}, got {c:?}", exp.email));
        }
    }

    let outbox = views::outbox(&mut conn).await.unwrap();
    let key = |to: &str, event: &str, ticket: Option<i64>| format!("{}|{event}|{ticket:?}", to.to_lowercase());
    let mut got_keys: BTreeMap<String, usize> = BTreeMap::new();
    for r in &outbox {
        *got_keys.entry(key(&r.to, &r.event, r.ticket)).or_default() += 1;
    }
    let mut exp_keys: BTreeMap<String, usize> = BTreeMap::new();
    for e in &expected.outbox {
        *exp_keys.entry(key(&e.to, &e.event, e.ticket)).or_default() += 1;
    }
    check(
        got_keys == exp_keys,
        format!("outbox rows (to|event|ticket): expected {exp_keys:?}, got {got_keys:?}"),
    );
    // Each expected row is matched to a row of its own: the same recipient
    // can get two notices of one event (two refusals, hours apart).
    let mut taken = vec![false; outbox.len()];
    for exp in &expected.outbox {
        let same_key = |r: &&_| {
            let r: &views::OutboxView = r;
            key(&r.to, &r.event, r.ticket) == key(&exp.to, &exp.event, exp.ticket)
        };
        let fits = |r: &views::OutboxView| {
            r.language == exp.language
                && exp.subject.as_ref().is_none_or(|s| &r.subject == s)
                && exp.body_contains.as_ref().is_none_or(|b| r.body.contains(b.as_str()))
        };
        let matched = outbox
            .iter()
            .enumerate()
            .find(|(i, r)| !taken[*i] && same_key(r) && fits(r))
            .map(|(i, _)| i);
        if let Some(i) = matched {
            taken[i] = true;
        } else if let Some(r) = outbox.iter().find(same_key) {
            check(
                false,
                format!(
                    "outbox to {} {}: expected {exp:?}, got language {} subject {:?} body {:?}",
                    exp.to,
                    exp.event,
                    r.language,
                    r.subject,
                    r.body.lines().next()
                ),
            );
        }
    }

    let quarantine = views::quarantine(&mut conn, None, false).await.unwrap();
    let got_q: Vec<(String, Option<String>)> = quarantine.iter().map(|q| (q.reason.clone(), q.from.clone())).collect();
    check(
        quarantine.len() == expected.quarantine.len(),
        format!("quarantine: expected {:?}, got {got_q:?}", expected.quarantine),
    );
    for (exp, got) in expected.quarantine.iter().zip(&quarantine) {
        let ok = got.reason == exp.reason
            && exp
                .from
                .as_ref()
                .is_none_or(|f| got.from.as_deref().map(str::to_lowercase) == Some(f.to_lowercase()));
        check(ok, format!("quarantine: expected {exp:?}, got {got:?}"));
        // Nothing received is ever lost: the raw bytes are there.
        let raw = views::raw_mail(&mut conn, &got.raw_sha256).await;
        check(
            raw.is_ok_and(|r| !r.is_empty()),
            format!("quarantine {}: raw mail missing", got.id),
        );
    }
    drop(conn);
    store.close().await;
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_scenario_matches_its_expected_outcome() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    // A scenario that lost its expected.toml would otherwise drop out unseen.
    let unchecked: Vec<&PathBuf> = dirs.iter().filter(|p| !p.join("expected.toml").exists()).collect();
    assert!(unchecked.is_empty(), "scenarios without expected.toml: {unchecked:?}");
    let mut failures = Vec::new();
    for dir in &dirs {
        let errors = run_scenario(dir).await;
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if errors.is_empty() {
            eprintln!("scenario {name}: ok");
        } else {
            failures.push(format!("scenario {name}:\n  {}", errors.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
    assert!(
        dirs.len() >= 47,
        "expected at least 47 fixture scenarios, found {}",
        dirs.len()
    );
}
