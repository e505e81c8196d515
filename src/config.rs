//! The configuration file (`--config FILE`): typed, every field documented, unknown keys refused,
//! converted once at load into the runtime types the rest of the code uses. Errors name the key
//! and the line.
//!
//! `config/kubeguard.yaml` shows every key with its default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::proxy::{OwnCredentials, ProxySettings};
use crate::server::ServerLimits;
use crate::upstream::UpstreamOptions;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    /// The client-facing side: listeners, TLS, limits.
    #[serde(default)]
    pub server: ServerSection,
    /// The apiserver side.
    #[serde(default)]
    pub upstream: UpstreamSection,
    /// The per-client cost ledger (`src/cost/cost_config.rs`).
    #[serde(default)]
    pub cost: crate::cost::cost_config::CostSection,
    /// Per-client limits and the whole-process in-flight cap (`src/cost/limits_config.rs`).
    #[serde(default)]
    pub limits: crate::cost::limits_config::LimitsSection,
    /// Who is calling, and how requests reach the upstream on the caller's behalf.
    #[serde(default)]
    pub identity: crate::identity::config::IdentitySection,
    /// Guards, rules and modes (hot-reloaded; see `policy/`).
    #[serde(default)]
    pub policy: crate::policy::PolicySection,
    /// The file this config was loaded from (set by [`FileConfig::load`]; reloads watch it).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// `server:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerSection {
    /// Listen addresses: `https://HOST:PORT` (or a bare `HOST:PORT`) for TLS, `http://HOST:PORT`
    /// for plain HTTP (loopback addresses only).
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// kubeguard's own endpoints (/healthz, /readyz, /metrics), plain HTTP.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// PEM serving certificate; without it a self-signed one is generated at start.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tlsCert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Extra names (DNS or IP) for the generated certificate, besides the listen addresses and localhost.
    #[serde(default)]
    pub tls_sans: Vec<String>,
    /// Open client connections at most; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Largest request head (HTTP/1.1) or header list (h2), bytes.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// A client must send a complete request head within this.
    #[serde(default = "default_header_read_timeout", with = "duration")]
    pub header_read_timeout: Duration,
    /// A client must finish its TLS handshake within this.
    #[serde(default = "default_tls_handshake_timeout", with = "duration")]
    pub tls_handshake_timeout: Duration,
    /// Concurrent h2 streams per client connection.
    #[serde(default = "default_h2_streams")]
    pub h2_max_concurrent_streams: u32,
    /// h2 streams a client opened and cancelled before they were served that may wait at once
    /// per connection; past it the connection gets GOAWAY (rapid reset, CVE-2023-44487).
    #[serde(default = "default_h2_pending_accept_resets")]
    pub h2_max_pending_accept_resets: usize,
    /// h2 streams kubeguard reset because the client broke the protocol, per connection; past
    /// it the connection gets GOAWAY ("MadeYouReset", CVE-2025-8671).
    #[serde(default = "default_h2_local_error_resets")]
    pub h2_max_local_error_resets: usize,
    /// Which HTTP/2 server serves h2 clients (TLS with ALPN h2, and h2c with prior knowledge
    /// handed over by the HTTP/1.1 front end): `kubeguard` (kubeguard's own, `front/h2own`, two
    /// thirds of hyper's instructions per request; the default) or `hyper` (the h2 crate's).
    /// With `http1FrontEnd: false` hyper serves every connection whatever this says.
    #[serde(default = "default_h2_server")]
    pub h2_server: H2ServerSetting,
    /// On SIGTERM, how long in-flight requests may finish before remaining streams are closed.
    #[serde(default = "default_grace", with = "duration")]
    pub shutdown_grace_period: Duration,
    /// HTTP/1.1 clients are served by kubeguard's own HTTP/1.1 front end (one upstream
    /// connection per client connection, `front/`); `false` serves them with hyper like h2.
    #[serde(default = "default_true")]
    pub http1_front_end: bool,
    /// Threads that serve client connections, each connection on one of them from start to
    /// end; default one per core. `0` serves connections on the main runtime's shared threads.
    #[serde(default)]
    pub connection_workers: Option<usize>,
}

