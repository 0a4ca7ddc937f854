//! Several `mailroom run` instances on one PostgreSQL database: each mailbox
//! ingested by one of them, each notification sent by one, and a crashed
//! instance's mailbox taken over by the others.
//!
//! Real components throughout: a private Dovecot with two support mailboxes
//! (2,000 mails in one; in the other 1,000, then one every 10 ms until a
//! second after the kill, so the instance killed is mid-run), a private Postfix (discarding what it accepts, and
//! logging every Message-ID it accepts), a fresh PostgreSQL database, and
//! three `mailroom run` processes. Without PostgreSQL, Dovecot or Postfix
//! the test prints SKIPPED and passes; CI's MAILROOM_REQUIRE_* variables
//! make that a failure.

#[path = "imap/daemon.rs"]
mod daemon;
#[path = "support/dovecot.rs"]
mod dovecot;
#[path = "support/imap_client.rs"]
mod imap_client;
#[path = "support/postfix.rs"]
mod postfix;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use daemon::store::postgres::TestDb;
use daemon::{Daemon, wait_for};
use dovecot::{DEFAULT_PASSWORD, DEFAULT_USER, Dovecot};
use imap_client::ImapClient;
use postfix::{Postfix, PostfixOptions};
use serde_json::Value;

/// Mails per mailbox (mailbox A: at least half of them, then as many as
/// arrive until a second after the kill).
const PER_MAILBOX: usize = 2_000;
/// A bound on mailbox A's trickle, should the kill never come.
const TRICKLE_CAP: usize = 20_000;
/// Every this many mails, mailbox B also receives mailbox A's mail (one
/// mail, two mailboxes: the Message-ID makes it one ticket).
const CROSS_POSTED_EVERY: usize = 20;
/// Every this many mails comes from the fan-out account, whose subscribers
/// all hear of its new tickets.
const FAN_OUT_EVERY: usize = 10;
const SUBSCRIBERS: usize = 5;
const SALES_USER: &str = "sales@example.test";

/// Everything may take a while in a debug build on two cores; these are
/// bounds for a hang, not performance targets.
const DRAIN: Duration = Duration::from_secs(300);

fn mail(mailbox: char, n: usize) -> Vec<u8> {
    let (from, id) = if mailbox == 'b' && n.is_multiple_of(CROSS_POSTED_EVERY) {
        // The very mail mailbox A got.
        return mail('a', n);
    } else if n.is_multiple_of(FAN_OUT_EVERY) {
        (
            "Marie Dupont <marie@example.test>".to_string(),
            format!("{mailbox}-{n}"),
        )
    } else {
        // 800 senders with a few mails each, in both mailboxes: unknown
        // contacts created by whichever instance sees them first.
        (
            format!("Customer {0} <customer{0}@acme.test>", n % 800),
            format!("{mailbox}-{n}"),
        )
    };
    format!(
        "From: {from}\r\nTo: support@example.test\r\nSubject: Circuit {id} is down\r\n\
Message-ID: <{id}@acme.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nHello, circuit {id} has been down since this morning.\r\n"
    )
    .into_bytes()
}

fn directory() -> String {
    let mut toml = String::from(
        "[[account]]\nnumber = \"OCN-1\"\nname = \"Acme SA\"\ndomains = [\"example.test\"]\nlanguage = \"fr\"\n\
[[contact]]\nemail = \"marie@example.test\"\nfirst_name = \"Marie\"\nlast_name = \"Dupont\"\naccount = \"OCN-1\"\n",
    );
    for i in 0..SUBSCRIBERS {
        toml.push_str(&format!(
            "[[contact]]\nemail = \"noc{i}@example.test\"\naccount = \"OCN-1\"\n\
[[subscription]]\ncontact = \"noc{i}@example.test\"\naccount = \"OCN-1\"\ngroup = \"reactive_service_outage\"\n"
        ));
    }
    toml
}

