//! The SMTP relay notifications go out through, and what its answers mean.
//!
//! Connections are kept and reused (a pool of up to `smtp.connections`):
//! opening a TLS connection per mail (as django-helpdesk does) costs a
//! handshake per recipient, which is what makes a 2,000-subscriber fan-out
//! take minutes. The SMTP dialogue is lettre's [`AsyncSmtpConnection`]; the
//! sockets are ours, because lettre's own transport leaves Nagle's
//! algorithm on and writes a mail's body and its final dot in two writes,
//! so every mail waits ~40 ms for the server's delayed ACK (measured: 148
//! notifications/s over 8 connections). Certificates and the host name are
//! always verified, against the system roots plus `ca_file`, with rustls on
//! the ring provider.

use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::compose::{compose, header_text};
use crate::config::secret::TlsMode;
use crate::config::smtp::SmtpConfig;
use crate::error::{Error, Result};
use crate::store::outbox::{Claimed, Delivery};

/// An idle connection older than this is checked with NOOP before reuse
/// (servers drop idle clients after a few minutes).
const FRESH: Duration = Duration::from_secs(30);

/// A configured relay with its idle connections.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    config: SmtpConfig,
    from: Mailbox,
    hello: ClientId,
    credentials: Option<Credentials>,
    /// User and password, to take out of what the relay answers.
    login: Option<(String, String)>,
    /// STARTTLS parameters (lettre upgrades the connection itself).
    starttls: Option<TlsParameters>,
    /// Implicit TLS: we wrap the socket before the greeting.
    implicit: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// The last failure that was the relay's, not a recipient's (cannot
    /// connect, login refused, our sender or relaying refused, no answer),
    /// until a mail goes through: see [`Relay::fault`].
    fault: std::sync::Mutex<Option<String>>,
}

