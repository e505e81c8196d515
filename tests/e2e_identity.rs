//! Identity end to end: the emulator with authentication on (users file, TokenReview, SAR,
//! impersonation), kubeguard in front of it with kubeguard's own upstream credentials limited
//! to exactly the rules of deploy/rbac.yaml, and real clients (hyper over h1 and h2, kubectl).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/sim.rs"]
mod simc;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use kubeguard::config::FileConfig;
use kubeguard::serve::RunningServe;
use kubeguard::sim::{RequestHook, RequestRecord, RunningSim, SimOptions};
use serde_json::Value;
use tokio::process::Command;

const RBAC: &str = include_str!("../deploy/rbac.yaml");
const KUBEGUARD_SA: &str = "system:serviceaccount:kubeguard:kubeguard";

/// A client CA and certificates it signs (CN = user, O = groups).
struct TestCa {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pem: String,
}

impl TestCa {
    fn new() -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test client CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa { params, key, pem }
    }

    /// (certificate PEM, key PEM) for `cn` in groups `orgs`.
    fn client_cert(&self, cn: &str, orgs: &[&str]) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        // rcgen keeps one value per attribute type; a second O goes in under its OID
        // (2.5.4.10) as a custom type, which encodes the same.
        for (i, o) in orgs.iter().enumerate() {
            let ty = match i {
                0 => rcgen::DnType::OrganizationName,
                1 => rcgen::DnType::CustomDnType(vec![2, 5, 4, 10]),
                _ => panic!("at most two organizations"),
            };
            params.distinguished_name.push(ty, *o);
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// One request as the emulator saw it (after its own authentication and impersonation).
#[derive(Clone, Debug)]
struct Seen {
    uri: String,
    user: Option<String>,
    code: u16,
}

struct Env {
    sim: RunningSim,
    kg: RunningServe,
    seen: Arc<Mutex<Vec<Seen>>>,
    ca: TestCa,
    dir: tempfile::TempDir,
}

impl Env {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn users_seen_at(&self, path: &str) -> Vec<Option<String>> {
        self.seen()
            .into_iter()
            .filter(|s| s.uri.starts_with(path))
            .map(|s| s.user)
            .collect()
    }

    async fn stop(self) {
        self.kg.shutdown().await;
        self.sim.shutdown().await;
    }
}

/// The users file of the emulator: kubeguard's service account with exactly the ClusterRole
/// of deploy/rbac.yaml, token users, a certificate-only user, and an admin.
fn users_yaml() -> String {
    let rules = serde_json::to_string(&cluster_role_rules()).unwrap();
    format!(
        r#"users:
  - serviceAccount: {{namespace: kubeguard, name: kubeguard}}
    token: kubeguard-token
    rules: {rules}
  - name: alice
    token: alice-token
    groups: [devs]
  - name: carol
    groups: [devs]
  - name: admin
    token: admin-token
    groups: ["system:masters"]
  - serviceAccount: {{namespace: ci, name: deployer}}
    token: ci-token
groups:
  - name: devs
    rules:
      - verbs: [get, list, watch]
        resources: [configmaps, pods, namespaces]
  - name: "system:serviceaccounts:ci"
    rules:
      - verbs: [get, list]
        resources: [configmaps]
"#
    )
}

fn cluster_role_rules() -> Value {
    for doc in serde_norway::Deserializer::from_str(RBAC) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        if v["kind"] == "ClusterRole" {
            return v["rules"].clone();
        }
    }
    panic!("deploy/rbac.yaml has no ClusterRole");
}

