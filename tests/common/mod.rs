//! Shared fixtures for the end-to-end tests: kubeguard started in-process on 127.0.0.1:0 in
//! front of an upstream, and clients that trust its certificate.
#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kubeguard::config::FileConfig;
use kubeguard::serve::RunningServe;

/// Starts kubeguard with a TLS listener and a plain loopback listener in front of `upstream_url`.
/// `extra_yaml` is appended to the config (e.g. upstream timeouts).
pub async fn start_kubeguard(upstream_url: &str, extra_yaml: &str) -> RunningServe {
    let yaml = format!(
        "server:\n  listen: [\"https://127.0.0.1:0\", \"http://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\n  shutdownGracePeriod: 2s\n{extra_yaml}"
    );
    let config = FileConfig::from_yaml(&yaml, "test").expect("test config");
    let upstream = kube::Config::new(upstream_url.parse().expect("upstream url"));
    kubeguard::serve::start(&config, upstream)
        .await
        .expect("kubeguard starts")
}

/// `https://127.0.0.1:PORT` of the TLS listener.
pub fn tls_url(kg: &RunningServe) -> String {
    let l = kg.listeners.iter().find(|l| l.tls).expect("tls listener");
    format!("https://127.0.0.1:{}", l.addr.port())
}

/// `http://127.0.0.1:PORT` of the plain loopback listener.
pub fn plain_url(kg: &RunningServe) -> String {
    let l = kg
        .listeners
        .iter()
        .find(|l| !l.tls)
        .expect("plain listener");
    format!("http://127.0.0.1:{}", l.addr.port())
}

pub type TestClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A hyper client trusting kubeguard's certificate; `h2` forces HTTP/2 (by ALPN), otherwise
/// HTTP/1.1 only.
pub fn client(kg: &RunningServe, h2: bool) -> TestClient {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = &kg.cert_pem {
        for c in kubeguard::tls::certs_from_pem(pem.as_bytes(), "test").expect("cert") {
            roots.add(c).expect("root");
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(kubeguard::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(Arc::new(roots).as_ref().clone())
        .with_no_client_auth();
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let connector = if h2 {
        b.enable_http2().build()
    } else {
        b.enable_http1().build()
    };
    let mut builder = Client::builder(TokioExecutor::new());
    if h2 {
        builder.http2_only(true);
    }
    builder.build(connector)
}

/// Collects a response body into bytes (test-only: kubeguard itself never buffers).
pub async fn body_bytes(body: hyper::body::Incoming) -> Bytes {
    body.collect().await.expect("body").to_bytes()
}

/// Where kubectl lives; tests about kubectl fail loudly when it is missing.
pub fn kubectl() -> String {
    let path = std::env::var("KUBECTL").unwrap_or_else(|_| "/usr/bin/kubectl".into());
    assert!(
        std::path::Path::new(&path).exists(),
        "kubectl not found at {path}: these tests drive the real kubectl; install kubectl 1.32 \
         or set KUBECTL=/path/to/kubectl"
    );
    path
}

/// kubectl with `kubeconfig` and a discovery cache beside it. The default cache
/// (~/.kube/cache, keyed by host:port, kept for hours) is shared by every test run on the
/// machine: an emulator that reuses a port would see another run's types.
pub fn kubectl_with(kubeconfig: &std::path::Path) -> tokio::process::Command {
    let cache = kubeconfig.with_file_name("kube-cache");
    let mut cmd = tokio::process::Command::new(kubectl());
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache);
    cmd
}

/// A loopback port nobody listens on (bound, then released): an unreachable upstream.
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
