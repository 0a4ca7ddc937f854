//! A private, throw-away Dovecot 2.3 IMAP server for integration tests.
//!
//! ```ignore
//! #[path = "support/dovecot.rs"] mod dovecot;
//! let Some(server) = dovecot::Dovecot::start().unwrap() else { return }; // skipped, line printed
//! // 127.0.0.1:server.imap_port() (plain + STARTTLS), server.imaps_port() (implicit TLS),
//! // user dovecot::DEFAULT_USER / dovecot::DEFAULT_PASSWORD, CA in server.ca_file()
//! let Some(server) = dovecot::Dovecot::start_with_lmtp().unwrap() else { return };
//! // ... and LMTP on 127.0.0.1:server.lmtp_port()
//! ```
//!
//! Without the `dovecot` binary, [`Dovecot::start`] prints `SKIPPED: ...` straight to the
//! real stderr (past libtest's capture) and returns `Ok(None)`; with `MAILROOM_REQUIRE_DOVECOT`
//! set (CI) it returns `Err` instead, so a missing install fails the run rather than passing it.
//! `MAILROOM_DOVECOT_BIN` names the binary (a missing path counts as not installed).
//!
//! Everything lives in one [`tempfile::TempDir`]; nothing system-wide is read or changed and
//! no systemd is involved. The master runs in the foreground (`dovecot -F`) as a child of the
//! test process, so we reap it ourselves. The config is `dovecot.conf.in` beside this file with
//! the `@...@` values filled in; the TLS files come from `openssl-test-ca.cnf` (made by
//! `server_util.rs`, shared with `postfix.rs`). Its settings, and why:
//!
//! - `base_dir`, `state_dir`, `instance_name` (unique per instance), `log_path`: own sockets,
//!   `master.pid`, state and log, so parallel instances (and a system Dovecot) never collide.
//!   Child processes are titled `dovecot-<instance_name>/...`, which is how [`Dovecot::stop`]
//!   checks that nothing is left behind. `info_log_path` is left unset: all goes to `log_path`.
//! - `protocols = imap`, `listen = 127.0.0.1` and two `inet_listener`s on free loopback ports
//!   (bound to port 0 and released; a clash at start picks new ports and retries): `imap`
//!   (plaintext, offers STARTTLS because `ssl = yes`) and `imaps` (`ssl = yes`: implicit TLS).
//! - `ssl_cert`/`ssl_key`: a server certificate for `IP:127.0.0.1` and `DNS:localhost`, signed
//!   by a per-instance CA ([`Dovecot::ca_file`]); a second, unrelated CA
//!   ([`Dovecot::wrong_ca_file`]) is for "wrong CA is refused" tests. P-256 keys: fast to make.
//!   `ssl_dh` points at Debian's `/usr/share/dovecot/dh.pem` when present.
//! - LMTP, only with [`Dovecot::start_with_lmtp`] (needs `dovecot-lmtpd`): `protocols = imap
//!   lmtp` and `service lmtp`'s `inet_listener` on a third free port, for a private Postfix
//!   (`postfix.rs`) to deliver to. LMTP looks the recipient up by its full address in the same
//!   userdb, so a user from [`Dovecot::add_user`] gets the mail in `~/Maildir/new`, readable over
//!   IMAP at once; an unknown recipient gets `550 5.1.1 ... User doesn't exist` at RCPT TO. It
//!   offers STARTTLS too (`ssl = yes`), which Postfix's LMTP client does not use by default.
//!   With it comes `service auth`'s `inet_listener` on a fourth free port
//!   ([`Dovecot::auth_port`]): Dovecot's SASL service for a private Postfix
//!   (`smtpd_sasl_type = dovecot`, `smtpd_sasl_path = inet:127.0.0.1:<port>`), so SMTP AUTH is
//!   checked against the same users and passwords as IMAP.
//!   [`Dovecot::start`] leaves all of this out, so IMAP-only tests need only `dovecot-imapd`.
//! - `disable_plaintext_auth = no`, `auth_mechanisms = plain login`: tests log in over plain TCP.
//! - `auth_failure_delay = 0`: a wrong password answers after ~0.5 s instead of 2 s; and
//!   `service anvil`'s `anvil-auth-penalty` listener with `mode = 0` (not created) turns off
//!   the auth penalty, which otherwise delays every further login from 127.0.0.1 after a
//!   failed one by 4, 8, up to 15 s (`login_trusted_networks` does not exempt it in 2.3).
//! - `passdb`/`userdb` `passwd-file` with `{PLAIN}` passwords, one file per user
//!   (`users/%u`): Dovecot re-reads a changed passwd-file at most once a second, so a user
//!   appended to a shared file can be unknown for up to 1 s; a new file is read at once, which
//!   makes [`Dovecot::add_user`] usable immediately. Each user's home is `<tmp>/mail/<user>`,
//!   mail in `~/Maildir` (Maildir++: folders are `Maildir/.Name`; namespace separator `/`).
//! - `default_fields = uid=nobody gid=nogroup`: Dovecot refuses to access mail as root, so the
//!   mail processes run as nobody and `<tmp>/mail` is owned by nobody:nogroup (the temp dir is
//!   made 0755 so nobody, dovecot and dovenull can traverse it).
//! - `default_internal_user = dovecot`, `default_login_user = dovenull`: Debian's users.
//! - `service stats` listeners mode 0666: mail processes running as nobody must reach them.
//! - `mail_max_userip_connections = 100`: many parallel test connections from 127.0.0.1.
//!
//! UIDVALIDITY: [`Dovecot::reset_uidvalidity`] stops the server, deletes the folder's
//! `dovecot-uidlist` and `dovecot.index*` plus the list index, and starts it again. Dovecot
//! then rebuilds the folder: a new UIDVALIDITY (from the `dovecot-uidvalidity` counter) and the
//! surviving mails renumbered from 1, as after a real mailbox restore. Connected clients are
//! dropped. [`Dovecot::set_uidvalidity`] changes it online (`doveadm mailbox update`) and keeps
//! the UIDs.
#![allow(dead_code)]