/// `server.h2Server`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum H2ServerSetting {
    Hyper,
    Kubeguard,
}

fn default_h2_server() -> H2ServerSetting {
    H2ServerSetting::Kubeguard
}

fn default_true() -> bool {
    true
}

/// `upstream:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpstreamSection {
    /// Kubeconfig file of the upstream; default `$KUBECONFIG`, `~/.kube/config`, or in-cluster.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Context in that kubeconfig; default its current context.
    #[serde(default)]
    pub context: Option<String>,
    #[serde(default = "default_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// How long a short request (not a watch, log stream or exec) waits for response headers
    /// before kubeguard answers 504.
    #[serde(default = "default_response_header_timeout", with = "duration")]
    pub response_header_timeout: Duration,
    /// How long an exec/attach/port-forward upgrade may take to be answered.
    #[serde(default = "default_upgrade_timeout", with = "duration")]
    pub upgrade_timeout: Duration,
    /// When a request carries no credentials of its own, whether kubeguard lends its upstream
    /// credentials: `loopbackOnly` (sidecar and local use) or `never`.
    #[serde(default)]
    pub own_credentials: OwnCredentialsSetting,
    /// Idle pooled upstream connections are closed after this long.
    #[serde(default = "default_pool_idle", with = "duration")]
    pub pool_idle_timeout: Duration,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum OwnCredentialsSetting {
    #[default]
    LoopbackOnly,
    Never,
}

fn default_listen() -> Vec<String> {
    vec!["https://127.0.0.1:8443".into()]
}
fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}
fn default_max_connections() -> usize {
    ServerLimits::default().max_connections
}
fn default_max_header_bytes() -> usize {
    ServerLimits::default().max_header_bytes
}
fn default_header_read_timeout() -> Duration {
    ServerLimits::default().header_read_timeout
}
fn default_tls_handshake_timeout() -> Duration {
    ServerLimits::default().tls_handshake_timeout
}
fn default_h2_streams() -> u32 {
    ServerLimits::default().h2_max_concurrent_streams
}
fn default_h2_pending_accept_resets() -> usize {
    ServerLimits::default().h2_max_pending_accept_resets
}
fn default_h2_local_error_resets() -> usize {
    ServerLimits::default().h2_max_local_error_resets
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    UpstreamOptions::default().connect_timeout
}
fn default_response_header_timeout() -> Duration {
    ProxySettings::default().response_header_timeout
}
fn default_upgrade_timeout() -> Duration {
    ProxySettings::default().upgrade_timeout
}
fn default_pool_idle() -> Duration {
    UpstreamOptions::default().pool_idle_timeout
}

