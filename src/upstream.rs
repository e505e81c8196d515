//! Forward: the connection to kube-apiserver.
//!
//! Built from a kubeconfig context or the in-cluster service account by the `kube` crate, so CA,
//! client certificates, tokens and exec plugins work exactly as they do for kubectl. Three ways
//! out, because requests differ in how long they hold a connection:
//!
//! - `pooled`: HTTP/2 when the apiserver offers it (one connection multiplexes many short requests);
//! - `streaming`: HTTP/1.1 only, for watches, `logs -f` and other long-running requests. The
//!   apiserver allows 100 concurrent streams per HTTP/2 connection (k8s-facts §5) and hyper's pool
//!   does not open a second connection when they are used up, so a few hundred watches on the
//!   pooled client would starve every short request queued behind them;
//! - `upgrade`: a fresh HTTP/1.1 connection per exec/attach/port-forward, never pooled, so a
//!   refused upgrade leaves no authenticated connection behind (CVE-2018-1002105, k8s-facts §4).
//!
//! `pooled` and `streaming` are one pool per connection worker (`workers.rs`), so a request and
//! the upstream connection it goes out on are served by the same thread. The HTTP/1.1 front end
//! (`front/`) does not use them: each of its client connections has an upstream connection of its own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, ServiceExt};

/// The body of every request kubeguard sends upstream: the client's own body streamed through,
/// or a small body kubeguard made itself (probes, reviews).
pub type UpstreamBody = http_body_util::Either<RequestBody, Full<Bytes>>;

