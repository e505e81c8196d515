//! `--kubeconfig-out`: a kubeconfig that points clients at kubeguard.
//!
//! Server = kubeguard's URL, CA = kubeguard's serving certificate, user = the upstream context's
//! credentials, so `kubectl --kubeconfig FILE get pods` works at once and the apiserver still
//! sees the same user.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};

/// A one-context kubeconfig for `server` (trusting `ca_pem` when given), with `auth` as its user.
pub fn client_kubeconfig(
    name: &str,
    server: &str,
    ca_pem: Option<&str>,
    auth: Option<AuthInfo>,
    namespace: Option<&str>,
) -> Kubeconfig {
    let cluster = Cluster {
        server: Some(server.to_string()),
        certificate_authority_data: ca_pem
            .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem.as_bytes())),
        ..Default::default()
    };
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: name.into(),
            cluster: Some(cluster),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: name.into(),
            auth_info: Some(auth.unwrap_or_default()),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: name.into(),
            context: Some(Context {
                cluster: name.into(),
                user: Some(name.into()),
                namespace: namespace.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some(name.into()),
        kind: Some("Config".into()),
        api_version: Some("v1".into()),
        ..Default::default()
    }
}

/// Serialises a kubeconfig as YAML.
pub fn to_yaml(kc: &Kubeconfig) -> Result<String, std::io::Error> {
    serde_norway::to_string(kc).map_err(std::io::Error::other)
}

/// Writes a kubeconfig readable only by its owner (it may hold credentials).
pub fn write(path: &Path, kc: &Kubeconfig) -> Result<(), std::io::Error> {
    let text = to_yaml(kc)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_kube() {
        let auth = AuthInfo {
            token: Some("t0ken".to_string().into()),
            ..Default::default()
        };
        let kc = client_kubeconfig(
            "kubeguard",
            "https://127.0.0.1:8443",
            Some("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"),
            Some(auth),
            Some("prod"),
        );
        let yaml = to_yaml(&kc).unwrap();
        let back = Kubeconfig::from_yaml(&yaml).unwrap();
        assert_eq!(back.current_context.as_deref(), Some("kubeguard"));
        let cluster = back.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:8443"));
        assert!(cluster.certificate_authority_data.is_some());
        assert!(yaml.contains("token: t0ken"), "{yaml}");
    }
}
