//! A private, throw-away Dovecot 2.3 IMAP server for integration tests.
//!
//! ```ignore
//! #[path = "support/dovecot.rs"] mod dovecot;
//! let Some(server) = dovecot::Dovecot::start().unwrap() else { return }; // skipped, line printed
//! // 127.0.0.1:server.imap_port() (plain + STARTTLS), server.imaps_port() (implicit TLS),
//! // user dovecot::DEFAULT_USER / dovecot::DEFAULT_PASSWORD, CA in server.ca_file()
//! ```
//!
//! Without the `dovecot` binary, [`Dovecot::start`] prints `SKIPPED: ...` straight to the
//! real stderr (past libtest's capture) and returns `Ok(None)`; with `MAILROOM_REQUIRE_DOVECOT`
//! set (CI) it returns `Err` instead, so a missing install fails the run rather than passing it.
//!
//! Everything lives in one [`tempfile::TempDir`]; nothing system-wide is read or changed and
//! no systemd is involved. The master runs in the foreground (`dovecot -F`) as a child of the
//! test process, so we reap it ourselves. Settings in the generated `dovecot.conf`, and why:
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
//! - `disable_plaintext_auth = no`, `auth_mechanisms = plain login`: tests log in over plain TCP.
//! - `auth_failure_delay = 0`: a wrong password answers at once instead of after 2 s.
//! - `passdb`/`userdb` `passwd-file` with `{PLAIN}` passwords; Dovecot re-stats the file on
//!   each lookup and reloads it when it changed, so [`Dovecot::add_user`] works while running.
//!   Each user's home is `<tmp>/mail/<user>`, mail in `~/Maildir` (Maildir++ layout, folders
//!   are `Maildir/.Name`; the namespace separator is `/`).
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

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const HOST: &str = "127.0.0.1";
pub const DEFAULT_USER: &str = "support@example.test";
pub const DEFAULT_PASSWORD: &str = "secret";
pub const REQUIRE_ENV: &str = "MAILROOM_REQUIRE_DOVECOT";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 5;
const PORT_CLASH: &str = "Address already in use";

unsafe extern "C" {
    safe fn kill(pid: i32, sig: i32) -> i32;
    safe fn geteuid() -> u32;
}
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

static NEXT_INSTANCE: AtomicU32 = AtomicU32::new(0);
static PORTS_HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());

pub struct Dovecot {
    dovecot_bin: PathBuf,
    instance: String,
    imap_port: u16,
    imaps_port: u16,
    child: Option<Child>,
    passwd_lock: Mutex<()>,
    // Last: removed after Drop::drop has stopped the server.
    dir: tempfile::TempDir,
}

