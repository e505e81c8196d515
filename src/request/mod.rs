//! Classify: path + query + method → [`ApiRequest`], following kube-apiserver's RequestInfo rules
//! (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go).
//!
//! Pure and allocation-light: it runs on every request. Table-tested in `tests.rs`, fuzzed by
//! `fuzz/fuzz_targets/classify.rs`.

mod parse;
#[cfg(test)]
mod tests;

pub use parse::{ClassifyError, classify};

/// What the request does, in RequestInfo's vocabulary plus the connect-style subresources that
/// kubeguard treats as long-running streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
    /// `pods/exec` (POST for SPDY, GET with `Upgrade` for WebSocket).
    Exec,
    /// `pods/attach`.
    Attach,
    /// `pods/portforward`.
    PortForward,
    /// `*/proxy` subresources and the legacy `/api/v1/proxy/` prefix.
    Proxy,
    /// `pods/log`.
    Log,
    /// Any method RequestInfo does not map (OPTIONS, HEAD on a non-resource path, …).
    Other,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Exec => "exec",
            Verb::Attach => "attach",
            Verb::PortForward => "portforward",
            Verb::Proxy => "proxy",
            Verb::Log => "log",
            Verb::Other => "other",
        }
    }

    /// Writes change state in the apiserver (used for read-your-writes windows).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    }

    /// Requests whose response is an open-ended stream (watch, logs, exec…).
    pub fn is_long_running(self) -> bool {
        matches!(
            self,
            Verb::Watch | Verb::Exec | Verb::Attach | Verb::PortForward | Verb::Proxy
        )
    }
}

/// A classified request. Borrowed nothing: it travels with the request through every step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    pub verb: Verb,
    pub target: Target,
    /// ListOptions and the other query parameters kubeguard's guards look at.
    pub options: QueryOptions,
    /// [`ApiRequest::resource_label`], made once: metrics, the ledger, the learner and the
    /// guards all read it.
    label: String,
}

/// What the path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A resource request (`/api/v1/...`, `/apis/<group>/<version>/...`).
    Resource(ResourceRef),
    /// Anything else: discovery, /version, /healthz, /openapi, /metrics, unknown paths.
    NonResource(NonResource),
}

/// Group, version, resource, subresource, namespace and name of a resource request.
/// `group` is empty for the core (legacy `/api`) group.
///
/// As in RequestInfo: the Namespace object itself (`/api/v1/namespaces/<ns>[/status|/finalize]`)
/// has both `namespace` and `name` set to `<ns>`; a List or Watch pinned to one object by
/// `fieldSelector=metadata.name=<x>` (`kubectl wait`) has `name` `<x>`. Every field that is set is
/// a single non-empty path segment (no `/`, never `.` or `..`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceRef {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// Known non-resource paths (anything else is `Other`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonResource {
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz` and their sub-paths.
    Health,
    /// `/metrics` (the apiserver's own).
    Metrics,
    /// `/api`, `/api/v1`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>` with no resource.
    Discovery,
    /// `/openapi/v2`, `/openapi/v3` and `/openapi/v3/<path>`, `/swagger.json`.
    OpenApi,
    /// Any other path.
    Other,
}

/// Query parameters that matter to guards (ListOptions, DeleteOptions' query form, watch flags).
/// Values are kept exactly as sent (after percent-decoding) so a rewrite can tell "absent" from
/// "empty".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryOptions {
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    /// A negative `limit` is 0 here: the apiserver reads both as "no limit".
    pub limit: Option<u64>,
    pub continue_token: Option<String>,
    /// `watch=1|true` (also set for the legacy `/watch/` prefix by the classifier). As in the
    /// apiserver, any value but `0`/`false` counts, the empty one included.
    pub watch: bool,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub send_initial_events: Option<bool>,
    pub allow_watch_bookmarks: bool,
    /// A negative value is 0 here (the server's default timeout).
    pub timeout_seconds: Option<u64>,
    /// `dryRun=All` in the query (the body form is read by the delete guard).
    pub dry_run: bool,
    /// `follow=true` on `pods/log`.
    pub follow: bool,
}

impl ApiRequest {
    pub fn resource(&self) -> Option<&ResourceRef> {
        match &self.target {
            Target::Resource(r) => Some(r),
            Target::NonResource(_) => None,
        }
    }

    /// A LIST without a resourceVersion (absent or empty): the request the apiserver answers
    /// from etcd before 1.31 (k8s-facts.md §1). Whether it may be rewritten is the guard's call.
    pub fn is_unversioned_list(&self) -> bool {
        self.verb == Verb::List
            && self
                .options
                .resource_version
                .as_deref()
                .is_none_or(str::is_empty)
    }

    /// A request whose response streams for as long as the client keeps it open: watches,
    /// exec/attach/port-forward, proxy, and `logs -f`.
    pub fn is_long_running(&self) -> bool {
        self.verb.is_long_running() || (self.verb == Verb::Log && self.options.follow)
    }

    /// The resource label used in metrics and logs: `pods`, `deployments.apps`, `pods/log`,
    /// or the non-resource kind (`/version`, `discovery`, …).
    pub fn resource_label(&self) -> &str {
        &self.label
    }

    /// A classified request; `target` is not changed afterwards (the label is made from it).
    pub fn new(verb: Verb, target: Target, options: QueryOptions) -> Self {
        let label = match &target {
            Target::Resource(r) => {
                let mut s = String::with_capacity(
                    r.resource.len()
                        + r.group.len()
                        + r.subresource.as_ref().map_or(0, |x| x.len())
                        + 2,
                );
                s.push_str(&r.resource);
                if !r.group.is_empty() {
                    s.push('.');
                    s.push_str(&r.group);
                }
                if let Some(sub) = &r.subresource {
                    s.push('/');
                    s.push_str(sub);
                }
                s
            }
            Target::NonResource(n) => match n {
                NonResource::Version => "/version",
                NonResource::Health => "/healthz",
                NonResource::Metrics => "/metrics",
                NonResource::Discovery => "discovery",
                NonResource::OpenApi => "openapi",
                NonResource::Other => "other",
            }
            .to_string(),
        };
        ApiRequest {
            verb,
            target,
            options,
            label,
        }
    }
}
