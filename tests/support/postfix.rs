//! A private, throw-away Postfix (3.x) for the SMTP delivery tests: mailroom sends to it on a
//! loopback port, and it hands the mail to a private Dovecot over LMTP (or discards it).
//!
//! ```ignore
//! #[path = "support/dovecot.rs"] mod dovecot;
//! #[path = "support/postfix.rs"] mod postfix;
//! let Some(dovecot) = dovecot::Dovecot::start_with_lmtp().unwrap() else { return };
//! let opts = postfix::PostfixOptions::lmtp(dovecot.lmtp_port()).reject("gone@example.test");
//! let Some(mx) = postfix::Postfix::start(opts).unwrap() else { return }; // skipped, line printed
//! // SMTP on 127.0.0.1:mx.smtp_port() (STARTTLS offered, CA in mx.ca_file()); mail to
//! // support@example.test lands in Dovecot's INBOX; RCPT TO:<gone@example.test> gets a 550.
//! ```
//!
//! [`PostfixOptions::with_smtps`] adds a second listener, SMTPS (implicit TLS, "wrapper
//! mode", as on port 465) on another free loopback port, [`Postfix::smtps_port`]: TLS from the
//! first byte with the same certificate and CA, then the same SMTP service. Without it there
//! is only the plain/STARTTLS port.
//!
//! Without the `postfix` binary, [`Postfix::start`] prints `SKIPPED: ...` straight to the real
//! stderr and returns `Ok(None)`; with `MAILROOM_REQUIRE_POSTFIX` set (CI) it returns `Err`,
//! as `dovecot.rs` does. `MAILROOM_POSTFIX_BIN` names the binary (a missing path counts as not
//! installed). It needs root, as Postfix's master does.
//!
//! How it runs: as root, `postfix -c <tmp>/conf start`, with our own `main.cf` and `master.cf`
//! there. `-c` is all a second instance needs: `alternate_config_directories` (in the default
//! `/etc/postfix/main.cf`) is only checked when the set-gid commands (`postqueue`, `postdrop`,
//! `sendmail`) run as a non-root user, and `postmulti`/`multi_instance_directories` only
//! matter for `postfix start` without `-c`; the system's own configuration is neither read
//! nor changed (only its `master.cf` is copied). `postfix start` runs its integrity checks
//! (creating the queue directories with the right owners) and `master -w`, which returns once
//! the master has bound the SMTP port; the master then runs detached (not our child), so
//! [`Postfix::stop`] sends SIGTERM to it (what `postfix stop` does) and waits until no process
//! with our `MAIL_CONFIG` in its environment is left (SIGKILL after 10 s). Errors of `postfix
//! start` go only to the log (stdout and stderr stay empty), so they are reported with
//! [`Postfix::log_tail`]. Start takes ~0.5 s; a port clash picks a new port and retries.
//! The config files are written with an mtime a minute back: Postfix distrusts a `main.cf` (or
//! table) changed within the last ~2 s as possibly half-written, and re-reads it every 300 ms
//! until it is older, which made each fresh start 2 s slower.
//!
//! `master.cf`: the system's (`/etc/postfix/master.cf`, else Debian's `master.cf.dist`), so the
//! services match the installed version, with every `inet` service dropped (a system
//! `submission`/`smtps`/`postscreen` would otherwise bind ports shared by all instances), one
//! `127.0.0.1:<port> inet n - n - - smtpd` added (and with [`PostfixOptions::with_smtps`] a
//! second one on the SMTPS port with `-o syslog_name=postfix/smtps`, `-o
//! smtpd_tls_wrappermode=yes` and `-o smtpd_tls_security_level=encrypt`, so its log lines say
//! `postfix/smtps/smtpd` and it never speaks plaintext), and the chroot column `n` everywhere: a
//! chrooted daemon would look for its files (TLS, the reject list, `/etc/services`) inside
//! the temp queue directory. A `postlog` service is added if missing (`maillog_file` needs it).
//!
//! `main.cf` is `postfix-main.cf.in` with the `@...@` values filled in. Its settings, and why:
//!
//! - `queue_directory`, `data_directory` (owned by `postfix`, which writes its PRNG seed and
//!   `master.lock` there), in the temp dir: the queue also holds every unix socket and
//!   `pid/master.pid`, so parallel instances never meet. The temp dir is under `/tmp` (short
//!   socket paths) and mode 0755 so the `postfix` user can reach the queue.
//! - `maillog_file` = `<tmp>/maillog`, `maillog_file_prefixes` = the temp dir: there is no
//!   syslog on these machines, and without this every error (even why `postfix start` failed)
//!   is lost. The `postlogd` service writes it.
//! - `compatibility_level = 3.6`: current defaults, no "backwards-compatible default" warnings.
//! - `myhostname = localhost`: fixed, no lookup of the machine's name; it is in the banner and
//!   the `Received:` header.
//! - `inet_interfaces = 127.0.0.1`, `inet_protocols = ipv4`, `mynetworks = 127.0.0.0/8`.
//! - `mydestination`, `relay_domains`, `local_recipient_maps`, `alias_maps`, `alias_database`
//!   empty: nothing is delivered locally and no `/etc/aliases` is needed.
//! - `virtual_mailbox_domains` = [`PostfixOptions::domains`] (default `example.test`), and
//!   `virtual_transport` = `lmtp:inet:127.0.0.1:<port>` (deliver to Dovecot) or `discard:`
//!   ([`Delivery`]). `virtual_mailbox_maps` stays empty, so Postfix accepts any local part in
//!   those domains; Dovecot's LMTP then rejects unknown users and Postfix bounces them.
//! - `default_transport`, `relay_transport`, `local_transport` = `discard:` and
//!   `smtpd_relay_restrictions = reject_unauth_destination` (no `permit_mynetworks`): nothing
//!   ever leaves 127.0.0.1. A recipient outside the domains gets `554 5.7.1 Relay access
//!   denied` at RCPT TO, and bounces to senders outside them are dropped (see the log).
//! - `smtpd_recipient_restrictions = check_recipient_access texthash:<tmp>/conf/rejected-
//!   recipients`: one line `<address> 550 5.1.1 ...` per [`PostfixOptions::reject`], so those
//!   recipients get a permanent `550` at RCPT TO; likewise `450 4.2.0` (temporary) per
//!   [`PostfixOptions::defer`]. `texthash` needs no `postmap`. Both lists are fixed at start.
//! - `local_header_rewrite_clients =` (empty): Postfix adds no `Message-ID:`, `Date:`, `From:`
//!   or `To:` to mail from 127.0.0.1, so tests see the headers mailroom wrote (only
//!   `Received:`, and Dovecot's `Return-Path:`/`Delivered-To:`, are added).
//! - `smtpd_forbid_bare_newline = reject` with no exclusions: a bare LF in a message is
//!   answered with `550` instead of being accepted, so line-ending bugs in the sender show up
//!   here rather than at the first strict real server (the parameter exists since Postfix
//!   3.5.23/3.6.13/3.7.9/3.8.4).
//! - With [`PostfixOptions::sasl`] (a Dovecot's [`auth_port`](crate::dovecot::Dovecot)):
//!   `smtpd_sasl_auth_enable = yes`, `smtpd_sasl_type = dovecot`, `smtpd_sasl_path =
//!   inet:127.0.0.1:<port>` (Dovecot's users and passwords), `smtpd_tls_auth_only = yes` (AUTH
//!   is offered only after STARTTLS, as on a real submission service) and
//!   `smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination`. The
//!   smtpd log line of each accepted mail then names `sasl_username=`.
//! - `smtpd_tls_security_level = may`, `smtpd_tls_cert_file`/`_key_file`: STARTTLS with a
//!   certificate for `IP:127.0.0.1` and `DNS:localhost` signed by a per-instance CA
//!   ([`Postfix::ca_file`]; an unrelated one in [`Postfix::wrong_ca_file`]), made with the same
//!   openssl config as Dovecot's (`server_util.rs`). `smtpd_tls_loglevel = 1` logs handshakes.
//!   No SMTP AUTH unless asked for with [`PostfixOptions::sasl`] (above).
//! - No DNS anywhere: `smtpd_peername_lookup = no` (no reverse lookup of clients),
//!   `smtp_`/`lmtp_dns_support_level = disabled` and `smtp_`/`lmtp_host_lookup = native` (the
//!   LMTP next hop is a numeric address anyway).
//! - `queue_run_delay = 1s`, `minimal_backoff_time = 1s`, `maximal_backoff_time = 2s`
//!   (defaults 300 s, 300 s, 4000 s): mail deferred while Dovecot's LMTP was down is retried,
//!   and the destination unthrottled, within ~2 s of it coming back. [`Postfix::flush`] retries
//!   at once.
//! - `in_flow_delay = 0` (default 1 s): smtpd would otherwise pause before each message while
//!   arrivals outrun deliveries, capping the accept rate that benchmarks measure.
//! - `default_process_limit = 200` (default 100): room for 2,000 messages over dozens of
//!   parallel connections plus cleanup and delivery processes.
//! - Anvil and error limits: `smtpd_client_event_limit_exceptions = 127.0.0.0/8` (already
//!   the default via `$mynetworks`, set so it cannot change), and anyway
//!   `smtpd_client_connection_count_limit = 1000` and the connection, message, recipient and
//!   new-TLS-session rate limits `0` (off); `smtpd_error_sleep_time = 0` (no 1 s pause after
//!   each rejected command), `smtpd_soft_error_limit = 1000`, `smtpd_hard_error_limit =
//!   10000` and `smtpd_junk_command_limit = 100000` (a pooled connection sends a RSET per
//!   message, and RSET counts as junk after 100).
//! - `biff = no`: no comsat UDP packets.
//! - `message_size_limit` stays at the default 10240000 bytes.
#![allow(dead_code)]

