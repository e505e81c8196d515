//! `kubeguard serve`: the whole gateway assembled in one place.
//!
//! Order of assembly, and why:
//! 1. metrics first: every later part records into the one registry;
//! 2. the upstream (kube config → pooled clients, credentials): nothing is served without it;
//! 3. TLS material: the serving certificate must exist before a listener accepts;
//! 4. listeners bound before anything is announced, so `--listen 127.0.0.1:0` reports real ports;
//! 5. the proxy pipeline, shared by all API listeners; the admin listener apart from it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::Admin;
use crate::config::{FileConfig, ListenAddr};
use crate::cost::Accounting;
use crate::guards::upstream_facts::UpstreamFacts;
use crate::identity::Authenticator;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::policy::engine::PolicyEngine;
use crate::proxy::Proxy;
use crate::server::{self, ListenError, Listener};
use crate::tls::{self, CertPair, TlsError};
use crate::upstream::{Upstream, UpstreamError};
use crate::workers::Workers;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("invalid listen address: {0}")]
    ListenAddr(String),
    #[error("invalid policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Ledger(#[from] crate::cost::persist::PersistError),
    #[error(transparent)]
    Otlp(#[from] crate::cost::otlp::OtlpError),
    #[error("cannot start the connection worker threads (server.connectionWorkers): {0}")]
    Workers(std::io::Error),
}

/// One bound API listener.
#[derive(Clone, Copy, Debug)]
pub struct BoundListener {
    pub addr: SocketAddr,
    pub tls: bool,
}

/// A running gateway.
pub struct RunningServe {
    pub listeners: Vec<BoundListener>,
    pub admin_addr: SocketAddr,
    /// The serving certificate (self-signed or given), PEM, when any listener serves TLS.
    pub cert_pem: Option<String>,
    /// Whether the serving certificate was generated (then clients must trust `cert_pem`).
    pub self_signed: bool,
    pub metrics: Arc<Metrics>,
    /// The cost ledger and limits (tests and the lead's wiring reach the ledger here).
    pub accounting: Arc<Accounting>,
    /// The identity step (its token cache is observable for tests and benchmarks).
    pub auth: Arc<Authenticator>,
    /// The live policy, the guards and what they learned.
    pub policy: Arc<PolicyEngine>,
    upstream: Upstream,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningServe {
    /// The URL clients should use: the first TLS listener, else the first plain one.
    pub fn url(&self) -> String {
        let l = self
            .listeners
            .iter()
            .find(|l| l.tls)
            .or_else(|| self.listeners.first())
            .copied();
        match l {
            Some(l) => {
                let host = if l.addr.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    l.addr.ip().to_string()
                };
                let host = if l.addr.is_ipv6() && !l.addr.ip().is_unspecified() {
                    format!("[{host}]")
                } else {
                    host
                };
                format!(
                    "{}://{}:{}",
                    if l.tls { "https" } else { "http" },
                    host,
                    l.addr.port()
                )
            }
            None => String::new(),
        }
    }

    /// A kubeconfig for clients of this gateway: its URL, its certificate, and the upstream
    /// context's user.
    pub fn client_kubeconfig(&self) -> kube::config::Kubeconfig {
        let url = self.url();
        let ca = if url.starts_with("https") {
            self.cert_pem.as_deref()
        } else {
            None
        };
        let auth = self.upstream.config().auth_info.clone();
        crate::kubeconfig::client_kubeconfig(
            "kubeguard",
            &url,
            ca,
            Some(auth),
            Some(&self.upstream.config().default_namespace),
        )
    }

    /// Stops accepting, lets in-flight requests finish within the grace period, then returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Runs until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        crate::cli::wait_for_signal().await;
        tracing::info!("shutting down: no new connections; draining in-flight requests");
        self.shutdown().await;
    }
}

