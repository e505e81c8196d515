//! Starting and stopping the emulator: seed the store, bind the API and admin listeners
//! (plain HTTP or self-signed TLS; HTTP/1.1 and h2 either way), serve until shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cost::{Cost, SimStats};
use super::list::minor_of;
use super::registry::Registry;
use super::seed::{self, SeedSpec};
use super::server::{self, DRAIN, Sim};
use super::store::Store;
use super::{SimBody, SimOptions, admin};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("users file {}: {message}", path.display())]
    Users { path: PathBuf, message: String },
    #[error("TLS setup failed: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("server version {0:?} is not of the form vMAJOR.MINOR[.PATCH]")]
    Version(String),
}

/// A running emulator. Dropping it without [`RunningSim::shutdown`] leaves the tasks running
/// until the runtime ends.
pub struct RunningSim {
    /// API listener.
    pub addr: SocketAddr,
    /// Admin listener: GET /metrics, /healthz; POST /compact.
    pub admin_addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, or `https://…` with TLS.
    pub url: String,
    /// The self-signed serving certificate (PEM) when TLS is on.
    pub ca_pem: Option<String>,
    sim: Arc<Sim>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningSim {
    /// A snapshot of the cost model's counters.
    pub fn stats(&self) -> SimStats {
        self.sim.cost.stats()
    }

    /// The current resourceVersion of the store.
    pub fn resource_version(&self) -> u64 {
        self.sim.store.current_rv()
    }

    /// Forgets the change history (an etcd compaction): older watches and continue tokens get 410.
    pub fn compact(&self) {
        self.sim.store.compact();
    }

    /// A kubeconfig pointing at this emulator (context `sim`), with a bearer token if given
    /// (else a placeholder token, which only a sim with a users file would refuse).
    pub fn kubeconfig_yaml(&self, user_token: Option<&str>) -> String {
        let mut cluster = json!({"server": self.url});
        if let Some(ca) = &self.ca_pem {
            cluster["certificate-authority-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(ca));
        }
        // Without a token kubectl would prompt for a username on https: give it a token the
        // emulator ignores when authentication is off.
        let user = json!({"token": user_token.unwrap_or("kubeguard-sim-anonymous")});
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "sim", "cluster": cluster}],
            "users": [{"name": "sim", "user": user}],
            "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "sim"}}],
            "current-context": "sim",
            "preferences": {},
        });
        serde_norway::to_string(&doc).unwrap_or_default()
    }

    /// Stops accepting, ends watches cleanly, and returns when connections are done (or after
    /// a bounded drain).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.sim.store.close_all_watches();
        self.sim.pods_gone.cancel_all();
        for t in self.tasks {
            let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), t).await;
        }
    }
}

/// Binds, seeds and serves in background tasks.
pub async fn start(opts: SimOptions) -> Result<RunningSim, SimError> {
    let minor = minor_of(&opts.server_version)
        .ok_or_else(|| SimError::Version(opts.server_version.clone()))?;
    let users = match &opts.users {
        None => None,
        Some(path) => Some(Arc::new(super::auth::Users::load(path).map_err(|e| {
            // auth names the file itself; keep one mention of it.
            let prefix = format!("users file {}: ", path.display());
            SimError::Users {
                path: path.clone(),
                message: e.strip_prefix(&prefix).unwrap_or(&e).to_string(),
            }
        })?)),
    };
    let store = Arc::new(Store::new(Registry::builtin(), opts.history_events));
    seed_store(&store, &opts);
    let api = TcpListener::bind(opts.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: opts.listen,
            source,
        })?;
    let admin_l = TcpListener::bind(opts.admin_listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: opts.admin_listen,
            source,
        })?;
    let addr = api.local_addr().map_err(|source| SimError::Bind {
        addr: opts.listen,
        source,
    })?;
    let admin_addr = admin_l.local_addr().map_err(|source| SimError::Bind {
        addr: opts.admin_listen,
        source,
    })?;
    let (tls, ca_pem) = if opts.tls {
        let pair = crate::tls::self_signed(&[])?;
        let cfg = crate::tls::server_config(&pair, None)?;
        (
            Some(tokio_rustls::TlsAcceptor::from(cfg)),
            Some(pair.cert_pem),
        )
    } else {
        (None, None)
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    let (stop, stop_rx) = watch::channel(false);
    let cost = Arc::new(Cost::new(
        opts.etcd_concurrency,
        opts.etcd_cost_per_object,
        opts.cache_cost_per_object,
    ));
    let sim = Arc::new(Sim {
        store,
        cost,
        opts,
        minor,
        shutdown: stop_rx.clone(),
        pods_gone: Default::default(),
        addr_string: addr.to_string(),
        users,
    });
    let api_sim = sim.clone();
    let api_task = tokio::spawn(serve(api, tls, stop_rx.clone(), move |req| {
        let sim = api_sim.clone();
        async move { Ok::<_, Infallible>(server::handle(sim, req).await) }
    }));
    let admin_sim = sim.clone();
    let admin_task = tokio::spawn(serve(admin_l, None, stop_rx, move |req| {
        let sim = admin_sim.clone();
        async move { Ok::<_, Infallible>(admin::handle(sim, req).await) }
    }));
    Ok(RunningSim {
        addr,
        admin_addr,
        url,
        ca_pem,
        sim,
        stop,
        tasks: vec![api_task, admin_task],
    })
}

/// Creates the default namespaces and the seeded cluster, dated now and with nodes reporting
/// the emulator's version.
fn seed_store(store: &Store, opts: &SimOptions) {
    let spec = SeedSpec {
        nodes: opts.nodes,
        namespaces: opts.namespaces,
        pods: opts.pods,
    };
    let defaults = ["default", "kube-system", "kube-public", "kube-node-lease"].map(|ns| {
        (
            "",
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
    });
    let now = super::store::now_rfc3339();
    let objects = defaults
        .into_iter()
        .chain(seed::objects_at(spec, &opts.server_version, &now));
    store.seed(objects, &now);
}

/// Accepts connections until `stop`, serving each with HTTP/1.1 + h2 (with upgrades, for exec),
/// then drains them gracefully within a bound.
async fn serve<F, Fut>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    handler: F,
) where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<http::Response<SimBody>, Infallible>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_conn(TokioIo::new(tcp), watcher, handler).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(s) => serve_conn(TokioIo::new(s), watcher, handler).await,
                    Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                },
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
}

async fn serve_conn<I, F, Fut>(
    io: TokioIo<I>,
    watcher: hyper_util::server::graceful::Watcher,
    handler: F,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<http::Response<SimBody>, Infallible>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder
        .serve_connection_with_upgrades(io, service_fn(handler))
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
