//! The daemon against a real IMAP server: a private Dovecot per test (see
//! `tests/support/dovecot.rs`). Without Dovecot these tests print SKIPPED
//! and pass; with `MAILROOM_REQUIRE_DOVECOT=1` (CI) they fail instead.

#[path = "imap/daemon.rs"]
mod daemon;
#[path = "support/dovecot.rs"]
mod dovecot;
#[path = "support/imap_client.rs"]
mod imap_client;

use std::time::{Duration, Instant};

use daemon::{Setup, request, set_mode, signal, wait_for};
use dovecot::Dovecot;
use imap_client::ImapClient;

/// Generous bounds: these are correctness tests, not benchmarks.
const SOON: Duration = Duration::from_secs(30);

fn server() -> Option<Dovecot> {
    Dovecot::start().expect("private Dovecot")
}

/// A `[[mailbox]]` body for `user` over `tls` with its port and CA.
fn mailbox(d: &Dovecot, name: &str, user: &str, tls: &str, extra: &str) -> String {
    let port = if tls == "implicit" {
        d.imaps_port()
    } else {
        d.imap_port()
    };
    format!(
        "name = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{}\"\nusername = \"{user}\"\n\
password = \"pw-{user}\"\n{extra}",
        d.ca_file().display()
    )
}

fn user(d: &Dovecot, name: &str) -> ImapClient {
    let _ = d.add_user(name, &format!("pw-{name}"));
    let mut c = ImapClient::connect(d.imap_port()).unwrap();
    c.login(name, &format!("pw-{name}")).unwrap();
    c
}

/// User `name` with `total` requests (0..total) waiting in INBOX.
fn backlog(d: &Dovecot, name: &str, total: usize) {
    let mut c = user(d, name);
    for n in 0..total {
        c.append("INBOX", &request(n)).unwrap();
    }
}

