//! Identify: who is calling. Every request carries an [`Identity`] to the later steps (policy,
//! rate limits, the cost ledger, the request log) and, in impersonate mode, to the upstream.
//!
//! The [`Authenticator`] tries the sources configured for the listener in order (client
//! certificate, bearer token by TokenReview, the sidecar's fixed identity, anonymous), then a
//! client's own `Impersonate-*` request (`kubectl --as`) after a SubjectAccessReview, and says
//! how the request reaches the upstream: the caller's token passed through, or kubeguard's own
//! credentials with `Impersonate-*` headers (k8s-facts §2, §4).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};

use crate::proxy::ConnInfo;
use crate::status::Status;
use crate::upstream::Upstream;

pub mod config;
mod review;
pub mod sar;
pub mod token;
pub(crate) mod x509;

use config::{CredentialsMode, IdentitySettings, SourceKind};
use token::{ReviewCache, TokenCache};

/// The group of every authenticated user.
pub const AUTHENTICATED: &str = "system:authenticated";

/// The refusal of a client's `Impersonate-*` while identity checks are off.
pub const IMPERSONATION_UNCHECKED: &str = "kubeguard: impersonation (Impersonate-* headers, \
     kubectl --as) is refused: identity checks are off, so kubeguard cannot check who may \
     impersonate whom. Send the request without --as, or turn identity checks on \
     (identity.sources, or identity.loopbackSources on a loopback listener, in kubeguard's \
     config) and kubeguard will check the impersonation by SubjectAccessReview and pass it on";

/// The request asks to impersonate (`kubectl --as`, `--as-group`, `--as-uid`).
fn asks_impersonation(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| k.as_str().starts_with("impersonate-"))
}

/// How kubeguard learned who the caller is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentitySource {
    /// A client certificate verified against the configured client CA (CN = user, O = groups).
    ClientCert,
    /// A bearer token verified by TokenReview (or its cache).
    Token,
    /// The fixed identity of a sidecar listener.
    Sidecar,
    /// No credentials, and the config allows anonymous callers.
    Anonymous,
    /// Not verified by kubeguard (identity checks off): only for accounting, never trusted.
    Unverified,
}

/// The caller, as the apiserver would see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    pub uid: Option<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    pub source: IdentitySource,
}

impl Identity {
    /// `system:anonymous` in `system:unauthenticated`, as the apiserver names it.
    pub fn anonymous() -> Self {
        Identity {
            user: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            uid: None,
            extra: BTreeMap::new(),
            source: IdentitySource::Anonymous,
        }
    }

    /// A caller whose identity kubeguard does not check (for accounting only).
    pub fn unverified(user: impl Into<String>) -> Self {
        Identity {
            user: user.into(),
            groups: Vec::new(),
            uid: None,
            extra: BTreeMap::new(),
            source: IdentitySource::Unverified,
        }
    }

    pub fn verified(&self) -> bool {
        !matches!(self.source, IdentitySource::Unverified)
    }

    /// `(namespace, name)` for `system:serviceaccount:<ns>:<name>` users.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        let rest = self.user.strip_prefix("system:serviceaccount:")?;
        let (ns, name) = rest.split_once(':')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// How a request goes upstream, decided with its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamAuth {
    /// Identity checks are off: the client's credentials pass through as they came (kubeguard
    /// lends its own only where `upstream.ownCredentials` allows).
    Unverified,
    /// The caller's own `Authorization` goes upstream unchanged.
    Passthrough,
    /// kubeguard's own credentials, no impersonation (a sidecar acting as the pod's service
    /// account).
    Own,
    /// kubeguard's own credentials plus `Impersonate-*` carrying the verified identity.
    Impersonate,
}

/// The caller of one request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub identity: Arc<Identity>,
    pub upstream: UpstreamAuth,
}

