//! URL and method → what the request is: a discovery document, or a verb on a resource.

use std::collections::HashMap;
use std::fmt;

/// The Kubernetes verb of a request, as the request log and fault rules name it.
///
/// `Apply` is a `PATCH` with `Content-Type: application/apply-patch+yaml` (kube-apiserver counts it
/// as `patch`); it is separate here so that tests can count applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH with a JSON, merge or strategic merge patch.
    Patch,
    /// PATCH with an apply patch (server-side apply).
    Apply,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// Discovery and `/version`.
    Discovery,
    /// Anything the double does not route.
    Other,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Apply => "apply",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Discovery => "discovery",
            Verb::Other => "other",
        };
        f.write_str(s)
    }
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Version,
    /// `/api`.
    CoreVersions,
    /// `/api/v1`.
    CoreResources,
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/apis/{group}/{version}`.
    GroupResources(String, String),
    /// `/healthz`, `/livez`, `/readyz` (the endpoint), with one named check (`/livez/ping`).
    Health(&'static str, Option<String>),
    /// A resource path.
    Resource(ResourcePath),
    /// Unknown.
    NotFound,
}

/// The parts of a resource path.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Parses a path. `is_namespaced_plural(group, version, plural)` disambiguates
/// `/api/v1/namespaces/{x}/{y}`: a namespaced collection when `y` is a namespaced resource, else
/// a subresource of namespace `x`.
pub(crate) fn route(path: &str, is_namespaced_plural: impl Fn(&str, &str, &str) -> bool) -> Route {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Route::Version,
        [endpoint @ ("healthz" | "livez" | "readyz"), check @ ..] if check.len() <= 1 => {
            let endpoint = match *endpoint {
                "healthz" => "healthz",
                "livez" => "livez",
                _ => "readyz",
            };
            return Route::Health(endpoint, check.first().map(|c| c.to_string()));
        }
        ["api"] => return Route::CoreVersions,
        ["api", "v1"] => return Route::CoreResources,
        ["apis"] => return Route::Groups,
        ["apis", g] => return Route::Group(g.to_string()),
        ["apis", g, v] => return Route::GroupResources(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Route::NotFound,
    };
    let mut rp = ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        ..Default::default()
    };
    let rest: &[&str] = match rest {
        ["namespaces", ns, plural, tail @ ..] if is_namespaced_plural(group, version, plural) => {
            rp.namespace = Some(ns.to_string());
            rp.plural = plural.to_string();
            tail
        }
        [plural, tail @ ..] => {
            rp.plural = plural.to_string();
            tail
        }
        [] => return Route::NotFound,
    };
    match rest {
        [] => {}
        [name] => rp.name = Some(name.to_string()),
        [name, sub] => {
            rp.name = Some(name.to_string());
            rp.subresource = Some(sub.to_string());
        }
        _ => return Route::NotFound,
    }
    Route::Resource(rp)
}

/// Parses a query string (tolerating the leading `&` kube-rs sends).
pub(crate) fn query(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// The verb of a resource request.
pub(crate) fn verb(method: &str, rp: &ResourcePath, watch: bool, content_type: &str) -> Verb {
    match (method, rp.name.is_some()) {
        ("GET", true) if watch => Verb::Watch,
        ("GET", true) => Verb::Get,
        ("GET", false) if watch => Verb::Watch,
        ("GET", false) => Verb::List,
        ("POST", false) => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) if content_type.starts_with("application/apply-patch") => Verb::Apply,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => Verb::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns_plural(_: &str, _: &str, p: &str) -> bool {
        p != "status" && p != "finalize"
    }

    #[test]
    fn routes_namespaced_and_cluster_paths() {
        let r = route(
            "/apis/kubevirt.io/v1/namespaces/ns1/virtualmachines/vm1/status",
            ns_plural,
        );
        let Route::Resource(rp) = r else {
            panic!("{r:?}")
        };
        assert_eq!(
            (
                rp.group.as_str(),
                rp.namespace.as_deref(),
                rp.plural.as_str(),
                rp.name.as_deref(),
                rp.subresource.as_deref()
            ),
            (
                "kubevirt.io",
                Some("ns1"),
                "virtualmachines",
                Some("vm1"),
                Some("status")
            )
        );
        let Route::Resource(rp) = route("/api/v1/namespaces/ns1/status", ns_plural) else {
            panic!()
        };
        assert_eq!(
            (
                rp.plural.as_str(),
                rp.name.as_deref(),
                rp.subresource.as_deref()
            ),
            ("namespaces", Some("ns1"), Some("status"))
        );
        let Route::Resource(rp) = route("/api/v1/namespaces/ns1", ns_plural) else {
            panic!()
        };
        assert_eq!(
            (rp.plural.as_str(), rp.name.as_deref(), rp.namespace),
            ("namespaces", Some("ns1"), None)
        );
        assert_eq!(
            route("/apis/kubevirt.io", ns_plural),
            Route::Group("kubevirt.io".into())
        );
    }

    #[test]
    fn query_tolerates_leading_ampersand() {
        let q = query(Some("&watch=true&labelSelector=app%3Dweb"));
        assert_eq!(q.get("watch").map(String::as_str), Some("true"));
        assert_eq!(q.get("labelSelector").map(String::as_str), Some("app=web"));
    }
}