#[test]
fn plain_starttls_and_implicit_tls_ingest_and_a_wrong_ca_is_refused() {
    let Some(d) = server() else { return };
    let setup = Setup::new();
    for (i, (name, tls)) in [("plain", "none"), ("starttls", "starttls"), ("implicit", "implicit")]
        .iter()
        .enumerate()
    {
        user(&d, name).append("INBOX", &request(i)).unwrap();
        setup.mailbox(&mailbox(&d, name, name, tls, ""));
    }
    user(&d, "wrongca").append("INBOX", &request(9)).unwrap();
    setup.mailbox(&mailbox(&d, "wrongca", "wrongca", "implicit", "").replace(
        &d.ca_file().display().to_string(),
        &d.wrong_ca_file().display().to_string(),
    ));
    let daemon = setup.start();
    assert!(
        wait_for(SOON, || setup.tickets().len() == 3),
        "three tickets expected: {}",
        daemon.logs()
    );
    let refused = setup.status("wrongca");
    assert_eq!(refused["ingested"], 0, "{refused}");
    let error = refused["last_error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("tls") || error.contains("certificate"), "{refused}");
    for name in ["plain", "starttls", "implicit"] {
        assert_eq!(setup.status(name)["ingested"], 1, "{name}");
    }
}

#[test]
fn after_actions_are_applied_on_the_server() {
    let Some(d) = server() else { return };
    let setup = Setup::new();
    let cases = [
        ("seen", "seen"),
        ("moved", "move:Done"),
        ("deleted", "delete"),
        ("kept", "keep"),
    ];
    for (i, (name, after)) in cases.iter().enumerate() {
        let mut c = user(&d, name);
        c.append("INBOX", &request(10 * i)).unwrap();
        c.append("INBOX", &request(10 * i + 1)).unwrap();
        setup.mailbox(&mailbox(&d, name, name, "none", &format!("after = \"{after}\"\n")));
    }
    let mut daemon = setup.start();
    assert!(
        wait_for(SOON, || setup.tickets().len() == 8),
        "eight tickets expected: {}",
        daemon.logs()
    );
    // The after action runs once the batch committed; give it a moment.
    assert!(
        wait_for(SOON, || cases.iter().all(|(n, _)| setup.status(n)["last_uid"] == 2)),
        "{}",
        daemon.logs()
    );
    let mut seen = user(&d, "seen");
    let uids = seen.uids("INBOX").unwrap();
    assert_eq!(uids.len(), 2);
    assert!(
        uids.iter()
            .all(|u| seen.flags("INBOX", *u).unwrap().iter().any(|f| f == "\\Seen"))
    );
    let mut moved = user(&d, "moved");
    assert_eq!(moved.count("INBOX").unwrap(), 0);
    assert_eq!(moved.count("Done").unwrap(), 2);
    assert_eq!(user(&d, "deleted").count("INBOX").unwrap(), 0);
    let mut kept = user(&d, "kept");
    let uids = kept.uids("INBOX").unwrap();
    assert_eq!(uids.len(), 2);
    assert!(
        uids.iter()
            .all(|u| !kept.flags("INBOX", *u).unwrap().iter().any(|f| f == "\\Seen"))
    );
    assert_eq!(daemon.terminate().0, Some(0));
}

#[test]
fn a_backlog_in_many_chunks_is_moved_chunk_by_chunk_after_each_commit() {
    // The daemon fetches chunk n+1 while chunk n commits; each chunk must
    // still be moved after its own commit, the last one included.
    let Some(d) = server() else { return };
    let setup = Setup::new();
    let total = 47;
    backlog(&d, "chunks", total);
    setup.mailbox(&mailbox(
        &d,
        "chunks",
        "chunks",
        "none",
        "batch = 5\nafter = \"move:Done\"\n",
    ));
    let mut daemon = setup.start();
    assert!(
        wait_for(SOON, || setup.status("chunks")["last_uid"] == total as u64),
        "{}",
        daemon.logs()
    );
    let mut check = user(&d, "chunks");
    assert_eq!(check.count("INBOX").unwrap(), 0, "every chunk moved");
    assert_eq!(check.count("Done").unwrap(), total as u32, "each mail moved once");
    let messages = setup.messages();
    assert_eq!(messages.len(), total, "each mail processed once");
    assert!(messages.iter().all(|m| m["outcome"] == "new_ticket"));
    assert_eq!(setup.status("chunks")["ingested"], total as u64);
    assert_eq!(daemon.terminate().0, Some(0));
}

#[test]
fn a_backlog_with_gaps_in_its_uids_is_ingested_whole_and_only_its_mails_are_deleted() {
    // Mails expunged by someone else leave holes in the UIDs; chunks are cut
    // from the sizes the server reports, so a hole must neither stop the
    // drain, nor count as a mail, nor make the daemon expunge beyond its own.
    let Some(d) = server() else { return };
    let setup = Setup::new();
    let total = 30;
    let mut c = user(&d, "gaps");
    let uids: Vec<u32> = (0..total)
        .map(|n| c.append_uid("INBOX", &request(n)).unwrap())
        .collect();
    let gone: Vec<usize> = (0..total).filter(|n| n % 3 == 1).collect();
    for &n in &gone {
        c.store_flags("INBOX", uids[n], "+FLAGS.SILENT", &["\\Deleted"])
            .unwrap();
    }
    c.command("EXPUNGE").unwrap();
    assert_eq!(c.count("INBOX").unwrap(), (total - gone.len()) as u32);
    setup.mailbox(&mailbox(&d, "gaps", "gaps", "none", "batch = 4\nafter = \"delete\"\n"));
    let mut daemon = setup.start();
    assert!(
        wait_for(SOON, || setup.status("gaps")["last_uid"] == u64::from(uids[total - 1])),
        "{}",
        daemon.logs()
    );
    let ids: std::collections::BTreeSet<String> = setup
        .messages()
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default().to_string())
        .collect();
    let expected: std::collections::BTreeSet<String> = (0..total)
        .filter(|n| !gone.contains(n))
        .map(|n| format!("req-{n}@acme.test"))
        .collect();
    assert_eq!(ids, expected, "every remaining mail once, no expunged one");
    assert_eq!(setup.status("gaps")["ingested"], (total - gone.len()) as u64);
    // A mail that arrives after the drain is ingested and deleted in turn.
    let late = c.append_uid("INBOX", &request(total)).unwrap();
    assert!(
        wait_for(SOON, || setup.status("gaps")["last_uid"] == u64::from(late)),
        "{}",
        daemon.logs()
    );
    // A session of its own: STATUS on the session that has INBOX selected
    // answers from what that session has seen.
    assert_eq!(
        user(&d, "gaps").count("INBOX").unwrap(),
        0,
        "each ingested mail deleted"
    );
    assert_eq!(setup.messages().len(), total - gone.len() + 1);
    assert_eq!(daemon.terminate().0, Some(0));
}