/// Why a caller is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(&'static str),
    /// TokenReview or SubjectAccessReview could not be had (upstream down, slow, refusing).
    #[error("kubeguard cannot verify the caller's identity now: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// The `Status` a client sees, in the apiserver's words where it has them.
    pub fn status(&self) -> Status {
        let message = self.to_string();
        match self {
            AuthError::Unauthorized => {
                Status::failure(StatusCode::UNAUTHORIZED, "Unauthorized", message)
            }
            AuthError::Forbidden(_) => Status::failure(StatusCode::FORBIDDEN, "Forbidden", message),
            AuthError::BadRequest(_) => Status::bad_request(message),
            AuthError::Unavailable(_) => Status::failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                message,
            ),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            AuthError::Unauthorized => "unauthorized",
            AuthError::Forbidden(_) => "forbidden",
            AuthError::BadRequest(_) => "bad_request",
            AuthError::Unavailable(_) => "unavailable",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// The identity step's metrics (registered in the one registry by `Metrics::new`).
#[derive(Clone, Debug, Default)]
pub struct IdentityMetrics {
    /// Token lookups by `hit` / `miss`.
    pub token_lookups: Family<ResultLabels, Counter>,
    /// Tokens remembered now.
    pub token_cache_entries: Gauge,
    /// Requests let through unverified because TokenReview was unavailable and `failOpen` is on.
    pub fail_open: Counter,
    /// Callers refused, by `unauthorized`, `forbidden`, `bad_request`, `unavailable`.
    pub refused: Family<ResultLabels, Counter>,
}

impl IdentityMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = IdentityMetrics::default();
        registry.register(
            "identity_token_lookups",
            "Bearer-token identity lookups, by result (hit: answered from the cache)",
            m.token_lookups.clone(),
        );
        registry.register(
            "identity_token_cache_entries",
            "Tokens whose TokenReview answer is remembered",
            m.token_cache_entries.clone(),
        );
        registry.register(
            "identity_fail_open",
            "Requests let through unverified because TokenReview was unavailable (failOpen)",
            m.fail_open.clone(),
        );
        registry.register(
            "identity_refused",
            "Callers refused by the identity step, by reason",
            m.refused.clone(),
        );
        m
    }
}

/// Who is calling, for every listener: shared by all connections.
pub struct Authenticator {
    settings: IdentitySettings,
    upstream: Upstream,
    tokens: TokenCache,
    /// SubjectAccessReview answers for `kubectl --as` (same size and TTLs as the token cache).
    impersonations: ReviewCache<bool>,
    metrics: IdentityMetrics,
    /// The caller without a bearer token when identity checks are off (`unverified`), made
    /// once: shared by every such request instead of built and dropped per request.
    unverified: Arc<Identity>,
}

impl Authenticator {
    pub fn new(settings: IdentitySettings, upstream: Upstream, metrics: IdentityMetrics) -> Self {
        let t = &settings.token;
        let tokens = TokenCache::new(t.cache_size, t.ttl, t.negative_ttl);
        let impersonations = ReviewCache::new(t.cache_size, t.ttl, t.negative_ttl);
        Authenticator {
            settings,
            upstream,
            tokens,
            impersonations,
            metrics,
            unverified: Arc::new(Identity::unverified(UNVERIFIED)),
        }
    }

    /// The token cache (for tests and the benchmark).
    pub fn token_cache(&self) -> &TokenCache {
        &self.tokens
    }

    /// Who the request's caller is and how it goes upstream, or why it is refused.
    pub async fn identify(
        &self,
        headers: &HeaderMap,
        conn: &ConnInfo,
    ) -> Result<Caller, AuthError> {
        let result = self.identify_inner(headers, conn).await;
        if let Err(e) = &result {
            self.metrics
                .refused
                .get_or_create(&ResultLabels { result: e.kind() })
                .inc();
        }
        result
    }

    async fn identify_inner(
        &self,
        headers: &HeaderMap,
        conn: &ConnInfo,
    ) -> Result<Caller, AuthError> {
        let sources = if conn.loopback_listener {
            &self.settings.loopback
        } else {
            &self.settings.network
        };
        if sources.is_empty() {
            // Client `Impersonate-*` never goes upstream (k8s-facts §4), and without identity
            // checks nobody can say who may impersonate whom: refused, not silently dropped,
            // so that `kubectl --as=jane delete …` never runs as the caller instead.
            if asks_impersonation(headers) {
                return Err(AuthError::Forbidden(IMPERSONATION_UNCHECKED.into()));
            }
            let identity = match bearer(headers) {
                Some(token) => conn.tokens.named(token).unverified,
                None => self.unverified.clone(),
            };
            return Ok(Caller {
                identity,
                upstream: UpstreamAuth::Unverified,
            });
        }
        // Boxed: verifying (TokenReview, SubjectAccessReview) keeps a large state, and every
        // request's future would be as large for it.
        Box::pin(self.verified(sources, headers, conn)).await
    }

