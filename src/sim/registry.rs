//! The emulator's resource types: what discovery advertises, what the store accepts, what
//! Table output and OpenAPI describe. Built-ins are fixed ([`BUILTINS`], as kube-apiserver 1.30
//! serves them); CRDs add and remove types at runtime.

/// One served resource (one group/version/resource).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group served under `/api`.
    pub group: String,
    pub version: String,
    /// Plural, lower-case resource name (`pods`).
    pub resource: String,
    /// `Pod`.
    pub kind: String,
    /// `pod`.
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Verbs advertised in discovery (`get list watch create update patch delete deletecollection`).
    pub verbs: Vec<String>,
    /// Subresources served (`status`, `log`, `exec`, `scale`).
    pub subresources: Vec<String>,
}

impl ResourceType {
    /// `v1` for core, `<group>/<version>` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `PodList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// A review API (TokenReview, SubjectAccessReview…): `create` is its only verb, and what
    /// is created is answered, never stored or read back.
    pub fn is_review(&self) -> bool {
        self.verbs == ["create"]
    }

    /// `(group, resource)` is this type: the one comparison every per-kind table makes.
    pub fn is(&self, group: &str, resource: &str) -> bool {
        self.group == group && self.resource == resource
    }
}

/// One built-in type as the apiserver's discovery shows it.
struct Builtin {
    group: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    /// `all` for the types `kubectl get all` lists.
    categories: &'static [&'static str],
    verbs: &'static [&'static str],
    subresources: &'static [&'static str],
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];
const STATUS: &[&str] = &["status"];
const STATUS_SCALE: &[&str] = &["status", "scale"];