#[test]
fn idle_push_sigterm_and_restart_lose_and_double_nothing() {
    let Some(d) = server() else { return };
    let setup = Setup::new();
    let mut c = user(&d, "support1");
    for n in 0..3 {
        c.append("INBOX", &request(n)).unwrap();
    }
    setup.mailbox(&mailbox(&d, "support", "support1", "starttls", ""));
    let mut daemon = setup.start();
    assert!(wait_for(SOON, || setup.tickets().len() == 3), "{}", daemon.logs());
    assert!(
        wait_for(SOON, || setup.status("support")["state"] == "idle"),
        "{}",
        daemon.logs()
    );
    // Pushed through IDLE: appended after start, committed without a poll.
    let appended = Instant::now();
    c.append("INBOX", &request(3)).unwrap();
    assert!(wait_for(SOON, || setup.tickets().len() == 4), "{}", daemon.logs());
    eprintln!("append to ticket under IDLE: {:?}", appended.elapsed());
    let (code, took) = daemon.terminate();
    assert_eq!(code, Some(0), "SIGTERM exits 0");
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    for n in 4..6 {
        c.append("INBOX", &request(n)).unwrap();
    }
    let mut again = setup.start();
    assert!(wait_for(SOON, || setup.tickets().len() == 6), "{}", again.logs());
    let messages = setup.messages();
    assert_eq!(messages.len(), 6, "no mail fetched twice: {messages:?}");
    assert!(messages.iter().all(|m| m["outcome"] == "new_ticket"));
    assert_eq!(again.terminate().0, Some(0));
}

/// The mailbox task leaves and re-enters IDLE every `idle_check_ms` (200
/// by default), each check logged at trace level; with `idle_check_ms = 0`
/// it never does, and a new mail still comes in, on Dovecot's own IDLE
/// announcement alone.
#[test]
fn idle_checks_run_by_default_and_zero_turns_them_off() {
    let Some(d) = server() else { return };
    const CHECK: &str = "IDLE check: nothing new";
    let trace = [("MAILROOM_LOG", "warn,mailroom::ingest::imap::idle=trace")];
    let checks_in = |extra: &str, user_name: &str, expected: bool| {
        let setup = Setup::new();
        let mut c = user(&d, user_name);
        setup.mailbox(&mailbox(&d, "support", user_name, "starttls", extra));
        let mut daemon = setup.start_with(&trace);
        assert!(
            wait_for(SOON, || setup.status("support")["state"] == "idle"),
            "{}",
            daemon.logs()
        );
        if expected {
            // Three checks come within a second at 200 ms; waited for, not
            // slept for, so a busy machine does not fail the test.
            wait_for(SOON, || daemon.full_log().matches(CHECK).count() >= 3);
        } else {
            // A second and a half of an idle mailbox: about seven checks, if
            // any were made.
            std::thread::sleep(Duration::from_millis(1500));
        }
        let checks = daemon.full_log().matches(CHECK).count();
        let appended = Instant::now();
        c.append("INBOX", &request(0)).unwrap();
        assert!(wait_for(SOON, || setup.tickets().len() == 1), "{}", daemon.logs());
        eprintln!(
            "{user_name}: {checks} checks, append to ticket in {:?}",
            appended.elapsed()
        );
        assert_eq!(daemon.terminate().0, Some(0));
        checks
    };
    let by_default = checks_in("", "support-checks", true);
    assert!(by_default >= 3, "{by_default} checks with idle_check_ms = 200");
    assert_eq!(checks_in("idle_check_ms = 0\n", "support-nocheck", false), 0);
}