// Each harness has its own copy, so a test can include either alone (see server_util.rs).
#[allow(clippy::duplicate_mod)]
#[path = "server_util.rs"]
mod server_util;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use server_util::HOST;
use server_util::{SIGKILL, SIGTERM, find_binary, free_ports, geteuid, kill, poll, run, tail, write_file};

pub const DEFAULT_DOMAIN: &str = "example.test";
pub const REQUIRE_ENV: &str = "MAILROOM_REQUIRE_POSTFIX";
/// Path of the `postfix` binary to use instead of looking in PATH and the sbin directories.
pub const BIN_ENV: &str = "MAILROOM_POSTFIX_BIN";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;
const PORT_CLASH: &str = "Address already in use";
/// Where the `master.cf` to copy may be: the system's, else the package's pristine copies.
const MASTER_CF_SOURCES: [&str; 3] = [
    "/etc/postfix/master.cf",
    "/usr/share/postfix/master.cf.dist",
    "/etc/postfix/master.cf.proto",
];

static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(0);

/// Where accepted mail for the virtual domains goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// LMTP to 127.0.0.1:port, e.g. a private Dovecot's `lmtp_port()`.
    Lmtp(u16),
    /// Accept and throw away (`discard:`): for measuring the accept rate.
    Discard,
}

