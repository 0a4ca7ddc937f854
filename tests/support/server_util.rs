//! Helpers shared by the private-server harnesses (`dovecot.rs`, `postfix.rs`): finding and
//! running system programs, polling, free loopback ports and the per-instance test CA.
//!
//! Each harness includes this file as its own submodule (`#[path = "server_util.rs"]`), so a
//! test binary that uses both gets two copies; nothing here relies on being the only one.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const HOST: &str = "127.0.0.1";
pub const SIGTERM: i32 = 15;
pub const SIGKILL: i32 = 9;

unsafe extern "C" {
    pub safe fn kill(pid: i32, sig: i32) -> i32;
    pub safe fn geteuid() -> u32;
}

static PORTS_HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// `name` in PATH or one of the sbin directories (daemons live there, and PATH under sudo or
/// cargo may lack them).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Calls `done` every 20 ms until it returns true (-> true) or `timeout` has passed (-> false).
pub fn poll(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
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

/// Runs a program (found in PATH or an sbin directory) in `dir`; its stdout, or an error.
pub fn run(program: &str, args: &[&str], dir: &Path) -> Result<String, String> {
    run_with_env(program, args, dir, &[])
}

/// [`run`] with extra environment variables.
pub fn run_with_env(program: &str, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Result<String, String> {
    let bin = find_binary(program).ok_or(format!("{program} not found (not installed?)"))?;
    let out = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output();
    let out = out.map_err(|e| format!("run {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

/// `n` distinct free loopback ports, never handed out twice by this copy of the module. They
/// are bound to port 0 and released, so another process may still take one before the server
/// binds it: callers retry on "Address already in use".
pub fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let mut used = PORTS_HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        // All held at once, so the kernel gives n different ports.
        let listeners: Vec<std::net::TcpListener> = (0..n)
            .map(|_| std::net::TcpListener::bind((HOST, 0)))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let ports: Vec<u16> = listeners
            .iter()
            .filter_map(|l| Some(l.local_addr().ok()?.port()))
            .collect();
        if ports.len() == n && !ports.iter().any(|p| used.contains(p)) {
            used.extend(&ports);
            return Ok(ports);
        }
    }
    Err(format!("no {n} free ports found"))
}

/// Writes into `dir`: `ca.pem`/`ca.key` (a fresh CA), `wrong-ca.pem` (an unrelated CA, for
/// "wrong CA is refused" tests) and `server.pem`/`server.key` (0600) for `IP:127.0.0.1` and
/// `DNS:localhost`, signed by `ca.pem`. P-256 keys: fast to make. `serial` is the server
/// certificate's serial number, best unique per instance.
pub fn make_certificates(dir: &Path, serial: u64) -> Result<(), String> {
    write_file(&dir.join("openssl.cnf"), include_str!("openssl-test-ca.cnf"), 0o644)?;
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -config openssl.cnf -days 3650";
    let ca = format!("req -x509 -extensions v3_ca {ec} -subj");
    let sign = "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -days 3650 -extfile openssl.cnf";
    for cmd in [
        format!("{ca} /CN=mailroom-test-CA -keyout ca.key -out ca.pem"),
        format!("{ca} /CN=unrelated-CA -keyout wrong-ca.key -out wrong-ca.pem"),
        format!("req -new {ec} -subj /CN=localhost -keyout server.key -out server.csr"),
        format!("{sign} -extensions v3_server -set_serial {serial} -out server.pem"),
    ] {
        run("openssl", &cmd.split(' ').collect::<Vec<_>>(), dir)?;
    }
    fs::set_permissions(dir.join("server.key"), fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())
}

/// Last `n` lines of a text file ("" if it does not exist).
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `openssl s_client` against 127.0.0.1:`port` trusting `ca` (stdin
/// closed, 15 s limit; `extra` e.g. `-starttls smtp`); returns whether the
/// certificate verified, and all output.
pub fn s_client(port: u16, ca: &Path, extra: &[&str]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(ca)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("Verify return code: 0 (ok)"),
        text,
    )
}

/// Runs test `test` of this test binary in a child with the server's
/// binary (`bin_env`) missing, with or without `require_env` set, and
/// asserts what a CI machine whose install went wrong must see: the test
/// fails when required, and passes after a visible SKIPPED line when not.
/// The harness tests prove with it that `start()` reads the requirement.
pub fn assert_missing_binary_fails_only_when_required(test: &str, bin_env: &str, require_env: &str) {
    let run = |required: bool| {
        let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"));
        child
            .args(["--exact", test, "--test-threads", "1"])
            .env(bin_env, "/nonexistent/server")
            .env_remove(require_env);
        if required {
            child.env(require_env, "1");
        }
        child.output().expect("run the test binary")
    };
    let required = run(true);
    let report = String::from_utf8_lossy(&required.stdout);
    assert!(!required.status.success() && report.contains("1 failed"), "{report}");
    let optional = run(false);
    let (report, skipped) = (
        String::from_utf8_lossy(&optional.stdout),
        String::from_utf8_lossy(&optional.stderr),
    );
    assert!(optional.status.success() && report.contains("1 passed"), "{report}");
    assert!(skipped.contains("SKIPPED"), "{skipped}");
}