#[test]
fn a_uidvalidity_change_rescans_without_duplicates() {
    let Some(mut d) = server() else { return };
    let setup = Setup::new();
    let mut c = user(&d, "uv");
    c.append("INBOX", &request(0)).unwrap();
    c.append("INBOX", &request(1)).unwrap();
    drop(c);
    setup.mailbox(&mailbox(&d, "uv", "uv", "none", "after = \"keep\"\n"));
    let mut daemon = setup.start();
    assert!(wait_for(SOON, || setup.tickets().len() == 2), "{}", daemon.logs());
    assert_eq!(daemon.terminate().0, Some(0));
    let before = setup.status("uv")["uidvalidity"].clone();
    d.reset_uidvalidity_for("uv", "INBOX").unwrap();
    user(&d, "uv").append("INBOX", &request(2)).unwrap();
    let mut again = setup.start();
    assert!(wait_for(SOON, || setup.tickets().len() == 3), "{}", again.logs());
    assert!(
        wait_for(SOON, || setup.status("uv")["uidvalidity"] != before),
        "{}",
        again.logs()
    );
    let outcomes = setup.outcomes();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "new_ticket").count(),
        3,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| *o == "duplicate").count(),
        2,
        "the rescan saw the old mails again: {outcomes:?}"
    );
    assert_eq!(again.terminate().0, Some(0));
}

#[test]
fn a_server_restart_mid_run_is_survived() {
    let Some(mut d) = server() else { return };
    let setup = Setup::new();
    user(&d, "bounce").append("INBOX", &request(0)).unwrap();
    setup.mailbox(&mailbox(&d, "bounce", "bounce", "implicit", ""));
    let mut daemon = setup.start();
    assert!(wait_for(SOON, || setup.tickets().len() == 1), "{}", daemon.logs());
    d.stop().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    d.start_again().unwrap();
    user(&d, "bounce").append("INBOX", &request(1)).unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || setup.tickets().len() == 2),
        "{}",
        daemon.logs()
    );
    assert_eq!(setup.messages().len(), 2);
    assert_eq!(daemon.terminate().0, Some(0));
}