#[derive(Debug, Clone)]
pub struct PostfixOptions {
    pub delivery: Delivery,
    /// `virtual_mailbox_domains`: the domains accepted at RCPT TO (others: 554).
    pub domains: Vec<String>,
    /// Recipients answered with a permanent `550 5.1.1` at RCPT TO.
    pub reject_recipients: Vec<String>,
    /// Recipients answered with a temporary `450 4.2.0` at RCPT TO.
    pub defer_recipients: Vec<String>,
    /// Also listen for SMTPS (implicit TLS) on a second port.
    pub smtps: bool,
    /// Offer SMTP AUTH (after STARTTLS), checked by Dovecot's SASL service on this port.
    pub sasl: Option<u16>,
}

impl PostfixOptions {
    /// Deliver to an LMTP server on 127.0.0.1:`port`, domain `example.test`.
    pub fn lmtp(port: u16) -> Self {
        Self::with(Delivery::Lmtp(port))
    }

    /// Accept and discard all mail for `example.test`.
    pub fn discard() -> Self {
        Self::with(Delivery::Discard)
    }

    /// Also reject `address` at RCPT TO with a permanent 550.
    pub fn reject(mut self, address: &str) -> Self {
        self.reject_recipients.push(address.to_string());
        self
    }

    /// Also answer `address` at RCPT TO with a temporary 450 ("try again later").
    pub fn defer(mut self, address: &str) -> Self {
        self.defer_recipients.push(address.to_string());
        self
    }

