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
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
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
    /// STARTTLS parameters (lettre upgrades the connection itself).
    starttls: Option<TlsParameters>,
    /// Implicit TLS: we wrap the socket before the greeting.
    implicit: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl Relay {
    /// Prepares the relay (TLS roots, credentials); connects lazily.
    pub fn new(config: &SmtpConfig, from: &str) -> Result<Relay> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| Error::Config(format!("smtp.from / mail.from {from:?}: {e}")))?;
        let credentials = match &config.username {
            Some(user) => Some(Credentials::new(
                user.clone(),
                config.secret().read("smtp")?.expose().to_string(),
            )),
            None => None,
        };
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
                starttls,
                implicit,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Sends one notification and says what came of it.
    pub async fn send(&self, row: &Claimed) -> Delivery {
        let mail = match compose(row, &self.inner.from) {
            Ok(m) => m,
            Err(e) => {
                return Delivery::Permanent {
                    error: e,
                    bounce: false,
                };
            }
        };
        let timeout = self.inner.config.timeout;
        let sent = tokio::time::timeout(timeout, self.transmit(mail.envelope(), &mail.formatted())).await;
        match sent {
            Ok(Ok(reply)) => Delivery::Sent(reply),
            Ok(Err(Failure::Smtp(e))) if e.is_permanent() => Delivery::Permanent {
                error: header_text(&e.to_string()),
                bounce: true,
            },
            Ok(Err(Failure::Smtp(e))) => Delivery::Transient(header_text(&e.to_string())),
            Ok(Err(Failure::Connect(e))) => Delivery::Transient(e),
            Err(_) => Delivery::Transient(format!("no answer from the relay within {timeout:?}")),
        }
    }

    /// Says goodbye to the idle connections.
    pub async fn close(&self) {
        let idle: Vec<_> = self.lock_idle().drain(..).collect();
        for (mut conn, _) in idle {
            let _ = conn.quit().await;
        }
    }

    async fn transmit(&self, envelope: &Envelope, bytes: &[u8]) -> std::result::Result<String, Failure> {
        let mut conn = self.connection().await?;
        let reply = conn.send(envelope, bytes).await?;
        if self.inner.config.pool && !conn.has_broken() {
            self.lock_idle().push((conn, Instant::now()));
        } else {
            let _ = conn.quit().await;
        }
        let lines: Vec<&str> = reply.message().collect();
        Ok(header_text(&format!("{} {}", reply.code(), lines.join(" "))))
    }

    /// An idle connection that still works, else a new one.
    async fn connection(&self) -> std::result::Result<AsyncSmtpConnection, Failure> {
        loop {
            let Some((mut conn, since)) = self.lock_idle().pop() else {
                break;
            };
            if conn.has_broken() {
                continue;
            }
            if since.elapsed() < FRESH || conn.test_connected().await {
                return Ok(conn);
            }
        }
        self.open().await
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
            Failure::Connect(format!("{step} with {host}: {}", session_error(&e)))
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

/// Why a send did not get a 250.
enum Failure {
    /// The relay could not be reached, or the session could not be set up
    /// (greeting, TLS handshake, login): try again later.
    Connect(String),
    /// The SMTP dialogue failed: a server answer or a broken connection.
    Smtp(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for Failure {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        Failure::Smtp(e)
    }
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
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    use super::*;

    /// A relay that greets, offers AUTH and refuses every login with a 5xx,
    /// as one with a wrong password does. Returns its port and the commands
    /// it received.
    async fn refusing_relay() -> (u16, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            let mut seen = Vec::new();
            write.write_all(b"220 relay.test ESMTP\r\n").await.unwrap();
            while let Ok(Some(line)) = lines.next_line().await {
                let verb = line.split(' ').next().unwrap_or_default().to_ascii_uppercase();
                seen.push(verb.clone());
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" => b"250-relay.test\r\n250 AUTH PLAIN LOGIN\r\n",
                    "AUTH" => b"535 5.7.8 Authentication credentials invalid\r\n",
                    "QUIT" => b"221 bye\r\n",
                    _ => b"503 5.5.1 bad sequence\r\n",
                };
                write.write_all(reply).await.unwrap();
                if verb == "QUIT" {
                    break;
                }
            }
            seen
        });
        (port, peer)
    }

    fn notification() -> Claimed {
        Claimed {
            id: 1,
            ticket: Some(7),
            event: "new_ticket".into(),
            contact_id: Some(3),
            to: "marie@acme.test".into(),
            subject: "[#7] Link down".into(),
            body: "Hello".into(),
            message_id: "<mailroom.7.abc@provider.test>".into(),
            in_reply_to: None,
            references_ids: String::new(),
            attempts: 1,
            queued_at: 0,
            token: String::new(),
        }
    }

    /// A refused login is the relay's answer about us, not about the
    /// recipient: the notification stays queued and no contact is charged
    /// a hard bounce (every recipient would be, with a wrong password).
    #[tokio::test]
    async fn a_refused_login_defers_the_notification_instead_of_bouncing_its_recipient() {
        let (port, peer) = refusing_relay().await;
        let config: SmtpConfig = toml::from_str(&format!(
            "host = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nusername = \"desk\"\npassword = \"s3cret-pw\"\n"
        ))
        .unwrap();
        let relay = Relay::new(&config, "support@provider.test").unwrap();
        let outcome = relay.send(&notification()).await;
        let Delivery::Transient(error) = outcome else {
            panic!("a refused login must defer, got {outcome:?}");
        };
        assert!(
            error.starts_with("AUTH with 127.0.0.1: ") && error.contains("535"),
            "{error}"
        );
        assert!(!error.contains("s3cret-pw"), "{error}");
        drop(relay);
        let seen = peer.await.unwrap();
        assert!(seen.contains(&"AUTH".to_string()), "{seen:?}");
        assert!(!seen.contains(&"MAIL".to_string()), "{seen:?}");
    }
}