/// The file in `user`'s Maildir (new/ or cur/) whose mail contains `marker`.
/// A mail the server cannot hand over (its file unreadable: Dovecot sends the chunk's other
/// mails, then fails the FETCH and drops the connection) is never passed over: with
/// `after = "delete"` nothing is deleted and the high-water mark stays put while the failure
/// lasts; once the mail can be read, every mail is ingested exactly once and only then
/// deleted. (A FETCH answered `NO`, which async-imap reports as success, is covered by the
/// scripted-peer tests of `ingest::imap::command`.)
#[test]
fn a_refused_fetch_deletes_nothing_and_passes_nothing_over() {
    let Some(d) = server() else { return };
    let setup = Setup::new();
    backlog(&d, "flaky", 3);
    // The mail process runs as nobody: a file with mode 000 is one it cannot open.
    let unreadable = d.mail_file("flaky", "Line 1 is down");
    set_mode(&unreadable, 0o000);
    setup.mailbox(&mailbox(&d, "flaky", "flaky", "none", "after = \"delete\"\n"));
    let daemon = setup.start();
    assert!(
        wait_for(SOON, || setup.status("flaky")["state"] == "backoff"),
        "{}",
        daemon.logs()
    );
    // Dovecot hands over the readable mails of the chunk, then drops the connection.
    assert!(
        d.log_tail(40).contains("FETCH failed"),
        "the server did not fail the FETCH:\n{}",
        d.log_tail(40)
    );
    let status = setup.status("flaky");
    assert_eq!(status["last_uid"], 0, "{status}");
    assert!(status["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{status}");
    assert_eq!(user(&d, "flaky").count("INBOX").unwrap(), 3, "mails deleted unread");
    assert!(setup.tickets().is_empty());

    // Dovecot moved it from new/ to cur/ when the folder was first selected.
    set_mode(&d.mail_file("flaky", "Line 1 is down"), 0o600);
    assert!(
        wait_for(SOON, || setup.tickets().len() == 3
            && setup.status("flaky")["last_uid"] == 3),
        "{}",
        daemon.logs()
    );
    assert!(
        wait_for(SOON, || user(&d, "flaky").count("INBOX").unwrap() == 0),
        "{}",
        daemon.logs()
    );
    let outcomes = setup.outcomes();
    assert_eq!(outcomes, ["new_ticket", "new_ticket", "new_ticket"], "{outcomes:?}");
    // Caught up, the mailbox no longer shows the error it recovered from.
    assert!(
        wait_for(SOON, || setup.status("flaky")["last_error"].is_null()),
        "{}",
        setup.status("flaky")
    );
}

/// Tracing at its most verbose (MAILROOM_LOG=trace) logs IMAP traffic but never the LOGIN
/// command that carries the password.
#[test]
fn a_trace_log_never_holds_the_imap_password() {
    let Some(d) = server() else { return };
    let setup = Setup::new();
    backlog(&d, "traced", 1);
    setup.mailbox(&mailbox(&d, "traced", "traced", "none", ""));
    let mut daemon = setup.start_with(&[("MAILROOM_LOG", "trace,async_imap=trace")]);
    assert!(wait_for(SOON, || setup.tickets().len() == 1), "{}", daemon.logs());
    assert_eq!(daemon.terminate().0, Some(0));
    let logs = daemon.full_log();
    // The most verbose level reached the other crates (sqlx's statements are DEBUG).
    assert!(
        logs.contains("DEBUG sqlx::query"),
        "verbose logging was not on:\n{logs}"
    );
    assert!(!logs.contains("pw-traced"), "the IMAP password is in the log");
}

#[test]
fn a_mailbox_with_a_wrong_password_does_not_stop_the_others() {
    let Some(d) = server() else { return };
    let setup = Setup::new();
    user(&d, "good").append("INBOX", &request(0)).unwrap();
    user(&d, "locked").append("INBOX", &request(1)).unwrap();
    setup.mailbox(&mailbox(&d, "good", "good", "none", ""));
    setup.mailbox(&mailbox(&d, "locked", "locked", "none", "").replace("pw-locked", "not-the-password-4711"));
    let daemon = setup.start();
    assert!(wait_for(SOON, || setup.tickets().len() == 1), "{}", daemon.logs());
    assert!(
        wait_for(SOON, || setup.status("locked")["state"] == "backoff"),
        "{}",
        daemon.logs()
    );
    let locked = setup.status("locked");
    let error = locked["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("login"), "{locked}");
    assert!(
        !error.contains("not-the-password-4711"),
        "the secret leaked into the status: {error}"
    );
    assert!(
        !daemon.logs().contains("not-the-password-4711"),
        "the secret leaked into the logs"
    );
    assert_eq!(setup.status("good")["ingested"], 1);
}

#[test]
fn a_kill_during_ingestion_loses_and_doubles_nothing() {
    let Some(d) = server() else { return };
    let setup = Setup::new();
    let total = 400;
    backlog(&d, "crash", total);
    setup.mailbox(&mailbox(&d, "crash", "crash", "none", "batch = 25\n"));
    let mut daemon = setup.start();
    assert!(wait_for(SOON, || !setup.tickets().is_empty()), "{}", daemon.logs());
    daemon.kill();
    let mut again = setup.start();
    assert!(
        wait_for(Duration::from_secs(60), || setup.tickets().len() == total),
        "{}",
        again.logs()
    );
    let tickets = setup.tickets();
    let mut subjects: Vec<&str> = tickets.iter().map(|t| t["subject"].as_str().unwrap()).collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), total, "one ticket per mail");
    // The count moves with the position, in one statement: the chunk fetched again after
    // the kill is not counted twice.
    assert!(
        wait_for(SOON, || setup.status("crash")["last_uid"] == total as u64),
        "{}",
        again.logs()
    );
    assert_eq!(setup.status("crash")["ingested"], total as u64);
    assert_eq!(again.terminate().0, Some(0));
}

