//! Integration tests of the command line: every test runs the real
//! `mailroom` binary against a config and a database in a temp directory,
//! and checks exit codes, messages and the documented `--json` fields.

#[path = "cli/support.rs"]
mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::*;

// ---------------------------------------------------------------- check-config

#[test]
fn check_config_names_unknown_key_and_its_line() {
    let env = Env::new();
    let text = base_config(&env.dir, "\n[tickets]\nreopen_days = 3\nreopen_dayz = 4\n");
    let line = text.lines().position(|l| l.starts_with("reopen_dayz")).expect("line") + 1;
    env.write("mailroom.toml", &text);
    let err = env.fail2(&["check-config"]);
    assert!(err.contains("reopen_dayz"), "{err}");
    assert!(err.contains(&format!("line {line}")), "expected line {line}: {err}");
    assert!(err.contains("mailroom.toml"), "the file is named: {err}");
}

#[test]
fn check_config_names_bad_notify_group() {
    let env = Env::with_config("\n[notify]\nnew_ticket = [\"reactive_service_outage\", \"key_contacts\"]\n");
    // The entry and the names it takes; never the value (errors show none).
    let err = env.fail2(&["check-config"]);
    assert!(
        err.contains("notify.new_ticket[1]: unknown value, expected one of") && err.contains("`key_contact`"),
        "{err}"
    );
    // A command that needs the config refuses to run as well.
    let err = env.fail2(&["tickets", "list"]);
    assert!(err.contains("notify.new_ticket[1]"), "{err}");
}

#[test]
fn check_config_prints_effective_settings() {
    let env = Env::with_config("\n[tickets]\nreopen_days = 7\n\n[notify]\nnew_ticket = [\"planned_works\"]\n");
    let out = env.ok(&["check-config"]);
    assert!(out.contains("mailroom.toml: ok"), "{out}");
    // PostgreSQL: the URL as connected, with its TLS mode made explicit.
    assert!(out.contains(&format!("database.url = \"{}", env.dir.url())), "{out}");
    assert!(out.contains("mail.from = \"support@provider.test\""), "{out}");
    assert!(out.contains("mail.domain = \"provider.test\""), "{out}");
    assert!(out.contains("tickets.reopen_days = 7"), "{out}");
    assert!(out.contains("notify.new_ticket = [planned_works]"), "{out}");
    // Untouched settings keep their defaults.
    assert!(
        out.contains("notify.ticket_updated = [reactive_service_outage, key_contact]"),
        "{out}"
    );
    assert!(out.contains("contacts.auto_create = true"), "{out}");
}

#[test]
fn check_config_without_any_file_uses_builtin_defaults() {
    let cwd = tempfile::TempDir::new().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("check-config")
        .current_dir(cwd.path())
        .env_remove("MAILROOM_CONFIG")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("built-in defaults"), "{text}");
    assert!(text.contains("database.url = \"sqlite:mailroom.db\""), "{text}");
    assert!(text.contains("tickets.reopen_days = 14"), "{text}");
}

/// A PostgreSQL URL may carry a password: check-config shows where the
/// database is, never the password. No server is needed: nothing connects.
#[test]
fn check_config_hides_the_database_password() {
    let env = Env::new();
    env.write(
        "mailroom.toml",
        "[database]\nurl = 'postgres://mailroom:s3cr3t-pw@db.internal:5432/mailroom?sslmode=require'\nconnections = 3\n",
    );
    let out = env.ok(&["check-config"]);
    assert!(!out.contains("s3cr3t-pw"), "{out}");
    assert!(
        out.contains("database.url = \"postgres://mailroom:***@db.internal:5432/mailroom?sslmode=require\""),
        "{out}"
    );
    env.write(
        "mailroom.toml",
        "[database]\nurl = 'postgres://x@h/db'\nconnections = 0\n",
    );
    let err = env.fail2(&["check-config"]);
    assert!(err.contains("database.connections must be at least 1"), "{err}");
    env.write("mailroom.toml", "[database]\nurl = 'mysql://root:hunter2@h/db'\n");
    let err = env.fail2(&["check-config"]);
    assert!(
        err.contains("neither a SQLite location") && !err.contains("hunter2"),
        "{err}"
    );
}

#[test]
fn mailroom_config_env_var_is_read() {
    let env = Env::with_config("\n[tickets]\nreopen_dayz = 4\n");
    let cwd = tempfile::TempDir::new().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("check-config")
        .current_dir(cwd.path())
        .env("MAILROOM_CONFIG", env.path("mailroom.toml"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("reopen_dayz"), "{}", stderr(&out));
}

#[path = "cli/directory.rs"]
mod directory;
#[path = "cli/mail.rs"]
mod mail;
#[path = "cli/moves.rs"]
mod moves;
#[path = "cli/spellings.rs"]
mod spellings;
#[path = "cli/templates.rs"]
mod templates;

#[test]
fn many_commands_opening_a_new_database_at_once_all_succeed() {
    // The daemon and an operator's `status` (or several cron jobs) may
    // create and migrate a fresh database at the same moment.
    for _ in 0..3 {
        let env = Env::new();
        let children: Vec<_> = (0..6)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_mailroom"))
                    .arg("--config")
                    .arg(env.dir.path().join("mailroom.toml"))
                    .args(["tickets", "list", "--json"])
                    .env_remove("MAILROOM_CONFIG")
                    .stderr(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    // `mailroom tickets list | head -1` and the like: the reader is gone.
    let env = Env::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("--config")
        .arg(env.path("mailroom.toml"))
        .arg("check-config")
        .env_remove("MAILROOM_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    // Nothing said at all (no panic, no "Broken pipe" error), and the end
    // a shell pipeline expects: killed by SIGPIPE as a C tool would be, or
    // done before the pipe closed.
    assert!(err.is_empty(), "{err}");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.signal() == Some(13) || out.status.success(),
        "{:?}",
        out.status
    );
}
