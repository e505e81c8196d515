//! Accept: TCP listeners, TLS (rustls, h2 and http/1.1 by ALPN), HTTP/1.1 and h2 serving, the
//! connection cap, and graceful drain.
//!
//! Plain HTTP is only allowed on loopback addresses (a sidecar in a controller's pod): anything
//! reachable from the network gets TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::metrics::Metrics;
use crate::proxy::ConnInfo;
use crate::upstream::RequestBody;

/// Limits that protect the accept path.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Open client connections at most; more are closed at once (and counted).
    pub max_connections: usize,
    /// A client must finish its TLS handshake within this.
    pub tls_handshake_timeout: Duration,
    /// A client must send a complete HTTP/1.1 request head within this (slowloris).
    pub header_read_timeout: Duration,
    /// Largest HTTP/1.1 request head, and the h2 header list limit.
    pub max_header_bytes: usize,
    /// h2 streams per client connection (the apiserver's default is 100; kubectl and client-go
    /// multiplex watches onto one connection, so be a little more generous).
    pub h2_max_concurrent_streams: u32,
    /// Rapid reset (CVE-2023-44487): streams a client opened and cancelled before they were
    /// served that may wait at once; one more and the connection gets GOAWAY.
    pub h2_max_pending_accept_resets: usize,
    /// "MadeYouReset" (CVE-2025-8671): streams the server itself reset because the client broke
    /// the protocol, per connection; one more and the connection gets GOAWAY.
    pub h2_max_local_error_resets: usize,
    /// h2 served by kubeguard's own server (`front/h2own`, `server.h2Server: kubeguard`, the
    /// default) instead of hyper's; only where the HTTP/1.1 front end serves the connection.
    pub own_h2_server: bool,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 10_000,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 1 << 20,
            h2_max_concurrent_streams: 250,
            // h2's own default, set explicitly so an upgrade of hyper or h2 cannot drop it.
            h2_max_pending_accept_resets: 20,
            // hyper's default since the MadeYouReset fix, likewise.
            h2_max_local_error_resets: 1024,
            own_h2_server: true,
        }
    }
}

/// One listener: where, and with which TLS config (None = plain HTTP, loopback only).
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
    pub addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "refusing to serve plain HTTP on {0}: plain HTTP is only allowed on a loopback address \
         (127.0.0.1, ::1); use an https:// listen address (the default) instead"
    )]
    PlainNotLoopback(SocketAddr),
}

impl Listener {
    pub async fn bind(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Self, ListenError> {
        if tls.is_none() && !addr.ip().is_loopback() {
            return Err(ListenError::PlainNotLoopback(addr));
        }
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Bind { addr, source })?;
        let addr = tcp
            .local_addr()
            .map_err(|source| ListenError::Bind { addr, source })?;
        Ok(Listener {
            tcp,
            tls: tls.map(TlsAcceptor::from),
            addr,
        })
    }