    /// The caller as the configured sources verify it, with the impersonation it asks for.
    async fn verified(
        &self,
        sources: &[SourceKind],
        headers: &HeaderMap,
        conn: &ConnInfo,
    ) -> Result<Caller, AuthError> {
        let caller = self.authenticate(sources, headers, conn).await?;
        match sar::requested(headers).map_err(AuthError::BadRequest)? {
            None => Ok(caller),
            Some(_) if !caller.identity.verified() => Ok(caller),
            Some(wanted) => {
                let timeout = self.settings.token.timeout;
                let cache = &self.impersonations;
                let granted =
                    sar::authorize(&self.upstream, cache, &caller.identity, wanted, timeout).await;
                match granted {
                    Ok(identity) => Ok(Caller {
                        identity: Arc::new(identity),
                        upstream: UpstreamAuth::Impersonate,
                    }),
                    Err(sar::Denied::Forbidden(m)) => Err(AuthError::Forbidden(m)),
                    Err(sar::Denied::Unavailable(e)) => Err(AuthError::Unavailable(e.0)),
                }
            }
        }
    }

    /// The configured sources, in order; the first that recognises the caller decides.
    async fn authenticate(
        &self,
        sources: &[SourceKind],
        headers: &HeaderMap,
        conn: &ConnInfo,
    ) -> Result<Caller, AuthError> {
        for source in sources {
            let found = match source {
                SourceKind::ClientCert => {
                    conn.peer_cert
                        .as_deref()
                        .and_then(cert_identity)
                        .map(|identity| Caller {
                            identity: Arc::new(identity),
                            upstream: UpstreamAuth::Impersonate,
                        })
                }
                SourceKind::Token => match bearer(headers) {
                    // A token that is present but invalid is refused, not passed to the next
                    // source (the apiserver answers 401 too).
                    Some(token) => Some(self.by_token(token, conn.tokens.named(token)).await?),
                    None => None,
                },
                SourceKind::Sidecar if conn.loopback_listener => Some(self.sidecar()),
                SourceKind::Sidecar => None,
                SourceKind::Anonymous => Some(Caller {
                    identity: Arc::new(Identity::anonymous()),
                    upstream: UpstreamAuth::Impersonate,
                }),
            };
            if let Some(caller) = found {
                return Ok(caller);
            }
        }
        Err(AuthError::Unauthorized)
    }

