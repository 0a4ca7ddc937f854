//! Proves the private Postfix harness (tests/support/postfix.rs) works: SMTP in, LMTP into a
//! private Dovecot, STARTTLS with its own CA, the reject list, stop/start on the same port,
//! retries after an LMTP outage, bulk acceptance in discard mode, parallel instances, a
//! warning-free config, clean teardown, the optional SMTPS (implicit TLS) listener. Without
//! Postfix (or Dovecot) installed every test returns early after a visible SKIPPED line, unless
//! MAILROOM_REQUIRE_POSTFIX is set.

#[path = "support/dovecot.rs"]
mod dovecot;
#[path = "support/imap_client.rs"]
mod imap_client;
#[path = "support/postfix.rs"]
mod postfix;
#[path = "support/smtp_client.rs"]
mod smtp_client;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dovecot::server_util::s_client;
use dovecot::{DEFAULT_PASSWORD, DEFAULT_USER, Dovecot};
use imap_client::ImapClient;
use postfix::{Postfix, PostfixOptions};
use smtp_client::{SmtpClient, send_mail};

/// Generous: Postfix retries every 1-2 s; this only bounds a broken run.
const SOON: Duration = Duration::from_secs(20);
const FROM: &str = "ana@kovac.test";

fn start(opts: PostfixOptions) -> Option<Postfix> {
    let began = Instant::now();
    let server = Postfix::start(opts).unwrap_or_else(|e| panic!("{e}"));
    if let Some(server) = &server {
        eprintln!(
            "postfix on port {} started in {:?}",
            server.smtp_port(),
            began.elapsed()
        );
    }
    server
}

/// A Dovecot with LMTP and a Postfix delivering to it, or `None` when either is skipped.
fn start_pair() -> Option<(Dovecot, Postfix)> {
    let dovecot = Dovecot::start_with_lmtp().unwrap_or_else(|e| panic!("{e}"))?;
    let postfix = start(PostfixOptions::lmtp(dovecot.lmtp_port()))?;
    Some((dovecot, postfix))
}

