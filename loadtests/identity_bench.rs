//! The per-request cost of a cached identity: `Authenticator::identify` for a bearer token
//! whose TokenReview is already cached (SHA-256 of the token, one shard lock, an LRU lookup, an
//! `Arc` clone), and the same plus the `Impersonate-*` headers of impersonate mode.
//!
//! `cargo run --release --example identity_bench [-- ITERATIONS]`
//!
//! An emulator with authentication on answers the one TokenReview; everything else runs in
//! this process, on 127.0.0.1 only. Target: under 5 µs per request.

use std::net::SocketAddr;
use std::time::Instant;

use http::{HeaderMap, HeaderValue};
use kubeguard::config::FileConfig;
use kubeguard::identity::{Authenticator, add_impersonation};
use kubeguard::proxy::ConnInfo;
use kubeguard::sim::SimOptions;
use kubeguard::upstream::{Upstream, UpstreamOptions};

const USERS: &str = r#"users:
  - serviceAccount: {namespace: kubeguard, name: kubeguard}
    token: kubeguard-token
    rules:
      - verbs: [create]
        apiGroups: [authentication.k8s.io]
        resources: [tokenreviews]
  - name: alice
    token: alice-token
    groups: [devs, ops, sre]
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let users = dir.path().join("users.yaml");
    std::fs::write(&users, USERS)?;
    let sim = kubeguard::sim::start(SimOptions {
        users: Some(users),
        ..Default::default()
    })
    .await?;
    let mut upstream_config = kube::Config::new(sim.url.parse()?);
    upstream_config.auth_info.token = Some("kubeguard-token".to_string().into());
    let upstream = Upstream::new(upstream_config, &UpstreamOptions::default())?;
    let config = FileConfig::from_yaml(
        "identity:\n  sources: [token]\n  upstreamCredentials: impersonate\n",
        "bench",
    )?;
    let metrics = kubeguard::metrics::Metrics::new();
    let auth = Authenticator::new(
        config.identity.settings(),
        upstream,
        metrics.identity.clone(),
    );
    let conn = ConnInfo {
        peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
        loopback_listener: false,
        tls: true,
        peer_cert: None,
        tokens: Default::default(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static("Bearer alice-token"),
    );
    headers.insert("accept", HeaderValue::from_static("application/json"));
    let caller = auth.identify(&headers, &conn).await?;
    assert_eq!(caller.identity.user, "alice");
    assert_eq!(sim.stats().token_reviews, 1);

    let start = Instant::now();
    for _ in 0..iterations {
        let caller = auth.identify(&headers, &conn).await?;
        std::hint::black_box(&caller);
    }
    let identify = start.elapsed() / iterations;

    let start = Instant::now();
    for _ in 0..iterations {
        let caller = auth.identify(&headers, &conn).await?;
        let mut out = headers.clone();
        add_impersonation(&caller.identity, &mut out)?;
        std::hint::black_box(&out);
    }
    let with_headers = start.elapsed() / iterations;

    // Each request on a new connection: the token is hashed (SHA-256) every time.
    let start = Instant::now();
    for _ in 0..iterations {
        let fresh = conn.clone();
        let caller = auth.identify(&headers, &fresh).await?;
        std::hint::black_box(&caller);
    }
    let new_conn = start.elapsed() / iterations;
    assert_eq!(sim.stats().token_reviews, 1, "every lookup was a cache hit");
    println!("cached identity, {iterations} iterations:");
    println!("  identify (token cache hit):            {identify:?} per request");
    println!("  identify + Impersonate-* headers:      {with_headers:?} per request");
    println!("  identify, a new connection each time:  {new_conn:?} per request");
    println!("  target: < 5µs");
    sim.shutdown().await;
    Ok(())
}
