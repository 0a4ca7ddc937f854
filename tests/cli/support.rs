//! Helpers for the CLI tests: a temp directory holding `mailroom.toml` and
//! the database, a runner for the real binary, and small realistic mails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "../support/store.rs"]
pub mod store;
pub use store::Scratch;

/// Runs the real binary with `--config <dir>/mailroom.toml`, in `dir`.
pub fn mailroom(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mailroom"))
        .arg("--config")
        .arg(dir.join("mailroom.toml"))
        .args(args)
        .current_dir(dir)
        .env_remove("MAILROOM_CONFIG")
        .env_remove("MAILROOM_LOG")
        .output()
        .expect("run mailroom")
}

/// The config every test starts from; `extra` is appended verbatim.
pub fn base_config(dir: &Scratch, extra: &str) -> String {
    format!(
        "{}\n[mail]\nfrom = \"support@provider.test\"\ndomain = \"provider.test\"\n{extra}",
        dir.database_toml()
    )
}

/// One test's world: a temp dir with a config and a database.
pub struct Env {
    pub dir: Scratch,
}

impl Env {
    pub fn new() -> Env {
        Env::with_config("")
    }

    /// An `Env` whose store is SQLite in either pass (see `store.rs`).
    #[allow(dead_code)] // tests/db_copy.rs
    pub fn on_sqlite() -> Env {
        Env::in_scratch(Scratch::sqlite(), "")
    }

    pub fn with_config(extra: &str) -> Env {
        Env::in_scratch(Scratch::new(), extra)
    }

    fn in_scratch(dir: Scratch, extra: &str) -> Env {
        std::fs::write(dir.path().join("mailroom.toml"), base_config(&dir, extra)).expect("write config");
        let env = Env { dir };
        // The store exists from the start, as after installing: read
        // commands refuse a store that does not exist.
        // (A config a test makes broken on purpose fails here too: the test
        // itself looks at that.)
        let _ = env.run(&["migrate"]);
        env
    }

    /// Writes a file under the temp dir (parents created); returns its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        path
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        mailroom(self.dir.path(), args)
    }

    /// Runs a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "mailroom {args:?} failed ({:?}): {}",
            out.status,
            stderr(&out)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs a command that must fail with exit code 2; returns stderr.
    pub fn fail2(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "mailroom {args:?}: stdout {} stderr {}",
            stdout(&out),
            stderr(&out)
        );
        stderr(&out)
    }

    /// Runs a command that prints JSON; returns it parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("mailroom {args:?}: not JSON ({e}): {text}"))
    }

    /// A `... list --json` array.
    pub fn list(&self, args: &[&str]) -> Vec<Value> {
        match self.json(args) {
            Value::Array(rows) => rows,
            other => panic!("mailroom {args:?}: not an array: {other}"),
        }
    }

    /// Runs SQL on the store itself, as another program (or an earlier
    /// release) would: rows no command of this release writes.
    pub async fn sql(&self, statement: &str) -> Result<(), String> {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.dir.url())
            .await
            .map_err(|e| e.to_string())?;
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        conn.close().await.map_err(|e| e.to_string())?;
        done
    }

    /// Imports a directory file given as text.
    pub fn import(&self, text: &str) {
        let path = self.write("directory.toml", text);
        self.ok(&["directory", "import", path.to_str().expect("path")]);
    }

    /// Replays paths under the temp dir with `--json --date-from-header`.
    pub fn replay(&self, names: &[&str]) -> Value {
        let paths: Vec<String> = names.iter().map(|n| self.path(n)).collect();
        let mut args = vec!["replay", "--json", "--date-from-header"];
        args.extend(paths.iter().map(String::as_str));
        self.json(&args)
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The row of `rows` whose `key` is `value`.
pub fn find<'a>(rows: &'a [Value], key: &str, value: &str) -> &'a Value {
    rows.iter()
        .find(|r| r[key] == value)
        .unwrap_or_else(|| panic!("no row with {key} = {value:?} in {rows:#?}"))
}

/// Asserts that every row has every field (null is fine: the key is the contract).
pub fn assert_fields(rows: &[Value], fields: &[&str]) {
    assert!(!rows.is_empty(), "no rows to check");
    for row in rows {
        for f in fields {
            assert!(row.get(*f).is_some(), "field {f:?} missing in {row}");
        }
    }
}