    /// The admin listener: plain HTTP on any address (it serves health and metrics only, never
    /// the Kubernetes API, and kubelet probes and Prometheus reach it on the pod IP).
    pub async fn bind_admin(addr: SocketAddr) -> Result<Self, ListenError> {
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Bind { addr, source })?;
        let addr = tcp
            .local_addr()
            .map_err(|source| ListenError::Bind { addr, source })?;
        Ok(Listener {
            tcp,
            tls: None,
            addr,
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// An accepted connection: registered with the main runtime's reactor, or on its way to a
/// worker's.
enum Accepted {
    Registered(TcpStream),
    Moving(std::net::TcpStream),
}

/// How a listener's connections are served.
#[derive(Clone, Default)]
pub struct Serving {
    /// HTTP/1.1 connections are served by the front end (`front/`, the Kubernetes API
    /// listeners), which hands anything it does not serve itself to hyper and the handler.
    pub front: Option<Arc<crate::proxy::Proxy>>,
    /// Each connection runs on one of these threads; without them, on the main runtime.
    pub workers: Option<Arc<crate::workers::Workers>>,
}

/// Serves `listener` until `shutdown` flips to true, then stops accepting and drains: open
/// connections finish their in-flight requests for up to `drain` before they are closed.
pub async fn serve<H, F>(
    listener: Listener,
    limits: ServerLimits,
    metrics: Arc<Metrics>,
    handler: H,
    serving: Serving,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) where
    H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<crate::proxy::ProxyBody>> + Send + 'static,
{
    let builder = Arc::new(http_builder(&limits));
    let handshake_timeout = limits.tls_handshake_timeout;
    let graceful = GracefulShutdown::new();
    // Fired when the drain deadline passes: connections still open (watches, log streams,
    // exec sessions) are closed then.
    let force_close = tokio_util::sync::CancellationToken::new();
    // Asks front-end connections to finish the request in progress and close.
    let front_shutdown = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    let front_opts = crate::front::FrontOptions {
        header_read_timeout: limits.header_read_timeout,
        max_header_bytes: limits.max_header_bytes,
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let loopback = listener.addr.ip().is_loopback();
    let listener_addr = listener.addr;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connections_rejected.inc();
            drop(stream);
            continue;
        };
        metrics.connections_accepted.inc();
        let _ = stream.set_nodelay(true);
        let conn_info = ConnInfo {
            peer,
            loopback_listener: loopback,
            tls: listener.is_tls(),
            peer_cert: None,
            tokens: Default::default(),
        };
        let handler = handler.clone();
        let tls = listener.tls.clone();
        let builder = builder.clone();
        let metrics = metrics.clone();
        let watcher = graceful.watcher();
        let force_close = force_close.clone();
        let front = serving.front.clone().map(|proxy| Front {
            proxy,
            opts: front_opts.clone(),
            shutdown: front_shutdown.clone(),
            h2: limits
                .own_h2_server
                .then_some(crate::front::h2own::H2Options {
                    max_concurrent_streams: limits.h2_max_concurrent_streams,
                    max_header_list_size: limits.max_header_bytes,
                    max_early_resets: limits.h2_max_pending_accept_resets,
                    max_local_resets: limits.h2_max_local_error_resets,
                }),
        });
        // A worker's connection is registered with the worker's own reactor, so its readiness
        // wakes that thread directly (through the main runtime's it would cost a cross-thread
        // wakeup per read).
        let (stream, worker) = match &serving.workers {
            Some(workers) => match stream.into_std() {
                Ok(s) => (Accepted::Moving(s), Some(workers.assign())),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot move an accepted connection");
                    continue;
                }
            },
            None => (Accepted::Registered(stream), None),
        };
        let (runtime, open) = worker.map(|w| (w.runtime, w.open)).unzip();
        let task = async move {
            let _slot = slot;
            let _open = open;
            let stream = match stream {
                Accepted::Registered(s) => s,
                Accepted::Moving(s) => match TcpStream::from_std(s) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot register an accepted connection");
                        return;
                    }
                },
            };
            metrics.connections_open.inc();
            // Pinned where it is: moved into `select!` it would take its size twice in this
            // task (the connection's whole state lives here).
            let conn = std::pin::pin!(serve_connection(
                stream,
                tls,
                handshake_timeout,
                &builder,
                (conn_info, handler, front),
                watcher,
                &metrics,
            ));
            tokio::select! {
                _ = conn => {}
                _ = force_close.cancelled() => {
                    tracing::debug!(%peer, "connection closed at the drain deadline");
                }
            }
            metrics.connections_open.dec();
        };
        match runtime {
            Some(runtime) => drop(tracker.spawn_on(task, &runtime)),
            None => drop(tracker.spawn(task)),
        }
    }
    drop(listener);
    front_shutdown.cancel();
    tracker.close();
    let drained = async {
        graceful.shutdown().await;
        tracker.wait().await;
    };
    tokio::select! {
        _ = drained => tracing::debug!(addr = %listener_addr, "all connections drained"),
        _ = tokio::time::sleep(drain) => {
            tracing::info!(?drain, "drain deadline reached; closing remaining connections");
            force_close.cancel();
        }
    }
}