/// Every built-in type, in the order discovery lists groups (core, apps, authentication,
/// authorization, batch, rbac, storage, apiextensions, coordination, discovery, as
/// kube-apiserver does); each is `v1`. One line per
/// type reads like `kubectl api-resources`; rustfmt would spread each over nine.
#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    Builtin { group: "", resource: "namespaces", kind: "Namespace", namespaced: false, short_names: &["ns"], categories: NONE, verbs: NO_COLLECTION, subresources: &["status", "finalize"] },
    Builtin { group: "", resource: "pods", kind: "Pod", namespaced: true, short_names: &["po"], categories: ALL, verbs: EVERY, subresources: &["status", "log", "exec", "attach", "portforward", "binding", "eviction", "ephemeralcontainers"] },
    Builtin { group: "", resource: "configmaps", kind: "ConfigMap", namespaced: true, short_names: &["cm"], categories: NONE, verbs: EVERY, subresources: NONE },
    Builtin { group: "", resource: "secrets", kind: "Secret", namespaced: true, short_names: NONE, categories: NONE, verbs: EVERY, subresources: NONE },
    Builtin { group: "", resource: "services", kind: "Service", namespaced: true, short_names: &["svc"], categories: ALL, verbs: EVERY, subresources: &["status", "proxy"] },
    Builtin { group: "", resource: "endpoints", kind: "Endpoints", namespaced: true, short_names: &["ep"], categories: NONE, verbs: EVERY, subresources: NONE },
    Builtin { group: "", resource: "nodes", kind: "Node", namespaced: false, short_names: &["no"], categories: NONE, verbs: EVERY, subresources: &["status", "proxy"] },
    Builtin { group: "", resource: "events", kind: "Event", namespaced: true, short_names: &["ev"], categories: NONE, verbs: EVERY, subresources: NONE },
    Builtin { group: "", resource: "serviceaccounts", kind: "ServiceAccount", namespaced: true, short_names: &["sa"], categories: NONE, verbs: EVERY, subresources: &["token"] },
    Builtin { group: "", resource: "persistentvolumes", kind: "PersistentVolume", namespaced: false, short_names: &["pv"], categories: NONE, verbs: EVERY, subresources: STATUS },
    Builtin { group: "", resource: "persistentvolumeclaims", kind: "PersistentVolumeClaim", namespaced: true, short_names: &["pvc"], categories: NONE, verbs: EVERY, subresources: STATUS },
    Builtin { group: "apps", resource: "deployments", kind: "Deployment", namespaced: true, short_names: &["deploy"], categories: ALL, verbs: EVERY, subresources: STATUS_SCALE },
    Builtin { group: "apps", resource: "replicasets", kind: "ReplicaSet", namespaced: true, short_names: &["rs"], categories: ALL, verbs: EVERY, subresources: STATUS_SCALE },
    Builtin { group: "apps", resource: "statefulsets", kind: "StatefulSet", namespaced: true, short_names: &["sts"], categories: ALL, verbs: EVERY, subresources: STATUS_SCALE },
    Builtin { group: "apps", resource: "daemonsets", kind: "DaemonSet", namespaced: true, short_names: &["ds"], categories: ALL, verbs: EVERY, subresources: STATUS },
    Builtin { group: AUTHN, resource: "selfsubjectreviews", kind: "SelfSubjectReview", namespaced: false, short_names: NONE, categories: NONE, verbs: CREATE, subresources: NONE },
    Builtin { group: AUTHN, resource: "tokenreviews", kind: "TokenReview", namespaced: false, short_names: NONE, categories: NONE, verbs: CREATE, subresources: NONE },
    Builtin { group: AUTHZ, resource: "localsubjectaccessreviews", kind: "LocalSubjectAccessReview", namespaced: true, short_names: NONE, categories: NONE, verbs: CREATE, subresources: NONE },
    Builtin { group: AUTHZ, resource: "selfsubjectaccessreviews", kind: "SelfSubjectAccessReview", namespaced: false, short_names: NONE, categories: NONE, verbs: CREATE, subresources: NONE },
    Builtin { group: AUTHZ, resource: "selfsubjectrulesreviews", kind: "SelfSubjectRulesReview", namespaced: false, short_names: NONE, categories: NONE, verbs: CREATE, subresources: NONE },
    Builtin { group: AUTHZ, resource: "subjectaccessreviews", kind: "SubjectAccessReview", namespaced: false, short_names: NONE, categories: NONE, verbs: CREATE, subresources: NONE },
    Builtin { group: "batch", resource: "jobs", kind: "Job", namespaced: true, short_names: NONE, categories: ALL, verbs: EVERY, subresources: STATUS },
    Builtin { group: "batch", resource: "cronjobs", kind: "CronJob", namespaced: true, short_names: &["cj"], categories: ALL, verbs: EVERY, subresources: STATUS },
    Builtin { group: RBAC, resource: "roles", kind: "Role", namespaced: true, short_names: NONE, categories: NONE, verbs: EVERY, subresources: NONE },
    Builtin { group: RBAC, resource: "rolebindings", kind: "RoleBinding", namespaced: true, short_names: NONE, categories: NONE, verbs: EVERY, subresources: NONE },
    Builtin { group: RBAC, resource: "clusterroles", kind: "ClusterRole", namespaced: false, short_names: NONE, categories: NONE, verbs: EVERY, subresources: NONE },
    Builtin { group: RBAC, resource: "clusterrolebindings", kind: "ClusterRoleBinding", namespaced: false, short_names: NONE, categories: NONE, verbs: EVERY, subresources: NONE },
    Builtin { group: "storage.k8s.io", resource: "storageclasses", kind: "StorageClass", namespaced: false, short_names: &["sc"], categories: NONE, verbs: EVERY, subresources: NONE },
    Builtin { group: "apiextensions.k8s.io", resource: "customresourcedefinitions", kind: "CustomResourceDefinition", namespaced: false, short_names: &["crd", "crds"], categories: NONE, verbs: EVERY, subresources: STATUS },
    Builtin { group: "coordination.k8s.io", resource: "leases", kind: "Lease", namespaced: true, short_names: NONE, categories: NONE, verbs: EVERY, subresources: NONE },
    Builtin { group: "discovery.k8s.io", resource: "endpointslices", kind: "EndpointSlice", namespaced: true, short_names: NONE, categories: NONE, verbs: EVERY, subresources: NONE },
];

const RBAC: &str = "rbac.authorization.k8s.io";
const AUTHN: &str = "authentication.k8s.io";
const AUTHZ: &str = "authorization.k8s.io";

/// Every verb.
const EVERY: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces: the apiserver serves no deletecollection for them.
const NO_COLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// The review APIs: what is created is answered, never stored or read back.
const CREATE: &[&str] = &["create"];

impl Builtin {
    fn resource_type(&self) -> ResourceType {
        let strings = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        ResourceType {
            group: self.group.into(),
            version: "v1".into(),
            resource: self.resource.into(),
            kind: self.kind.into(),
            singular: self.kind.to_ascii_lowercase(),
            namespaced: self.namespaced,
            short_names: strings(self.short_names),
            categories: strings(self.categories),
            verbs: strings(self.verbs),
            subresources: strings(self.subresources),
        }
    }
}