fn mail(n: u32) -> Vec<u8> {
    format!(
        "From: Ana <{FROM}>\r\nTo: {DEFAULT_USER}\r\nSubject: mail {n}\r\n\
         Message-ID: <m{n}@kovac.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\r\nbody {n}\r\n.dot line\r\n"
    )
    .into_bytes()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + SOON;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Messages in `user`'s INBOX (0 while the server is down or the user has no mailbox yet).
fn inbox_count(dovecot: &Dovecot, user: &str, password: &str) -> u32 {
    let count = || -> Result<u32, String> {
        let mut imap = ImapClient::connect(dovecot.imap_port())?;
        imap.login(user, password)?;
        imap.count("INBOX")
    };
    count().unwrap_or(0)
}

#[test]
fn mail_over_smtp_arrives_in_the_dovecot_inbox() {
    let Some((dovecot, postfix)) = start_pair() else { return };
    let mut smtp = SmtpClient::connect(postfix.smtp_port()).unwrap();
    assert!(smtp.greeting.text().contains("ESMTP"), "{}", smtp.greeting);
    let ehlo = smtp.ehlo("client.test").unwrap();
    assert!(ehlo.has_line("STARTTLS"), "no STARTTLS in {ehlo}");
    let reply = smtp.send(FROM, &[DEFAULT_USER], &mail(1)).unwrap();
    assert!(reply.text().contains("queued as"), "{reply}");
    // Without Message-ID and Date: Postfix must not add them (local_header_rewrite_clients).
    let bare = format!("From: {FROM}\r\nSubject: bare\r\n\r\nno ids\r\n");
    smtp.send(FROM, &[DEFAULT_USER], bare.as_bytes()).unwrap();
    smtp.quit().unwrap();

    wait_for("two mails in the INBOX", || {
        inbox_count(&dovecot, DEFAULT_USER, DEFAULT_PASSWORD) == 2
    });
    let mut imap = ImapClient::connect(dovecot.imap_port()).unwrap();
    imap.login(DEFAULT_USER, DEFAULT_PASSWORD).unwrap();
    // Postfix delivers the two in parallel: either may be UID 1.
    let mut bodies: Vec<String> = [1, 2]
        .map(|uid| String::from_utf8_lossy(&imap.fetch_body("INBOX", uid).unwrap()).into_owned())
        .into();
    bodies.sort_by_key(|b| b.ends_with(bare.as_str()));
    let [first, second] = [&bodies[0], &bodies[1]];
    assert!(first.as_bytes().ends_with(&mail(1)), "{first}");
    assert!(
        first.contains("Received: from client.test (unknown [127.0.0.1])"),
        "{first}"
    );
    assert!(second.ends_with(bare.as_str()), "{second}");
    assert!(
        !second.contains("Message-ID:") && !second.contains("\nDate:"),
        "{second}"
    );
    postfix.wait_queue_empty(SOON).unwrap();
}

#[test]
fn unknown_dovecot_user_is_refused_by_lmtp_and_bounced() {
    let Some((dovecot, postfix)) = start_pair() else { return };
    dovecot.add_user("other@example.test", "pw2").unwrap();
    // Accepted at SMTP (no virtual_mailbox_maps): Dovecot's LMTP decides, per recipient.
    let to = ["nobody-here@example.test", "other@example.test"];
    send_mail(postfix.smtp_port(), FROM, &to, &mail(1)).unwrap();
    wait_for("other's mail", || {
        inbox_count(&dovecot, "other@example.test", "pw2") == 1
    });
    wait_for("the bounce in the log", || {
        postfix.log_tail(100).contains("to=<nobody-here@example.test>")
            && postfix.log_tail(100).contains("status=bounced")
    });
    let log = postfix.log_tail(100);
    assert!(log.contains("User doesn't exist"), "{log}");
    // The bounce to ana@kovac.test is discarded, not sent anywhere: the queue empties.
    postfix.wait_queue_empty(SOON).unwrap();
}

#[test]
fn reject_list_gets_550_defer_list_450_and_other_domains_554_at_rcpt() {
    let opts = PostfixOptions::discard()
        .reject("gone@example.test")
        .reject("left@example.test")
        .defer("busy@example.test");
    let Some(postfix) = start(opts) else { return };
    let mut smtp = SmtpClient::connect(postfix.smtp_port()).unwrap();
    smtp.ehlo("client.test").unwrap();
    assert_eq!(smtp.mail_from(FROM).unwrap().code, 250);
    for (rcpt, code) in [
        ("gone@example.test", 550),
        ("someone@example.test", 250),
        ("left@example.test", 550),
        ("busy@example.test", 450),
        ("friend@elsewhere.test", 554),
        ("root@localhost", 554),
    ] {
        let reply = smtp.rcpt_to(rcpt).unwrap();
        assert_eq!(reply.code, code, "RCPT TO:<{rcpt}>: {reply}");
        if code != 250 {
            let status = format!("{}.", code / 100);
            assert!(reply.text().starts_with(&status), "enhanced status code: {reply}");
        }
    }
    assert_eq!(
        smtp.data(&mail(1)).unwrap().code,
        250,
        "the accepted recipient still gets it"
    );
    smtp.quit().unwrap();
}

#[test]
fn configured_domains_replace_example_test() {
    let Some(postfix) = start(PostfixOptions::discard().domains(&["a.test", "b.test"])) else {
        return;
    };
    let mut smtp = SmtpClient::connect(postfix.smtp_port()).unwrap();
    smtp.ehlo("client.test").unwrap();
    smtp.mail_from(FROM).unwrap();
    assert_eq!(smtp.rcpt_to("x@a.test").unwrap().code, 250);
    assert_eq!(smtp.rcpt_to("y@b.test").unwrap().code, 250);
    assert_eq!(smtp.rcpt_to("z@example.test").unwrap().code, 554);
}

#[test]
fn bare_newline_is_rejected() {
    let Some(postfix) = start(PostfixOptions::discard()) else {
        return;
    };
    let err = send_mail(
        postfix.smtp_port(),
        FROM,
        &["a@example.test"],
        b"Subject: x\r\n\r\nbare\nlf\r\n",
    );
    assert!(err.as_ref().is_err_and(|e| e.contains("550")), "{err:?}");
}

#[test]
fn stop_refuses_and_start_again_accepts_on_the_same_port() {
    let Some(mut postfix) = start(PostfixOptions::discard()) else {
        return;
    };
    let port = postfix.smtp_port();
    let mut idle = SmtpClient::connect(port).unwrap();
    idle.ehlo("client.test").unwrap();
    send_mail(port, FROM, &["a@example.test"], &mail(1)).unwrap();

    let began = Instant::now();
    postfix.stop().unwrap();
    eprintln!("stop took {:?}", began.elapsed());
    let refused = SmtpClient::connect(port).err().expect("stopped Postfix still answers");
    assert!(refused.contains("refused"), "{refused}");
    assert!(idle.command("NOOP").is_err(), "an open session survived the stop");
    assert!(!postfix.is_running() && postfix.processes().is_empty());
    postfix.stop().unwrap(); // idempotent

    let began = Instant::now();
    postfix.start_again().unwrap();
    eprintln!("start_again took {:?}", began.elapsed());
    assert_eq!(postfix.smtp_port(), port);
    send_mail(port, FROM, &["a@example.test"], &mail(2)).unwrap();
}

#[test]
fn mail_deferred_while_lmtp_is_down_is_delivered_after_it_returns() {
    let Some((mut dovecot, postfix)) = start_pair() else {
        return;
    };
    dovecot.stop().unwrap();
    send_mail(postfix.smtp_port(), FROM, &[DEFAULT_USER], &mail(1)).unwrap();
    wait_for("the deferral", || postfix.log_tail(50).contains("status=deferred"));
    assert_eq!(postfix.queue_len().unwrap(), 1);

    let back = Instant::now();
    dovecot.start_again().unwrap();
    // No flush: the short backoff alone must bring it through.
    wait_for("the retried mail", || {
        inbox_count(&dovecot, DEFAULT_USER, DEFAULT_PASSWORD) == 1
    });
    eprintln!("delivered {:?} after Dovecot came back", back.elapsed());
    postfix.wait_queue_empty(SOON).unwrap();
}

#[test]
fn flush_delivers_deferred_mail_at_once() {
    let Some((mut dovecot, postfix)) = start_pair() else {
        return;
    };
    dovecot.stop().unwrap();
    send_mail(postfix.smtp_port(), FROM, &[DEFAULT_USER], &mail(1)).unwrap();
    wait_for("the deferral", || postfix.log_tail(50).contains("status=deferred"));
    assert!(!postfix.queue_is_empty().unwrap());
    dovecot.start_again().unwrap();
    postfix.flush().unwrap();
    postfix.wait_queue_empty(SOON).unwrap();
    assert_eq!(inbox_count(&dovecot, DEFAULT_USER, DEFAULT_PASSWORD), 1);
}

#[test]
fn discard_mode_accepts_2000_messages_over_10_connections() {
    let Some(postfix) = start(PostfixOptions::discard()) else {
        return;
    };
    let port = postfix.smtp_port();
    let began = Instant::now();
    let workers: Vec<_> = (0..10)
        .map(|w| {
            std::thread::spawn(move || {
                let mut smtp = SmtpClient::connect(port).unwrap();
                smtp.ehlo("client.test").unwrap();
                for n in 0..200 {
                    let to = format!("user{}@example.test", n % 7);
                    smtp.send(FROM, &[&to], &mail(w * 1000 + n))
                        .unwrap_or_else(|e| panic!("worker {w} mail {n}: {e}"));
                    smtp.rset().unwrap(); // as a pooled client does; must not count as junk
                }
                smtp.quit().unwrap();
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    eprintln!("2000 messages accepted in {:?}", began.elapsed());
    postfix.wait_queue_empty(Duration::from_secs(120)).unwrap();
}

#[test]
fn two_instances_at_once_are_separate() {
    let Some(mut a) = start(PostfixOptions::discard()) else {
        return;
    };
    let Some(b) = start(PostfixOptions::discard()) else {
        return;
    };
    assert_ne!(a.smtp_port(), b.smtp_port());
    let (pa, pb) = (a.processes(), b.processes());
    assert!(!pa.is_empty() && !pa.iter().any(|p| pb.contains(p)), "{pa:?} {pb:?}");
    assert_ne!(std::fs::read(a.ca_file()).unwrap(), std::fs::read(b.ca_file()).unwrap());
    let id_a = send_mail(a.smtp_port(), FROM, &["a@example.test"], &mail(1)).unwrap();
    let id_b = send_mail(b.smtp_port(), FROM, &["b@example.test"], &mail(2)).unwrap();
    let queue_id = |reply: &smtp_client::Reply| reply.text().rsplit(' ').next().unwrap().to_string();
    let (id_a, id_b) = (queue_id(&id_a), queue_id(&id_b));
    wait_for("both logs", || {
        a.log_tail(100).contains(&id_a) && b.log_tail(100).contains(&id_b)
    });
    assert!(!a.log_tail(100).contains(&id_b) && !b.log_tail(100).contains(&id_a));
    a.stop().unwrap();
    assert!(SmtpClient::connect(a.smtp_port()).is_err());
    send_mail(b.smtp_port(), FROM, &["b@example.test"], &mail(3)).unwrap();
}

#[test]
fn starttls_verifies_with_the_right_ca_only() {
    let Some(postfix) = start(PostfixOptions::discard()) else {
        return;
    };
    let (ok, out) = s_client(
        postfix.smtp_port(),
        &postfix.ca_file(),
        &["-starttls", "smtp", "-verify_ip", "127.0.0.1"],
    );
    assert!(ok, "right CA refused:\n{out}");
    let (ok, out) = s_client(
        postfix.smtp_port(),
        &postfix.ca_file(),
        &["-starttls", "smtp", "-verify_hostname", "localhost"],
    );
    assert!(ok, "DNS:localhost refused:\n{out}");
    let (ok, out) = s_client(postfix.smtp_port(), &postfix.wrong_ca_file(), &["-starttls", "smtp"]);
    assert!(!ok, "wrong CA accepted:\n{out}");
}

/// Speaks SMTP over implicit TLS on `port` (verified against `ca`): greeting, EHLO, one mail
/// to `to`, QUIT; every reply line, or where it failed.
fn smtps_session(port: u16, ca: &Path, to: &str) -> Result<Vec<String>, String> {
    use rustls_pki_types::ServerName;
    use rustls_pki_types::pem::PemObject;
    use std::io::{BufRead, BufReader, Write};
    use std::sync::Arc;
    use tokio_rustls::rustls;

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let tls = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut stream = BufReader::new(rustls::StreamOwned::new(tls, tcp));
    let mut lines: Vec<String> = Vec::new();
    let message = String::from_utf8(mail(1)).unwrap();
    let commands = [
        None, // the greeting
        Some("EHLO client.test".to_string()),
        Some(format!("MAIL FROM:<{FROM}>")),
        Some(format!("RCPT TO:<{to}>")),
        Some("DATA".to_string()),
        Some(format!("{message}.")),
        Some("QUIT".to_string()),
    ];
    for command in commands {
        if let Some(command) = command {
            let w = stream.get_mut();
            w.write_all(format!("{command}\r\n").as_bytes())
                .and_then(|()| w.flush())
                .map_err(|e| format!("sending {command:?}: {e}"))?;
        }
        // A reply: lines up to the one with a space after the code (`250-...`, `250 ...`).
        loop {
            let mut line = String::new();
            match stream.read_line(&mut line) {
                Ok(0) => return Err(format!("connection closed after {lines:?}")),
                Ok(_) => {}
                Err(e) => return Err(format!("reading after {lines:?}: {e}")),
            }
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.trim_end().to_string());
            if !more {
                break;
            }
        }
    }
    Ok(lines)
}

#[test]
fn smtps_listener_speaks_smtp_only_inside_tls() {
    let Some(postfix) = start(PostfixOptions::discard().with_smtps()) else {
        return;
    };
    let port = postfix.smtps_port().expect("with_smtps gives an SMTPS port");
    assert_ne!(port, postfix.smtp_port());
    let replies = smtps_session(port, &postfix.ca_file(), "a@example.test").unwrap_or_else(|e| panic!("{e}"));
    assert!(replies[0].starts_with("220 "), "greeting over TLS: {replies:?}");
    assert!(replies.iter().any(|r| r.contains("queued as")), "{replies:?}");
    assert!(replies.last().unwrap().starts_with("221"), "{replies:?}");
    assert!(
        !replies.iter().any(|r| r.contains("STARTTLS")),
        "TLS already: {replies:?}"
    );
    // A plaintext client gets no greeting there (smtpd waits for a TLS ClientHello)...
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    plain.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    let mut buf = [0u8; 4];
    assert!(std::io::Read::read(&mut plain, &mut buf).map_or(true, |n| n == 0 || &buf != b"220 "));
    // ... and a client with the wrong CA cannot get in.
    let err = smtps_session(port, &postfix.wrong_ca_file(), "a@example.test").unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    // The mail came in on the SMTPS service, over TLS.
    postfix.wait_queue_empty(SOON).unwrap();
    let log = postfix.log_tail(200);
    assert!(
        log.contains("postfix/smtps/smtpd") && log.contains("TLS connection established"),
        "{log}"
    );
}

#[test]
fn config_is_warning_free() {
    let Some(postfix) = start(PostfixOptions::discard().reject("gone@example.test")) else {
        return;
    };
    send_mail(postfix.smtp_port(), FROM, &["a@example.test"], &mail(1)).unwrap();
    postfix.wait_queue_empty(SOON).unwrap();
    // `postconf -n` warns about unknown (mistyped) parameters on stderr.
    let out = Command::new("postconf")
        .arg("-c")
        .arg(postfix.config_dir())
        .arg("-n")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    assert_eq!(
        postfix.postconf(&["-h", "virtual_transport"]).unwrap().trim(),
        "discard:"
    );
    // `postfix check` (also run by `postfix start`) logs its complaints to the maillog.
    Command::new("postfix")
        .arg("-c")
        .arg(postfix.config_dir())
        .arg("check")
        .status()
        .unwrap();
    let log = postfix.log_tail(1000);
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("warning:") || l.contains("fatal:"))
        .collect();
    assert!(warnings.is_empty(), "{}", warnings.join("\n"));
    let master_cf = std::fs::read_to_string(postfix.config_dir().join("master.cf")).unwrap();
    let inet: Vec<&str> = master_cf.lines().filter(|l| l.contains(" inet ")).collect();
    assert_eq!(
        inet,
        [format!("127.0.0.1:{} inet n - n - - smtpd", postfix.smtp_port())]
    );
}

#[test]
fn drop_leaves_no_process_and_no_files() {
    let Some(postfix) = start(PostfixOptions::discard()) else {
        return;
    };
    let mut smtp = SmtpClient::connect(postfix.smtp_port()).unwrap();
    smtp.ehlo("client.test").unwrap();
    let (conf, dir, port) = (postfix.config_dir(), postfix.dir().to_path_buf(), postfix.smtp_port());
    let processes = postfix.processes();
    assert!(processes.len() >= 4, "master, qmgr, pickup, smtpd...: {processes:?}");
    assert!(processes.contains(&(postfix.master_pid().unwrap() as u32)));
    drop(postfix);
    assert!(postfix::instance_processes(&conf).is_empty(), "processes left behind");
    assert!(!dir.exists(), "temp dir left behind");
    assert!(SmtpClient::connect(port).is_err());
}

#[test]
fn master_cf_keeps_only_our_smtpd_and_turns_chroot_off() {
    let system = "# comment\n\
        smtp      inet  n       -       y       -       1       postscreen\n\
        smtpd     pass  -       -       y       -       -       smtpd\n\
        submission inet n       -       y       -       -       smtpd\n  -o syslog_name=postfix/submission\n\
        cleanup   unix  n       -       y       -       0       cleanup\n\
        maildrop  unix  -       n       n       -       -       pipe\n  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}\n";
    let got = postfix::master_cf(system, 12025);
    let lines: Vec<&str> = got.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "127.0.0.1:12025 inet n - n - - smtpd",
            "smtpd pass - - n - - smtpd",
            "cleanup unix n - n - 0 cleanup",
            "maildrop unix - n n - - pipe",
            "  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}",
            "postlog unix-dgram n - n - 1 postlogd",
        ]
    );
}

#[test]
fn missing_postfix_fails_when_required() {
    // (The other branch prints the SKIPPED line, which would mislead anyone reading this log.)
    let err = Postfix::missing_binary_outcome(true)
        .err()
        .expect("must fail when required");
    assert!(err.contains("MAILROOM_REQUIRE_POSTFIX"), "{err}");
}

/// The requirement reaches `start()` itself: with the binary missing and
/// MAILROOM_REQUIRE_POSTFIX set (a CI machine whose install went wrong), a test that
/// starts Postfix fails; without it, the same test skips visibly.
#[test]
fn a_missing_postfix_fails_a_starting_test_only_when_required() {
    dovecot::server_util::assert_missing_binary_fails_only_when_required(
        "bare_newline_is_rejected",
        "MAILROOM_POSTFIX_BIN",
        "MAILROOM_REQUIRE_POSTFIX",
    );
}