/// The per-connection service: the handler with this connection's [`ConnInfo`] (complete only
/// after the TLS handshake, which tells the verified client certificate).
fn service<H, F>(
    conn_info: ConnInfo,
    handler: H,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<crate::proxy::ProxyBody>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response<crate::proxy::ProxyBody>, std::convert::Infallible>>
             + Send
             + 'static,
> + Send
+ 'static
where
    H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<crate::proxy::ProxyBody>> + Send + 'static,
{
    let conn_info = Arc::new(conn_info);
    hyper::service::service_fn(move |req| {
        // Boxed once here: the request's future is large (identify, decide, forward), and hyper
        // moves what it is given into a task of its own per h2 stream.
        let fut = Box::pin(handler(req.map(RequestBody::Hyper), conn_info.clone()));
        async move { Ok::<_, std::convert::Infallible>(fut.await) }
    })
}

/// The front end of a Kubernetes API listener, for HTTP/1.1 connections.
struct Front {
    proxy: Arc<crate::proxy::Proxy>,
    opts: crate::front::FrontOptions,
    shutdown: tokio_util::sync::CancellationToken,
    /// `Some`: h2 is served by kubeguard's own server (`server.h2Server: kubeguard`).
    h2: Option<crate::front::h2own::H2Options>,
}

async fn serve_connection<H, F>(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
    builder: &auto::Builder<TokioExecutor>,
    (mut conn_info, handler, front): (ConnInfo, H, Option<Front>),
    watcher: hyper_util::server::graceful::Watcher,
    metrics: &Metrics,
) where
    H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<crate::proxy::ProxyBody>> + Send + 'static,
{
    match tls {
        // Boxed: a TLS connection's state (rustls, the handshake) is large, and a plain
        // connection's task would otherwise be as large for nothing.
        Some(acceptor) => {
            Box::pin(async move {
                let tls_stream =
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            metrics.tls_handshake_failures.inc();
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            metrics.tls_handshake_failures.inc();
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                // Verified by rustls against identity.clientCA when one is configured.
                conn_info.peer_cert = tls_stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| Arc::from(c.as_ref()));
                let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                match front {
                    // `server.h2Server: kubeguard`: kubeguard's own h2 server instead of hyper's.
                    Some(Front {
                        h2: Some(opts),
                        shutdown,
                        ..
                    }) if h2 => {
                        crate::front::h2own::serve(
                            tls_stream,
                            handler,
                            Arc::new(conn_info),
                            opts,
                            shutdown,
                        )
                        .await
                    }
                    Some(front) if !h2 => {
                        serve_front(tls_stream, front, conn_info, builder, handler, watcher).await
                    }
                    _ => serve_hyper(tls_stream, builder, conn_info, handler, watcher).await,
                }
            })
            .await
        }
        None => match front {
            Some(front) => serve_front(stream, front, conn_info, builder, handler, watcher).await,
            None => Box::pin(serve_hyper(stream, builder, conn_info, handler, watcher)).await,
        },
    }
}

/// hyper serves the connection (HTTP/2, or HTTP/1.1 on listeners without a front end, or what
/// the front end handed over).
async fn serve_hyper<IO, H, F>(
    io: IO,
    builder: &auto::Builder<TokioExecutor>,
    conn_info: ConnInfo,
    handler: H,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<crate::proxy::ProxyBody>> + Send + 'static,
{
    let service = service(conn_info, handler);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// The front end serves the connection, and hands it to hyper when it must.
async fn serve_front<IO, H, F>(
    io: IO,
    front: Front,
    conn_info: ConnInfo,
    builder: &auto::Builder<TokioExecutor>,
    handler: H,
    watcher: hyper_util::server::graceful::Watcher,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<RequestBody>, Arc<ConnInfo>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<crate::proxy::ProxyBody>> + Send + 'static,
{
    let conn = Arc::new(conn_info.clone());
    let h2_conn = conn.clone();
    let (h2, h2_shutdown) = (front.h2, front.shutdown.clone());
    // hyper's connection state is boxed: only connections handed over need it.
    crate::front::serve(io, front.proxy, conn, front.opts, front.shutdown, |io| {
        // `server.h2Server: kubeguard`: h2 with prior knowledge goes to kubeguard's own h2 server.
        if let Some(h2) = h2
            && io.buffered().starts_with(crate::front::h2own::PREFACE)
        {
            futures_util::future::Either::Left(Box::pin(crate::front::h2own::serve(
                io,
                handler,
                h2_conn,
                h2,
                h2_shutdown,
            )))
        } else {
            futures_util::future::Either::Right(Box::pin(serve_hyper(
                io, builder, conn_info, handler, watcher,
            )))
        }
    })
    .await
}

fn http_builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        // Rapid reset (CVE-2023-44487): a client that opens and cancels streams faster than
        // they are served gets GOAWAY once this many wait, instead of costing a handler each.
        .max_pending_accept_reset_streams(Some(limits.h2_max_pending_accept_resets))
        // "MadeYouReset" (CVE-2025-8671): streams the server itself resets because the client
        // broke the protocol count too.
        .max_local_error_reset_streams(Some(limits.h2_max_local_error_resets))
        .adaptive_window(true)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}