    /// Also listen for SMTPS (implicit TLS, "wrapper mode") on [`Postfix::smtps_port`].
    pub fn with_smtps(mut self) -> Self {
        self.smtps = true;
        self
    }

    /// Offer SMTP AUTH after STARTTLS, checked against the Dovecot whose
    /// [`auth_port`](crate::dovecot::Dovecot::auth_port) is `port`.
    pub fn sasl(mut self, port: u16) -> Self {
        self.sasl = Some(port);
        self
    }

    /// Accept these domains instead of `example.test`.
    pub fn domains(mut self, domains: &[&str]) -> Self {
        self.domains = domains.iter().map(|d| d.to_string()).collect();
        self
    }

    fn with(delivery: Delivery) -> Self {
        PostfixOptions {
            delivery,
            domains: vec![DEFAULT_DOMAIN.to_string()],
            reject_recipients: Vec::new(),
            defer_recipients: Vec::new(),
            smtps: false,
            sasl: None,
        }
    }
}

pub struct Postfix {
    postfix_bin: PathBuf,
    opts: PostfixOptions,
    smtp_port: u16,
    /// The SMTPS (implicit TLS) port, with [`PostfixOptions::with_smtps`].
    smtps_port: Option<u16>,
    /// The master's pid (from `queue/pid/master.pid`); `None` when stopped.
    master: Option<i32>,
    // Last: removed after Drop::drop has stopped the server.
    dir: tempfile::TempDir,
}