/// A client's request body: hyper's, one arriving through kubeguard's own h2 server
/// (`front/h2own`, released to the client's flow control as it is taken), or a body given
/// whole (`None`: the request had none).
pub enum RequestBody {
    Hyper(Incoming),
    H2(crate::front::h2own::H2Body),
    Whole(Option<Bytes>),
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Hyper(b) => std::pin::Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(BoxError::from))),
            RequestBody::H2(b) => std::pin::Pin::new(b).poll_frame(cx),
            RequestBody::Whole(b) => {
                std::task::Poll::Ready(b.take().map(|b| Ok(http_body::Frame::data(b))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(b) => b.is_end_stream(),
            RequestBody::H2(b) => b.is_end_stream(),
            RequestBody::Whole(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            RequestBody::Hyper(b) => b.size_hint(),
            RequestBody::H2(b) => b.size_hint(),
            RequestBody::Whole(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// Why the upstream could not be set up or reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot load kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("cannot find upstream credentials: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("cannot configure upstream client: {0}")]
    Client(#[from] kube::Error),
    #[error("upstream server URL {url:?} is not usable: {why}")]
    Url { url: String, why: &'static str },
    #[error("upstream unreachable: {0}")]
    Connect(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream connection failed: {0}")]
    Request(String),
    #[error("cannot obtain upstream credentials: {0}")]
    Credentials(String),
}

/// Connection settings that do not come from the kubeconfig.
#[derive(Clone, Debug)]
pub struct UpstreamOptions {
    pub connect_timeout: Duration,
    /// Idle pooled connections are closed after this long.
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            connect_timeout: Duration::from_secs(10),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: 256,
        }
    }
}

type Connector = HttpsConnector<HttpConnector>;

/// A connection of the HTTP/1.1 front end to the apiserver, with tokio's I/O traits. The TLS
/// state is boxed: a plain connection (a sidecar's) does not carry its size.
pub enum H1Io {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TokioIo<TokioIo<tokio::net::TcpStream>>>>),
}

impl tokio::io::AsyncRead for H1Io {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            H1Io::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            H1Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for H1Io {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            H1Io::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            H1Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            H1Io::Plain(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
            H1Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            H1Io::Plain(s) => s.is_write_vectored(),
            H1Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            H1Io::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            H1Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            H1Io::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            H1Io::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How long a stamped `Authorization` value of kubeguard's own is reused.
const OWN_AUTH_REUSE: Duration = Duration::from_secs(1);
type Stamper = BoxCloneSyncService<Request<Empty<Bytes>>, Response<Empty<Bytes>>, BoxError>;

/// A configured upstream apiserver.
#[derive(Clone)]
pub struct Upstream {
    scheme: Scheme,
    authority: Authority,
    /// Path prefix of the server URL (e.g. Rancher's `/k8s/clusters/c-xxxx`), without a trailing `/`.
    prefix: String,
    /// One client (one pool) per connection worker and one for other threads
    /// (`workers::slot`): a pooled connection's task runs where it was opened, and a request
    /// from another thread would wake that thread to be sent.
    pooled: Arc<[Client<Connector, UpstreamBody>]>,
    streaming: Arc<[Client<Connector, UpstreamBody>]>,
    upgrade_connector: Connector,
    /// Kept HTTP/1.1 connections for the requests hyper serves, when the upstream speaks only
    /// HTTP/1.1 (a plain-HTTP server URL; `front/pooled.rs`). An HTTPS upstream is reached
    /// through `pooled`, which speaks h2 where the apiserver offers it.
    idle_h1: Option<Arc<crate::front::pooled::IdlePool>>,
    /// Adds kubeguard's own `Authorization` (token, refreshed exec/OIDC token) to a request.
    stamper: Option<Stamper>,
    /// The last `Authorization` value the stamper produced, and when.
    own_auth: Arc<arc_swap::ArcSwapOption<(std::time::Instant, HeaderValue)>>,
    /// kubeguard's own credentials include a client certificate (used by the TLS layer).
    has_client_cert: bool,
    /// The kube config this was built from (kubeconfig-out copies its user from here).
    config: kube::Config,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

/// Loads the kube config for `kubeguard serve`: the named kubeconfig file and context, else
/// `$KUBECONFIG` / `~/.kube/config`, else the in-cluster service account.
pub async fn load_config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Config, UpstreamError> {
    let opts = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)?;
            Ok(kube::Config::from_custom_kubeconfig(kc, &opts).await?)
        }
        None if context.is_some() => Ok(kube::Config::from_kubeconfig(&opts).await?),
        None => Ok(kube::Config::infer().await?),
    }
}

impl Upstream {
    pub fn new(config: kube::Config, opts: &UpstreamOptions) -> Result<Self, UpstreamError> {
        let url = config.cluster_url.clone();
        let scheme = url.scheme().cloned().ok_or_else(|| UpstreamError::Url {
            url: url.to_string(),
            why: "no scheme",
        })?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(UpstreamError::Url {
                url: url.to_string(),
                why: "scheme must be https or http",
            });
        }
        let authority = url.authority().cloned().ok_or_else(|| UpstreamError::Url {
            url: url.to_string(),
            why: "no host",
        })?;
        let prefix = url.path().trim_end_matches('/').to_string();

        let tls = config.rustls_client_config()?;
        let has_client_cert = tls.client_auth_cert_resolver.has_certs();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout.unwrap_or(opts.connect_timeout)));
        http.set_keepalive(Some(Duration::from_secs(30)));

        let server_name = match &config.tls_server_name {
            Some(name) => Some(
                rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| {
                    UpstreamError::Url {
                        url: url.to_string(),
                        why: "tls-server-name is not a valid DNS name or IP address",
                    }
                })?,
            ),
            None => None,
        };
        let builder = || {
            let b = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http();
            match &server_name {
                Some(name) => b.with_server_name_resolver(
                    hyper_rustls::FixedServerNameResolver::new(name.clone()),
                ),
                None => b,
            }
        };
        let h2_connector = builder().enable_all_versions().wrap_connector(http.clone());
        let h1_connector = builder().enable_http1().wrap_connector(http);

        let mut client = Client::builder(TokioExecutor::new());
        client
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(opts.pool_idle_timeout)
            .pool_max_idle_per_host(opts.pool_max_idle_per_host)
            .http2_adaptive_window(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_while_idle(false);
        let slots = crate::workers::slots_per_core();
        let pooled = (0..slots)
            .map(|_| client.build(h2_connector.clone()))
            .collect();
        let streaming = (0..slots)
            .map(|_| client.build(h1_connector.clone()))
            .collect();

        let stamper = config.auth_layer()?.map(|layer| {
            // The auth layer wraps an HTTP service; this one answers with the header it was given.
            let identity = tower::service_fn(|req: Request<Empty<Bytes>>| async move {
                let mut resp = Response::new(Empty::new());
                if let Some(v) = req.headers().get(AUTHORIZATION) {
                    resp.headers_mut().insert(AUTHORIZATION, v.clone());
                }
                Ok::<_, BoxError>(resp)
            });
            BoxCloneSyncService::new(layer.layer(identity))
        });

        let plain = scheme == Scheme::HTTP;
        Ok(Upstream {
            scheme,
            authority,
            prefix,
            pooled,
            streaming,
            upgrade_connector: h1_connector,
            idle_h1: plain.then(|| {
                Arc::new(crate::front::pooled::IdlePool::new(
                    opts.pool_max_idle_per_host,
                    opts.pool_idle_timeout,
                ))
            }),
            stamper,
            own_auth: Arc::new(arc_swap::ArcSwapOption::empty()),
            has_client_cert,
            config,
        })
    }

    /// The upstream server URL (for logs and the admin page).
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.prefix)
    }

    pub fn config(&self) -> &kube::Config {
        &self.config
    }

    /// Whether kubeguard has credentials of its own for the upstream (token, exec plugin or
    /// client certificate).
    pub fn has_own_credentials(&self) -> bool {
        self.stamper.is_some() || self.has_client_cert
    }

    /// The absolute upstream URI for a client's path and query.
    pub fn uri_for(&self, path_and_query: &PathAndQuery) -> Result<Uri, UpstreamError> {
        let pq = if self.prefix.is_empty() {
            path_and_query.clone()
        } else {
            PathAndQuery::try_from(format!("{}{}", self.prefix, path_and_query.as_str())).map_err(
                |_| UpstreamError::Url {
                    url: self.url(),
                    why: "prefix and path do not form a valid URI",
                },
            )?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| UpstreamError::Url {
                url: self.url(),
                why: "cannot build request URI",
            })
    }

    /// kubeguard's own `Authorization` header value, if its credentials use one (client-cert
    /// credentials are presented by TLS instead).
    ///
    /// The value is reused for [`OWN_AUTH_REUSE`]: kube refreshes exec/OIDC tokens well before
    /// they expire (ten seconds), so a second's reuse never sends a stale one, and the hot path
    /// skips the auth layer's boxed future.
    pub async fn own_authorization(&self) -> Result<Option<HeaderValue>, UpstreamError> {
        let Some(stamper) = &self.stamper else {
            return Ok(None);
        };
        if let Some(cached) = self.own_auth.load().as_ref()
            && cached.0.elapsed() < OWN_AUTH_REUSE
        {
            return Ok(Some(cached.1.clone()));
        }
        let stamped = stamper
            .clone()
            .oneshot(Request::new(Empty::new()))
            .await
            .map_err(|e| UpstreamError::Credentials(e.to_string()))?;
        let value = stamped.headers().get(AUTHORIZATION).cloned().map(|mut v| {
            v.set_sensitive(true);
            v
        });
        if let Some(v) = &value {
            self.own_auth
                .store(Some(Arc::new((std::time::Instant::now(), v.clone()))));
        }
        Ok(value)
    }

    /// Sends a request whose URI is already absolute (see [`Upstream::uri_for`]). `long_running`
    /// requests use the HTTP/1.1 client. Waits for response headers at most `timeout` when given.
    pub async fn send(
        &self,
        req: Request<UpstreamBody>,
        long_running: bool,
        timeout: Option<Duration>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let clients = if long_running {
            &self.streaming
        } else {
            &self.pooled
        };
        let client = &clients[crate::workers::slot(clients.len())];
        let fut = client.request(req);
        let result = match timeout {
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .map_err(|_| UpstreamError::Timeout(t))?,
            None => fut.await,
        };
        result.map_err(|e| self.classify_client_error(e))
    }

    /// Sends an upgrade request (exec, attach, port-forward) on a fresh HTTP/1.1 connection that
    /// is never pooled. The returned response may be a 101 whose connection can be taken with
    /// `hyper::upgrade::on`, or any other answer, after which the connection is dropped.
    pub async fn send_upgrade(
        &self,
        mut req: Request<UpstreamBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let uri = req.uri().clone();
        let connect = async {
            let io = tower::Service::call(&mut self.upgrade_connector.clone(), uri.clone())
                .await
                .map_err(|e| self.connect_error(e.as_ref()))?;
            hyper::client::conn::http1::Builder::new()
                .handshake::<_, UpstreamBody>(io)
                .await
                .map_err(|e| self.connect_error(&e))
        };
        let (mut sender, conn) = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))??;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream upgrade connection ended with an error");
            }
        });
        // A client-level connection wants origin-form and an explicit Host.
        let origin = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(origin);
        if let Ok(host) = HeaderValue::from_str(self.authority.as_str()) {
            req.headers_mut().insert(HOST, host);
        }
        tokio::time::timeout(timeout, sender.send_request(req))
            .await
            .map_err(|_| UpstreamError::Timeout(timeout))?
            .map_err(|e| UpstreamError::Request(error_chain(&e)))
    }

    /// A new HTTP/1.1 connection (TLS as the kubeconfig says, ALPN http/1.1 only) for the
    /// HTTP/1.1 front end, which keeps one per client connection (`front/`).
    pub async fn connect_h1(&self) -> Result<H1Io, UpstreamError> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|_| UpstreamError::Url {
                url: self.url(),
                why: "cannot build request URI",
            })?;
        let io = tower::Service::call(&mut self.upgrade_connector.clone(), uri)
            .await
            .map_err(|e| self.connect_error(e.as_ref()))?;
        Ok(match io {
            hyper_rustls::MaybeHttpsStream::Http(tcp) => H1Io::Plain(tcp.into_inner()),
            hyper_rustls::MaybeHttpsStream::Https(tls) => H1Io::Tls(Box::new(tls.into_inner())),
        })
    }

    /// Kept HTTP/1.1 connections for the requests hyper serves, when the upstream is reached
    /// over plain HTTP (see `front/pooled.rs`).
    pub fn idle_h1(&self) -> Option<&Arc<crate::front::pooled::IdlePool>> {
        self.idle_h1.as_ref()
    }

    /// `host[:port]` of the server URL, as a request's `Host` header names it.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The server URL's path prefix (e.g. Rancher's `/k8s/clusters/c-xxxx`), without a
    /// trailing `/`; empty for most clusters.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A small request kubeguard makes itself (readiness probe, /version), with its own credentials.
    pub async fn get_own(
        &self,
        path: &'static str,
        timeout: Duration,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let uri = self.uri_for(&PathAndQuery::from_static(path))?;
        let mut req = Request::get(uri)
            .body(empty_body())
            .map_err(|_| UpstreamError::Url {
                url: self.url(),
                why: "cannot build request",
            })?;
        if let Some(auth) = self.own_authorization().await? {
            req.headers_mut().insert(AUTHORIZATION, auth);
        }
        self.send(req, false, Some(timeout)).await
    }
}

