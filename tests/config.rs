//! `mailroom check-config` as an operator (or systemd's `ExecStartPre=`)
//! runs it: errors name the file, line and key and never a secret, every
//! password is read before `run` would need it, and a relative
//! `password_file` is a systemd credential.

use std::path::Path;
use std::process::{Command, Output};

/// `mailroom --config DIR/mailroom.toml check-config` with `config` as the
/// file, run in `dir` with only `env` added to a clean environment.
fn check_config(dir: &Path, config: &str, env: &[(&str, &str)]) -> Output {
    let path = dir.join("mailroom.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .current_dir(dir)
        .env_remove("MAILROOM_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const SECRET: &str = "S3cr3t-Hunter2";

fn mailbox(name: &str, secret: &str) -> String {
    format!("[[mailbox]]\nname = \"{name}\"\nhost = \"imap.example.com\"\nusername = \"u\"\n{secret}\n")
}

/// Found by a review: a PostgreSQL URL mistyped without its `//` was
/// taken for a SQLite file name, printed whole (password and all) and
/// would have been created as an empty local store.
#[test]
fn a_mistyped_server_url_is_refused_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("postgres:/u:{SECRET}@db.example/m"),
        format!("postgres//u:{SECRET}@db.example/m"),
        format!("postgresql:u:{SECRET}@db.example/m"),
    ] {
        let out = check_config(dir.path(), &format!("[database]\nurl = \"{url}\"\n"), &[]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{url}\n{stdout}{stderr}");
        assert!(stderr.contains("database.url"), "{stderr}");
        assert!(
            !stdout.contains("S3cr3t") && !stderr.contains("S3cr3t"),
            "{url}\n{stdout}{stderr}"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().count() == 1,
            "nothing created beside the config"
        );
    }
}

#[test]
fn a_malformed_secret_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    for config in [
        mailbox("support", &format!("password = {SECRET}")),
        mailbox("support", &format!("password = \"{SECRET}\" trailing")),
        mailbox("support", &format!("password_env = \"P\"\nport = \"{SECRET}\"")),
        format!("[database]\nurl = \"postgres://u:{SECRET}@db.example/m\" x\n"),
        format!("[database]\nurl = \"postgres://u:{SECRET}@db.example/m\n"),
        format!("[smtp]\nhost = \"h\"\nusername = \"u\"\npassword = ['{SECRET}']\n"),
        format!("[smtp]\nhost = \"h\"\ntls = \"{SECRET}\"\n"),
    ] {
        let out = check_config(dir.path(), &config, &[]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{config}\n{stderr}");
        assert!(
            !stdout.contains("S3cr3t") && !stderr.contains("S3cr3t"),
            "{config}\n{stderr}"
        );
        assert!(stderr.contains("mailroom.toml: line "), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
    let out = check_config(dir.path(), &mailbox("support", &format!("password = {SECRET}")), &[]);
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("line 5, column 12: mailbox[0].password: string values must be quoted"),
        "{stderr}"
    );
}

#[test]
fn every_secret_is_read_and_a_missing_one_is_named_by_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-file");
    let config = mailbox("support", &format!("password_file = \"{}\"", missing.display()));
    let out = check_config(dir.path(), &config, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("mailbox support: password_file") && stderr.contains(&missing.display().to_string()),
        "{stderr}"
    );

    // An empty password is refused here too, not by the server later.
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let config = mailbox(
        "support",
        &format!("password_file = \"{}\"", dir.path().join("empty").display()),
    );
    let (_, stderr) = text(&check_config(dir.path(), &config, &[]));
    assert!(
        stderr.contains("mailbox support: the password from password_file") && stderr.contains("is empty"),
        "{stderr}"
    );

    // The relay's secret as well, named by its variable, never its value.
    std::fs::write(dir.path().join("pw"), format!("{SECRET}\n")).unwrap();
    let config = format!(
        "{}[smtp]\nhost = \"relay.example.com\"\nusername = \"u\"\npassword_env = \"MAILROOM_TEST_SMTP_PW\"\n",
        mailbox(
            "support",
            &format!("password_file = \"{}\"", dir.path().join("pw").display())
        )
    );
    let out = check_config(dir.path(), &config, &[]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("smtp: environment variable MAILROOM_TEST_SMTP_PW is not set"),
        "{stderr}"
    );
    let out = check_config(dir.path(), &config, &[("MAILROOM_TEST_SMTP_PW", SECRET)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET), "{stdout}{stderr}");
}

#[test]
fn a_relative_password_file_is_a_systemd_credential() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("imap-support"), format!("{SECRET}\n")).unwrap();
    let config = mailbox("support", "password_file = \"imap-support\"");
    // Under systemd: $CREDENTIALS_DIRECTORY/imap-support.
    let out = check_config(
        dir.path(),
        &config,
        &[("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let shown = format!("password_file {}", credentials.join("imap-support").display());
    assert!(stdout.contains(&shown), "{stdout}");
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
    // Without it, the working directory's imap-support: not there.
    let out = check_config(dir.path(), &config, &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("mailbox support: password_file imap-support"),
        "{stderr}"
    );
}

#[test]
fn an_out_of_range_setting_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = mailbox("support", "password = \"x\"\nbatch = 0");
    let (_, stderr) = text(&check_config(dir.path(), &config, &[]));
    assert!(
        stderr.contains("mailroom.toml: line 6: mailbox \"support\": batch must be at least 1 (got 0)"),
        "{stderr}"
    );
}

/// A zero that would quarantine every mail, or give up every notice at
/// its first transient failure, is refused by name.
#[test]
fn a_zero_that_would_stop_the_work_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (config, key) in [
        (
            "[intake]\nmax_message_bytes = 0\n",
            "intake.max_message_bytes must be at least 1",
        ),
        ("[outbox]\nmax_age = \"0s\"\n", "outbox.max_age must be at least 1"),
    ] {
        let out = check_config(dir.path(), config, &[]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{config}: {stderr}");
        assert!(stderr.contains(key), "{stderr}");
    }
}

/// What `run` would refuse at its start (in a restart loop under systemd,
/// whose `ExecStartPre=` check passed) or retry for ever fails
/// `check-config` instead, naming the key or the file.
#[test]
fn check_config_refuses_what_run_would_refuse_later() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    for (config, says) in [
        (
            "[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nfrom = \"sup port@@x\"\n".to_string(),
            "smtp.from \"sup port@@x\" is not an email address".to_string(),
        ),
        (
            "[mail]\nfrom = \"Support <support@@x.test>\"\n".to_string(),
            "mail.from: \"Support <support@@x.test>\" is not an email address".to_string(),
        ),
        (
            "[smtp]\nhost = \"127.0.0.1\"\nhello_name = \"my host\"\n".to_string(),
            "smtp.hello_name \"my host\" is not a host name".to_string(),
        ),
        (
            format!(
                "[smtp]\nhost = \"smtp.example.com\"\nca_file = \"{}\"\n",
                missing.display()
            ),
            format!("{}", missing.display()),
        ),
        (
            mailbox(
                "support",
                &format!("password = \"x\"\nca_file = \"{}\"", missing.display()),
            ),
            format!("mailbox support: ca_file {}", missing.display()),
        ),
    ] {
        let out = check_config(dir.path(), &config, &[]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{config}: {stdout}{stderr}");
        assert!(stderr.contains(&says), "{config}: {stderr}");
    }
    // Well-formed values pass.
    for hello in [
        "mx1.provider.test",
        "mx_1.provider.test.",
        "[IPv6:2001:db8::1]",
        "mx.société.test",
    ] {
        let ok = format!(
            "[mail]\nfrom = \"\\\"Support Team\\\" <support@x.test>\"\n[smtp]\nhost = \"127.0.0.1\"\ntls = \"none\"\nhello_name = \"{hello}\"\n"
        );
        let out = check_config(dir.path(), &ok, &[]);
        assert_eq!(out.status.code(), Some(0), "{ok}: {}", text(&out).1);
    }
}

/// `mailroom ARGS` with `config` as the file, run in `dir`.
fn mailroom(dir: &Path, config: &str, args: &[&str]) -> Output {
    let path = dir.join("mailroom.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("--config")
        .arg(&path)
        .args(args)
        .current_dir(dir)
        .env_remove("MAILROOM_CONFIG")
        .env_remove("MAILROOM_LOG")
        .output()
        .unwrap()
}

/// A command that only reads a store, pointed at one that is not there (a
/// typo in `database.url`, the wrong directory), says so instead of
/// creating an empty store and reporting nothing; one that fills a store
/// may start it.
#[test]
fn a_read_command_names_a_missing_store_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[database]\nurl = \"sqlite:typo/dir/mailroom.db\"\n";
    for args in [
        &["tickets", "list"][..],
        &["status"],
        &["outbox", "list"],
        &["quarantine", "list"],
    ] {
        let out = mailroom(dir.path(), config, args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no store at typo/dir/mailroom.db") && stderr.contains("mailroom migrate"),
            "{stderr}"
        );
        assert!(
            !dir.path().join("typo").exists(),
            "{args:?} created the store's directory"
        );
    }
    let out = mailroom(dir.path(), config, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = mailroom(dir.path(), config, &["tickets", "list"]);
    assert!(out.status.success(), "{}", text(&out).1);
}

/// Input the operator named that is not there is a usage error (exit 2)
/// naming it; a missing templates directory names its key.
#[test]
fn a_missing_input_is_a_usage_error_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["replay", "/nonexistent/mail.eml"][..],
        &["directory", "import", "/nonexistent/dir.toml"],
    ] {
        let out = mailroom(dir.path(), "", args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[args.len() - 1]), "{stderr}");
    }
    let out = check_config(dir.path(), "[templates]\ndir = \"no-such-dir\"\n", &[]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("templates.dir no-such-dir"), "{stderr}");
}