impl Postfix {
    /// Starts a fresh private instance (see module docs); `Ok(None)` when skipped.
    pub fn start(opts: PostfixOptions) -> Result<Option<Postfix>, String> {
        let bin = match std::env::var_os(BIN_ENV) {
            Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
            None => find_binary("postfix"),
        };
        let Some(bin) = bin else {
            return Self::missing_binary_outcome(std::env::var_os(REQUIRE_ENV).is_some());
        };
        if geteuid() != 0 {
            return Err("a private Postfix needs root (its master runs as root)".into());
        }
        check_options(&opts)?;
        let dir = tempfile::Builder::new()
            .prefix("postfix-")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        let mut server = Postfix {
            postfix_bin: bin,
            opts,
            smtp_port: 0,
            smtps_port: None,
            master: None,
            dir,
        };
        server.prepare_files()?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let ports = free_ports(if server.opts.smtps { 2 } else { 1 })?;
            server.smtp_port = ports[0];
            server.smtps_port = ports.get(1).copied();
            server.write_config()?;
            match server.start_master() {
                Ok(()) => return Ok(Some(server)),
                Err(e) if e.contains(PORT_CLASH) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(format!(
            "postfix: ports kept clashing after {START_ATTEMPTS} attempts: {last}"
        ))
    }

    /// What [`Postfix::start`] does when `postfix` is not installed; public so it can be tested.
    pub fn missing_binary_outcome(required: bool) -> Result<Option<Postfix>, String> {
        if required {
            return Err(format!(
                "postfix not installed but {REQUIRE_ENV} is set (apt-get install postfix)"
            ));
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: postfix not installed (apt-get install postfix); SMTP delivery tests did not run"
        );
        Ok(None)
    }

    pub fn host(&self) -> &'static str {
        HOST
    }
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }
    /// The SMTPS (implicit TLS) port; `None` unless started [`PostfixOptions::with_smtps`].
    pub fn smtps_port(&self) -> Option<u16> {
        self.smtps_port
    }
    /// The CA that signed the server certificate (PEM), for STARTTLS and SMTPS.
    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }
    /// An unrelated CA, for "wrong CA is refused" tests.
    pub fn wrong_ca_file(&self) -> PathBuf {
        self.path("wrong-ca.pem")
    }
    pub fn options(&self) -> &PostfixOptions {
        &self.opts
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    /// The `-c` directory with `main.cf` and `master.cf`.
    pub fn config_dir(&self) -> PathBuf {
        self.path("conf")
    }
    pub fn maillog(&self) -> PathBuf {
        self.path("maillog")
    }
    pub fn is_running(&self) -> bool {
        self.master.is_some()
    }
    /// The master's pid, while running.
    pub fn master_pid(&self) -> Option<i32> {
        self.master
    }

    /// Live processes of this instance, running or not (see [`instance_processes`]).
    pub fn processes(&self) -> Vec<u32> {
        instance_processes(&self.config_dir())
    }

    /// Stops the instance (SIGTERM to the master, as `postfix stop` does) and waits until none
    /// of its processes is left, so the port refuses connections (10 s at most, then SIGKILL
    /// and `Err`). Queue, config and port stay for [`Postfix::start_again`]. Idempotent.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(master) = self.master.take() else {
            return Ok(());
        };
        let conf = self.config_dir();
        // Only if it is still our master: pids wrap quickly here (pid_max 32768).
        if instance_processes(&conf).contains(&(master as u32)) {
            kill(master, SIGTERM);
        }
        // The master passes SIGTERM on to its children; an smtpd in the middle of a session
        // exits too.
        let clean = poll(STOP_TIMEOUT, || instance_processes(&conf).is_empty());
        for pid in instance_processes(&conf) {
            kill(pid as i32, SIGKILL);
        }
        if !clean {
            return Err(format!("postfix had to be killed:\n{}", self.log_tail(20)));
        }
        Ok(())
    }

    /// Starts the same instance again: same ports, config and queue (deferred mail included).
    pub fn start_again(&mut self) -> Result<(), String> {
        self.stop()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.start_master() {
                // Someone took our port meanwhile (e.g. an outgoing connection): wait for it.
                Err(e) if e.contains(PORT_CLASH) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                result => return result,
            }
        }
    }

    /// Number of messages in the queue (`postqueue -j`: incoming, active, deferred, hold).
    /// Works while stopped too (postqueue then reads the queue directly).
    pub fn queue_len(&self) -> Result<usize, String> {
        let out = self.postqueue("-j")?;
        Ok(out.lines().filter(|l| l.starts_with('{')).count())
    }

    pub fn queue_is_empty(&self) -> Result<bool, String> {
        Ok(self.queue_len()? == 0)
    }

    /// Waits until the queue is empty (all mail delivered, discarded or bounced), up to `timeout`.
    pub fn wait_queue_empty(&self, timeout: Duration) -> Result<(), String> {
        let mut last = Ok(false);
        let empty = poll(timeout, || {
            last = self.queue_is_empty();
            std::thread::sleep(Duration::from_millis(80));
            matches!(last, Ok(true))
        });
        if empty {
            return Ok(());
        }
        let queue = self.postqueue("-p").unwrap_or_else(|e| e);
        Err(format!(
            "postfix queue not empty after {timeout:?} ({last:?}):\n{queue}\n{}",
            self.log_tail(20)
        ))
    }

    /// `postqueue -f`: attempt to deliver all queued mail now. The instance must be running.
    pub fn flush(&self) -> Result<(), String> {
        self.postqueue("-f").map(drop)
    }

    /// Runs `postqueue -c <config_dir> ARG`; its stdout.
    pub fn postqueue(&self, arg: &str) -> Result<String, String> {
        let conf = self.config_dir().display().to_string();
        run("postqueue", &["-c", &conf, arg], self.dir())
    }

    /// Runs `postconf -c <config_dir> ARGS`; its stdout, or an error with stderr.
    pub fn postconf(&self, args: &[&str]) -> Result<String, String> {
        let conf = self.config_dir().display().to_string();
        run("postconf", &[&["-c", conf.as_str()][..], args].concat(), self.dir())
    }

    /// Last `n` lines of the mail log (`maillog_file`).
    pub fn log_tail(&self, n: usize) -> String {
        format!("--- postfix maillog ---\n{}", tail(&self.maillog(), n))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn prepare_files(&self) -> Result<(), String> {
        fs::set_permissions(self.dir(), fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        for d in ["conf", "queue", "data"] {
            fs::create_dir(self.path(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
        }
        // `postfix start` creates the queue's subdirectories itself (`postfix-files`).
        let postfix_uid = account_id("/etc/passwd", "postfix")?;
        std::os::unix::fs::chown(self.path("data"), Some(postfix_uid), None).map_err(|e| format!("chown data: {e}"))?;
        let n = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        // Bit 48: never the serial of a Dovecot harness certificate made by the same process.
        let serial = (1 << 48) | u64::from(std::process::id()) << 16 | u64::from(n);
        server_util::make_certificates(self.dir(), serial)?;
        let reject = self.opts.reject_recipients.iter().map(|a| (a, "550 5.1.1", "reject"));
        let defer = self.opts.defer_recipients.iter().map(|a| (a, "450 4.2.0", "defer"));
        let rejected: String = reject
            .chain(defer)
            .map(|(a, code, list)| format!("{a} {code} <{a}>: recipient on the test {list} list\n"))
            .collect();
        write_config_file(&self.config_dir().join("rejected-recipients"), &rejected)
    }

    fn write_config(&self) -> Result<(), String> {
        let transport = match self.opts.delivery {
            Delivery::Lmtp(port) => format!("lmtp:inet:{HOST}:{port}"),
            Delivery::Discard => "discard:".to_string(),
        };
        let main = include_str!("postfix-main.cf.in")
            .replace("@DIR@", &self.dir().display().to_string())
            .replace("@DOMAINS@", &self.opts.domains.join(", "))
            .replace("@TRANSPORT@", &transport);
        let (relay, sasl) = match self.opts.sasl {
            None => ("reject_unauth_destination", String::new()),
            Some(port) => (
                "permit_sasl_authenticated, reject_unauth_destination",
                format!(
                    "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n\
smtpd_sasl_path = inet:{HOST}:{port}\nsmtpd_tls_auth_only = yes\n"
                ),
            ),
        };
        let main = main.replace("@RELAY_RESTRICTIONS@", relay).replace("@SASL@", &sasl);
        write_config_file(&self.config_dir().join("main.cf"), &main)?;
        let source = MASTER_CF_SOURCES
            .iter()
            .find_map(|p| fs::read_to_string(p).ok())
            .ok_or(format!("postfix: none of {MASTER_CF_SOURCES:?} is readable"))?;
        write_config_file(
            &self.config_dir().join("master.cf"),
            &master_cf_with_smtps(&source, self.smtp_port, self.smtps_port),
        )
    }

    /// `postfix start`, then waits for the SMTP greeting; on failure the log's new lines
    /// tell why (a port clash is retried by the callers). The SMTPS port needs no wait: the
    /// master binds every listener before `postfix start` returns, and a clash there fails it.
    fn start_master(&mut self) -> Result<(), String> {
        let log_before = fs::metadata(self.maillog()).map_or(0, |m| m.len() as usize);
        let out = Command::new(&self.postfix_bin)
            .arg("-c")
            .arg(self.config_dir())
            .arg("start")
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {}: {e}", self.postfix_bin.display()))?;
        if !out.status.success() {
            let log = fs::read(self.maillog()).unwrap_or_default();
            let new_lines = String::from_utf8_lossy(log.get(log_before..).unwrap_or_default());
            return Err(format!(
                "postfix start: {}\n{}{}--- new maillog lines ---\n{new_lines}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let pid_file = self.path("queue/pid/master.pid");
        let pid = fs::read_to_string(&pid_file).map_err(|e| format!("{}: {e}", pid_file.display()))?;
        let pid = pid.trim().parse().map_err(|e| format!("master.pid {pid:?}: {e}"))?;
        self.master = Some(pid);
        if !poll(READY_TIMEOUT, || greeting_ok(self.smtp_port)) {
            let _ = self.stop();
            return Err(format!(
                "postfix not answering on port {} after {READY_TIMEOUT:?}:\n{}",
                self.smtp_port,
                self.log_tail(20)
            ));
        }
        Ok(())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            let _ = writeln!(std::io::stderr(), "postfix: stop on drop: {e}");
        }
    }
}

/// Rejects option values that would break main.cf or the texthash file.
fn check_options(opts: &PostfixOptions) -> Result<(), String> {
    let bad = |s: &String| s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == ',' || c == '#');
    if opts.domains.is_empty() || opts.domains.iter().any(bad) {
        return Err(format!("postfix: unusable domains {:?}", opts.domains));
    }
    let mut addresses = opts.reject_recipients.iter().chain(&opts.defer_recipients);
    if let Some(a) = addresses.find(|a| bad(a) || !a.contains('@')) {
        return Err(format!("postfix: unusable reject or defer address {a:?}"));
    }
    Ok(())
}

/// The system's `master.cf` made private (see module docs): `inet` services dropped, ours
/// added, chroot off, a `postlog` service ensured.
pub fn master_cf(system: &str, port: u16) -> String {
    master_cf_with_smtps(system, port, None)
}

/// [`master_cf`], plus an SMTPS (wrapper mode, TLS required) listener on `smtps` if given.
pub fn master_cf_with_smtps(system: &str, port: u16, smtps: Option<u16>) -> String {
    let mut out = format!(
        "# Generated by tests/support/postfix.rs from the system's master.cf.\n\
         {HOST}:{port} inet n - n - - smtpd\n"
    );
    if let Some(smtps) = smtps {
        out.push_str(&format!(
            "{HOST}:{smtps} inet n - n - - smtpd\n  -o syslog_name=postfix/smtps\n  \
             -o smtpd_tls_wrappermode=yes\n  -o smtpd_tls_security_level=encrypt\n"
        ));
    }
    let mut dropping = false;
    let mut has_postlog = false;
    for line in system.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // Continues the entry above (its `-o` options or arguments).
            if !dropping {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        let mut fields: Vec<&str> = line.split_whitespace().collect();
        dropping = fields.get(1) == Some(&"inet");
        if dropping {
            continue;
        }
        if fields.len() >= 8 {
            fields[4] = "n";
        }
        has_postlog |= fields.first() == Some(&"postlog") && fields.get(1) == Some(&"unix-dgram");
        out.push_str(&fields.join(" "));
        out.push('\n');
    }
    if !has_postlog {
        out.push_str("postlog unix-dgram n - n - 1 postlogd\n");
    }
    out
}

/// Writes a file Postfix reads, dated a minute back (see module docs).
fn write_config_file(path: &Path, text: &str) -> Result<(), String> {
    write_file(path, text, 0o644)?;
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    let file = fs::File::options().write(true).open(path).map_err(|e| e.to_string())?;
    file.set_modified(past)
        .map_err(|e| format!("set mtime of {}: {e}", path.display()))
}

/// The numeric id of `name` in `/etc/passwd` or `/etc/group` (`name:x:id:...`).
fn account_id(file: &str, name: &str) -> Result<u32, String> {
    let text = fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
        .ok_or(format!("no {name} in {file} (is postfix installed?)"))
}

/// Live (non-zombie) processes of the instance configured in `config_dir`: `postfix -c` sets
/// `MAIL_CONFIG` for the master, which passes it on to every child, so no other process
/// (another instance, a reused pid) has this value.
pub fn instance_processes(config_dir: &Path) -> Vec<u32> {
    let mut wanted = format!("MAIL_CONFIG={}", config_dir.display()).into_bytes();
    wanted.push(0);
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // A zombie's environ reads as empty.
            let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            env.split_inclusive(|&b| b == 0).any(|var| var == wanted.as_slice())
        })
        .collect()
}

/// True when an SMTP greeting (`220 `) arrives on `port`.
fn greeting_ok(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4];
    let ok = s.read_exact(&mut buf).is_ok() && &buf == b"220 ";
    let _ = s.write_all(b"QUIT\r\n");
    ok
}