/// A `[[mailbox]]` on the private Dovecot's IMAP `port`.
fn mailbox_toml(name: &str, user: &str, port: u16) -> String {
    format!(
        "[[mailbox]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
username = \"{user}\"\npassword = \"{DEFAULT_PASSWORD}\"\n"
    )
}

/// The `[database]` (the test's database, `lease`) and `[mail]` sections.
fn store_toml(db: &TestDb, dir: &Path, lease: &str) -> String {
    format!(
        "[database]\nurl = '{}'\nattachments = '{}'\nmailbox_lease = \"{lease}\"\n\
[mail]\nfrom = \"{DEFAULT_USER}\"\ndomain = \"provider.test\"\n",
        db.url(),
        dir.join("attachments").display(),
    )
}

fn config(db: &TestDb, dovecot: &Dovecot, postfix: &Postfix, dir: &Path) -> String {
    let mailbox = |name: &str, user: &str| mailbox_toml(name, user, dovecot.imap_port());
    format!(
        "{}\
[intake]\nmax_new_tickets_per_hour = 0\n\
[outbox]\nretry_min = \"1s\"\nlease = \"10s\"\n\
[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"starttls\"\nca_file = \"{}\"\ntimeout = \"5s\"\n{}\n{}",
        store_toml(db, dir, "3s"),
        postfix.smtp_port(),
        postfix.ca_file().display(),
        mailbox("support", DEFAULT_USER),
        mailbox("sales", SALES_USER),
    )
}

