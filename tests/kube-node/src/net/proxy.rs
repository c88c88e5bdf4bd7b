//! The way pods reach the API server, which listens on 127.0.0.1 only: a TCP proxy on the bridge
//! address, port 443, forwarding bytes unchanged (TLS passes through). Also tells whether the
//! server's certificate names the bridge address, which decides what pods are told to dial.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    task: JoinHandle<()>,
    /// Where it listens.
    pub listen: SocketAddr,
}

impl Proxy {
    /// Listens on `listen` and forwards every connection to `upstream`.
    pub async fn start(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, peer)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    match TcpStream::connect(upstream).await {
                        Ok(mut out) => {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                        Err(e) => {
                            tracing::warn!(peer = %peer, upstream = %upstream, error = %e,
                                "api server proxy could not connect");
                        }
                    }
                });
            }
        });
        tracing::debug!(listen = %listen, upstream = %upstream, "api server proxy up");
        Ok(Proxy { task, listen })
    }

    /// Stops accepting (open connections end with their tasks' peers).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether the server at `addr` presents a certificate, signed by the CA in `ca_pem_path`,
/// that is valid for the IP `name` (a TLS handshake that verifies it).
pub async fn certificate_names_ip(addr: SocketAddr, ca_pem_path: &Path, name: IpAddr) -> bool {
    let Ok(pem) = std::fs::read(ca_pem_path) else {
        return false;
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(builder) =
        rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()
    else {
        return false;
    };
    let config = builder.with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let Ok(tcp) = TcpStream::connect(addr).await else {
        return false;
    };
    let handshake = connector.connect(ServerName::IpAddress(name.into()), tcp);
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), handshake).await,
        Ok(Ok(_))
    )
}