#[test]
fn sigterm_in_the_middle_of_a_backlog_exits_0_and_a_restart_finishes_it_exactly_once() {
    let Some(d) = server() else { return };
    let setup = Setup::new();
    let total = 300;
    backlog(&d, "backlog", total);
    let secret = setup.dir.path().join("imap-secret");
    std::fs::write(&secret, "pw-backlog\n").unwrap();
    let toml = mailbox(&d, "backlog", "backlog", "starttls", "batch = 20\n").replace(
        "password = \"pw-backlog\"",
        &format!("password_file = \"{}\"", secret.display()),
    );
    setup.mailbox(&toml);
    let mut daemon = setup.start();
    assert!(wait_for(SOON, || !setup.tickets().is_empty()), "{}", daemon.logs());
    let (code, took) = daemon.terminate();
    assert_eq!(code, Some(0), "{}", daemon.logs());
    assert!(took < Duration::from_secs(10), "stopped in {took:?}");
    let mut again = setup.start();
    assert!(
        wait_for(Duration::from_secs(60), || setup.tickets().len() == total),
        "{}",
        again.logs()
    );
    let messages = setup.messages();
    assert_eq!(messages.len(), total, "a clean stop re-fetches nothing");
    assert!(messages.iter().all(|m| m["outcome"] == "new_ticket"));
    assert_eq!(again.terminate().0, Some(0));
}

/// Appends a 20 KB mail (UID 1) and a normal one (UID 2) to `name`'s
/// INBOX; returns the large one.
fn oversized_and_normal(d: &Dovecot, name: &str) -> Vec<u8> {
    let mut c = user(d, name);
    let mut huge = request(1);
    huge.extend(std::iter::repeat_n(b'x', 20_000));
    huge.extend(b"\r\n");
    c.append("INBOX", &huge).unwrap();
    c.append("INBOX", &request(2)).unwrap();
    huge
}

#[test]
fn an_oversized_mail_is_quarantined_with_its_headers() {
    let Some(d) = server() else { return };
    let setup = Setup::new();
    oversized_and_normal(&d, "big");
    setup.mailbox(&mailbox(&d, "big", "big", "none", "max_message_bytes = 5000\n"));
    let daemon = setup.start();
    assert!(wait_for(SOON, || setup.tickets().len() == 1), "{}", daemon.logs());
    let q = setup.json(&["quarantine", "list"]);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["reason"], "too_large");
    assert_eq!(q[0]["subject"], "Line 1 is down");
    let raw = setup
        .cli(&["quarantine", "show", &q[0]["id"].to_string(), "--raw"])
        .stdout;
    assert!(raw.starts_with(b"From: Customer 1"), "the headers are kept");
    assert!(raw.len() < 2_000, "only the headers were fetched ({} bytes)", raw.len());
}

