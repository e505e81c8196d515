//! Paths to routes, following the apiserver's RequestInfo rules.

/// A resource request after routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub sub: Option<String>,
    pub watch_prefix: bool,
}

/// What a path is.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3(String),
    Resource(ResourcePath),
    NotFound,
}

pub fn route(path: &str) -> Route {
    let path = path.trim_end_matches('/');
    match path {
        "/version" => return Route::Version,
        "/healthz" | "/livez" | "/readyz" => return Route::Health,
        "/api" => return Route::CoreVersions,
        "/apis" => return Route::Groups,
        "/openapi/v2" => return Route::OpenApiV2,
        "/openapi/v3" => return Route::OpenApiV3Index,
        _ => {}
    }
    if ["/healthz/", "/livez/", "/readyz/"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        return Route::Health;
    }
    if let Some(rest) = path.strip_prefix("/openapi/v3/") {
        return Route::OpenApiV3(rest.to_string());
    }
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g] => return Route::Group(g.to_string()),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return Route::NotFound,
    };
    if rest.is_empty() {
        return Route::Resources(group, version);
    }
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..]
            if !(tail.is_empty()
                || tail.len() == 1 && matches!(tail[0], "status" | "finalize")) =>
        {
            (Some(ns.to_string()), tail)
        }
        rest => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [r] => (r, None, None),
        [r, n] => (r, Some(n.to_string()), None),
        [r, n, s] => (r, Some(n.to_string()), Some(s.to_string())),
        _ => return Route::NotFound,
    };
    if resource.is_empty() || name.as_deref() == Some("") {
        return Route::NotFound;
    }
    Route::Resource(ResourcePath {
        group,
        version,
        namespace,
        resource: resource.to_string(),
        name,
        sub,
        watch_prefix,
    })
}
