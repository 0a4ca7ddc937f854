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
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &inner.hello).await?;
        if let Some(params) = &inner.starttls {
            conn.starttls(params.clone(), &inner.hello).await?;
        }
        if let Some(credentials) = &inner.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await?;
        }
        Ok(conn)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a send did not get a 250.
enum Failure {
    /// The relay could not be reached or the TLS handshake failed.
    Connect(String),
    /// The SMTP dialogue failed: a server answer or a broken connection.
    Smtp(lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for Failure {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        Failure::Smtp(e)
    }
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
