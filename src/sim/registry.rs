//! The emulator's resource types: what discovery advertises, what the store accepts, what
//! Table output and OpenAPI describe. Built-ins are fixed; CRDs add and remove types at runtime.

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

    fn builtin(
        group: &str,
        version: &str,
        resource: &str,
        kind: &str,
        namespaced: bool,
        short_names: &[&str],
        subresources: &[&str],
    ) -> Self {
        let all_verbs = [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        ResourceType {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            kind: kind.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: short_names.iter().map(|s| s.to_string()).collect(),
            categories: if matches!(
                resource,
                "pods" | "services" | "deployments" | "replicasets"
            ) {
                vec!["all".into()]
            } else {
                vec![]
            },
            verbs: all_verbs.iter().map(|s| s.to_string()).collect(),
            subresources: subresources.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A review API of `group`/v1: only `create`, no short names, no subresources.
    fn review(group: &str, resource: &str, kind: &str, namespaced: bool) -> Self {
        ResourceType {
            verbs: vec!["create".into()],
            ..Self::builtin(group, "v1", resource, kind, namespaced, &[], &[])
        }
    }
}

/// All resource types the emulator serves right now.
#[derive(Clone, Debug)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    /// The built-in types: core/v1 namespaces, pods, configmaps, secrets, services, nodes,
    /// events, serviceaccounts; apps/v1 deployments and replicasets; the review APIs of
    /// authentication.k8s.io/v1 and authorization.k8s.io/v1; apiextensions
    /// customresourcedefinitions.
    pub fn builtin() -> Self {
        use ResourceType as R;
        const AUTHN: &str = "authentication.k8s.io";
        const AUTHZ: &str = "authorization.k8s.io";
        let mut namespaces = R::builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            &["status", "finalize"],
        );
        // The apiserver serves no deletecollection for namespaces.
        namespaces.verbs.retain(|v| v != "deletecollection");
        let mut types = vec![
            R::builtin(
                "",
                "v1",
                "pods",
                "Pod",
                true,
                &["po"],
                &[
                    "status",
                    "log",
                    "exec",
                    "attach",
                    "portforward",
                    "binding",
                    "eviction",
                    "ephemeralcontainers",
                ],
            ),
            R::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], &[]),
            R::builtin("", "v1", "secrets", "Secret", true, &[], &[]),
            R::builtin(
                "",
                "v1",
                "services",
                "Service",
                true,
                &["svc"],
                &["status", "proxy"],
            ),
            R::builtin(
                "",
                "v1",
                "nodes",
                "Node",
                false,
                &["no"],
                &["status", "proxy"],
            ),
            R::builtin("", "v1", "events", "Event", true, &["ev"], &[]),
            R::builtin(
                "",
                "v1",
                "serviceaccounts",
                "ServiceAccount",
                true,
                &["sa"],
                &["token"],
            ),
            R::builtin(
                "apps",
                "v1",
                "deployments",
                "Deployment",
                true,
                &["deploy"],
                &["status", "scale"],
            ),
            R::builtin(
                "apps",
                "v1",
                "replicasets",
                "ReplicaSet",
                true,
                &["rs"],
                &["status", "scale"],
            ),
            R::review(AUTHN, "selfsubjectreviews", "SelfSubjectReview", false),
            R::review(AUTHN, "tokenreviews", "TokenReview", false),
            R::review(
                AUTHZ,
                "localsubjectaccessreviews",
                "LocalSubjectAccessReview",
                true,
            ),
            R::review(
                AUTHZ,
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
                false,
            ),
            R::review(
                AUTHZ,
                "selfsubjectrulesreviews",
                "SelfSubjectRulesReview",
                false,
            ),
            R::review(AUTHZ, "subjectaccessreviews", "SubjectAccessReview", false),
            R::builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                &["crd", "crds"],
                &["status"],
            ),
        ];
        types.insert(0, namespaces);
        Registry { types }
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