impl Dovecot {
    /// Starts a fresh private instance with the default user (see module docs).
    pub fn start() -> Result<Option<Dovecot>, String> {
        let Some(bin) = find_binary("dovecot") else {
            return Self::missing_binary_outcome(std::env::var_os(REQUIRE_ENV).is_some());
        };
        if geteuid() != 0 {
            return Err("a private Dovecot needs root (mail dirs are chowned to nobody)".into());
        }
        let dir = tempdir()?;
        let n = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let instance = format!("mailroom-t{}-{n}", std::process::id());
        let mut server = Dovecot {
            dovecot_bin: bin,
            instance,
            imap_port: 0,
            imaps_port: 0,
            child: None,
            passwd_lock: Mutex::new(()),
            dir,
        };
        server.prepare_files()?;
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            (server.imap_port, server.imaps_port) = pick_ports()?;
            server.write_config()?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(Some(server)),
                Err(e) if e.contains(PORT_CLASH) => last = e,
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

    pub fn host(&self) -> &'static str {
        HOST
    }
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }
    pub fn imaps_port(&self) -> u16 {
        self.imaps_port
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

    /// Adds a passwd-file user; Dovecot notices the changed file on the next login.
    pub fn add_user(&self, name: &str, password: &str) -> Result<(), String> {
        let bad = |s: &str| s.is_empty() || s.contains([':', '\n', '\r', '/']) || s.trim() != s;
        if bad(name) || password.contains([':', '\n', '\r']) {
            return Err(format!("add_user: unusable name or password for passwd-file: {name:?}"));
        }
        let _guard = self.passwd_lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.path("passwd");
        let mut text = fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        if text.lines().any(|l| l.split(':').next() == Some(name)) {
            return Err(format!("add_user: {name} already exists"));
        }
        let home = self.path("mail").join(name);
        text.push_str(&format!("{name}:{{PLAIN}}{password}::::{}\n", home.display()));
        // Replace atomically so a concurrent lookup never sees half a line.
        let tmp = self.path("passwd.new");
        write_file(&tmp, &text, 0o644)?;
        fs::rename(&tmp, &path).map_err(|e| format!("rename passwd: {e}"))
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s) and waits until no process of this
    /// instance is left. Data and ports stay for [`Dovecot::start_again`]. Idempotent.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        kill(child.id() as i32, SIGTERM);
        let mut clean = poll(STOP_TIMEOUT, || !matches!(child.try_wait(), Ok(None)));
        if !clean {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The children (log, anvil, imap...) go right after the master.
        clean &= poll(Duration::from_secs(5), || instance_processes(&self.instance).is_empty());
        kill_leftovers(&self.instance);
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
                Err(e) if e.contains(PORT_CLASH) && Instant::now() < deadline => {
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
        let bin = find_binary("doveadm").ok_or("doveadm not found")?;
        let out = Command::new(bin)
            .arg("-c")
            .arg(self.config_file())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run doveadm: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("doveadm {args:?}: {} {err}", out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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
        for d in ["run", "lib", "mail"] {
            fs::create_dir(self.path(d)).map_err(|e| format!("mkdir {d}: {e}"))?;
        }
        let (uid, gid) = (lookup_id("/etc/passwd", "nobody"), lookup_id("/etc/group", "nogroup"));
        std::os::unix::fs::chown(self.path("mail"), Some(uid), Some(gid)).map_err(|e| format!("chown mail: {e}"))?;
        write_file(&self.path("passwd"), "", 0o644)?;
        self.add_user(DEFAULT_USER, DEFAULT_PASSWORD)?;
        self.make_certificates()
    }

    fn make_certificates(&self) -> Result<(), String> {
        write_file(&self.path("openssl.cnf"), OPENSSL_CNF, 0o644)?;
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -config openssl.cnf";
        let serial = u64::from(std::process::id()) << 16 | u64::from(NEXT_INSTANCE.load(Ordering::Relaxed));
        for cmd in [
            format!(
                "req -x509 -days 3650 -extensions v3_ca -subj /CN=mailroom-test-CA {ec} -keyout ca.key -out ca.pem"
            ),
            format!(
                "req -x509 -days 3650 -extensions v3_ca -subj /CN=unrelated-CA {ec} -keyout wrong-ca.key -out wrong-ca.pem"
            ),
            format!("req -new -subj /CN=localhost {ec} -keyout server.key -out server.csr"),
            format!(
                "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial {serial} -days 3650 -extfile openssl.cnf -extensions v3_server -out server.pem"
            ),
        ] {
            let out = Command::new("openssl")
                .args(cmd.split(' '))
                .current_dir(self.dir())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("run openssl (installed?): {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "openssl {cmd}: {}\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        fs::set_permissions(self.path("server.key"), fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())
    }

    fn write_config(&self) -> Result<(), String> {
        let d = self.dir().display();
        let dh = Path::new("/usr/share/dovecot/dh.pem");
        let dh = if dh.exists() {
            format!("ssl_dh = <{}\n", dh.display())
        } else {
            String::new()
        };
        let conf = format!(
            "# private test instance, generated by tests/support/dovecot.rs
base_dir = {d}/run
state_dir = {d}/lib
instance_name = {instance}
protocols = imap
listen = 127.0.0.1
log_path = {d}/dovecot.log
ssl = yes
ssl_cert = <{d}/server.pem
ssl_key = <{d}/server.key
{dh}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
default_internal_user = dovecot
default_login_user = dovenull
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
  default_fields = uid=nobody gid=nogroup
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
",
            instance = self.instance,
            imap = self.imap_port,
            imaps = self.imaps_port,
        );
        write_file(&self.config_file(), &conf, 0o644)
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
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
            greeting_ok(self.imap_port) && TcpStream::connect((HOST, self.imaps_port)).is_ok()
        });
        if let Some(status) = exited {
            std::thread::sleep(Duration::from_millis(100));
            kill_leftovers(&self.instance);
            return Err(format!("dovecot exited at start ({status}):\n{}", self.log_tail(20)));
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

const OPENSSL_CNF: &str = "[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Under /tmp, not $TMPDIR: Dovecot's unix sockets in `run/` need short paths (108 bytes).
fn tempdir() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("dovecot-")
        .tempdir_in("/tmp")
        .map_err(|e| format!("temp dir: {e}"))
}

/// Calls `done` every 20 ms until it returns true (-> true) or `timeout` has passed (-> false).
fn poll(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill_leftovers(instance: &str) {
    for pid in instance_processes(instance) {
        let _ = kill(pid as i32, SIGKILL);
    }
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

/// Numeric id of `name` in /etc/passwd or /etc/group (65534 if absent).
fn lookup_id(file: &str, name: &str) -> u32 {
    let text = fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .and_then(|f| f.get(2)?.parse().ok())
        .unwrap_or(65534)
}

/// Two distinct free loopback ports, never handed out twice by this process.
fn pick_ports() -> Result<(u16, u16), String> {
    let mut used = PORTS_HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let bind = || TcpListener::bind((HOST, 0)).and_then(|l| Ok((l.local_addr()?.port(), l)));
        let ((a, _la), (b, _lb)) = (bind().map_err(|e| e.to_string())?, bind().map_err(|e| e.to_string())?);
        if !used.contains(&a) && !used.contains(&b) {
            used.extend([a, b]);
            return Ok((a, b));
        }
    }
    Err("no free port pair found".into())
}

/// True when an IMAP greeting (`* OK`) arrives on the plain port.
fn greeting_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_millis(500))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"* OK"
}
