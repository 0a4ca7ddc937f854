//! Opening an authenticated IMAP session: TCP, then TLS (implicit or
//! STARTTLS) with the certificate and host name always verified, then
//! LOGIN.
//!
//! Which certificates are trusted, and how, is [`crate::tls`]: the same for
//! every server mailroom logs in to.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::{Client, Session};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::mailbox::{MailboxConfig, TlsMode};

/// How long connecting, the TLS handshake and login may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A plain or TLS connection, so one session type serves every mode.
#[derive(Debug)]
pub enum ImapStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// An authenticated session.
pub type ImapSession = Session<ImapStream>;

impl AsyncRead for ImapStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why a connection could not be made; the text never holds the password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {0}: {1}")]
    Network(String, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, String),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("login as {0} refused: {1}")]
    Login(String, String),
    #[error("{0}")]
    Config(String),
    #[error("connecting to {0} timed out after {1:?}")]
    Timeout(String, Duration),
}

/// Connects, secures and logs in, within [`CONNECT_TIMEOUT`].
pub async fn open(mb: &MailboxConfig, password: &str) -> Result<ImapSession, ConnectError> {
    let addr = format!("{}:{}", mb.host, mb.port());
    match tokio::time::timeout(CONNECT_TIMEOUT, open_inner(mb, password, &addr)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout(addr, CONNECT_TIMEOUT)),
    }
}

async fn open_inner(mb: &MailboxConfig, password: &str, addr: &str) -> Result<ImapSession, ConnectError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| ConnectError::Network(addr.to_string(), e))?;
    let _ = tcp.set_nodelay(true);
    let client = match mb.tls {
        TlsMode::None => greeted(Client::new(ImapStream::Plain(tcp))).await?,
        TlsMode::Implicit => greeted(Client::new(secure(mb, tcp, addr).await?)).await?,
        TlsMode::Starttls => {
            let mut plain = greeted(Client::new(ImapStream::Plain(tcp))).await?;
            plain.run_command_and_check_ok("STARTTLS", None).await?;
            let ImapStream::Plain(tcp) = plain.into_inner() else {
                unreachable!("the connection was plain until STARTTLS")
            };
            // No second greeting after STARTTLS (RFC 3501 6.2.1).
            Client::new(secure(mb, tcp, addr).await?)
        }
    };
    client.login(&mb.username, password).await.map_err(|(e, _)| {
        // A server may quote the refused LOGIN line back.
        let said = super::command::refusal_text(&e);
        let said = crate::config::redact::without_secret(&said, &mb.username, password);
        ConnectError::Login(mb.username.clone(), said)
    })
}

async fn greeted(mut client: Client<ImapStream>) -> Result<Client<ImapStream>, ConnectError> {
    match client.read_response().await {
        Ok(Some(_)) => Ok(client),
        Ok(None) => Err(ConnectError::Imap(async_imap::error::Error::ConnectionLost)),
        Err(e) => Err(ConnectError::Imap(e.into())),
    }
}

async fn secure(mb: &MailboxConfig, tcp: TcpStream, addr: &str) -> Result<ImapStream, ConnectError> {
    let config = crate::tls::client_config(mb.ca_file.as_deref()).map_err(ConnectError::Config)?;
    let name = ServerName::try_from(mb.host.trim_start_matches('[').trim_end_matches(']').to_string())
        .map_err(|e| ConnectError::Config(format!("host {:?}: {e}", mb.host)))?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| ConnectError::Tls(addr.to_string(), e.to_string()))?;
    Ok(ImapStream::Tls(Box::new(tls)))
}