/// A PostgreSQL server that is not there is waited for during
/// `database.connect_timeout` (a server starting at boot), then named with
/// the cause (not "pool timed out"), as a failure of the moment (exit 1);
/// the password stays out of every line.
#[test]
fn an_unreachable_database_is_named_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("[database]\nurl = \"postgres://u:{SECRET}@127.0.0.1:1/m\"\nconnect_timeout = \"2s\"\n");
    let started = std::time::Instant::now();
    let out = mailroom(dir.path(), &config, &["migrate"]);
    let took = started.elapsed();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        took >= std::time::Duration::from_millis(1500) && took < std::time::Duration::from_secs(10),
        "took {took:?}"
    );
    assert!(
        stderr.contains("cannot connect within 2s (database.connect_timeout)") && stderr.contains("refused"),
        "{stderr}"
    );
    assert!(stderr.contains("not accepting connections yet"), "{stderr}");
    assert!(!stderr.contains("S3cr3t") && !stdout.contains("S3cr3t"), "{stderr}");
}

/// A `database.url` naming a file that is not a SQLite database fails at
/// once with one line naming the file and why, instead of the pool
/// retrying it for a minute and saying only that it timed out.
#[test]
fn a_file_that_is_not_a_database_is_named_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("notes.db"),
        "these are notes, not a database\n".repeat(200),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = mailroom(
        dir.path(),
        "[database]\nurl = \"sqlite:notes.db\"\n",
        &["tickets", "list"],
    );
    let took = started.elapsed();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    assert!(
        stderr.contains("notes.db") && stderr.contains("file is not a database"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

/// The unit starts without any credential file in place (the
/// `LoadCredential=` lines are examples), and systemd finds nothing to say
/// about it.
#[test]
fn the_systemd_unit_loads_no_credential_by_default_and_verifies() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/mailroom.service")).unwrap();
    let active: Vec<&str> = unit.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
    assert!(!active.iter().any(|l| l.starts_with("LoadCredential")), "{unit}");
    assert!(unit.contains("#LoadCredential=imap-support:"), "{unit}");
    assert!(active.contains(&"User=mailroom") && !active.iter().any(|l| l.starts_with("DynamicUser")));
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")).unwrap();
    assert!(
        !example.contains("/run/credentials"),
        "the example names credentials, not systemd's paths"
    );
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        // CI installs it (package systemd) and requires it.
        if let Err(e) = systemd_missing_is_fatal(std::env::var_os(REQUIRE_SYSTEMD).is_some()) {
            panic!("{e}");
        }
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED: systemd-analyze not found; the unit was not verified\n",
        );
        return;
    }
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/verify.sh"))
        .arg(env!("CARGO_BIN_EXE_mailroom"))
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
}

/// CI's variable: a missing `systemd-analyze` fails instead of skipping.
const REQUIRE_SYSTEMD: &str = "MAILROOM_REQUIRE_SYSTEMD";

/// Without `systemd-analyze`: a failure naming CI's variable when it is set
/// (a skip there would leave the unit unverified), else nothing (a skip).
fn systemd_missing_is_fatal(required: bool) -> Result<(), String> {
    if required {
        return Err(format!("{REQUIRE_SYSTEMD} is set but systemd-analyze is not installed"));
    }
    Ok(())
}

#[test]
fn a_missing_systemd_analyze_fails_only_when_required() {
    let err = systemd_missing_is_fatal(true).unwrap_err();
    assert!(err.contains(REQUIRE_SYSTEMD), "{err}");
    assert_eq!(systemd_missing_is_fatal(false), Ok(()));
}