// Each harness has its own copy, so a test can include either alone (see server_util.rs).
#[allow(clippy::duplicate_mod)]
#[path = "server_util.rs"]
pub mod server_util;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use server_util::HOST;
use server_util::{SIGKILL, SIGTERM, find_binary, free_ports, geteuid, kill, poll, run, write_file};

pub const DEFAULT_USER: &str = "support@example.test";
pub const DEFAULT_PASSWORD: &str = "secret";
pub const REQUIRE_ENV: &str = "MAILROOM_REQUIRE_DOVECOT";
/// Path of the `dovecot` binary to use instead of looking in PATH and the sbin directories.
pub const BIN_ENV: &str = "MAILROOM_DOVECOT_BIN";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;
const PORT_CLASH: &str = "Address already in use";

/// Where Debian (`dovecot-lmtpd`) and source builds put the LMTP server.
const LMTP_BINARIES: [&str; 3] = [
    "/usr/lib/dovecot/lmtp",
    "/usr/libexec/dovecot/lmtp",
    "/usr/local/libexec/dovecot/lmtp",
];

static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(0);

pub struct Dovecot {
    dovecot_bin: PathBuf,
    instance: String,
    imap_port: u16,
    imaps_port: u16,
    /// `Some` when started with [`Dovecot::start_with_lmtp`].
    lmtp_port: Option<u16>,
    /// The SASL (auth) listener, with LMTP: what a private Postfix authenticates against.
    auth_port: Option<u16>,
    child: Option<Child>,
    // Last: removed after Drop::drop has stopped the server.
    dir: tempfile::TempDir,
}

impl Dovecot {
    /// Starts a fresh private instance with the default user (see module docs).
    pub fn start() -> Result<Option<Dovecot>, String> {
        Self::start_impl(false)
    }

