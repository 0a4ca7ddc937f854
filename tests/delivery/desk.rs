//! A whole support desk for delivery tests: a private Dovecot (the support
//! mailbox and every customer's mailbox, with LMTP), a private Postfix
//! delivering into it over LMTP with STARTTLS on its own CA, and a mailroom
//! config and directory pointing at both.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::daemon::{Setup, wait_for};
use super::dovecot::{DEFAULT_PASSWORD, DEFAULT_USER, Dovecot};
use super::imap_client::ImapClient;
use super::postfix::{Postfix, PostfixOptions};

pub const DOMAIN: &str = "example.test";
pub const PASSWORD: &str = "pw";

pub struct Desk {
    pub setup: Setup,
    pub postfix: Postfix,
    pub dovecot: Dovecot,
}

impl Desk {
    /// Starts both servers (`None`: skipped, already reported) and writes a
    /// config with `[smtp]`, the support `[[mailbox]]` and `extra` TOML.
    pub fn start(reject: &[&str], extra: &str) -> Option<Desk> {
        let dovecot = Dovecot::start_with_lmtp().unwrap_or_else(|e| panic!("{e}"))?;
        let mut opts = PostfixOptions::lmtp(dovecot.lmtp_port());
        for r in reject {
            opts = opts.reject(r);
        }
        let postfix = Postfix::start(opts).unwrap_or_else(|e| panic!("{e}"))?;
        let desk = Desk {
            setup: Setup::new(),
            postfix,
            dovecot,
        };
        desk.write_config(extra);
        Some(desk)
    }

    /// The config: STARTTLS to Postfix's SMTP port trusting its CA, then
    /// `extra` (more `[smtp]` keys, or further sections).
    pub fn write_config(&self, extra: &str) {
        self.write_config_for(self.postfix.smtp_port(), "starttls", &self.postfix.ca_file(), extra);
    }

    /// The config with `[smtp]` to `port` in `tls` mode trusting `ca`.
    pub fn write_config_for(&self, port: u16, tls: &str, ca: &Path, extra: &str) {
        let text = format!(
            "{db}[mail]\nfrom = \"{DEFAULT_USER}\"\ndomain = \"provider.test\"\n\
[outbox]\nretry_min = \"1s\"\nlease = \"6s\"\n\
[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{ca}\"\ntimeout = \"3s\"\n\
{extra}\n\
[[mailbox]]\nname = \"support\"\nhost = \"127.0.0.1\"\nport = {imap}\ntls = \"none\"\nusername = \"{DEFAULT_USER}\"\n\
password = \"{DEFAULT_PASSWORD}\"\n",
            db = self.setup.dir.database_toml(),
            ca = ca.display(),
            imap = self.dovecot.imap_port(),
        );
        std::fs::write(self.setup.config(), text).unwrap();
    }

    /// Imports a directory file written from `toml`.
    pub fn directory(&self, toml: &str) {
        let path = self.setup.dir.path().join("directory.toml");
        std::fs::write(&path, toml).unwrap();
        let out = self.setup.cli(&["directory", "import", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// A customer's mailbox in the private Dovecot.
    pub fn user(&self, local: &str) -> String {
        let address = format!("{local}@{DOMAIN}");
        self.dovecot.add_user(&address, PASSWORD).unwrap();
        address
    }

    /// Mails in `address`'s INBOX, read from the Maildir (no login needed).
    pub fn inbox_count(&self, address: &str) -> usize {
        let maildir: PathBuf = self.dovecot.maildir(address);
        ["new", "cur"]
            .iter()
            .map(|d| std::fs::read_dir(maildir.join(d)).map(|r| r.count()).unwrap_or(0))
            .sum()
    }

    /// The mails in `address`'s INBOX, over IMAP.
    pub fn inbox(&self, address: &str) -> Vec<String> {
        let mut c = ImapClient::connect(self.dovecot.imap_port()).unwrap();
        c.login(address, PASSWORD).unwrap();
        let uids = c.uids("INBOX").unwrap();
        uids.iter()
            .map(|u| String::from_utf8_lossy(&c.fetch_body("INBOX", *u).unwrap()).into_owned())
            .collect()
    }

    /// Puts a mail in the support mailbox (as the MX would).
    pub fn receive(&self, raw: &[u8]) {
        let mut c = ImapClient::connect(self.dovecot.imap_port()).unwrap();
        c.login(DEFAULT_USER, DEFAULT_PASSWORD).unwrap();
        c.append("INBOX", raw).unwrap();
    }

    /// `outbox send` once; its summary line.
    pub fn send_outbox(&self) -> String {
        let out = self.setup.cli(&["outbox", "send"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Outbox rows with `status`.
    pub fn outbox(&self, status: &str) -> Vec<serde_json::Value> {
        self.setup.json(&["outbox", "list", "--status", status])
    }

    /// Waits until Postfix has handed everything to Dovecot.
    pub fn settle(&self) {
        self.postfix
            .wait_queue_empty(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.postfix.log_tail(30)));
    }

    /// Waits for `check`, failing with both servers' logs.
    pub fn wait(&self, what: &str, within: Duration, check: impl FnMut() -> bool) {
        if !wait_for(within, check) {
            panic!(
                "timed out waiting for {what}\n-- postfix --\n{}\n-- dovecot --\n{}",
                self.postfix.log_tail(30),
                self.dovecot.log_tail(30)
            );
        }
    }
}

/// The header block of a raw mail, unfolded.
pub fn headers(raw: &str) -> String {
    let head = raw.split("\r\n\r\n").next().unwrap_or(raw);
    head.replace("\r\n ", " ").replace("\r\n\t", " ")
}

/// The value of header `name` (first occurrence).
pub fn header(raw: &str, name: &str) -> Option<String> {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    headers(raw)
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
}