impl Default for ServerSection {
    fn default() -> Self {
        // An empty mapping gets every default.
        serde_norway::from_str("{}").unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}

impl Default for UpstreamSection {
    fn default() -> Self {
        serde_norway::from_str("{}").unwrap_or_else(|_| unreachable!("defaults parse"))
    }
}

/// A config error that names the file, the key and the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: key `{key}`: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

impl FileConfig {
    /// Parses a config from YAML text; `origin` names it in errors (a path, or "inline").
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let de = serde_norway::Deserializer::from_str(text);
        let parsed: Result<Option<FileConfig>, _> = serde_path_to_error::deserialize(de);
        let config = parsed
            .map_err(|e| {
                let key = e.path().to_string();
                ConfigError::Invalid {
                    origin: origin.to_string(),
                    key: if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    message: e.into_inner().to_string(),
                }
            })?
            .unwrap_or_default();
        config.validate(origin)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::from_yaml(&text, &path.display().to_string())?;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        for (i, l) in self.server.listen.iter().enumerate() {
            ListenAddr::parse(l).map_err(|m| invalid(&format!("server.listen[{i}]"), m))?;
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(invalid(
                "server.tlsCert",
                "tlsCert and tlsKey must be given together".into(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(invalid(
                "server.maxConnections",
                "must be at least 1".into(),
            ));
        }
        self.identity
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        crate::policy::Policy::compile(&self.policy).map_err(|e| invalid(&e.key, e.message))?;
        if self.server.h2_max_concurrent_streams == 0 {
            return Err(invalid(
                "server.h2MaxConcurrentStreams",
                "must be at least 1".into(),
            ));
        }
        // 0 would GOAWAY a connection at its first cancelled stream: every client cancels some.
        for (key, value) in [
            (
                "server.h2MaxPendingAcceptResets",
                self.server.h2_max_pending_accept_resets,
            ),
            (
                "server.h2MaxLocalErrorResets",
                self.server.h2_max_local_error_resets,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        Ok(())
    }

    pub fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.server.max_connections,
            tls_handshake_timeout: self.server.tls_handshake_timeout,
            header_read_timeout: self.server.header_read_timeout,
            max_header_bytes: self.server.max_header_bytes,
            h2_max_concurrent_streams: self.server.h2_max_concurrent_streams,
            h2_max_pending_accept_resets: self.server.h2_max_pending_accept_resets,
            h2_max_local_error_resets: self.server.h2_max_local_error_resets,
            own_h2_server: self.server.h2_server == H2ServerSetting::Kubeguard,
        }
    }

    pub fn proxy_settings(&self) -> ProxySettings {
        ProxySettings {
            response_header_timeout: self.upstream.response_header_timeout,
            upgrade_timeout: self.upstream.upgrade_timeout,
            own_credentials: match self.upstream.own_credentials {
                OwnCredentialsSetting::LoopbackOnly => OwnCredentials::LoopbackOnly,
                OwnCredentialsSetting::Never => OwnCredentials::Never,
            },
        }
    }

    pub fn upstream_options(&self) -> UpstreamOptions {
        UpstreamOptions {
            connect_timeout: self.upstream.connect_timeout,
            pool_idle_timeout: self.upstream.pool_idle_timeout,
            ..UpstreamOptions::default()
        }
    }
}

/// A listen address: TLS unless written `http://…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenAddr {
    pub addr: SocketAddr,
    pub tls: bool,
}

impl ListenAddr {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            (true, s)
        };
        let rest = rest.trim_end_matches('/');
        let rest = rest.replace("localhost:", "127.0.0.1:");
        let addr: SocketAddr = rest.parse().map_err(|_| {
            format!("{s:?} is not a listen address (want https://IP:PORT, IP:PORT or http://127.0.0.1:PORT)")
        })?;
        if !tls && !addr.ip().is_loopback() {
            return Err(format!(
                "{s:?}: plain HTTP is only allowed on a loopback address; use https://"
            ));
        }
        Ok(ListenAddr { addr, tls })
    }
}