/// All resource types the emulator serves right now.
#[derive(Clone, Debug)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    /// The built-in types ([`BUILTINS`]): core/v1 namespaces, pods, configmaps, secrets,
    /// services, endpoints, nodes, events, serviceaccounts, persistentvolumes and
    /// persistentvolumeclaims; apps/v1 deployments, replicasets, statefulsets and daemonsets;
    /// batch/v1 jobs and cronjobs; rbac.authorization.k8s.io/v1 roles, rolebindings,
    /// clusterroles and clusterrolebindings; storage.k8s.io/v1 storageclasses; apiextensions
    /// customresourcedefinitions; coordination.k8s.io/v1 leases; discovery.k8s.io/v1
    /// endpointslices; and the review APIs of authentication.k8s.io/v1 and
    /// authorization.k8s.io/v1.
    pub fn builtin() -> Self {
        Registry {
            types: BUILTINS.iter().map(Builtin::resource_type).collect(),
        }
    }

    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    pub fn find(&self, group: &str, version: &str, resource: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.resource == resource)
    }

    /// Groups in the order discovery lists them (core first), each with its versions.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) => {
                    if !versions.contains(&t.version) {
                        versions.push(t.version.clone());
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }

    /// Types served under one group/version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceType> + 'a {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.version == version)
    }

    /// Adds (or replaces) a type, e.g. when a CRD is created.
    pub fn add(&mut self, t: ResourceType) {
        self.types.retain(|x| {
            !(x.group == t.group && x.version == t.version && x.resource == t.resource)
        });
        self.types.push(t);
    }

    /// Removes every version of `group`/`resource`, e.g. when a CRD is deleted.
    pub fn remove(&mut self, group: &str, resource: &str) {
        self.types
            .retain(|x| !(x.group == group && x.resource == resource));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_cover_the_issue_list() {
        let r = Registry::builtin();
        for (g, res) in [
            ("", "namespaces"),
            ("", "pods"),
            ("", "configmaps"),
            ("", "secrets"),
            ("", "services"),
            ("", "nodes"),
            ("", "events"),
            ("", "serviceaccounts"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apiextensions.k8s.io", "customresourcedefinitions"),
            ("", "persistentvolumes"),
            ("", "persistentvolumeclaims"),
            ("", "endpoints"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("coordination.k8s.io", "leases"),
            ("discovery.k8s.io", "endpointslices"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("rbac.authorization.k8s.io", "clusterroles"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("storage.k8s.io", "storageclasses"),
        ] {
            assert!(r.find(g, "v1", res).is_some(), "{g}/{res}");
        }
        assert!(
            !r.find("", "v1", "namespaces")
                .unwrap()
                .has_verb("deletecollection")
        );
        assert_eq!(r.groups()[0].0, "");
    }

    #[test]
    fn category_all_and_scopes_are_the_apiservers() {
        let r = Registry::builtin();
        let all: Vec<&str> = r
            .all()
            .iter()
            .filter(|t| t.categories.iter().any(|c| c == "all"))
            .map(|t| t.resource.as_str())
            .collect();
        // kube-apiserver 1.30 puts these (and replicationcontrollers, horizontalpodautoscalers,
        // which the emulator does not serve) in `all`; endpoints are not in it.
        assert_eq!(
            all,
            [
                "pods",
                "services",
                "deployments",
                "replicasets",
                "statefulsets",
                "daemonsets",
                "jobs",
                "cronjobs"
            ]
        );
        let pv = r.find("", "v1", "persistentvolumes").unwrap();
        assert!(!pv.namespaced && pv.short_names == ["pv"] && pv.subresources == ["status"]);
        assert!(pv.has_verb("deletecollection"));
        let sts = r.find("apps", "v1", "statefulsets").unwrap();
        assert_eq!(sts.subresources, ["status", "scale"]);
        let ds = r.find("apps", "v1", "daemonsets").unwrap();
        assert_eq!(ds.subresources, ["status"]);
        assert_eq!(
            r.find("batch", "v1", "cronjobs").unwrap().short_names,
            ["cj"]
        );
        assert!(
            !r.find("storage.k8s.io", "v1", "storageclasses")
                .unwrap()
                .namespaced
        );
        assert!(
            r.find("coordination.k8s.io", "v1", "leases")
                .unwrap()
                .namespaced
        );
        let groups: Vec<String> = r.groups().into_iter().map(|(g, _)| g).collect();
        assert_eq!(
            groups,
            [
                "",
                "apps",
                "authentication.k8s.io",
                "authorization.k8s.io",
                "batch",
                "rbac.authorization.k8s.io",
                "storage.k8s.io",
                "apiextensions.k8s.io",
                "coordination.k8s.io",
                "discovery.k8s.io"
            ]
        );
    }

    #[test]
    fn crds_come_and_go() {
        let mut r = Registry::builtin();
        let mut t = r.find("", "v1", "configmaps").unwrap().clone();
        t.group = "example.com".into();
        t.resource = "widgets".into();
        t.kind = "Widget".into();
        r.add(t.clone());
        r.add(t);
        assert_eq!(r.in_group_version("example.com", "v1").count(), 1);
        r.remove("example.com", "widgets");
        assert!(r.find("example.com", "v1", "widgets").is_none());
    }
}