impl Relay {
    /// Prepares the relay (TLS roots, credentials); connects lazily.
    pub fn new(config: &SmtpConfig, from: &str) -> Result<Relay> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| Error::Config(format!("smtp.from / mail.from {from:?}: {e}")))?;
        let login = match &config.username {
            Some(user) => Some((user.clone(), config.secret().read("smtp")?.expose().to_string())),
            None => None,
        };
        let credentials = login.clone().map(|(user, secret)| Credentials::new(user, secret));
        let (starttls, implicit) = match config.tls {
            TlsMode::None => (None, None),
            TlsMode::Starttls => (Some(tls_parameters(config)?), None),
            TlsMode::Implicit => {
                let tls = crate::tls::client_config(config.ca_file.as_deref())
                    .map_err(|e| Error::Config(format!("smtp: {e}")))?;
                (None, Some(tls))
            }
        };
        let hello = config
            .hello_name
            .clone()
            .map_or_else(ClientId::default, ClientId::Domain);
        Ok(Relay {
            inner: Arc::new(Inner {
                config: config.clone(),
                from,
                hello,
                credentials,
                login,
                starttls,
                implicit,
                idle: Mutex::new(Vec::new()),
                fault: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Why the relay is failing whatever the mail, if the last answer said
    /// so: the courier then stops trying the rest of its round and waits.
    /// With a wrong password every queued row tried AUTH on a connection
    /// of its own, thousands at once, enough for a relay to lock the
    /// account out (found by a review).
    pub fn fault(&self) -> Option<String> {
        self.inner.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets the last fault: the next send tries the relay again.
    pub fn forget_fault(&self) {
        self.note(None);
    }

    fn note(&self, fault: Option<&str>) {
        *self.inner.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault.map(str::to_string);
    }

    /// Sends one notification and says what came of it. Connecting, the
    /// session and the commands up to `DATA` have `smtp.timeout` together;
    /// the relay's answer to the end of the mail is waited for `end_wait`
    /// ([`END_OF_MAIL_WAIT`] from the courier, which keeps the claim
    /// meanwhile): the mail is on the relay's side by then, and a relay
    /// filtering it before it answers (a before-queue content filter, a
    /// milter) can take minutes. Given up on at `smtp.timeout`, as before,
    /// it was sent once more at every retry.
    /// `handed_over` is set once the relay has answered `DATA`: from then
    /// on the relay may have the mail.
    pub async fn send(&self, row: &Claimed, end_wait: Duration, handed_over: &AtomicBool) -> Delivery {
        // A panic in building the mail (a library's assertion on some
        // input) must still answer: a send that never answers leaves the
        // row to be claimed, and to panic, again at every lease.
        let composed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compose(row, &self.inner.from)))
            .unwrap_or_else(|_| Err("the mail could not be built (internal error; see the log)".to_string()));
        let mail = match composed {
            Ok(m) => m,
            Err(e) => {
                return Delivery::Permanent {
                    error: e,
                    bounce: false,
                };
            }
        };
        let timeout = self.inner.config.timeout;
        let by = Deadlines {
            timeout,
            setup: tokio::time::Instant::now() + timeout,
            end_wait,
        };
        let failure = match self.transmit(mail.envelope(), &mail.formatted(), by, handed_over).await {
            Ok(reply) => {
                self.note(None);
                return Delivery::Sent(reply);
            }
            Err(failure) => failure,
        };
        let (delivery, relays_fault) = what_came_of(failure);
        if let (true, Delivery::Transient(e)) = (relays_fault, &delivery) {
            self.note(Some(e));
        }
        delivery
    }

    /// Says goodbye to the idle connections.
    pub async fn close(&self) {
        let idle: Vec<_> = self.lock_idle().drain(..).collect();
        for (mut conn, _) in idle {
            let _ = conn.quit().await;
        }
    }

    async fn transmit(
        &self,
        envelope: &Envelope,
        bytes: &[u8],
        by: Deadlines,
        handed_over: &AtomicBool,
    ) -> std::result::Result<String, Failure> {
        let (mut conn, reused) = by.step(self.connection()).await?;
        let reply = match mail_transaction(&mut conn, envelope, bytes, by, handed_over).await {
            // A pooled connection the relay closed meanwhile (its idle
            // timeout, a restart) fails at MAIL FROM with no reply at all:
            // nothing was sent, so the mail goes at once on a new one.
            Err(Failure::Dropped(e)) if reused => {
                tracing::debug!(error = %e, "a pooled SMTP connection was closed by the relay; opening another");
                conn = by.step(self.open()).await?;
                mail_transaction(&mut conn, envelope, bytes, by, handed_over).await?
            }
            done => done?,
        };
        if self.inner.config.pool && !conn.has_broken() {
            self.lock_idle().push((conn, Instant::now()));
        } else {
            let _ = conn.quit().await;
        }
        let lines: Vec<&str> = reply.message().collect();
        Ok(header_text(&format!("{} {}", reply.code(), lines.join(" "))))
    }

    /// An idle connection that still works (true: reused), else a new one.
    async fn connection(&self) -> std::result::Result<(AsyncSmtpConnection, bool), Failure> {
        loop {
            let Some((mut conn, since)) = self.lock_idle().pop() else {
                break;
            };
            if conn.has_broken() {
                continue;
            }
            if since.elapsed() < FRESH || conn.test_connected().await {
                return Ok((conn, true));
            }
        }
        Ok((self.open().await?, false))
    }

    async fn open(&self) -> std::result::Result<AsyncSmtpConnection, Failure> {
        let inner = &self.inner;
        let host = inner.config.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, inner.config.port()))
            .await
            .map_err(|e| Failure::Connect(format!("connect to {host}:{}: {e}", inner.config.port())))?;
        // The point of owning the socket: see the module docs.
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn AsyncTokioStream> = match &inner.implicit {
            Some(tls) => {
                let name = ServerName::try_from(host.to_string())
                    .map_err(|e| Failure::Connect(format!("host {host:?}: {e}")))?;
                let tls = TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| Failure::Connect(format!("TLS with {host}: {e}")))?;
                Box::new(Tls(tls))
            }
            None => Box::new(tcp),
        };
        // Until the session is set up, a failure is the relay's or ours
        // (greeting, TLS, login), never the recipient's: even a 5xx here is
        // not a bounce, and the notification stays queued.
        let session = |step: &str, e: lettre::transport::smtp::Error| {
            let said = session_error(&e);
            // A relay may quote the refused AUTH exchange back.
            let said = match &inner.login {
                Some((user, secret)) => crate::config::redact::without_secret(&said, user, secret),
                None => said,
            };
            Failure::Connect(format!("{step} with {host}: {said}"))
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &inner.hello)
            .await
            .map_err(|e| session("greeting", e))?;
        if let Some(params) = &inner.starttls {
            conn.starttls(params.clone(), &inner.hello)
                .await
                .map_err(|e| session("STARTTLS", e))?;
        }
        if let Some(credentials) = &inner.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| session("AUTH", e))?;
        }
        Ok(conn)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The statuses (RFC 3463) that name the recipient's address or mailbox:
/// bad address, no such mailbox, bad syntax, moved, null MX; mailbox
/// disabled, full. Only these count against a contact after DATA.
const MAILBOX_STATUSES: [&str; 7] = ["5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1", "5.2.2"];