/// Durations written as `500ms`, `30s`, `5m`, `1h` (or a bare number of seconds).
pub mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn parse(s: &str) -> Result<Duration, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 30s, 5m, 1h)"))?;
        let secs = match unit.trim() {
            "ms" => n / 1000.0,
            "" | "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            other => {
                return Err(format!(
                    "unknown duration unit {other:?} in {s:?} (ms, s, m, h)"
                ));
            }
        };
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(format!("{s:?} is out of range"));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    /// Written back as `500ms` or `30s` (for `check-config`).
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_millis() != 0 {
            s.serialize_str(&format!("{}ms", d.as_millis()))
        } else {
            s.serialize_str(&format!("{}s", d.as_secs()))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => parse(&n.to_string()),
            Raw::Text(t) => parse(&t),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        let c = FileConfig::from_yaml("", "inline").unwrap();
        assert_eq!(c.server.listen, vec!["https://127.0.0.1:8443"]);
        assert_eq!(c.server.admin_listen.port(), 9090);
        assert_eq!(c.upstream.response_header_timeout, Duration::from_secs(70));
    }

    #[test]
    fn unknown_key_is_named_with_its_path_and_line() {
        let err = FileConfig::from_yaml("server:\n  maxConections: 5\n", "k.yaml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("k.yaml"), "{msg}");
        assert!(msg.contains("maxConections"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn bad_duration_names_the_key() {
        let err =
            FileConfig::from_yaml("upstream:\n  connectTimeout: 10 parsecs\n", "x").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("upstream.connectTimeout"), "{msg}");
    }

    #[test]
    fn plain_listener_must_be_loopback() {
        let err =
            FileConfig::from_yaml("server:\n  listen: [\"http://0.0.0.0:80\"]\n", "x").unwrap_err();
        assert!(err.to_string().contains("server.listen[0]"), "{err}");
        let ok = ListenAddr::parse("http://127.0.0.1:8001").unwrap();
        assert!(!ok.tls);
        assert!(ListenAddr::parse("0.0.0.0:8443").unwrap().tls);
    }

    #[test]
    fn durations() {
        assert_eq!(
            duration::parse("500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(duration::parse("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(duration::parse("2").unwrap(), Duration::from_secs(2));
        assert!(duration::parse("-1s").is_err());
        assert!(duration::parse("1y").is_err());
    }

    #[test]
    fn h2_server_defaults_to_kubeguards_own_and_names_its_key() {
        assert!(
            FileConfig::from_yaml("", "x")
                .unwrap()
                .limits()
                .own_h2_server
        );
        let c = FileConfig::from_yaml("server:\n  h2Server: kubeguard\n", "x").unwrap();
        assert!(c.limits().own_h2_server);
        let c = FileConfig::from_yaml("server:\n  h2Server: hyper\n", "x").unwrap();
        assert!(!c.limits().own_h2_server);
        let err = FileConfig::from_yaml("server:\n  h2Server: nginx\n", "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.h2Server"), "{err}");
    }

    #[test]
    fn h2_reset_limits_load_with_defaults_and_name_their_key() {
        let limits = FileConfig::from_yaml("", "x").unwrap().limits();
        assert_eq!(
            (
                limits.h2_max_pending_accept_resets,
                limits.h2_max_local_error_resets
            ),
            (20, 1024)
        );
        let c = FileConfig::from_yaml(
            "server:\n  h2MaxPendingAcceptResets: 5\n  h2MaxLocalErrorResets: 64\n",
            "x",
        )
        .unwrap();
        let limits = c.limits();
        assert_eq!(limits.h2_max_pending_accept_resets, 5);
        assert_eq!(limits.h2_max_local_error_resets, 64);
        for (yaml, key) in [
            (
                "server:\n  h2MaxPendingAcceptResets: 0\n",
                "server.h2MaxPendingAcceptResets",
            ),
            (
                "server:\n  h2MaxLocalErrorResets: 0\n",
                "server.h2MaxLocalErrorResets",
            ),
            (
                "server:\n  h2MaxLocalErrorResets: -3\n",
                "server.h2MaxLocalErrorResets",
            ),
        ] {
            let err = FileConfig::from_yaml(yaml, "x").unwrap_err().to_string();
            assert!(err.contains(key), "{yaml}: {err}");
        }
    }

    #[test]
    fn max_long_running_loads_and_names_its_key() {
        let c = FileConfig::from_yaml("", "x").unwrap();
        assert_eq!(c.limits.max_long_running.get(), 10_000);
        let c = FileConfig::from_yaml("limits:\n  maxLongRunning: 50\n", "x").unwrap();
        assert_eq!(c.limits.max_long_running.get(), 50);
        let err = FileConfig::from_yaml("limits:\n  maxLongRunning: 0\n", "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("limits.maxLongRunning"), "{err}");
    }

    #[test]
    fn shipped_config_parses() {
        let text = include_str!("../config/kubeguard.yaml");
        FileConfig::from_yaml(text, "config/kubeguard.yaml").unwrap();
    }
}