    async fn by_token(&self, token: &str, named: NamedToken) -> Result<Caller, AuthError> {
        let t = &self.settings.token;
        let looked = self
            .tokens
            .lookup_digest(named.digest, || async {
                let identity =
                    review::token_review(&self.upstream, token, &t.audiences, t.timeout).await?;
                Ok(identity.map(Arc::new))
            })
            .await;
        let lookup = match looked {
            Ok(l) => l,
            Err(e) if t.fail_open => {
                self.metrics.fail_open.inc();
                tracing::warn!(error = %e, "TokenReview unavailable: failing open (identity.tokenReview.failOpen)");
                return Ok(Caller {
                    identity: named.unverified,
                    upstream: UpstreamAuth::Unverified,
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "TokenReview unavailable: refusing (503)");
                return Err(AuthError::Unavailable(e.0));
            }
        };
        let result = if lookup.cached { "hit" } else { "miss" };
        self.metrics
            .token_lookups
            .get_or_create(&ResultLabels { result })
            .inc();
        if !lookup.cached {
            self.metrics
                .token_cache_entries
                .set(self.tokens.len() as i64);
        }
        let identity = lookup.answer.ok_or(AuthError::Unauthorized)?;
        let upstream = match self.settings.mode {
            CredentialsMode::Passthrough => UpstreamAuth::Passthrough,
            CredentialsMode::Impersonate => UpstreamAuth::Impersonate,
        };
        Ok(Caller { identity, upstream })
    }

    fn sidecar(&self) -> Caller {
        match &self.settings.sidecar {
            Some(fixed) => Caller {
                identity: Arc::new(fixed.clone()),
                upstream: UpstreamAuth::Impersonate,
            },
            None => {
                let mut own = Identity::unverified(SIDECAR_USER);
                own.source = IdentitySource::Sidecar;
                Caller {
                    identity: Arc::new(own),
                    upstream: UpstreamAuth::Own,
                }
            }
        }
    }
}

/// The name a sidecar caller is recorded under when it acts as the pod's own service account.
pub const SIDECAR_USER: &str = "kubeguard:sidecar";

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A name for accounting when identity checks are off: a short hash of the bearer token (never
/// the token), else `unverified`.
pub fn unverified_name(headers: &HeaderMap) -> String {
    bearer(headers).map_or_else(|| UNVERIFIED.to_string(), token_name)
}

/// The accounting name of a caller without a bearer token when identity checks are off.
const UNVERIFIED: &str = "unverified";

fn token_name(token: &str) -> String {
    digest_name(&Sha256::digest(token.as_bytes()).into())
}

/// `token-sha256:` and the first 6 bytes of the token's SHA-256 in hex.
fn digest_name(digest: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut name = String::with_capacity(25);
    name.push_str("token-sha256:");
    for b in &digest[..6] {
        name.push(char::from(HEX[usize::from(b >> 4)]));
        name.push(char::from(HEX[usize::from(b & 15)]));
    }
    name
}

/// A bearer token as kubeguard keys and names it: its SHA-256 (the token caches' key) and the
/// unverified caller it names when identity checks are off.
#[derive(Clone)]
pub struct NamedToken {
    digest: [u8; 32],
    unverified: Arc<Identity>,
}

/// The bearer token a connection's requests last carried, remembered by a keyed 64-bit
/// fingerprint (the token itself is not kept), with its [`NamedToken`]. A client sends the
/// same token on every request of a connection, so the SHA-256 (3.5k instructions for a short
/// token, about 15 cycles a byte for a service account's JWT) is computed once per connection
/// and token, not per request. Two tokens with one fingerprint on one connection would share
/// a name; the fingerprint's key is drawn at start, so a client cannot aim for that.
///
/// Boxed: a connection's state holds its `ConnInfo` (and so this) by value in several of its
/// futures' layers, and 16 bytes where 56 would be keep idle watches small (S4).
#[derive(Default)]
pub struct TokenMemo(std::sync::Mutex<Option<Box<(u64, NamedToken)>>>);

impl TokenMemo {
    /// `token`'s digest and name: remembered, or computed and remembered.
    pub fn named(&self, token: &str) -> NamedToken {
        use std::hash::BuildHasher;
        static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
        let fingerprint = KEY.get_or_init(std::hash::RandomState::new).hash_one(token);
        let mut memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = memo.as_deref()
            && m.0 == fingerprint
        {
            return m.1.clone();
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let named = NamedToken {
            digest,
            unverified: Arc::new(Identity::unverified(digest_name(&digest))),
        };
        *memo = Some(Box::new((fingerprint, named.clone())));
        named
    }
}

/// A connection's memo starts empty in a copy.
impl Clone for TokenMemo {
    fn clone(&self) -> Self {
        TokenMemo::default()
    }
}

/// Says nothing of the token.
impl std::fmt::Debug for TokenMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenMemo")
    }
}

/// CN = user, O = groups, as the apiserver's x509 authenticator reads a verified certificate.
fn cert_identity(der: &[u8]) -> Option<Identity> {
    let subject = x509::cert_subject(der)?;
    let user = subject.common_name.filter(|cn| !cn.is_empty())?;
    let mut groups = subject.organizations;
    if !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    Some(Identity {
        user,
        groups,
        uid: None,
        extra: BTreeMap::new(),
        source: IdentitySource::ClientCert,
    })
}

/// Characters kept as they are in an `Impersonate-Extra-<key>` header name; the rest are
/// percent-encoded, as client-go does.
const EXTRA_KEY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Adds `Impersonate-User/Group/Uid/Extra-*` for `identity`. Call after every client-sent
/// identity header was stripped (k8s-facts §4). Values that cannot be header values are
/// refused rather than dropped (dropping a group would change who the caller is).
pub fn add_impersonation(identity: &Identity, headers: &mut HeaderMap) -> Result<(), AuthError> {
    let value = |v: &str| {
        HeaderValue::from_str(v).map_err(|_| {
            AuthError::BadRequest("identity contains characters not allowed in headers")
        })
    };
    headers.insert(
        HeaderName::from_static("impersonate-user"),
        value(&identity.user)?,
    );
    for g in &identity.groups {
        headers.append(HeaderName::from_static("impersonate-group"), value(g)?);
    }
    if let Some(uid) = &identity.uid {
        headers.insert(HeaderName::from_static("impersonate-uid"), value(uid)?);
    }
    for (key, values) in &identity.extra {
        let encoded = percent_encoding::utf8_percent_encode(key, EXTRA_KEY).to_string();
        let name = HeaderName::from_bytes(format!("impersonate-extra-{encoded}").as_bytes())
            .map_err(|_| AuthError::BadRequest("identity has an invalid extra key"))?;
        for v in values {
            headers.append(name.clone(), value(v)?);
        }
    }
    Ok(())
}

/// The `Audit-ID` of a request: the client's when it sent a usable one, else a new UUID. The
/// apiserver takes it as the audit ID and kubeguard's records join its audit log (k8s-facts §4).
pub fn audit_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&crate::proxy::AUDIT_ID)
        .filter(|v| {
            let b = v.as_bytes();
            (1..=128).contains(&b.len())
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
        })
        .cloned()
        .unwrap_or_else(|| {
            // A thread-local generator (uuid's fast-rng): no system call per request.
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
            // Owned by its reference-counted box from the start: the value is cloned into the
            // upstream request, and a clone of a `Vec`-backed value would allocate again.
            HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(buf))
                .unwrap_or_else(|_| HeaderValue::from_static("kubeguard"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_accounts_are_recognised() {
        let id = Identity::unverified("system:serviceaccount:kube-system:helm");
        assert_eq!(id.service_account(), Some(("kube-system", "helm")));
        assert_eq!(Identity::unverified("alice").service_account(), None);
        assert_eq!(
            Identity::unverified("system:serviceaccount:x").service_account(),
            None
        );
        assert!(Identity::anonymous().in_group("system:unauthenticated"));
    }

    #[test]
    fn impersonation_headers_carry_the_whole_identity() {
        let mut id = Identity::unverified("alice");
        id.groups = vec!["devs".into(), AUTHENTICATED.into()];
        id.uid = Some("1001".into());
        id.extra.insert(
            "scopes.example.com/x y".into(),
            vec!["a".into(), "b".into()],
        );
        let mut h = HeaderMap::new();
        add_impersonation(&id, &mut h).unwrap();
        assert_eq!(h["impersonate-user"], "alice");
        assert_eq!(h.get_all("impersonate-group").iter().count(), 2);
        assert_eq!(h["impersonate-uid"], "1001");
        let extra = h.get_all("impersonate-extra-scopes.example.com%2Fx%20y");
        assert_eq!(extra.iter().count(), 2);
    }

    #[test]
    fn audit_ids_are_kept_when_sane_and_made_otherwise() {
        let mut h = HeaderMap::new();
        let made = audit_id(&h);
        assert_eq!(made.len(), 36);
        let uuid = uuid::Uuid::parse_str(made.to_str().unwrap()).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
        assert_eq!(made.to_str().unwrap(), uuid.hyphenated().to_string());
        assert_ne!(audit_id(&h), made);
        let cloned = made.clone();
        assert_eq!(cloned, made);
        h.insert("audit-id", HeaderValue::from_static("abc-123"));
        assert_eq!(audit_id(&h), "abc-123");
        h.insert("audit-id", HeaderValue::from_static("a b"));
        assert_ne!(audit_id(&h), "a b");
    }

    #[test]
    fn a_connections_token_is_hashed_once_and_named_as_before() {
        let memo = TokenMemo::default();
        let a = memo.named("sekret");
        assert_eq!(a.unverified.user, token_name("sekret"));
        assert_eq!(a.digest, <[u8; 32]>::from(Sha256::digest(b"sekret")));
        // The same token again: the same caller, not a new one.
        assert!(Arc::ptr_eq(&memo.named("sekret").unverified, &a.unverified));
        // Another token on the connection: its own name, then remembered in turn.
        let b = memo.named("other");
        assert_eq!(b.unverified.user, token_name("other"));
        assert_ne!(b.unverified.user, a.unverified.user);
        assert!(Arc::ptr_eq(&memo.named("other").unverified, &b.unverified));
        assert_eq!(memo.named("sekret").unverified.user, a.unverified.user);
        // Neither the memo's Debug nor a copy carries the token.
        assert_eq!(format!("{memo:?}"), "TokenMemo");
        assert!(memo.clone().0.lock().unwrap().is_none());
    }

    #[test]
    fn digest_names_are_lower_hex_of_six_bytes() {
        let mut d = [0u8; 32];
        d[..6].copy_from_slice(&[0x00, 0x0f, 0xa0, 0xff, 0x12, 0x9b]);
        assert_eq!(digest_name(&d), "token-sha256:000fa0ff129b");
    }

    #[test]
    fn bearer_tokens_and_their_accounting_names() {
        let mut h = HeaderMap::new();
        assert_eq!(unverified_name(&h), "unverified");
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer sekret"));
        assert_eq!(bearer(&h), Some("sekret"));
        let name = unverified_name(&h);
        assert!(name.starts_with("token-sha256:") && !name.contains("sekret"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
