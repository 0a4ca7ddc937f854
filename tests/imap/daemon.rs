//! Running the real `mailroom` binary against a private Dovecot, and
//! reading what it stored through its own CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../support/store.rs"]
pub mod store;
pub use store::Scratch;

/// A config file and database in a temp dir, with mailboxes appended.
pub struct Setup {
    pub dir: Scratch,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = Scratch::new();
        std::fs::write(
            dir.path().join("mailroom.toml"),
            format!(
                "{}[mail]\nfrom = \"support@provider.test\"\ndomain = \"provider.test\"\n",
                dir.database_toml()
            ),
        )
        .unwrap();
        let setup = Setup { dir };
        // The store exists from the start, as after installing: read
        // commands refuse a store that does not exist.
        // (A config a test makes broken on purpose fails here too: the test
        // itself looks at that.)
        let _ = setup.cli(&["migrate"]);
        setup
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("mailroom.toml")
    }

    /// Appends a `[[mailbox]]` section.
    pub fn mailbox(&self, toml: &str) {
        let mut text = std::fs::read_to_string(self.config()).unwrap();
        text.push_str("\n[[mailbox]]\n");
        text.push_str(toml);
        text.push('\n');
        std::fs::write(self.config(), text).unwrap();
    }

    /// Runs a CLI command to completion.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(args, &[])
    }

    /// [`Setup::cli`] with extra environment variables.
    pub fn cli_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_mailroom"))
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env_remove("MAILROOM_CONFIG")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// A `--json` list command's rows.
    pub fn json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    }

    pub fn tickets(&self) -> Vec<Value> {
        self.json(&["tickets", "list"])
    }

    pub fn messages(&self) -> Vec<Value> {
        self.json(&["messages", "list"])
    }

    /// Each stored mail's outcome (`new_ticket`, `duplicate`, ...), in order.
    pub fn outcomes(&self) -> Vec<String> {
        self.messages()
            .iter()
            .map(|m| m["outcome"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// `mailroom status --json` row of one mailbox.
    pub fn status(&self, name: &str) -> Value {
        self.json(&["status"])
            .into_iter()
            .find(|r| r["name"] == name)
            .unwrap_or(Value::Null)
    }

    /// Starts `mailroom run`; stderr goes to a log file in the temp dir.
    pub fn start(&self) -> Daemon {
        self.start_with(&[])
    }

    /// Starts `mailroom run` with extra environment variables.
    pub fn start_with(&self, env: &[(&str, &str)]) -> Daemon {
        let log_path = self.dir.path().join(format!("daemon-{}.log", unique()));
        Daemon::spawn_with(&self.config(), &log_path, env)
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A running `mailroom run`.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `mailroom run` on `config`, its stderr (debug log) in `log`.
    pub fn spawn(config: &Path, log: &Path) -> Daemon {
        Daemon::spawn_with(config, log, &[])
    }

    /// [`Daemon::spawn`] with extra environment variables.
    pub fn spawn_with(config: &Path, log: &Path, env: &[(&str, &str)]) -> Daemon {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mailroom"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("MAILROOM_LOG", "mailroom=debug")
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Daemon {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then waits; returns the exit code and how long it took.
    pub fn terminate(&mut self) -> (Option<i32>, Duration) {
        // It may already be on its way out (a test signalled it first).
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let started = Instant::now();
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                return (None, started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The daemon's whole log.
    pub fn full_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the daemon's log (for failure messages).
    pub fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success(), "kill -{sig} {pid}");
}

/// Polls `check` until it holds or `within` passes.
pub fn wait_for(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A realistic new request, unique by `n`.
pub fn request(n: usize) -> Vec<u8> {
    format!(
        "From: Customer {n} <customer{n}@acme.test>\r\nTo: support@example.test\r\nSubject: Line {n} is down\r\n\
Message-ID: <req-{n}@acme.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nHello, line {n} has been down since this morning.\r\n"
    )
    .into_bytes()
}

/// Sets a file's or directory's mode: the private Dovecot's mail process
/// runs as nobody, so mode 000 is a mail it cannot read, 0555 a folder it
/// cannot write to.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