fn cli(config: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mailroom {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Each mailbox's `ingested` and `holder` from `mailroom status --json`.
fn status(config: &Path) -> HashMap<String, (i64, Option<String>)> {
    let rows: Vec<Value> = serde_json::from_str(&cli(config, &["status", "--json"])).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                (
                    r["ingested"].as_i64().unwrap_or(0),
                    r["holder"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

/// The pid in a lease holder (`host:pid:start`).
fn holder_pid(holder: &str) -> u32 {
    holder.split(':').nth(1).and_then(|p| p.parse().ok()).unwrap()
}

async fn count(conn: &mut sqlx::PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_two_mailboxes_and_survive_a_kill() {
    let Some(db) = TestDb::create().await.unwrap() else {
        return;
    };
    let Some(dovecot) = Dovecot::start().unwrap_or_else(|e| panic!("{e}")) else {
        return;
    };
    let opts = PostfixOptions::discard().domains(&["example.test", "acme.test"]);
    let Some(postfix) = Postfix::start(opts).unwrap_or_else(|e| panic!("{e}")) else {
        return;
    };
    dovecot.add_user(SALES_USER, DEFAULT_PASSWORD).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("mailroom.toml");
    std::fs::write(&config_path, config(&db, &dovecot, &postfix, dir.path())).unwrap();
    std::fs::write(dir.path().join("directory.toml"), directory()).unwrap();
    cli(
        &config_path,
        &[
            "directory",
            "import",
            dir.path().join("directory.toml").to_str().unwrap(),
        ],
    );

    // Mailbox B gets its mails up front; mailbox A half of them, then a
    // steady trickle that goes on until after the kill, so the instance
    // killed is in the middle of its work, not idle after the drain.
    for (user, mailbox, upfront) in [(DEFAULT_USER, 'a', PER_MAILBOX / 2), (SALES_USER, 'b', PER_MAILBOX)] {
        let mut imap = ImapClient::connect(dovecot.imap_port()).unwrap();
        imap.login(user, DEFAULT_PASSWORD).unwrap();
        for n in 0..upfront {
            imap.append("INBOX", &mail(mailbox, n)).unwrap();
        }
    }
    let stop_trickle = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = stop_trickle.clone();
        let port = dovecot.imap_port();
        std::thread::spawn(move || {
            let mut imap = ImapClient::connect(port).unwrap();
            imap.login(DEFAULT_USER, DEFAULT_PASSWORD).unwrap();
            let mut n = PER_MAILBOX / 2;
            while !stop.load(Ordering::SeqCst) && n < TRICKLE_CAP {
                imap.append("INBOX", &mail('a', n)).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };

    let start = |i: usize| {
        let d = daemon_in(dir.path(), &config_path, i);
        std::thread::sleep(Duration::from_millis(200));
        d
    };
    let mut daemons: Vec<Daemon> = (0..3).map(start).collect();
    let logs = |daemons: &[Daemon]| daemons.iter().map(Daemon::logs).collect::<Vec<_>>().join("\n----\n");

    // Mid-run: kill -9 the instance holding the support mailbox.
    let mid = wait_for(DRAIN, || {
        let s = status(&config_path);
        s.get("support").is_some_and(|(n, h)| *n >= 300 && h.is_some())
    });
    assert!(mid, "ingest did not start: {}", logs(&daemons));
    // Fair shares: two mailboxes, three instances, so two of them work.
    let spread = wait_for(Duration::from_secs(15), || {
        let s = status(&config_path);
        matches!((&s["support"].1, &s["sales"].1), (Some(a), Some(b)) if a != b)
    });
    assert!(spread, "one instance kept both mailboxes: {:?}", status(&config_path));
    let holder = status(&config_path)["support"].1.clone().unwrap();
    let victim = daemons
        .iter()
        .position(|d| d.pid() == holder_pid(&holder))
        .unwrap_or_else(|| panic!("holder {holder} is none of our daemons"));
    let trickling = !trickle.is_finished();
    let killed_at = Instant::now();
    let before_kill = status(&config_path)["support"].0;
    daemons[victim].kill();
    assert!(trickling, "the trickle ended before the kill: the test proves nothing");
    let taken_over = wait_for(Duration::from_secs(30), || {
        status(&config_path)["support"]
            .1
            .as_deref()
            .is_some_and(|h| h != holder)
    });
    assert!(
        taken_over,
        "no instance took the support mailbox over: {}",
        logs(&daemons)
    );
    let takeover = killed_at.elapsed();
    eprintln!("support mailbox taken over {takeover:?} after kill -9 of its holder");
    // Within the lease time, as the README promises, with the slack a
    // loaded CI host needs: the takeover itself comes 2.1-3.0 s after the
    // kill, but it is observed through `status` calls of a debug build
    // beside three daemons. A lease renewed after the kill (the bug this
    // guards against) would hold it past twice the lease.
    assert!(takeover < Duration::from_secs(6), "lease is 3s: {takeover:?}");

    // More mail after the kill, for the instance that took over.
    std::thread::sleep(Duration::from_secs(1));
    stop_trickle.store(true, Ordering::SeqCst);
    let in_a = trickle.join().unwrap();
    assert!(in_a < TRICKLE_CAP, "the trickle ran into its cap: raise it");
    assert!(
        (before_kill as usize) < in_a,
        "the killed instance had ingested all {in_a} mails of its mailbox"
    );

    // Everything ingested, every notification sent. Mailbox B's cross-posted
    // mails are mailbox A's where A got that far.
    let cross_posted = (0..PER_MAILBOX.min(in_a))
        .filter(|n| n.is_multiple_of(CROSS_POSTED_EVERY))
        .count();
    let expected_keys = (in_a + PER_MAILBOX - cross_posted) as i64;
    let mut conn = db.connect().await;
    let started = Instant::now();
    loop {
        let keys = count(&mut conn, "SELECT COUNT(DISTINCT message_key) FROM messages").await;
        let pending = count(
            &mut conn,
            "SELECT COUNT(*) FROM outbox WHERE status IN ('queued', 'sending')",
        )
        .await;
        let s = status(&config_path);
        let ingested_all = s.values().map(|(n, _)| *n).sum::<i64>() >= (in_a + PER_MAILBOX) as i64;
        if keys == expected_keys && pending == 0 && ingested_all {
            break;
        }
        assert!(
            started.elapsed() < DRAIN,
            "not done: {keys}/{expected_keys} mails, {pending} notifications pending, {s:?}\n{}",
            logs(&daemons)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // One ticket per mail, whichever instance and mailbox it came through.
    let doubled = count(
        &mut conn,
        "SELECT COUNT(*) FROM (SELECT message_key FROM messages WHERE outcome <> 'duplicate'
                                GROUP BY message_key HAVING COUNT(*) > 1) d",
    )
    .await;
    assert_eq!(doubled, 0, "a mail was handled twice");
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM tickets").await, expected_keys);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM quarantine").await, 0);
    // One contact per sender: the directory's and every customer who wrote,
    // though both mailboxes' instances met most customers at once.
    let customers: std::collections::HashSet<usize> = (0..PER_MAILBOX)
        .filter(|n| !n.is_multiple_of(FAN_OUT_EVERY))
        .map(|n| n % 800)
        .collect();
    assert_eq!(
        count(&mut conn, "SELECT COUNT(*) FROM contacts").await,
        (1 + SUBSCRIBERS + customers.len()) as i64
    );
    // The fan-out: every fan-out ticket told each subscriber once.
    let fan_out_tickets = count(
        &mut conn,
        "SELECT COUNT(*) FROM tickets t JOIN contacts c ON c.id = t.requester_id WHERE c.email = 'marie@example.test'",
    )
    .await;
    assert!(fan_out_tickets > 0);
    let told = count(
        &mut conn,
        "SELECT COUNT(*) FROM outbox WHERE to_addr LIKE 'noc%@example.test'",
    )
    .await;
    assert_eq!(told, fan_out_tickets * SUBSCRIBERS as i64);
    let repeated = count(
        &mut conn,
        "SELECT COUNT(*) FROM (SELECT ticket, event, lower(to_addr) FROM outbox
                                GROUP BY ticket, event, lower(to_addr) HAVING COUNT(*) > 1) d",
    )
    .await;
    assert_eq!(repeated, 0, "a notification was queued twice");
    let not_sent = count(&mut conn, "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'").await;
    assert_eq!(not_sent, 0);

    // What the relay accepted: every notification, and twice at most what
    // the killed instance had on the wire (a crash between the relay's
    // "250" and our commit repeats at most one mail per connection).
    postfix.wait_queue_empty(Duration::from_secs(120)).unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT message_id FROM outbox")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let log = std::fs::read_to_string(postfix.maillog()).unwrap();
    let mut accepted: HashMap<&str, usize> = HashMap::new();
    for line in log
        .lines()
        .filter(|l| l.contains("cleanup") && l.contains("message-id=<"))
    {
        let id = line.rsplit("message-id=<").next().unwrap().trim_end_matches('>');
        *accepted.entry(id).or_default() += 1;
    }
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !accepted.contains_key(id.trim_matches(['<', '>'])))
        .collect();
    assert!(
        missing.is_empty(),
        "{} notifications never reached the relay: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let repeats: usize = accepted.values().map(|n| n - 1).sum();
    eprintln!(
        "{} notifications accepted by the relay, {repeats} repeated by the crash",
        ids.len()
    );
    assert!(
        repeats <= 8,
        "more repeats than the killed instance had connections: {repeats}"
    );
    for (i, d) in daemons.iter_mut().enumerate() {
        if i != victim {
            let (code, _) = d.terminate();
            assert_eq!(code, Some(0), "a surviving instance stops cleanly");
        }
    }
}

/// Found by `bench/instances.sh`: shares were recomputed and surplus looked
/// for every tenth of the lease, so with the default 30 s lease three
/// instances started together left all the work to the first for 6 s.
/// With a 60 s lease here, the second instance must have its share within
/// a few seconds; before, the first looked again only after 6.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_gets_its_share_within_seconds_whatever_the_lease() {
    let Some(db) = TestDb::create().await.unwrap() else {
        return;
    };
    let Some(dovecot) = Dovecot::start().unwrap_or_else(|e| panic!("{e}")) else {
        return;
    };
    dovecot.add_user(SALES_USER, DEFAULT_PASSWORD).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("mailroom.toml");
    let config = format!(
        "{}{}\n{}",
        store_toml(&db, dir.path(), "60s"),
        mailbox_toml("support", DEFAULT_USER, dovecot.imap_port()),
        mailbox_toml("sales", SALES_USER, dovecot.imap_port()),
    );
    std::fs::write(&config_path, config).unwrap();
    let mut first = daemon_in(dir.path(), &config_path, 0);
    let both = wait_for(DRAIN, || {
        let s = status(&config_path);
        matches!((&s["support"].1, &s["sales"].1), (Some(a), Some(b)) if a == b)
    });
    assert!(
        both,
        "the first instance alone did not take both mailboxes: {}",
        first.logs()
    );
    let mut second = daemon_in(dir.path(), &config_path, 1);
    let started = Instant::now();
    let spread = wait_for(Duration::from_secs(60), || {
        let s = status(&config_path);
        matches!((&s["support"].1, &s["sales"].1), (Some(a), Some(b)) if a != b)
    });
    let took = started.elapsed();
    assert!(spread, "the second instance never got a mailbox: {}", second.logs());
    eprintln!("the second instance had its share {took:?} after it started");
    // Half a second between looks, then the session's handover; the `status`
    // calls of a debug build beside two daemons add their share.
    assert!(took < Duration::from_secs(5), "{took:?}: {}", first.logs());
    for d in [&mut first, &mut second] {
        let (code, _) = d.terminate();
        assert_eq!(code, Some(0), "an instance stops cleanly");
    }
}

/// Found by a review: a holder that could not reach the server (its
/// address banned, a stale password, a broken route) renewed its lease
/// for ever, and a standby that could reach it waited, the mailbox
/// unwatched. After four failed sessions in a row the holder hands it over.
#[tokio::test(flavor = "multi_thread")]
async fn a_holder_that_cannot_reach_the_server_hands_the_mailbox_to_one_that_can() {
    let Some(db) = TestDb::create().await.unwrap() else {
        return;
    };
    let Some(dovecot) = Dovecot::start().unwrap_or_else(|e| panic!("{e}")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: this instance's way to the server is broken.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = |name: &str, port: u16| {
        let path = dir.path().join(name);
        let text = store_toml(&db, dir.path(), "3s") + &mailbox_toml("support", DEFAULT_USER, port);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cut_off = config("cut-off.toml", closed);
    let reaching = config("reaching.toml", dovecot.imap_port());
    let mut imap = ImapClient::connect(dovecot.imap_port()).unwrap();
    imap.login(DEFAULT_USER, DEFAULT_PASSWORD).unwrap();
    imap.append("INBOX", &mail('a', 1)).unwrap();

    let mut first = daemon_in(dir.path(), &cut_off, 0);
    let held = wait_for(DRAIN, || status(&cut_off)["support"].1.is_some());
    assert!(held, "the first instance never took the mailbox: {}", first.logs());
    let mut second = daemon_in(dir.path(), &reaching, 1);
    let ingested = wait_for(Duration::from_secs(90), || status(&reaching)["support"].0 >= 1);
    assert!(
        ingested,
        "the mailbox stayed with the instance that cannot reach it:\n{}\n----\n{}",
        first.logs(),
        second.logs()
    );
    let holder = status(&reaching)["support"].1.clone().unwrap();
    assert_eq!(holder_pid(&holder), second.pid(), "{holder}");
    assert!(
        first.logs().contains("handing it to another instance"),
        "{}",
        first.logs()
    );
    for d in [&mut first, &mut second] {
        let (code, _) = d.terminate();
        assert_eq!(code, Some(0), "an instance stops cleanly");
    }
}

/// `mailroom run` number `i`, logging to the temp dir.
fn daemon_in(dir: &Path, config: &Path, i: usize) -> Daemon {
    Daemon::spawn_with(
        config,
        &dir.join(format!("instance-{i}.log")),
        &[("MAILROOM_LOG", "mailroom=info")],
    )
}
