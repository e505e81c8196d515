//! The `identity:` section of the config file: where callers' identities come from, per
//! listener, and how requests reach the upstream (k8s-facts §2, §4).

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Identity;
use crate::config::duration;

/// `identity:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentitySection {
    /// Identity sources on listeners reachable from the network, tried in order: `clientCert`,
    /// `token`, `anonymous`. Empty (the default): identity checks off; callers are recorded as
    /// unverified and their credentials pass through unchanged.
    #[serde(default)]
    pub sources: Vec<SourceKind>,
    /// Identity sources on loopback listeners (a sidecar in a controller's pod), tried in
    /// order; `sidecar` is allowed only here. Absent: the same as `sources`.
    #[serde(default)]
    pub loopback_sources: Option<Vec<SourceKind>>,
    /// PEM bundle of the CA that signs client certificates (required by `clientCert`). Clients
    /// may then present a certificate; its CN is the user and its O values the groups.
    #[serde(default, rename = "clientCA")]
    pub client_ca: Option<PathBuf>,
    /// How verified requests reach the upstream: `passthrough` (bearer-token callers' own
    /// `Authorization` goes upstream; everyone else is impersonated) or `impersonate`
    /// (kubeguard's own credentials plus `Impersonate-*` headers for every caller).
    #[serde(default)]
    pub upstream_credentials: CredentialsMode,
    /// Bearer tokens verified by TokenReview against the upstream.
    #[serde(default)]
    pub token_review: TokenReviewSection,
    /// The `sidecar` source.
    #[serde(default)]
    pub sidecar: SidecarSection,
}

/// One identity source.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum SourceKind {
    ClientCert,
    Token,
    Sidecar,
    Anonymous,
}

/// `identity.upstreamCredentials`
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum CredentialsMode {
    #[default]
    Passthrough,
    Impersonate,
}

/// `identity.tokenReview:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenReviewSection {
    /// Tokens whose review is remembered at most (least recently used forgotten first). The
    /// size and TTLs also apply to the SubjectAccessReview answers of `kubectl --as`.
    #[serde(default = "default_cache_size")]
    pub cache_size: NonZeroUsize,
    /// How long an accepted token's identity is remembered (the apiserver's webhook default).
    #[serde(default = "default_ttl", with = "duration")]
    pub ttl: Duration,
    /// How long a refused token is remembered (shorter: a token may become valid).
    #[serde(default = "default_negative_ttl", with = "duration")]
    pub negative_ttl: Duration,
    /// How long a TokenReview may take before the request is answered 503.
    #[serde(default = "default_review_timeout", with = "duration")]
    pub timeout: Duration,
    /// When TokenReview is unavailable, let the request through (unverified, its token passed
    /// through, counted in `kubeguard_identity_fail_open_total`) instead of answering 503.
    #[serde(default)]
    pub fail_open: bool,
    /// Audiences asked for in `TokenReview.spec.audiences`; empty: the apiserver's own.
    #[serde(default)]
    pub audiences: Vec<String>,
}

/// `identity.sidecar:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SidecarSection {
    /// The fixed user of loopback callers, impersonated upstream. Absent: the pod's own service
    /// account, i.e. kubeguard's upstream credentials without impersonation.
    #[serde(default)]
    pub user: Option<String>,
    /// Groups of that user.
    #[serde(default)]
    pub groups: Vec<String>,
}

fn default_cache_size() -> NonZeroUsize {
    NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN)
}
fn default_ttl() -> Duration {
    Duration::from_secs(120)
}
fn default_negative_ttl() -> Duration {
    Duration::from_secs(30)
}
fn default_review_timeout() -> Duration {
    Duration::from_secs(5)
}

impl Default for IdentitySection {
    fn default() -> Self {
        serde_norway::from_str("{}").unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}

impl Default for TokenReviewSection {
    fn default() -> Self {
        serde_norway::from_str("{}").unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}

/// The section converted for use: what each listener tries, and the token cache's settings.
#[derive(Clone, Debug, Default)]
pub struct IdentitySettings {
    pub network: Vec<SourceKind>,
    pub loopback: Vec<SourceKind>,
    pub mode: CredentialsMode,
    pub token: TokenSettings,
    /// The fixed sidecar identity; `None`: kubeguard's own credentials.
    pub sidecar: Option<Identity>,
}

#[derive(Clone, Debug)]
pub struct TokenSettings {
    pub cache_size: NonZeroUsize,
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub timeout: Duration,
    pub fail_open: bool,
    pub audiences: Vec<String>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenReviewSection::default().settings()
    }
}

impl TokenReviewSection {
    fn settings(&self) -> TokenSettings {
        TokenSettings {
            cache_size: self.cache_size,
            ttl: self.ttl,
            negative_ttl: self.negative_ttl,
            timeout: self.timeout,
            fail_open: self.fail_open,
            audiences: self.audiences.clone(),
        }
    }
}

impl IdentitySection {
    /// Checks the section; an error is `(key, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.sources.contains(&SourceKind::Sidecar) {
            return Err((
                "identity.sources".into(),
                "`sidecar` is only allowed in loopbackSources (a network caller never gets a \
                 fixed identity)"
                    .into(),
            ));
        }
        let all = self
            .sources
            .iter()
            .chain(self.loopback_sources.iter().flatten());
        if all.clone().any(|s| *s == SourceKind::ClientCert) && self.client_ca.is_none() {
            return Err((
                "identity.clientCA".into(),
                "required when a source is `clientCert`".into(),
            ));
        }
        if self.token_review.negative_ttl > self.token_review.ttl {
            return Err((
                "identity.tokenReview.negativeTtl".into(),
                "must not be longer than ttl".into(),
            ));
        }
        if self.sidecar.user.as_deref() == Some("") {
            return Err(("identity.sidecar.user".into(), "must not be empty".into()));
        }
        Ok(())
    }

    pub fn settings(&self) -> IdentitySettings {
        let sidecar = self.sidecar.user.as_ref().map(|user| {
            let mut id = Identity::unverified(user.clone());
            id.groups = self.sidecar.groups.clone();
            id.source = super::IdentitySource::Sidecar;
            id
        });
        IdentitySettings {
            network: self.sources.clone(),
            loopback: self
                .loopback_sources
                .clone()
                .unwrap_or_else(|| self.sources.clone()),
            mode: self.upstream_credentials,
            token: self.token_review.settings(),
            sidecar,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> IdentitySection {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_leave_identity_checks_off() {
        let s = IdentitySection::default();
        assert!(s.sources.is_empty());
        assert_eq!(s.token_review.cache_size.get(), 10_000);
        assert_eq!(s.token_review.ttl, Duration::from_secs(120));
        assert_eq!(s.token_review.negative_ttl, Duration::from_secs(30));
        assert!(!s.token_review.fail_open);
        s.validate().unwrap();
    }

    #[test]
    fn sidecar_only_on_loopback_and_client_cert_needs_a_ca() {
        let e = parse("sources: [sidecar]").validate().unwrap_err();
        assert_eq!(e.0, "identity.sources");
        let e = parse("sources: [clientCert, token]")
            .validate()
            .unwrap_err();
        assert_eq!(e.0, "identity.clientCA");
        let ok = parse("sources: [token]\nloopbackSources: [token, sidecar]");
        ok.validate().unwrap();
        let s = ok.settings();
        assert_eq!(s.network, vec![SourceKind::Token]);
        assert_eq!(s.loopback, vec![SourceKind::Token, SourceKind::Sidecar]);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(serde_norway::from_str::<IdentitySection>("tokenReview: {ttll: 5s}").is_err());
    }
}