/// Emulator with authentication on, kubeguard in front of it with `identity_yaml` (the
/// `identity:` section, indented by two spaces) and `upstream_token` as its own credentials.
async fn env_with(identity_yaml: &str, upstream_token: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.yaml");
    std::fs::write(&users, users_yaml()).unwrap();
    let ca = TestCa::new();
    let ca_path = dir.path().join("client-ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let sim = kubeguard::sim::start(SimOptions {
        users: Some(users),
        on_request: Some(RequestHook(Arc::new(move |r: &RequestRecord| {
            sink.lock().unwrap().push(Seen {
                uri: r.uri.clone(),
                user: r.user.clone(),
                code: r.code,
            });
        }))),
        ..simc::fast_opts()
    })
    .await
    .unwrap();

    let yaml = format!(
        "server:\n  listen: [\"https://127.0.0.1:0\", \"http://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\n  shutdownGracePeriod: 2s\nidentity:\n  clientCA: {}\n{identity_yaml}",
        ca_path.display()
    );
    let config = FileConfig::from_yaml(&yaml, "test").unwrap();
    let mut upstream = kube::Config::new(sim.url.parse().unwrap());
    upstream.auth_info.token = Some(upstream_token.to_string().into());
    let kg = kubeguard::serve::start(&config, upstream).await.unwrap();
    Env {
        sim,
        kg,
        seen,
        ca,
        dir,
    }
}

/// Every listener of these tests is on 127.0.0.1, i.e. a loopback listener: the sidecar
/// source is added only where a test is about it.
const NETWORK_SOURCES: &str =
    "  sources: [clientCert, token]\n  loopbackSources: [clientCert, token]\n";
const SIDECAR_SOURCES: &str =
    "  sources: [clientCert, token]\n  loopbackSources: [clientCert, token, sidecar]\n";

async fn env(mode: &str) -> Env {
    env_with(
        &format!("{NETWORK_SOURCES}  upstreamCredentials: {mode}\n"),
        "kubeguard-token",
    )
    .await
}

type TestClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A client trusting kubeguard's certificate, presenting `cert` (PEM cert, PEM key) if given.
fn client(kg: &RunningServe, h2: bool, cert: Option<&(String, String)>) -> TestClient {
    let mut roots = rustls::RootCertStore::empty();
    for c in kubeguard::tls::certs_from_pem(kg.cert_pem.as_ref().unwrap().as_bytes(), "t").unwrap()
    {
        roots.add(c).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(kubeguard::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let tls = match cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                kubeguard::tls::certs_from_pem(cert.as_bytes(), "c").unwrap(),
                kubeguard::tls::key_from_pem(key.as_bytes(), "k").unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
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

/// GET `path` with extra headers; (code, headers, body as JSON or Null).
async fn get(
    c: &TestClient,
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Value) {
    let mut req = Request::get(format!("{base}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = c
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = common::body_bytes(body).await;
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (parts.status, parts.headers, json)
}

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

/// The memory measurement reads the whole process's RSS: it runs alone (write), every other
/// test of this file beside the others (read).
static EXCLUSIVE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

#[tokio::test]
async fn client_cert_user_reaches_upstream_as_itself_by_impersonation() {
    let _alone = EXCLUSIVE.read().await;
    let e = env("passthrough").await;
    let carol = e.ca.client_cert("carol", &["devs"]);
    let base = common::tls_url(&e.kg);
    for h2 in [false, true] {
        let c = client(&e.kg, h2, Some(&carol));
        let (code, headers, body) = get(&c, &base, CONFIGMAPS, &[]).await;
        assert_eq!(code, StatusCode::OK, "h2={h2}: {body}");
        assert_eq!(body["kind"], "ConfigMapList");
        assert_eq!(headers["audit-id"].len(), 36, "a generated UUID is echoed");
        let (_, headers, _) = get(&c, &base, CONFIGMAPS, &[("Audit-ID", "my-audit-1")]).await;
        assert_eq!(
            headers["audit-id"], "my-audit-1",
            "the client's Audit-ID is kept"
        );
    }
    let users = e.users_seen_at(CONFIGMAPS);
    assert_eq!(users.len(), 4);
    assert!(
        users.iter().all(|u| u.as_deref() == Some("carol")),
        "{users:?}"
    );
    // A certificate from another CA is not accepted at the handshake.
    let stranger = TestCa::new().client_cert("mallory", &["system:masters"]);
    let c = client(&e.kg, false, Some(&stranger));
    let req = Request::get(format!("{base}{CONFIGMAPS}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert!(c.request(req).await.is_err(), "unknown CA refused by TLS");
    // No credentials at all: 401 Status.
    let (code, _, body) = get(&client(&e.kg, false, None), &base, CONFIGMAPS, &[]).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "Unauthorized");
    e.stop().await;
}

#[tokio::test]
async fn bearer_token_passes_through_after_one_token_review() {
    let _alone = EXCLUSIVE.read().await;
    let e = env("passthrough").await;
    let base = common::tls_url(&e.kg);
    for h2 in [false, true] {
        let c = client(&e.kg, h2, None);
        for _ in 0..5 {
            let (code, _, body) = get(
                &c,
                &base,
                CONFIGMAPS,
                &[("Authorization", "Bearer alice-token")],
            )
            .await;
            assert_eq!(code, StatusCode::OK, "{body}");
        }
    }
    assert_eq!(e.sim.stats().token_reviews, 1, "one review, then the cache");
    let users = e.users_seen_at(CONFIGMAPS);
    assert_eq!(users.len(), 10);
    assert!(
        users.iter().all(|u| u.as_deref() == Some("alice")),
        "{users:?}"
    );
    let reviews = e.users_seen_at("/apis/authentication.k8s.io/v1/tokenreviews");
    assert_eq!(
        reviews,
        vec![Some(KUBEGUARD_SA.to_string())],
        "reviewed with kubeguard's own"
    );

    // A service-account token: identified as the service account, passed through.
    let c = client(&e.kg, true, None);
    let (code, _, _) = get(
        &c,
        &base,
        CONFIGMAPS,
        &[("Authorization", "Bearer ci-token")],
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(e.sim.stats().token_reviews, 2);
    assert_eq!(
        e.users_seen_at(CONFIGMAPS).last().unwrap().as_deref(),
        Some("system:serviceaccount:ci:deployer")
    );
    e.stop().await;
}

#[tokio::test]
async fn impersonate_mode_sends_token_users_as_themselves_with_kubeguards_credentials() {
    let _alone = EXCLUSIVE.read().await;
    let e = env("impersonate").await;
    let base = common::tls_url(&e.kg);
    let c = client(&e.kg, true, None);
    for _ in 0..3 {
        let (code, _, body) = get(
            &c,
            &base,
            CONFIGMAPS,
            &[("Authorization", "Bearer alice-token")],
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    assert_eq!(e.sim.stats().token_reviews, 1);
    let users = e.users_seen_at(CONFIGMAPS);
    assert!(
        users.iter().all(|u| u.as_deref() == Some("alice")),
        "{users:?}"
    );
    e.stop().await;
}

#[tokio::test]
async fn forged_impersonation_headers_never_reach_the_upstream() {
    let _alone = EXCLUSIVE.read().await;
    for mode in ["passthrough", "impersonate"] {
        let e = env(mode).await;
        let base = common::tls_url(&e.kg);
        let carol = e.ca.client_cert("carol", &["devs"]);
        for h2 in [false, true] {
            for cert in [None, Some(&carol)] {
                let c = client(&e.kg, h2, cert);
                let auth: &[(&str, &str)] = if cert.is_some() {
                    &[]
                } else {
                    &[("Authorization", "Bearer alice-token")]
                };
                let forged: [&[(&str, &str)]; 4] = [
                    &[("Impersonate-User", "system:admin")],
                    &[
                        ("Impersonate-User", "system:admin"),
                        ("Impersonate-Group", "system:masters"),
                    ],
                    &[("Impersonate-Group", "system:masters")],
                    &[
                        ("X-Remote-User", "system:admin"),
                        ("X-Remote-Group", "system:masters"),
                    ],
                ];
                for headers in forged {
                    let all: Vec<(&str, &str)> = auth.iter().chain(headers).copied().collect();
                    let (code, _, body) = get(&c, &base, "/api/v1/secrets", &all).await;
                    // Impersonation the caller may not do: 403 from kubeguard (400 for groups
                    // without a user); front-proxy headers: stripped, and the real caller is
                    // refused secrets by the upstream (403 as alice/carol).
                    assert!(
                        code == StatusCode::FORBIDDEN || code == StatusCode::BAD_REQUEST,
                        "{mode} h2={h2} {headers:?}: {code} {body}"
                    );
                    assert_eq!(body["kind"], "Status");
                }
            }
        }
        let seen = e.seen();
        assert!(
            seen.iter()
                .all(|s| matches!(s.user.as_deref(), Some("alice" | "carol" | KUBEGUARD_SA))),
            "{mode}: the upstream only ever saw the real callers: {seen:?}"
        );
        // The X-Remote-* requests reached the upstream, as the real caller.
        assert!(
            seen.iter()
                .any(|s| s.uri == "/api/v1/secrets" && s.code == 403),
            "{mode}: {seen:?}"
        );
        e.stop().await;
    }
}

#[tokio::test]
async fn kubectl_as_is_honoured_only_after_a_subject_access_review() {
    let _alone = EXCLUSIVE.read().await;
    let e = env("passthrough").await;
    let base = common::tls_url(&e.kg);
    let c = client(&e.kg, true, None);
    // admin may impersonate: the request reaches the upstream as alice.
    let (code, _, body) = get(
        &c,
        &base,
        CONFIGMAPS,
        &[
            ("Authorization", "Bearer admin-token"),
            ("Impersonate-User", "alice"),
            ("Impersonate-Group", "devs"),
        ],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(e.users_seen_at(CONFIGMAPS), vec![Some("alice".to_string())]);
    let sars = e.users_seen_at("/apis/authorization.k8s.io/v1/subjectaccessreviews");
    assert_eq!(sars.len(), 2, "user and group each checked: {sars:?}");
    assert!(sars.iter().all(|u| u.as_deref() == Some(KUBEGUARD_SA)));
    // alice may not impersonate admin: 403 Status naming what was refused.
    let (code, _, body) = get(
        &c,
        &base,
        CONFIGMAPS,
        &[
            ("Authorization", "Bearer alice-token"),
            ("Impersonate-User", "admin"),
        ],
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot impersonate"),
        "{body}"
    );
    assert_eq!(e.users_seen_at(CONFIGMAPS).len(), 1);

    // The same with the real kubectl.
    let admin = write_kubeconfig(&e, "admin.kubeconfig", Auth::Token("admin-token"));
    let out = kubectl(
        &admin,
        &[
            "--as",
            "alice",
            "--as-group",
            "devs",
            "get",
            "configmaps",
            "-n",
            "default",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        e.users_seen_at(CONFIGMAPS)
            .iter()
            .skip(1)
            .all(|u| u.as_deref() == Some("alice"))
    );
    let sars = e.users_seen_at("/apis/authorization.k8s.io/v1/subjectaccessreviews");
    assert_eq!(
        sars.len(),
        3,
        "2 for the first --as, 1 refused; kubectl's requests came from the SAR cache"
    );
    let alice = write_kubeconfig(&e, "alice.kubeconfig", Auth::Token("alice-token"));
    let out = kubectl(
        &alice,
        &["--as", "admin", "get", "configmaps", "-n", "default"],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot impersonate"), "{stderr}");
    e.stop().await;
}

#[tokio::test]
async fn invalid_tokens_get_401_and_ten_thousand_leave_memory_bounded() {
    let _alone = EXCLUSIVE.write().await;
    let e = env_with(
        &format!("{NETWORK_SOURCES}  tokenReview:\n    cacheSize: 1000\n"),
        "kubeguard-token",
    )
    .await;
    let base = common::tls_url(&e.kg);
    let c = client(&e.kg, true, None);
    let (code, _, body) = get(&c, &base, CONFIGMAPS, &[("Authorization", "Bearer nope")]).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(body["reason"], "Unauthorized");
    assert!(
        !body.to_string().contains("nope"),
        "the token is never echoed"
    );

    let send = |from: usize, to: usize| {
        let c = c.clone();
        let base = base.clone();
        async move {
            for i in from..to {
                let auth = format!("Bearer bad-token-{i:08}");
                let (code, _, _) = get(&c, &base, CONFIGMAPS, &[("Authorization", &auth)]).await;
                assert_eq!(code, StatusCode::UNAUTHORIZED);
            }
        }
    };
    let run = |n: usize, offset: usize| {
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let per = n / 16;
                tokio::spawn(send(offset + t * per, offset + (t + 1) * per))
            })
            .collect();
        async move {
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    run(1_600, 0).await; // warm up: pools, allocator, the cache filled to its cap
    let before = rss_kib();
    run(10_000 - 1_600, 1_600).await;
    let after = rss_kib();
    let cache = e.kg.auth.token_cache();
    eprintln!(
        "10,000 distinct bad tokens: RSS {before} KiB after 1,600 -> {after} KiB after 10,000 \
         (+{} KiB); token cache {} entries, cap {}",
        after.saturating_sub(before),
        cache.len(),
        cache.capacity()
    );
    assert!(cache.len() <= 1000, "cache at its cap: {}", cache.len());
    assert!(
        cache.len() >= 900,
        "cache holds the recent tokens: {}",
        cache.len()
    );
    assert_eq!(
        e.sim.stats().token_reviews,
        10_001,
        "each new token reviewed once"
    );
    assert!(
        after.saturating_sub(before) < 32 * 1024,
        "memory grew by {} KiB",
        after - before
    );
    e.stop().await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn token_review_outage_fails_closed_or_open_when_configured() {
    let _alone = EXCLUSIVE.read().await;
    // kubeguard's own credentials are refused by the upstream: no TokenReview can be had.
    let e = env_with(NETWORK_SOURCES, "revoked-token").await;
    let base = common::tls_url(&e.kg);
    let c = client(&e.kg, false, None);
    let (code, _, body) = get(
        &c,
        &base,
        CONFIGMAPS,
        &[("Authorization", "Bearer alice-token")],
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["reason"], "ServiceUnavailable");
    assert!(e.users_seen_at(CONFIGMAPS).is_empty());
    // The outage is not remembered: each request asks again.
    let (code, _, _) = get(
        &c,
        &base,
        CONFIGMAPS,
        &[("Authorization", "Bearer alice-token")],
    )
    .await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    e.stop().await;

    let e = env_with(
        &format!("{NETWORK_SOURCES}  tokenReview:\n    failOpen: true\n"),
        "revoked-token",
    )
    .await;
    let base = common::tls_url(&e.kg);
    let c = client(&e.kg, false, None);
    let (code, _, body) = get(
        &c,
        &base,
        CONFIGMAPS,
        &[("Authorization", "Bearer alice-token")],
    )
    .await;
    assert_eq!(
        code,
        StatusCode::OK,
        "failOpen passes the token through: {body}"
    );
    assert_eq!(e.kg.metrics.identity.fail_open.get(), 1);
    e.stop().await;
}

#[tokio::test]
async fn sidecar_listener_uses_the_pods_identity_or_a_fixed_one() {
    let _alone = EXCLUSIVE.read().await;
    let e = env_with(SIDECAR_SOURCES, "kubeguard-token").await;
    let plain = common::plain_url(&e.kg);
    let c = client(&e.kg, false, None);
    let (code, _, body) = get(&c, &plain, CONFIGMAPS, &[]).await;
    // kubeguard's own service account has no right to list configmaps: the upstream says so,
    // which proves the request went as the pod's service account.
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        e.users_seen_at(CONFIGMAPS),
        vec![Some(KUBEGUARD_SA.to_string())]
    );
    e.stop().await;

    let e = env_with(
        &format!("{SIDECAR_SOURCES}  sidecar:\n    user: carol\n    groups: [devs]\n"),
        "kubeguard-token",
    )
    .await;
    let plain = common::plain_url(&e.kg);
    let (code, _, body) = get(&client(&e.kg, false, None), &plain, CONFIGMAPS, &[]).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(e.users_seen_at(CONFIGMAPS), vec![Some("carol".to_string())]);
    e.stop().await;
}

enum Auth<'a> {
    Token(&'a str),
    Cert(&'a (String, String)),
}

fn write_kubeconfig(e: &Env, name: &str, auth: Auth<'_>) -> PathBuf {
    let mut kc = e.kg.client_kubeconfig();
    let info = kc.auth_infos[0].auth_info.as_mut().unwrap();
    *info = Default::default();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    match auth {
        Auth::Token(t) => info.token = Some(t.to_string().into()),
        Auth::Cert((cert, key)) => {
            info.client_certificate_data = Some(b64(cert));
            info.client_key_data = Some(b64(key).into());
        }
    }
    let path = e.dir.path().join(name);
    kubeguard::kubeconfig::write(&path, &kc).unwrap();
    path
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(common::kubectl())
            .arg("--kubeconfig")
            .arg(kubeconfig)
            // Its own discovery cache: ~/.kube/cache is keyed by host:port and shared by
            // every run on the machine (common::kubectl_with).
            .arg("--cache-dir")
            .arg(kubeconfig.with_file_name("kube-cache"))
            .arg("--request-timeout=30s")
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("kubectl finished within 60 s")
    .unwrap()
}

#[tokio::test]
async fn kubectl_works_with_token_and_client_cert_kubeconfigs() {
    let _alone = EXCLUSIVE.read().await;
    let e = env("passthrough").await;
    let carol = e.ca.client_cert("carol", &["devs"]);
    let token = write_kubeconfig(&e, "token.kubeconfig", Auth::Token("alice-token"));
    let cert = write_kubeconfig(&e, "cert.kubeconfig", Auth::Cert(&carol));
    for (kc, who) in [(&token, "alice"), (&cert, "carol")] {
        let out = kubectl(kc, &["get", "configmaps", "-n", "default", "-o", "name"]).await;
        assert!(
            out.status.success(),
            "{who}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = kubectl(kc, &["get", "secrets", "-n", "default"]).await;
        assert!(!out.status.success(), "{who} may not read secrets");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("User \"{who}\" cannot")),
            "{stderr}"
        );
    }
    let users: Vec<_> = e.users_seen_at(CONFIGMAPS);
    assert!(users.contains(&Some("alice".to_string())), "{users:?}");
    assert!(users.contains(&Some("carol".to_string())), "{users:?}");
    assert_eq!(
        e.sim.stats().token_reviews,
        1,
        "kubectl's many requests: one review"
    );
    e.stop().await;
}

#[test]
fn rbac_grants_exactly_what_kubeguard_needs() {
    let mut kinds = Vec::new();
    let mut rules = Vec::new();
    let mut binding = Value::Null;
    for doc in serde_norway::Deserializer::from_str(RBAC) {
        let v: Value = serde::Deserialize::deserialize(doc).unwrap();
        kinds.push(v["kind"].as_str().unwrap().to_string());
        match v["kind"].as_str().unwrap() {
            "ClusterRole" => {
                for r in v["rules"].as_array().unwrap() {
                    let keys: Vec<_> = r.as_object().unwrap().keys().cloned().collect();
                    assert_eq!(
                        keys,
                        ["apiGroups", "resources", "verbs"],
                        "no names, no URLs"
                    );
                    for g in r["apiGroups"].as_array().unwrap() {
                        for res in r["resources"].as_array().unwrap() {
                            for verb in r["verbs"].as_array().unwrap() {
                                rules.push(format!(
                                    "{} {}/{}",
                                    verb.as_str().unwrap(),
                                    g.as_str().unwrap(),
                                    res.as_str().unwrap()
                                ));
                            }
                        }
                    }
                }
            }
            "ClusterRoleBinding" => binding = v,
            _ => {}
        }
    }
    assert_eq!(
        kinds,
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
    );
    rules.sort();
    assert_eq!(
        rules,
        [
            "create authentication.k8s.io/tokenreviews",
            "create authorization.k8s.io/subjectaccessreviews",
            "impersonate /groups",
            "impersonate /serviceaccounts",
            "impersonate /users",
            "impersonate authentication.k8s.io/uids",
            "impersonate authentication.k8s.io/userextras",
        ]
    );
    assert_eq!(binding["roleRef"]["name"], "kubeguard");
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(binding["subjects"][0]["name"], "kubeguard");
}

/// An upstream that answers every request with the headers it received, as JSON
/// (`{"name": ["value", …]}`): what actually travels on the wire.
async fn start_echo_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let mut seen = serde_json::Map::new();
                        for name in req.headers().keys() {
                            let values: Vec<Value> = req
                                .headers()
                                .get_all(name)
                                .iter()
                                .map(|v| Value::from(v.to_str().unwrap()))
                                .collect();
                            seen.insert(name.to_string(), Value::Array(values));
                        }
                        let body = Full::new(Bytes::from(Value::Object(seen).to_string()));
                        Ok::<_, std::convert::Infallible>(http::Response::new(body))
                    });
                let io = hyper_util::rt::TokioIo::new(tcp);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn on_the_wire_only_the_verified_identity_and_the_audit_id_travel() {
    let _alone = EXCLUSIVE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();
    let yaml = format!(
        "server:\n  listen: [\"https://127.0.0.1:0\"]\n  adminListen: 127.0.0.1:0\nidentity:\n  clientCA: {}\n  sources: [clientCert]\n  loopbackSources: [clientCert]\n",
        ca_path.display()
    );
    let config = FileConfig::from_yaml(&yaml, "test").unwrap();
    let mut upstream = kube::Config::new(start_echo_upstream().await.parse().unwrap());
    upstream.auth_info.token = Some("kubeguard-token".to_string().into());
    let kg = kubeguard::serve::start(&config, upstream).await.unwrap();
    let carol = ca.client_cert("carol", &["devs", "ops"]);
    let base = common::tls_url(&kg);
    for h2 in [false, true] {
        let c = client(&kg, h2, Some(&carol));
        let (code, headers, seen) = get(
            &c,
            &base,
            CONFIGMAPS,
            &[
                ("Authorization", "Bearer stolen-admin-token"),
                ("X-Remote-User", "system:admin"),
                ("X-Remote-Group", "system:masters"),
                ("Audit-ID", "join-me-42"),
            ],
        )
        .await;
        assert_eq!(code, StatusCode::OK, "h2={h2}");
        assert_eq!(seen["impersonate-user"], serde_json::json!(["carol"]));
        assert_eq!(
            seen["impersonate-group"],
            serde_json::json!(["devs", "ops", "system:authenticated"])
        );
        assert_eq!(
            seen["authorization"],
            serde_json::json!(["Bearer kubeguard-token"])
        );
        assert_eq!(seen["audit-id"], serde_json::json!(["join-me-42"]));
        assert_eq!(headers["audit-id"], "join-me-42");
        let names: Vec<&String> = seen.as_object().unwrap().keys().collect();
        assert!(
            !names.iter().any(|n| n.starts_with("x-remote-")),
            "h2={h2}: {names:?}"
        );
    }
    kg.shutdown().await;
}

#[tokio::test]
async fn anonymous_callers_only_where_the_config_lists_them() {
    let _alone = EXCLUSIVE.read().await;
    let e = env_with(
        "  sources: [clientCert, token, anonymous]\n  loopbackSources: [clientCert, token, anonymous]\n",
        "kubeguard-token",
    )
    .await;
    let c = client(&e.kg, true, None);
    let (code, _, body) = get(&c, &common::tls_url(&e.kg), "/version", &[]).await;
    // system:anonymous is impersonated; the emulator, like the apiserver, lets only
    // authenticated users read /version.
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    // kubeguard's own /version probes (the policy engine reads the upstream's version) are
    // made as its service account; the caller's request arrives as system:anonymous.
    let callers: Vec<Option<String>> = e
        .users_seen_at("/version")
        .into_iter()
        .filter(|u| u.as_deref() != Some(KUBEGUARD_SA))
        .collect();
    assert_eq!(callers, vec![Some("system:anonymous".to_string())]);
    // A bad token is still refused, not downgraded to anonymous.
    let (code, _, _) = get(
        &c,
        &common::tls_url(&e.kg),
        "/version",
        &[("Authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    e.stop().await;
}
