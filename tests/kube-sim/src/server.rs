//! The server: binds 127.0.0.1 (ephemeral port by default), makes the TLS material, writes the
//! kubeconfig, creates the initial namespaces, serves HTTP/1.1 and HTTP/2 over TLS until shut
//! down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admission::{self, FieldValidation, WriteOpts};
use crate::api::{self, App};
use crate::kubeconfig;
use crate::store::Store;
use crate::tls::{TlsError, TlsMaterial};

/// Failures to start the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or writing files failed.
    #[error("failed to start the API server")]
    Io(#[from] std::io::Error),
    /// TLS material could not be made.
    #[error("failed to set up TLS")]
    Tls(#[from] TlsError),
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Directory for the kubeconfig (`<dir>/kubeconfig`) and the CA (`<dir>/ca.crt`).
    pub dir: PathBuf,
    /// Port on 127.0.0.1; 0 for an ephemeral one.
    pub port: u16,
    /// How many events watches can resume from.
    pub watch_history: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Where pod logs are read: `<dir>/<namespace>/<pod>/<container>.log`.
    pub pod_log_dir: Option<PathBuf>,
    /// More names or IP addresses for the serving certificate (e.g. the address pods use).
    pub extra_sans: Vec<String>,
}

impl ServerOptions {
    /// Defaults: ephemeral port, 10 000 events of history, bookmarks every 5 s, pod logs in
    /// `<dir>/logs`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        ServerOptions {
            pod_log_dir: Some(dir.join("logs")),
            dir,
            port: 0,
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(5),
            extra_sans: Vec::new(),
        }
    }
}

/// A running API server; shut down by `shutdown()` or on drop.
#[derive(Debug)]
pub struct ApiServer {
    url: String,
    kubeconfig: PathBuf,
    store: Store,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

const INITIAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

impl ApiServer {
    /// Starts a server.
    pub async fn start(opts: ServerOptions) -> Result<Self, ServerError> {
        // The workspace links both of rustls' providers (object_store brings aws-lc-rs):
        // choose one for the process, or every client in it panics at its first handshake.
        let _ = rustls::crypto::ring::default_provider().install_default();
        std::fs::create_dir_all(&opts.dir)?;
        let tls = TlsMaterial::generate(&opts.extra_sans)?;
        let listener = TcpListener::bind(("127.0.0.1", opts.port)).await?;
        let addr = listener.local_addr()?;
        let url = format!("https://{addr}");
        let kubeconfig = opts.dir.join("kubeconfig");
        std::fs::write(opts.dir.join("ca.crt"), &tls.ca_pem)?;
        std::fs::write(
            &kubeconfig,
            kubeconfig::render(&url, &tls.ca_pem, "kube-sim"),
        )?;

        let store = Store::new(opts.watch_history);
        bootstrap(&store);
        let app = App {
            store: store.clone(),
            address: addr.to_string(),
            pod_log_dir: opts.pod_log_dir.clone().map(Arc::new),
            bookmark_interval: opts.bookmark_interval,
        };
        let router = Router::new().fallback(api::dispatch).with_state(app);
        let (stop, stopped) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
        let task = tokio::spawn(serve(listener, acceptor, router, stopped));
        tracing::info!(url = %url, kubeconfig = %kubeconfig.display(), "api server started");
        Ok(ApiServer {
            url,
            kubeconfig,
            store,
            stop,
            task: Some(task),
        })
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The kubeconfig written for clients.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube-rs client for this server (from the kubeconfig).
    pub async fn client(&self) -> Result<kube::Client, kube::Error> {
        kubeconfig::client_from(&self.kubeconfig).await
    }

    /// The object store (for tests and in-process tooling).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Forgets the watch history and ends open watches: clients resuming get 410 Gone.
    pub fn compact(&self) {
        self.store.compact();
    }

    /// Stops serving and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn bootstrap(store: &Store) {
    let mut state = store.lock();
    let def = state
        .registry
        .get("", "v1", "namespaces")
        .cloned()
        .expect("namespaces are built in");
    let opts = WriteOpts {
        manager: "kube-apiserver".into(),
        apply: false,
        sub: None,
        field_validation: FieldValidation::Ignore,
    };
    for ns in INITIAL_NAMESPACES {
        let obj = json!({"metadata": {"name": ns}});
        if let Err(e) = admission::create(&mut state, &def, "", obj, &opts) {
            tracing::error!(namespace = ns, error = %e, "failed to create an initial namespace");
        }
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let service = TowerToHyperService::new(router);
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                },
                _ = stop.changed() => {}
            }
        });
    }
}
