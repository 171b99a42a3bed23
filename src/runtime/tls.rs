//! The certificates of the TLS listeners, replaceable while the process runs.
//!
//! Each TLS listener answers handshakes through a [`ListenerCert`] resolver instead of a
//! certificate fixed when the listener was built, so a reload (SIGHUP, `POST /reload`, or
//! `server.watch_config` noticing a renewed cert-manager Secret) hands new handshakes the new
//! certificate. A connection keeps the certificate it was established with: TLS authenticates
//! the server once, at the handshake, so existing connections finish undisturbed.

use arc_swap::ArcSwap;
use pingora_rustls::sign::CertifiedKey;
use pingora_rustls::{ClientHello, CryptoProvider, ResolvesServerCert};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// The certificate chain and key in the PEM files `cert` and `key`, checked to belong together.
pub fn load(cert: &str, key: &str) -> Result<Arc<CertifiedKey>, String> {
    let (chain, private) = match pingora_rustls::load_certs_and_key_files(cert, key) {
        Ok(Some(pair)) => pair,
        Ok(None) => {
            return Err(format!(
                "'{cert}' holds no PEM certificate or '{key}' no PEM private key (PKCS#1, PKCS#8 or SEC1)"
            ))
        }
        Err(e) => return Err(format!("cannot read '{cert}' or '{key}': {e}")),
    };
    pingora_rustls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .ok_or_else(|| "no TLS crypto provider is installed".to_string())?;
    CertifiedKey::from_der(chain, private, provider)
        .map(Arc::new)
        .map_err(|e| format!("the key in '{key}' does not fit the certificate in '{cert}': {e}"))
}

/// One listener's current certificate.
#[derive(Debug)]
pub struct ListenerCert {
    current: ArcSwap<CertifiedKey>,
}

impl ListenerCert {
    pub fn new(first: Arc<CertifiedKey>) -> Arc<ListenerCert> {
        Arc::new(ListenerCert {
            current: ArcSwap::new(first),
        })
    }
}

impl ResolvesServerCert for ListenerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The TLS listeners of this process, by address.
#[derive(Default)]
pub struct ListenerCerts {
    by_address: BTreeMap<SocketAddr, Arc<ListenerCert>>,
}

impl ListenerCerts {
    /// The resolver for a listener bound at `address`, starting with `first`.
    pub fn add(&mut self, address: SocketAddr, first: Arc<CertifiedKey>) -> Arc<ListenerCert> {
        let cert = ListenerCert::new(first);
        self.by_address.insert(address, cert.clone());
        cert
    }

    /// Hand new handshakes the certificates of a reloaded config. A listener the running
    /// process does not have (added by the reload: it needs an upgrade) is left out; one whose
    /// certificate did not change is left alone.
    pub fn install(&self, loaded: &BTreeMap<SocketAddr, Arc<CertifiedKey>>) {
        for (address, cert) in &self.by_address {
            let Some(new) = loaded.get(address) else {
                continue;
            };
            if cert.current.load().cert != new.cert {
                cert.current.store(new.clone());
                log::info!("listener {address}: TLS certificate replaced; new connections use it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_pair(dir: &std::path::Path, name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("certificate");
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, c.cert.pem()).expect("write");
        std::fs::write(&key, c.key_pair.serialize_pem()).expect("write");
        (cert.display().to_string(), key.display().to_string())
    }

    #[test]
    fn a_pair_loads_and_mismatched_or_missing_files_are_explained() {
        let dir = tempfile::tempdir().expect("dir");
        let (a_cert, a_key) = pem_pair(dir.path(), "a.test");
        let (_, b_key) = pem_pair(dir.path(), "b.test");
        assert!(load(&a_cert, &a_key).is_ok());
        let mismatch = load(&a_cert, &b_key).expect_err("keys of another certificate");
        assert!(mismatch.contains("does not fit"), "{mismatch}");
        let missing = load(&a_cert, "/nonexistent/key.pem").expect_err("no key file");
        assert!(missing.contains("cannot read"), "{missing}");
        let not_pem = dir.path().join("empty.pem");
        std::fs::write(&not_pem, "not pem").expect("write");
        let empty = load(&not_pem.display().to_string(), &a_key).expect_err("no certificate");
        assert!(empty.contains("no PEM certificate"), "{empty}");
    }

    #[test]
    fn install_replaces_only_known_listeners_with_changed_certificates() {
        let dir = tempfile::tempdir().expect("dir");
        let (a_cert, a_key) = pem_pair(dir.path(), "a.test");
        let (b_cert, b_key) = pem_pair(dir.path(), "b.test");
        let a = load(&a_cert, &a_key).expect("a");
        let b = load(&b_cert, &b_key).expect("b");
        let here: SocketAddr = "127.0.0.1:8443".parse().expect("addr");
        let elsewhere: SocketAddr = "127.0.0.1:9443".parse().expect("addr");
        let mut certs = ListenerCerts::default();
        let resolver = certs.add(here, a.clone());
        assert_eq!(resolver.current.load().cert, a.cert);
        certs.install(&BTreeMap::from([(elsewhere, b.clone())]));
        assert_eq!(resolver.current.load().cert, a.cert, "another address");
        certs.install(&BTreeMap::from([(here, b.clone())]));
        assert_eq!(resolver.current.load().cert, b.cert, "rotated");
    }
}
