//! What a real IMAP server refuses or cannot do (a private Dovecot per
//! test, see `tests/support/dovecot.rs`): folder names outside ASCII, the
//! `after` action refused, a mail it cannot hand over. Without Dovecot
//! these tests print SKIPPED and pass; with `MAILROOM_REQUIRE_DOVECOT=1`
//! (CI) they fail instead.

#[path = "imap/daemon.rs"]
mod daemon;
#[path = "support/dovecot.rs"]
mod dovecot;
#[path = "support/imap_client.rs"]
mod imap_client;

use std::time::Duration;

use daemon::{Setup, request, set_mode, wait_for};
use dovecot::Dovecot;
use imap_client::ImapClient;

/// Generous bounds: these are correctness tests, not benchmarks.
const SOON: Duration = Duration::from_secs(30);

fn user(d: &Dovecot, name: &str) -> ImapClient {
    let _ = d.add_user(name, &format!("pw-{name}"));
    let mut c = ImapClient::connect(d.imap_port()).unwrap();
    c.login(name, &format!("pw-{name}")).unwrap();
    c
}

fn mailbox(d: &Dovecot, user: &str, extra: &str) -> String {
    format!(
        "name = \"{user}\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"{user}\"\npassword = \"pw-{user}\"\n{extra}",
        d.imap_port()
    )
}

/// A folder named as people write it (`Entrée`, `move:Traité & co`) is
/// watched and moved into: the daemon spells the names in modified UTF-7,
/// as IMAP4rev1 carries them (the test's client writes them so by hand).
#[test]
fn folders_named_outside_ascii_are_watched_and_moved_into() {
    let Some(d) = Dovecot::start().expect("private Dovecot") else {
        return;
    };
    let mut c = user(&d, "unicode");
    c.create("Entr&AOk-e").unwrap();
    c.append("Entr&AOk-e", &request(1)).unwrap();
    c.append("Entr&AOk-e", &request(2)).unwrap();
    let setup = Setup::new();
    setup.mailbox(&mailbox(
        &d,
        "unicode",
        "folder = \"Entrée\"\nafter = \"move:Traité & co\"\n",
    ));
    let mut daemon = setup.start();
    assert!(
        wait_for(SOON, || setup.tickets().len() == 2
            && setup.status("unicode")["last_uid"] == 2),
        "{}",
        daemon.logs()
    );
    let mut c = user(&d, "unicode");
    assert!(
        wait_for(SOON, || c.count("Trait&AOk- &- co").unwrap_or(0) == 2),
        "{}",
        daemon.logs()
    );
    assert_eq!(c.count("Entr&AOk-e").unwrap(), 0);
    assert_eq!(daemon.terminate().0, Some(0));
}

fn set_modes(dir: &std::path::Path, mode: u32) {
    for path in [dir.to_path_buf(), dir.join("new"), dir.join("cur"), dir.join("tmp")] {
        set_mode(&path, mode);
    }
}