    /// Like [`Dovecot::start`], plus an LMTP listener on a free loopback port
    /// ([`Dovecot::lmtp_port`]) delivering into the users' Maildirs. Needs `dovecot-lmtpd`:
    /// without it, the same skip (or error under `MAILROOM_REQUIRE_DOVECOT`) as a missing Dovecot.
    pub fn start_with_lmtp() -> Result<Option<Dovecot>, String> {
        Self::start_impl(true)
    }

    fn start_impl(lmtp: bool) -> Result<Option<Dovecot>, String> {
        let bin = match std::env::var_os(BIN_ENV) {
            Some(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
            None => find_binary("dovecot"),
        };
        let Some(bin) = bin else {
            return Self::missing_binary_outcome(std::env::var_os(REQUIRE_ENV).is_some());
        };
        if lmtp && !LMTP_BINARIES.iter().any(|p| Path::new(p).is_file()) {
            return Self::missing_lmtp_outcome(std::env::var_os(REQUIRE_ENV).is_some());
        }
        if geteuid() != 0 {
            return Err("a private Dovecot needs root (mail dirs are chowned to nobody)".into());
        }
        // Under /tmp, not $TMPDIR: Dovecot's unix sockets in `run/` need short paths (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("dovecot-")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?;
        let n = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let instance = format!("mailroom-t{}-{n}", std::process::id());
        let mut server = Dovecot {
            dovecot_bin: bin,
            instance,
            imap_port: 0,
            imaps_port: 0,
            lmtp_port: lmtp.then_some(0),
            auth_port: lmtp.then_some(0),
            child: None,
            dir,
        };
        server.prepare_files()?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let ports = free_ports(4)?;
            (server.imap_port, server.imaps_port) = (ports[0], ports[1]);
            server.lmtp_port = server.lmtp_port.map(|_| ports[2]);
            server.auth_port = server.auth_port.map(|_| ports[3]);
            server.write_config()?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(Some(server)),
                Err(e) if e.lines().next().is_some_and(|l| l.contains(PORT_CLASH)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(format!(
            "dovecot: ports kept clashing after {START_ATTEMPTS} attempts: {last}"
        ))
    }

    /// What [`Dovecot::start`] does when `dovecot` is not installed; public so it can be tested.
    pub fn missing_binary_outcome(required: bool) -> Result<Option<Dovecot>, String> {
        if required {
            return Err(format!(
                "dovecot not installed but {REQUIRE_ENV} is set (apt-get install dovecot-imapd)"
            ));
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: dovecot not installed (apt-get install dovecot-imapd); IMAP tests did not run"
        );
        Ok(None)
    }

    /// What [`Dovecot::start_with_lmtp`] does when `dovecot-lmtpd` is not installed.
    pub fn missing_lmtp_outcome(required: bool) -> Result<Option<Dovecot>, String> {
        if required {
            return Err(format!(
                "dovecot-lmtpd not installed but {REQUIRE_ENV} is set (apt-get install dovecot-lmtpd)"
            ));
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: dovecot-lmtpd not installed (apt-get install dovecot-lmtpd); LMTP tests did not run"
        );
        Ok(None)
    }

    pub fn host(&self) -> &'static str {
        HOST
    }
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }
    pub fn imaps_port(&self) -> u16 {
        self.imaps_port
    }
    /// The LMTP port on 127.0.0.1. Panics unless started with [`Dovecot::start_with_lmtp`].
    pub fn lmtp_port(&self) -> u16 {
        self.lmtp_port
            .expect("lmtp_port: this Dovecot was started without LMTP (use Dovecot::start_with_lmtp)")
    }
    /// Dovecot's SASL service on 127.0.0.1 (for Postfix's `smtpd_sasl_path`). Panics unless
    /// started with [`Dovecot::start_with_lmtp`].
    pub fn auth_port(&self) -> u16 {
        self.auth_port
            .expect("auth_port: this Dovecot was started without LMTP (use Dovecot::start_with_lmtp)")
    }
    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }
    pub fn wrong_ca_file(&self) -> PathBuf {
        self.path("wrong-ca.pem")
    }
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn config_file(&self) -> PathBuf {
        self.path("dovecot.conf")
    }
    pub fn instance_name(&self) -> &str {
        &self.instance
    }
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
    /// `<tmp>/mail/<user>/Maildir` (exists once the user has logged in or received mail).
    pub fn maildir(&self, user: &str) -> PathBuf {
        self.path("mail").join(user).join("Maildir")
    }

    /// Directory of `folder` (Maildir++: INBOX is the Maildir itself, `A/B` is `.A.B`).
    pub fn folder_dir(&self, user: &str, folder: &str) -> PathBuf {
        if folder.eq_ignore_ascii_case("INBOX") {
            self.maildir(user)
        } else {
            self.maildir(user).join(format!(".{}", folder.replace('/', ".")))
        }
    }

    /// The Maildir file of `user`'s INBOX mail containing `marker` (in
    /// `new/` or `cur/`, wherever Dovecot has it now).
    pub fn mail_file(&self, user: &str, marker: &str) -> PathBuf {
        ["new", "cur"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(self.maildir(user).join(sub)).into_iter().flatten())
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::read(p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(marker)))
            .unwrap_or_else(|| panic!("no mail with {marker:?} in {user}'s Maildir"))
    }

    /// Adds a user (its own passwd-file `users/<name>`), usable for the next login.
    pub fn add_user(&self, name: &str, password: &str) -> Result<(), String> {
        let bad = |s: &str| s.is_empty() || s.contains([':', '\n', '\r', '/']) || s.trim() != s;
        if bad(name) || name.starts_with('.') || password.contains([':', '\n', '\r']) {
            return Err(format!("add_user: unusable name or password for passwd-file: {name:?}"));
        }
        let home = self.path("mail").join(name);
        let tmp = self
            .path("users")
            .join(format!(".{name}.{}", NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed)));
        write_file(
            &tmp,
            &format!("{name}:{{PLAIN}}{password}::::{}\n", home.display()),
            0o644,
        )?;
        // A hard link appears atomically with its content and fails if the user exists.
        let linked = fs::hard_link(&tmp, self.path("users").join(name));
        let _ = fs::remove_file(&tmp);
        linked.map_err(|e| format!("add_user {name}: {e}"))
    }

    /// Stops the server and waits until no process of this instance is left (10 s at most,
    /// then SIGKILL and `Err`). Data and ports stay for [`Dovecot::start_again`]. Idempotent.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // On SIGTERM the master alone leaves logged-in clients' processes (and so auth, log...)
        // running for up to 30 s, and then waits ~1 s for its log process. So: SIGTERM to the
        // master first (it then respawns nothing), to every child too, and SIGKILL to the
        // master once it is alone, which is safe as it only waits for children by then.
        kill(child.id() as i32, SIGTERM);
        std::thread::sleep(Duration::from_millis(10));
        let mut alone_since = None;
        let clean = poll(STOP_TIMEOUT, || {
            let children = instance_processes(&self.instance);
            children.iter().for_each(|&pid| _ = kill(pid as i32, SIGTERM));
            if !matches!(child.try_wait(), Ok(None)) || !children.is_empty() {
                alone_since = None;
                return children.is_empty();
            }
            if alone_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_millis(100) {
                let _ = child.kill();
            }
            false
        });
        let _ = child.kill();
        let _ = child.wait();
        signal_instance(&self.instance, SIGKILL);
        // A master killed by us leaves its pid file behind. Pids wrap quickly here (pid_max
        // 32768), and a start that finds the pid alive in another process refuses with
        // "Dovecot is already running".
        let _ = fs::remove_file(self.path("run/master.pid"));
        if !clean {
            return Err(format!(
                "dovecot {} had to be killed:\n{}",
                self.instance,
                self.log_tail(20)
            ));
        }
        Ok(())
    }

    /// Starts the same instance again: same ports, config, users and mail.
    pub fn start_again(&mut self) -> Result<(), String> {
        self.stop()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn_and_wait() {
                // Someone took our port meanwhile (e.g. an outgoing connection): wait for it.
                Err(e) if e.lines().next().is_some_and(|l| l.contains(PORT_CLASH)) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                result => return result,
            }
        }
    }

    /// Forces a new UIDVALIDITY on the default user's `folder`; returns the new value.
    pub fn reset_uidvalidity(&mut self, folder: &str) -> Result<u32, String> {
        self.reset_uidvalidity_for(DEFAULT_USER, folder)
    }

    /// Restarts the server with `folder`'s UID list and indexes deleted (see module docs).
    pub fn reset_uidvalidity_for(&mut self, user: &str, folder: &str) -> Result<u32, String> {
        let old = self.uidvalidity(user, folder)?;
        self.stop()?;
        let dir = self.folder_dir(user, folder);
        let root = self.maildir(user);
        for (d, prefix) in [
            (&dir, "dovecot-uidlist"),
            (&dir, "dovecot.index"),
            (&root, "dovecot.list.index"),
        ] {
            for entry in fs::read_dir(d).map_err(|e| format!("read {}: {e}", d.display()))? {
                let entry = entry.map_err(|e| e.to_string())?;
                if entry.file_name().to_string_lossy().starts_with(prefix) {
                    fs::remove_file(entry.path()).map_err(|e| format!("rm {}: {e}", entry.path().display()))?;
                }
            }
        }
        self.start_again()?;
        let new = self.uidvalidity(user, folder)?; // also makes Dovecot write the new uidlist now
        if new == old {
            return Err(format!("reset_uidvalidity: {folder} kept UIDVALIDITY {old}"));
        }
        Ok(new)
    }

    /// Sets UIDVALIDITY online (`doveadm mailbox update`); UIDs stay as they are.
    pub fn set_uidvalidity(&self, user: &str, folder: &str, value: u32) -> Result<(), String> {
        let value = value.to_string();
        self.doveadm(&["mailbox", "update", "-u", user, "--uid-validity", &value, folder])
            .map(drop)
    }

    /// UIDVALIDITY as Dovecot reports it (`doveadm mailbox status`); the server must run.
    pub fn uidvalidity(&self, user: &str, folder: &str) -> Result<u32, String> {
        let out = self.doveadm(&["mailbox", "status", "-u", user, "uidvalidity", folder])?;
        out.split_whitespace()
            .find_map(|w| w.strip_prefix("uidvalidity="))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("doveadm mailbox status: unexpected output {out:?}"))
    }

    /// Runs `doveadm -c <our config> ARGS`; returns stdout or an error with stderr.
    pub fn doveadm(&self, args: &[&str]) -> Result<String, String> {
        let conf = self.config_file().display().to_string();
        run("doveadm", &[&["-c", conf.as_str()][..], args].concat(), self.dir())
    }

    /// Last `n` lines of Dovecot's log and of the master's own stdout/stderr.
    pub fn log_tail(&self, n: usize) -> String {
        let tail = |name: &str| {
            let text = fs::read_to_string(self.path(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "--- dovecot.log ---\n{}\n--- master output ---\n{}",
            tail("dovecot.log"),
            tail("master.out")
        )
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn prepare_files(&self) -> Result<(), String> {
        fs::set_permissions(self.dir(), fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
        for d in ["run", "lib", "mail", "users"] {
            fs::create_dir(self.path(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
        }
        run("chown", &["nobody:nogroup", "mail"], self.dir())?;
        self.add_user(DEFAULT_USER, DEFAULT_PASSWORD)?;
        self.make_certificates()
    }

    fn make_certificates(&self) -> Result<(), String> {
        let serial = u64::from(std::process::id()) << 16 | u64::from(NEXT_INSTANCE.load(Ordering::Relaxed));
        server_util::make_certificates(self.dir(), serial)
    }

    fn write_config(&self) -> Result<(), String> {
        let dh = Path::new("/usr/share/dovecot/dh.pem");
        let dh = if dh.exists() {
            format!("ssl_dh = <{}", dh.display())
        } else {
            String::new()
        };
        let mut lmtp_service = self.lmtp_port.map_or(String::new(), |port| {
            format!("service lmtp {{\n  inet_listener lmtp {{\n    address = {HOST}\n    port = {port}\n  }}\n}}\n")
        });
        if let Some(port) = self.auth_port {
            lmtp_service.push_str(&format!(
                "service auth {{\n  inet_listener sasl {{\n    address = {HOST}\n    port = {port}\n  }}\n}}\n"
            ));
        }
        let conf = include_str!("dovecot.conf.in")
            .replace("@DIR@", &self.dir().display().to_string())
            .replace("@INSTANCE@", &self.instance)
            .replace("@IMAP_PORT@", &self.imap_port.to_string())
            .replace("@IMAPS_PORT@", &self.imaps_port.to_string())
            .replace(
                "@PROTOCOLS@",
                if self.lmtp_port.is_some() { "imap lmtp" } else { "imap" },
            )
            .replace("@LMTP_SERVICE@", &lmtp_service)
            .replace("@SSL_DH@", &dh);
        write_file(&self.config_file(), &conf, 0o644)
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_before = fs::read(self.path("dovecot.log")).map_or(0, |log| log.len());
        let out = fs::File::create(self.path("master.out")).map_err(|e| format!("master.out: {e}"))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new(&self.dovecot_bin)
            .args(["-F", "-c"])
            .arg(self.config_file())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.dovecot_bin.display()))?;
        let mut exited = None;
        let ready = poll(READY_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            greeting_ok(self.imap_port, b"* OK")
                && TcpStream::connect((HOST, self.imaps_port)).is_ok()
                && self.lmtp_port.is_none_or(|port| greeting_ok(port, b"220 "))
                && self.auth_port.is_none_or(|port| greeting_ok(port, b"VERS"))
        });
        if let Some(status) = exited {
            std::thread::sleep(Duration::from_millis(100));
            signal_instance(&self.instance, SIGKILL);
            // Only this attempt's lines decide whether it was a port clash (retried).
            let log = fs::read(self.path("dovecot.log")).unwrap_or_default();
            let new_lines = String::from_utf8_lossy(log.get(log_before..).unwrap_or_default());
            let clash = if new_lines.contains(PORT_CLASH) { PORT_CLASH } else { "" };
            return Err(format!(
                "dovecot exited at start ({status}) {clash}:\n{}",
                self.log_tail(20)
            ));
        }
        self.child = Some(child);
        if !ready {
            let _ = self.stop();
            return Err(format!(
                "dovecot not ready after {READY_TIMEOUT:?}:\n{}",
                self.log_tail(20)
            ));
        }
        Ok(())
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            let _ = writeln!(std::io::stderr(), "dovecot: stop on drop: {e}");
        }
    }
}

/// Live (non-zombie) processes titled `dovecot-<instance>/...` (Dovecot's children).
pub fn instance_processes(instance: &str) -> Vec<u32> {
    let prefix = format!("dovecot-{instance}/");
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmd.starts_with(prefix.as_bytes())
        })
        .collect()
}

fn signal_instance(instance: &str, signal: i32) {
    for pid in instance_processes(instance) {
        let _ = kill(pid as i32, signal);
    }
}

/// True when a greeting starting with `expected` (IMAP `* OK`, LMTP `220 `) arrives on `port`.
fn greeting_ok(port: u16, expected: &[u8; 4]) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == expected
}