/// Starts the gateway described by `config` in front of the apiserver of `upstream_config`.
pub async fn start(
    config: &FileConfig,
    upstream_config: kube::Config,
) -> Result<RunningServe, ServeError> {
    let metrics = Arc::new(Metrics::new());
    let upstream = Upstream::new(upstream_config, &config.upstream_options())?;
    tracing::info!(upstream = %upstream.url(), "upstream configured");

    let addrs = config
        .server
        .listen
        .iter()
        .map(|l| ListenAddr::parse(l).map_err(ServeError::ListenAddr))
        .collect::<Result<Vec<_>, _>>()?;
    let (cert, self_signed) = serving_cert(config, &addrs)?;
    let client_ca = match &config.identity.client_ca {
        Some(path) => Some(read_text(path, "identity.clientCA")?),
        None => None,
    };
    let tls_config = match &cert {
        Some(pair) if addrs.iter().any(|a| a.tls) => Some(tls::server_config(
            pair,
            client_ca.as_deref().map(str::as_bytes),
        )?),
        _ => None,
    };

    let mut listeners = Vec::new();
    for a in &addrs {
        let tls = if a.tls { tls_config.clone() } else { None };
        listeners.push(Listener::bind(a.addr, tls).await?);
    }
    let admin_listener = Listener::bind_admin(config.server.admin_listen).await?;

    // Identity before the pipeline: every request is identified first (identity/).
    let auth = Arc::new(Authenticator::new(
        config.identity.settings(),
        upstream.clone(),
        metrics.identity.clone(),
    ));
    // The policy engine. The upstream's version and discovery are read in the background
    // (start never waits on the upstream); until they are known the LIST rewrite forwards.
    // A config file is watched for policy reloads.
    let facts = Arc::new(UpstreamFacts::default());
    let engine = Arc::new(PolicyEngine::new(
        Policy::compile(&config.policy)?,
        facts.clone(),
    ));
    // The ledger and limits: read back from disk before the first request is counted.
    let accounting = Arc::new(Accounting::new(&config.cost, &config.limits)?);
    let proxy = Arc::new(
        Proxy::new(
            upstream.clone(),
            metrics.clone(),
            config.proxy_settings(),
            engine.clone(),
        )
        .with_authenticator(auth.clone())
        .with_inflight_cap(accounting.inflight.clone())
        .with_accounting(accounting.clone()),
    );
    let admin =
        Arc::new(Admin::new(metrics.clone(), upstream.clone()).with_accounting(accounting.clone()));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let grace = config.server.shutdown_grace_period;
    let mut tasks = JoinSet::new();
    tasks.spawn(
        engine
            .clone()
            .refresh_upstream(upstream.clone(), shutdown_rx.clone()),
    );
    if let Some(path) = &config.path {
        tasks.spawn(crate::policy::reload::run(
            path.clone(),
            engine.store.clone(),
            metrics.clone(),
            shutdown_rx.clone(),
        ));
    }
    accounting.spawn_background(&config.cost, &mut tasks, &shutdown_rx)?;
    let bound: Vec<BoundListener> = listeners
        .iter()
        .map(|l| BoundListener {
            addr: l.addr,
            tls: l.is_tls(),
        })
        .collect();
    let workers = match config.server.connection_workers {
        Some(0) => None,
        Some(n) => Some(Workers::start(n).map_err(ServeError::Workers)?),
        None => Some(Workers::per_core().map_err(ServeError::Workers)?),
    };
    for listener in listeners {
        tracing::info!(
            addr = %listener.addr,
            tls = listener.is_tls(),
            workers = workers.as_ref().map_or(0, |w| w.len()),
            "serving the Kubernetes API"
        );
        let serving = server::Serving {
            front: config.server.http1_front_end.then(|| proxy.clone()),
            workers: workers.clone(),
        };
        let proxy = proxy.clone();
        let handler = move |req, conn| proxy.clone().handle(req, conn);
        tasks.spawn(server::serve(
            listener,
            config.limits(),
            metrics.clone(),
            handler,
            serving,
            shutdown_rx.clone(),
            grace,
        ));
    }
    let admin_addr = admin_listener.addr;
    tracing::info!(addr = %admin_addr, "serving /healthz, /readyz and /metrics");
    let admin_handler = move |req, _conn| admin.clone().handle(req);
    tasks.spawn(server::serve(
        admin_listener,
        config.limits(),
        metrics.clone(),
        admin_handler,
        server::Serving::default(),
        shutdown_rx,
        Duration::from_secs(1),
    ));

    Ok(RunningServe {
        listeners: bound,
        admin_addr,
        cert_pem: cert.map(|c| c.cert_pem),
        self_signed,
        metrics,
        accounting,
        auth,
        policy: engine,
        upstream,
        shutdown: shutdown_tx,
        tasks,
    })
}

/// The serving certificate: the configured files, or a self-signed one for every listen address.
fn serving_cert(
    config: &FileConfig,
    addrs: &[ListenAddr],
) -> Result<(Option<CertPair>, bool), ServeError> {
    if !addrs.iter().any(|a| a.tls) {
        return Ok((None, false));
    }
    if let (Some(cert), Some(key)) = (&config.server.tls_cert, &config.server.tls_key) {
        let pair = CertPair {
            cert_pem: read_text(cert, "--tls-cert")?,
            key_pem: read_text(key, "--tls-key")?,
        };
        return Ok((Some(pair), false));
    }
    let mut names: Vec<String> = config.server.tls_sans.clone();
    for a in addrs {
        if !a.addr.ip().is_unspecified() {
            names.push(a.addr.ip().to_string());
        }
    }
    let pair = tls::self_signed(&names)?;
    tracing::info!(
        sans = ?names,
        "no --tls-cert given: generated a self-signed serving certificate (clients must trust it; \
         --kubeconfig-out writes a kubeconfig that does)"
    );
    Ok((Some(pair), true))
}

fn read_text(path: &Path, what: &'static str) -> Result<String, ServeError> {
    std::fs::read_to_string(path).map_err(|source| ServeError::ReadFile {
        what,
        path: path.display().to_string(),
        source,
    })
}