/// Whether a permanent refusal at RCPT TO is the relay refusing us
/// (relaying denied, authentication required, our sender not allowed: our
/// configuration, not the address) rather than the recipient: the 530 of
/// "authentication required", or words that say relay, authentication,
/// sender or client with a security or policy status (RFC 3463 class
/// 5.7) or with no enhanced status at all (Exim sends none by default:
/// its "550 relay not permitted" was a bounce of every recipient). Any
/// other refusal is about the recipient, a 5.7.1 "Recipient address
/// rejected: Access denied" too: counted as a bounce and not retried (it
/// was retried for days).
fn refuses_the_sender(reply: &str) -> bool {
    let lower = reply.to_ascii_lowercase();
    let about_us = ["relay", "authenticat", "sender", "client"]
        .iter()
        .any(|w| lower.contains(w));
    let status = enhanced_status(reply);
    lower.contains("(530)") || (about_us && status.is_none_or(|s| s.starts_with("5.7.")))
}

/// What a failed send means for its row, and whether it was the relay
/// failing whatever the mail (see [`Relay::fault`]).
fn what_came_of(failure: Failure) -> (Delivery, bool) {
    match failure {
        // A policy refusal at RCPT TO (5.7.x: "Relay access denied",
        // authentication required) is the relay refusing us, for every
        // recipient alike: it waits for the configuration to be fixed and
        // charges no contact.
        Failure::Recipient(e) if e.is_permanent() && refuses_the_sender(&e.to_string()) => (
            Delivery::Transient(header_text(&format!("the relay refused to take mail from us: {e}"))),
            true,
        ),
        // Only a refusal of the recipient itself counts against the contact.
        Failure::Recipient(e) if e.is_permanent() => (
            Delivery::Permanent {
                error: header_text(&e.to_string()),
                bounce: true,
            },
            false,
        ),
        // The relay will not take this mail (a content filter), whoever it
        // is for: retrying cannot help, and the address is not at fault,
        // unless the status names the recipient's address or mailbox (a
        // filter that looks after DATA; each mail has one recipient). Not
        // any 5.1.x or 5.2.x: Office 365 refuses a `from` the login may not
        // send as, or a spent daily quota, with 5.2.0, and 5.2.3 is our
        // mail's size: counted against the address, every contact became
        // undeliverable.
        Failure::Content(e) if e.is_permanent() => {
            let text = e.to_string();
            let delivery = Delivery::Permanent {
                bounce: enhanced_status(&text).is_some_and(|s| MAILBOX_STATUSES.contains(&s)),
                error: header_text(&format!("message refused: {text}")),
            };
            (delivery, false)
        }
        Failure::Recipient(e) | Failure::Content(e) => (Delivery::Transient(header_text(&e.to_string())), false),
        Failure::Unsendable(e) => (
            Delivery::Permanent {
                error: e,
                bounce: false,
            },
            false,
        ),
        // Not knowing whether the mail went, sending it again risks a
        // second copy, but not sending it risks none at all: a relay that
        // took the whole mail and then stayed silent for ten minutes is
        // failing anyway.
        Failure::Connect(e) | Failure::Sender(e) | Failure::Unconfirmed(e) => (Delivery::Transient(e), true),
        Failure::Dropped(e) => (Delivery::Transient(e), false),
    }
}

