//! The SMTP relay notifications go out through, and what its answers mean.
//!
//! One pooled lettre transport serves the whole process: opening a TLS
//! connection per mail (as django-helpdesk does) costs a handshake per
//! recipient, which is what makes a 2,000-subscriber fan-out take minutes.
//! Certificates and the host name are always verified, against the system
//! roots plus the configured `ca_file`, with rustls on the ring provider.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::compose::compose;
use crate::config::secret::TlsMode;
use crate::config::smtp::SmtpConfig;
use crate::error::{Error, Result};
use crate::store::outbox::{Claimed, Delivery};

type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// A configured relay.
#[derive(Clone)]
pub struct Relay {
    /// The pooled transport; `None` when `smtp.pool = false`.
    pooled: Option<Transport>,
    connector: Connector,
    from: Mailbox,
}

/// Builds transports on demand (one per mail without the pool).
#[derive(Clone)]
struct Connector {
    config: SmtpConfig,
    tls: Tls,
    credentials: Option<Credentials>,
}

impl Connector {
    fn build(&self, pool_size: Option<u32>) -> Transport {
        let c = &self.config;
        let mut b: AsyncSmtpTransportBuilder =
            Transport::builder_dangerous(c.host.trim_start_matches('[').trim_end_matches(']'))
                .port(c.port())
                .tls(self.tls.clone())
                .timeout(Some(c.timeout));
        if let Some(name) = &c.hello_name {
            b = b.hello_name(ClientId::Domain(name.clone()));
        }
        if let Some(creds) = &self.credentials {
            b = b.credentials(creds.clone());
        }
        b = b.pool_config(match pool_size {
            Some(n) => PoolConfig::new().max_size(n).idle_timeout(Duration::from_secs(60)),
            // A one-mail transport: its single connection closes with it.
            None => PoolConfig::new()
                .max_size(1)
                .min_idle(0)
                .idle_timeout(Duration::from_millis(1)),
        });
        b.build()
    }
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
        let tls = match config.tls {
            TlsMode::None => Tls::None,
            TlsMode::Starttls => Tls::Required(tls_parameters(config)?),
            TlsMode::Implicit => Tls::Wrapper(tls_parameters(config)?),
        };
        let connector = Connector {
            config: config.clone(),
            tls,
            credentials,
        };
        let pooled = config.pool.then(|| connector.build(Some(config.connections)));
        Ok(Relay {
            pooled,
            connector,
            from,
        })
    }

    /// Sends one notification and says what came of it.
    pub async fn send(&self, row: &Claimed) -> Delivery {
        let mail = match compose(row, &self.from) {
            Ok(m) => m,
            Err(e) => {
                return Delivery::Permanent {
                    error: e,
                    bounce: false,
                };
            }
        };
        let result = match &self.pooled {
            Some(t) => t.send(mail).await,
            None => {
                let t = self.connector.build(None);
                let r = t.send(mail).await;
                drop(t);
                r
            }
        };
        match result {
            Ok(reply) => Delivery::Sent(reply_text(reply.code().to_string(), reply.message())),
            Err(e) if e.is_permanent() => Delivery::Permanent {
                error: one_line(&e.to_string()),
                bounce: true,
            },
            Err(e) => Delivery::Transient(one_line(&e.to_string())),
        }
    }
}

/// System roots plus `ca_file`, the host name checked.
fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters> {
    let domain = config.host.trim_start_matches('[').trim_end_matches(']').to_string();
    let mut params = TlsParameters::builder(domain).certificate_store(CertificateStore::None);
    for cert in rustls_native_certs::load_native_certs().certs {
        if let Ok(c) = Certificate::from_der(cert.to_vec()) {
            params = params.add_root_certificate(c);
        }
    }
    if let Some(path) = &config.ca_file {
        let pem = std::fs::read(path).map_err(|e| Error::Config(format!("smtp.ca_file {}: {e}", path.display())))?;
        let cert =
            Certificate::from_pem(&pem).map_err(|e| Error::Config(format!("smtp.ca_file {}: {e}", path.display())))?;
        params = params.add_root_certificate(cert);
    }
    params
        .build_rustls()
        .map_err(|e| Error::Config(format!("smtp TLS settings: {e}")))
}

fn reply_text<'a>(code: String, lines: impl Iterator<Item = &'a str>) -> String {
    let text: Vec<&str> = lines.collect();
    one_line(&format!("{code} {}", text.join(" ")))
}

/// Server replies and errors span lines; the outbox keeps one.
fn one_line(s: &str) -> String {
    super::compose::header_text(s)
}
