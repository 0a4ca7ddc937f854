//! How mailroom trusts the servers it logs in to (IMAP mailboxes, the SMTP
//! relay): the system roots plus an optional `ca_file`, certificates and
//! host names always verified, rustls on the ring provider chosen
//! explicitly so the process never depends on which crypto provider happens
//! to be compiled in.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

/// The certificates to trust: the system roots, then those of `ca_file`
/// (see [`ca_certificates`]).
pub fn trust_anchors(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = rustls_native_certs::load_native_certs().certs;
    certs.extend(ca_certificates(ca_file)?);
    Ok(certs)
}

/// The certificates of `ca_file`: one that cannot be read or holds none is
/// an error naming it, never silently "no extra trust".
fn ca_certificates(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, String> {
    let Some(path) = ca_file else { return Ok(Vec::new()) };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file {}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// A client configuration trusting [`trust_anchors`]; an unusable system
/// root is skipped, an unusable `ca_file` certificate is an error.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    for cert in ca_certificates(ca_file)? {
        let path = ca_file.map(Path::display);
        roots
            .add(cert)
            .map_err(|e| format!("ca_file {}: {e}", path.map_or_else(String::new, |p| p.to_string())))?;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("rustls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_for_both_uses() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(
            trust_anchors(Some(&empty))
                .unwrap_err()
                .contains("no certificate in it")
        );
        assert!(
            client_config(Some(&empty))
                .unwrap_err()
                .contains("no certificate in it")
        );
        let missing = dir.path().join("missing.pem");
        assert!(trust_anchors(Some(&missing)).unwrap_err().contains("missing.pem"));
        assert!(client_config(None).is_ok());
    }
}