/// Under `after = "delete"`, a mail kept as its headers only is not expunged: the quarantine
/// holds only its headers, so the whole mail stays on the server, flagged for a person; the
/// mail fetched whole beside it is deleted as usual.
#[test]
fn delete_leaves_a_mail_kept_as_headers_only_on_the_server() {
    let Some(d) = server() else { return };
    let setup = Setup::new();
    let huge = oversized_and_normal(&d, "bigdel");
    setup.mailbox(&mailbox(
        &d,
        "bigdel",
        "bigdel",
        "none",
        "after = \"delete\"\nmax_message_bytes = 5000\n",
    ));
    let daemon = setup.start();
    assert!(
        wait_for(SOON, || setup.status("bigdel")["last_uid"] == 2),
        "{}",
        daemon.logs()
    );
    assert!(
        wait_for(SOON, || user(&d, "bigdel").count("INBOX").unwrap() == 1),
        "{}",
        daemon.logs()
    );
    let mut c = user(&d, "bigdel");
    assert_eq!(c.fetch_body("INBOX", 1).unwrap(), huge, "the whole mail is still there");
    assert!(c.flags("INBOX", 1).unwrap().iter().any(|f| f == "\\Flagged"));
    assert!(c.flags("INBOX", 2).is_err(), "the mail fetched whole was deleted");
    let q = setup.json(&["quarantine", "list"]);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["reason"], "too_large");
    assert_eq!(setup.tickets().len(), 1);
}

#[test]
fn check_config_names_where_secrets_come_from_and_never_prints_them() {
    let setup = Setup::new();
    setup.mailbox("name = \"inline\"\nhost = \"imap.example.com\"\nusername = \"u\"\npassword = \"hunter2-secret\"\n");
    setup.mailbox(
        "name = \"env\"\nhost = \"imap.example.com\"\nusername = \"u\"\npassword_env = \"MAILROOM_TEST_PW\"\nidle_check_ms = 0\n",
    );
    // The secret is read: an unset variable fails here, not in `run`.
    let out = setup.cli(&["check-config"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("mailbox env") && stderr.contains("MAILROOM_TEST_PW is not set"),
        "{stderr}"
    );
    let out = setup.cli_with(&["check-config"], &[("MAILROOM_TEST_PW", "env-secret-value")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains("env-secret-value") && !stderr.contains("env-secret-value"));
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout}{stderr}"
    );
    assert!(stderr.contains("warning: mailbox inline"), "{stderr}");
    assert!(stdout.contains("password_env MAILROOM_TEST_PW"), "{stdout}");
    // IDLE checks: on by default, off where the mailbox says 0.
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("mailbox {name}:")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("inline").contains(" idle_check=200ms "), "{stdout}");
    assert!(line("env").contains(" idle_check=off "), "{stdout}");

    let plain = Setup::new();
    plain
        .mailbox("name = \"x\"\nhost = \"imap.example.com\"\ntls = \"none\"\nusername = \"u\"\npassword_env = \"P\"\n");
    let out = plain.cli(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("allow_insecure"),
        "plaintext to a remote host is refused"
    );
}

#[test]
fn systemd_is_told_ready_status_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let setup = Setup::new();
    // A mailbox whose server is not there: the daemon is ready all the same
    // and reports the mailbox's trouble in STATUS=.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    setup.mailbox(&format!(
        "name = \"support\"\nhost = \"127.0.0.1\"\nport = {closed}\ntls = \"none\"\nusername = \"u\"\npassword_env = \"MAILROOM_TEST_PW\"\n"
    ));
    let socket_path = setup.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let path = socket_path.display().to_string();
    let mut daemon = setup.start_with(&[("NOTIFY_SOCKET", &path), ("MAILROOM_TEST_PW", "pw")]);
    let mut seen = String::new();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < SOON
        && !(seen.contains("READY=1") && seen.contains("STATUS=support: backoff") && seen.contains("WATCHDOG=1"))
    {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    }
    assert!(seen.contains("READY=1"), "{seen}\n{}", daemon.logs());
    assert!(seen.contains("STATUS=support: backoff"), "{seen}");
    assert!(seen.contains("WATCHDOG=1"), "{seen}");
    signal(daemon.pid(), "TERM");
    let started = Instant::now();
    while started.elapsed() < SOON && !seen.contains("STOPPING=1") {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    assert!(seen.contains("STOPPING=1"), "{seen}");
    assert_eq!(daemon.terminate().0, Some(0));
}