impl Upstream {
    fn classify_client_error(&self, e: hyper_util::client::legacy::Error) -> UpstreamError {
        if e.is_connect() {
            self.connect_error(&e)
        } else {
            UpstreamError::Request(error_chain(&e))
        }
    }

    /// A failed connection names the upstream it tried: behind a Service or with several
    /// kubeconfig contexts, "connection refused" alone does not say which server refused.
    fn connect_error(&self, e: &(dyn std::error::Error + 'static)) -> UpstreamError {
        UpstreamError::Connect(format!("{}: {}", self.url(), error_chain(e)))
    }
}

/// An empty request body (for GETs kubeguard builds).
pub fn empty_body() -> UpstreamBody {
    UpstreamBody::Right(Full::new(Bytes::new()))
}

/// `a: b: c` from an error and its sources, for messages that say what really failed (a refused
/// connection, an unknown CA) instead of hyper's outermost "client error (Connect)".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

/// Wraps a stream the upgrade connector produced, for `copy_bidirectional`.
pub fn upgraded_io(upgraded: hyper::upgrade::Upgraded) -> TokioIo<hyper::upgrade::Upgraded> {
    TokioIo::new(upgraded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(url: &str) -> Upstream {
        let config = kube::Config::new(url.parse().unwrap());
        Upstream::new(config, &UpstreamOptions::default()).unwrap()
    }

    #[test]
    fn uri_keeps_the_server_path_prefix() {
        let u = upstream("https://rancher.example:8443/k8s/clusters/c-1/");
        let uri = u
            .uri_for(&PathAndQuery::from_static("/api/v1/pods?limit=5"))
            .unwrap();
        assert_eq!(
            uri.to_string(),
            "https://rancher.example:8443/k8s/clusters/c-1/api/v1/pods?limit=5"
        );
    }

    #[test]
    fn plain_uri_without_prefix() {
        let u = upstream("http://127.0.0.1:8080");
        let uri = u.uri_for(&PathAndQuery::from_static("/version")).unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:8080/version");
        assert!(!u.has_own_credentials());
    }

    #[tokio::test]
    async fn own_token_is_stamped_and_reused() {
        let mut config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        config.auth_info.token = Some("s3cret".to_string().into());
        let u = Upstream::new(config, &UpstreamOptions::default()).unwrap();
        assert!(u.has_own_credentials());
        for _ in 0..2 {
            let v = u.own_authorization().await.unwrap().unwrap();
            assert_eq!(v, "Bearer s3cret");
            assert!(v.is_sensitive(), "never printed by Debug");
        }
        assert!(u.own_auth.load().is_some());
    }

    #[test]
    fn rejects_other_schemes() {
        let config = kube::Config::new("ftp://x".parse().unwrap());
        let err = Upstream::new(config, &UpstreamOptions::default()).unwrap_err();
        assert!(err.to_string().contains("scheme"), "{err}");
    }

    #[tokio::test]
    async fn refused_connection_is_a_connect_error() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let u = upstream(&format!("http://127.0.0.1:{port}"));
        let err = u
            .get_own("/version", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, UpstreamError::Connect(_)), "{err:?}");
        assert!(
            error_chain(&err).to_lowercase().contains("refused"),
            "{err}"
        );
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
    }
}