/// A small realistic mail with CRLF line endings.
pub fn mail(from: &str, message_id: &str, date: &str, subject: &str, extra: &[&str], body: &str) -> Vec<u8> {
    let mut lines = vec![
        "Return-Path: <bounce@mx.example>".to_string(),
        "Received: from mx.example (mx.example [192.0.2.10])\r\n\tby mx.provider.test (Postfix) with ESMTPS id 4RAB12"
            .to_string(),
        format!("From: {from}"),
        "To: Support <support@provider.test>".to_string(),
        format!("Subject: {subject}"),
        format!("Date: {date}"),
        format!("Message-ID: <{message_id}>"),
    ];
    lines.extend(extra.iter().map(|s| s.to_string()));
    lines.push("MIME-Version: 1.0".into());
    lines.push("Content-Type: text/plain; charset=\"UTF-8\"".into());
    lines.push("Content-Transfer-Encoding: 8bit".into());
    lines.push(String::new());
    lines.extend(body.lines().map(String::from));
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    text.into_bytes()
}

pub const REQUEST_ID: &str = "CAK7pQ1x-request-0001@mail.gmail.com";
pub const REPLY_ID: &str = "PAXPR02MB7453-reply-0002@eurprd02.prod.outlook.com";
pub const STRANGER_ID: &str = "20260302101500.4411@mail.example.org";

/// New request from a known contact, naming a service of her account.
pub fn request() -> Vec<u8> {
    mail(
        "Marie Dupont <marie.dupont@acme.fr>",
        REQUEST_ID,
        "Mon, 2 Mar 2026 08:31:00 +0100",
        "Ethernet LON/ETH/000123 down since 08:00",
        &[],
        "Hello,\n\nOur Paris-London link LON/ETH/000123 has been down since 08:00.\nCould you have a look?\n\nMarie Dupont\nAcme SA",
    )
}

/// Her reply, threaded by In-Reply-To.
pub fn reply() -> Vec<u8> {
    let irt = format!("In-Reply-To: <{REQUEST_ID}>");
    let refs = format!("References: <{REQUEST_ID}>");
    mail(
        "Marie Dupont <marie.dupont@acme.fr>",
        REPLY_ID,
        "Mon, 2 Mar 2026 09:05:00 +0100",
        "RE: Ethernet LON/ETH/000123 down since 08:00",
        &[&irt, &refs],
        "Still down, the CPE shows no light on port 2.\n\nMarie",
    )
}

/// A first mail from someone the directory does not know.
pub fn stranger() -> Vec<u8> {
    mail(
        "\"Bernard, Jean\" <jean.bernard@acme.fr>",
        STRANGER_ID,
        "Mon, 2 Mar 2026 10:15:00 +0100",
        "Invoice question",
        &[],
        "Good morning,\n\nI cannot find last month's invoice in the portal.\n\nJean Bernard",
    )
}

/// The directory most tests import.
pub const DIRECTORY: &str = r#"
[[account]]
number = "OCN-1001"
name = "Acme SA"
domains = ["acme.fr"]
language = "fr"

[[account]]
number = "OCN-2002"
name = "Globex GmbH"
domains = ["globex.de"]
language = "de"
intake = "approval"

[[billing_account]]
number = "BCN-77"
account = "OCN-1001"

[[service]]
id = "LON/ETH/000123"
account = "OCN-1001"
name = "Ethernet Paris-London"

[[service]]
id = "FRA/MPLS/000777"
account = "OCN-2002"
name = "MPLS Frankfurt"

[[contact]]
email = "marie.dupont@acme.fr"
first_name = "Marie"
last_name = "Dupont"
account = "OCN-1001"
language = "fr"
primary = true

[[contact]]
email = "noc@acme.fr"
first_name = "NOC"
account = "OCN-1001"
group = true

[[contact]]
email = "hans.weber@globex.de"
first_name = "Hans"
last_name = "Weber"
account = "OCN-2002"
primary = true

[[contact]]
email = "freelancer@example.net"
first_name = "Free"
last_name = "Lancer"
language = "it"

[[subscription]]
contact = "noc@acme.fr"
group = "reactive_service_outage"
service = "LON/ETH/000123"

[[subscription]]
contact = "noc@acme.fr"
group = "escalation"
account = "OCN-1001"
level = 2

[[subscription]]
contact = "marie.dupont@acme.fr"
group = "accounts_payable"
billing = "BCN-77"

[[ignore]]
pattern = "*@spam.example"
"#;