/// A server that refuses the `after` action (a folder it cannot write to)
/// does not hold the mailbox back: after three refusals in a row, every
/// mail becomes a ticket once, over several chunks, the mails stay in the
/// folder, and `status` says why.
/// Once the folder takes mail again, the next mail is moved and the error
/// goes. (Holding the mark back instead fetched the same two chunks again
/// on every reconnection and never reached the mail behind them.)
#[test]
fn a_refused_after_action_holds_nothing_back_and_is_reported() {
    let Some(d) = Dovecot::start().expect("private Dovecot") else {
        return;
    };
    let mut c = user(&d, "stuck");
    c.create("Done").unwrap();
    for n in 0..5 {
        c.append("INBOX", &request(n)).unwrap();
    }
    // The mail process runs as nobody: a folder of mode 0555 is one it
    // cannot copy into.
    let done = d.folder_dir("stuck", "Done");
    set_modes(&done, 0o555);
    let setup = Setup::new();
    setup.mailbox(&mailbox(&d, "stuck", "after = \"move:Done\"\nbatch = 2\n"));
    let mut daemon = setup.start();
    assert!(
        wait_for(SOON, || setup.tickets().len() == 5
            && setup.status("stuck")["last_uid"] == 5
            && setup.status("stuck")["state"] == "idle"),
        "{}\n{}",
        setup.status("stuck"),
        daemon.logs()
    );
    let status = setup.status("stuck");
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("move:Done") && error.contains("refused"), "{status}");
    let mut c = user(&d, "stuck");
    assert_eq!(c.count("INBOX").unwrap(), 5);
    assert_eq!(c.count("Done").unwrap(), 0);
    let outcomes = setup.outcomes();
    // Each mail once: the chunks fetched again while the refusal could
    // still be of the moment (Dovecot says `[SERVERBUG]` for a folder it
    // cannot write to) are recognised as the mails already stored.
    let once: Vec<&String> = outcomes.iter().filter(|o| *o != "duplicate").collect();
    assert_eq!(once, ["new_ticket"; 5], "each mail once: {outcomes:?}");

    set_modes(&done, 0o755);
    c.append("INBOX", &request(5)).unwrap();
    assert!(
        wait_for(SOON, || c.count("Done").unwrap_or(0) == 1
            && setup.status("stuck")["last_error"].is_null()),
        "{}\n{}",
        setup.status("stuck"),
        daemon.logs()
    );
    assert_eq!(setup.tickets().len(), 6);
    assert_eq!(c.count("INBOX").unwrap(), 5);
    assert_eq!(daemon.terminate().0, Some(0));
}

/// A mail the server lists but cannot hand over (its file unreadable:
/// Dovecot sends the rest of the chunk, then fails the FETCH and drops the
/// connection) no longer holds back the mail behind it: after its chunk
/// failed twice, the mails there are fetched one at a time, and the one
/// failing alone is quarantined as `unreadable` and passed. It stays in
/// the folder (even under `delete`), and once readable, a copy of it (a new
/// UID) comes in as a new mail.
#[test]
fn a_mail_the_server_cannot_hand_over_is_passed_and_the_rest_comes_in() {
    let Some(d) = Dovecot::start().expect("private Dovecot") else {
        return;
    };
    let mut c = user(&d, "blocked");
    for n in 0..4 {
        c.append("INBOX", &request(n)).unwrap();
    }
    set_mode(&d.mail_file("blocked", "Line 1 is down"), 0o000);
    let setup = Setup::new();
    setup.mailbox(&mailbox(&d, "blocked", "after = \"delete\"\n"));
    let mut daemon = setup.start();
    assert!(
        wait_for(Duration::from_secs(90), || setup.tickets().len() == 3
            && setup.status("blocked")["last_uid"] == 4),
        "{}\n{}",
        setup.status("blocked"),
        daemon.logs()
    );
    let q = setup.json(&["quarantine", "list"]);
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["reason"], "unreadable", "{q:?}");
    let detail = q[0]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("still in the folder"), "{detail}");
    let outcomes = setup.outcomes();
    // Each mail once; a mail stored in a session the failure then ended
    // (its chunk committed, the connection gone before its mark moved) is
    // fetched again and recognised.
    let once: Vec<&String> = outcomes.iter().filter(|o| *o != "duplicate").collect();
    assert_eq!(
        once,
        ["new_ticket", "quarantined", "new_ticket", "new_ticket"],
        "{outcomes:?}"
    );
    // Deleted once stored; the unreadable one is left where it is.
    let mut c = user(&d, "blocked");
    assert!(
        wait_for(SOON, || c.count("INBOX").unwrap_or(0) == 1),
        "{}",
        daemon.logs()
    );
    // Reprocessing it is refused with what to do instead.
    let out = setup.cli(&["quarantine", "reprocess", &q[0]["id"].to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("move it out of its folder and back in"));

    set_mode(&d.mail_file("blocked", "Line 1 is down"), 0o600);
    let left = c.uids("INBOX").unwrap();
    c.command(&format!("UID COPY {} INBOX", left[0])).unwrap();
    assert!(
        wait_for(SOON, || setup.tickets().len() == 4),
        "{}\n{}",
        setup.status("blocked"),
        daemon.logs()
    );
    assert_eq!(daemon.terminate().0, Some(0));
}