/// The enhanced status (RFC 3463: class.subject.detail, `5.1.1`) a reply
/// carries, if any: its first word of that form.
fn enhanced_status(reply: &str) -> Option<&str> {
    reply
        .split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
        .find(|word| {
            let mut parts = word.split('.');
            let class = parts.next().unwrap_or_default();
            let rest: Vec<&str> = parts.collect();
            matches!(class, "2" | "4" | "5")
                && rest.len() == 2
                && rest
                    .iter()
                    .all(|p| (1..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
        })
}

/// Why a send did not get a 250, by the step that failed: only the
/// recipient's own refusal is a bounce.
enum Failure {
    /// The relay could not be reached, or the session could not be set up
    /// (greeting, TLS handshake, login): try again later.
    Connect(String),
    /// `MAIL FROM` refused: our sender address, not the recipient's; the
    /// mail stays queued until the configuration is fixed.
    Sender(String),
    /// The connection was gone at `MAIL FROM`, before any reply: nothing
    /// of the mail was sent.
    Dropped(String),
    /// `RCPT TO` refused, or the connection broke there.
    Recipient(lettre::transport::smtp::Error),
    /// `DATA` or the message refused, or the connection broke there.
    Content(lettre::transport::smtp::Error),
    /// The relay lacks what this mail needs (SMTPUTF8, 8BITMIME).
    Unsendable(String),
    /// The whole mail was handed over but the relay did not answer its end
    /// in time: it may have been delivered, or not.
    Unconfirmed(String),
}

/// How long each part of one send may take (see [`Relay::send`]).
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    timeout: Duration,
    /// Connecting, the session and every command up to `DATA`:
    /// `smtp.timeout` from the start.
    setup: tokio::time::Instant,
    /// The mail and the answer to its end, from `DATA`'s answer on (never
    /// ending before `setup`).
    end_wait: Duration,
}

impl Deadlines {
    /// Runs a step that must be done by `setup`. Nothing said in time is
    /// the relay's trouble, as a connection's.
    async fn step<T>(
        &self,
        step: impl std::future::Future<Output = std::result::Result<T, Failure>>,
    ) -> std::result::Result<T, Failure> {
        tokio::time::timeout_at(self.setup, step).await.unwrap_or_else(|_| {
            Err(Failure::Connect(format!(
                "no answer from the relay within {:?}",
                self.timeout
            )))
        })
    }
}

/// One mail transaction (MAIL, RCPT, DATA), as lettre's `send` runs it but
/// telling which command was refused. A refusal drops the connection, as
/// lettre does: its state is unknown.
async fn mail_transaction(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    bytes: &[u8],
    by: Deadlines,
    handed_over: &AtomicBool,
) -> std::result::Result<Response, Failure> {
    let mut parameters = Vec::new();
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii_address {
        offered(conn, Extension::SmtpUtfEight, "the address is not ASCII")?;
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() {
        offered(conn, Extension::EightBitMime, "the mail is not ASCII")?;
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let sent = async {
        by.step(async {
            conn.command(Mail::new(envelope.from().cloned(), parameters))
                .await
                .map_err(|e| match e.status() {
                    Some(_) => Failure::Sender(header_text(&format!("sender refused: {e}"))),
                    None => Failure::Dropped(header_text(&format!(
                        "connection lost before MAIL FROM was answered: {e}"
                    ))),
                })?;
            for to in envelope.to() {
                conn.command(Rcpt::new(to.clone(), Vec::new()))
                    .await
                    .map_err(Failure::Recipient)?;
            }
            conn.command(Data).await.map_err(Failure::Content)
        })
        .await?;
        handed_over.store(true, std::sync::atomic::Ordering::SeqCst);
        let since = tokio::time::Instant::now();
        match tokio::time::timeout_at((since + by.end_wait).max(by.setup), conn.message(bytes)).await {
            Ok(answer) => answer.map_err(Failure::Content),
            Err(_) => Err(Failure::Unconfirmed(format!(
                "the relay did not answer the end of the mail within {:?}: it may have been delivered; queued again",
                since.elapsed()
            ))),
        }
    }
    .await;
    match &sent {
        // A relay that stopped answering would not answer QUIT either, and
        // one that answers late would have its `250` read by the QUIT and
        // thrown away: the connection is dropped.
        Err(Failure::Connect(_) | Failure::Unconfirmed(_)) => {}
        Err(_) => {
            let _ = tokio::time::timeout(QUIT_WAIT, conn.abort()).await;
        }
        Ok(_) => {}
    }
    sent
}

/// How long the relay's answer to the end of a mail is waited for, the
/// claim kept meanwhile: RFC 5321 (4.5.3.2.6) asks a client to wait 10
/// minutes there, since a relay may be filtering the mail before it
/// answers, and not knowing whether it took the mail means sending it
/// again.
pub const END_OF_MAIL_WAIT: Duration = Duration::from_secs(600);

/// How long a failed transaction's QUIT may wait for its answer.
const QUIT_WAIT: Duration = Duration::from_secs(1);

/// Refuses the mail, before any command, when the relay lacks `extension`.
fn offered(conn: &AsyncSmtpConnection, extension: Extension, why: &str) -> std::result::Result<(), Failure> {
    if conn.server_info().supports_feature(extension) {
        return Ok(());
    }
    Err(Failure::Unsendable(format!(
        "{why} and the relay does not offer {extension}"
    )))
}

/// What went wrong setting up a session: the server's answer when there
/// is one, else the innermost cause. lettre wraps a TLS failure in two
/// layers that each print "Connection error: ", and says nothing more.
fn session_error(e: &lettre::transport::smtp::Error) -> String {
    if e.status().is_some() {
        return header_text(&e.to_string());
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    header_text(&cause.to_string())
}

/// STARTTLS through lettre, trusting the same anchors as everything else
/// ([`crate::tls::trust_anchors`]), the host name checked.
fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters> {
    let domain = config.host.trim_start_matches('[').trim_end_matches(']').to_string();
    let mut params = TlsParameters::builder(domain).certificate_store(CertificateStore::None);
    let anchors =
        crate::tls::trust_anchors(config.ca_file.as_deref()).map_err(|e| Error::Config(format!("smtp: {e}")))?;
    for cert in anchors {
        if let Ok(c) = Certificate::from_der(cert.to_vec()) {
            params = params.add_root_certificate(c);
        }
    }
    params
        .build_rustls()
        .map_err(|e| Error::Config(format!("smtp TLS settings: {e}")))
}

/// An implicit-TLS socket as lettre takes it.
#[derive(Debug)]
struct Tls(TlsStream<TcpStream>);

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Tls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
