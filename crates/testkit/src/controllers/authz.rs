//! What a `SubjectAccessReview` would answer, evaluated over the RBAC objects installed in an
//! [`Rbac`]: the rules of the `Role`s and `ClusterRole`s bound (by `RoleBinding`s in the namespace
//! and by `ClusterRoleBinding`s) to a user or one of its groups, as Kubernetes' RBAC authorizer
//! does (`plugin/pkg/auth/authorizer/rbac/rbac.go`, `pkg/apis/rbac/v1/evaluation_helpers.go`:
//! `*` matches any group, resource or verb; `resource/subresource` must match as a whole (or
//! `*/subresource`, `resource/*`); `resourceNames` restrict to those names). Aggregated
//! ClusterRoles count by the rules they hold. The simulated controllers use it where the real
//! ones send a `SubjectAccessReview` (KubeVirt's and CDI's clone authorization, CDI's
//! `authorize_utils.go`).

use serde_json::Value;

/// One access to check.
#[derive(Clone, Debug)]
pub struct Access<'a> {
    /// The verb (`create`).
    pub verb: &'a str,
    /// The API group (`""` for core).
    pub group: &'a str,
    /// The resource, with `/subresource` if any (`datavolumes/source`).
    pub resource: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// The object's name, if any.
    pub name: &'a str,
}

/// The subject a service account authenticates as, with its groups.
pub fn service_account(namespace: &str, name: &str) -> (String, Vec<String>) {
    (
        format!("system:serviceaccount:{namespace}:{name}"),
        vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated".into(),
        ],
    )
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn resource_matches(rule: &str, wanted: &str) -> bool {
    if rule == "*" || rule == wanted {
        return true;
    }
    match (rule.split_once('/'), wanted.split_once('/')) {
        (Some(("*", sub)), Some((_, wsub))) => sub == wsub,
        (Some((res, "*")), Some((wres, _))) => res == wres,
        _ => false,
    }
}

fn rule_allows(rule: &Value, access: &Access<'_>) -> bool {
    let any = |list: Vec<&str>, want: &str| list.iter().any(|v| *v == "*" || *v == want);
    let names = strs(&rule["resourceNames"]);
    any(strs(&rule["verbs"]), access.verb)
        && any(strs(&rule["apiGroups"]), access.group)
        && strs(&rule["resources"])
            .iter()
            .any(|r| resource_matches(r, access.resource))
        && (names.is_empty() || names.contains(&access.name))
}

fn binds(binding: &Value, user: &str, groups: &[String]) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| match s["kind"].as_str() {
            Some("User") => s["name"] == user,
            Some("Group") => groups.iter().any(|g| s["name"] == g.as_str()),
            Some("ServiceAccount") => {
                let ns = s["namespace"].as_str().unwrap_or_default();
                let name = s["name"].as_str().unwrap_or_default();
                user == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        })
}

/// The cluster's RBAC objects (`Role`, `ClusterRole`, `RoleBinding`, `ClusterRoleBinding`) as a
/// test installs them: the API double serves no `rbac.authorization.k8s.io` kinds (the upstream
/// schema bundle has none), so the authorizer keeps them itself. Empty by default: nothing is
/// allowed (stricter than a cluster, where administrators hold everything). Cheap to clone;
/// clones share the objects.
///
/// ```
/// use kubecloud_testkit::authz::{Access, Rbac, service_account};
/// let rbac = Rbac::default();
/// rbac.install(serde_json::json!({"kind": "Role", "metadata": {"name": "r", "namespace": "images"},
///     "rules": [{"apiGroups": ["cdi.kubevirt.io"], "resources": ["datavolumes/source"], "verbs": ["create"]}]}));
/// rbac.install(serde_json::json!({"kind": "RoleBinding", "metadata": {"name": "r", "namespace": "images"},
///     "roleRef": {"kind": "Role", "name": "r"},
///     "subjects": [{"kind": "Group", "name": "system:serviceaccounts"}]}));
/// let (user, groups) = service_account("tenant", "default");
/// let access = Access { verb: "create", group: "cdi.kubevirt.io", resource: "datavolumes/source", namespace: "images", name: "os" };
/// assert!(rbac.allowed(&user, &groups, &access));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Rbac {
    objects: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Rbac {
    /// Adds (or replaces, by kind, namespace and name) one RBAC object.
    pub fn install(&self, object: Value) {
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let key = |o: &Value| {
            (
                o["kind"].clone(),
                o["metadata"]["namespace"].clone(),
                o["metadata"]["name"].clone(),
            )
        };
        objects.retain(|o| key(o) != key(&object));
        objects.push(object);
    }

    /// Removes every object.
    pub fn clear(&self) {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Whether `user` (in `groups`) may do `access`.
    pub fn allowed(&self, user: &str, groups: &[String], access: &Access<'_>) -> bool {
        let objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let find = |kind: &str, ns: Option<&str>, name: &str| {
            objects.iter().find(|o| {
                o["kind"] == kind
                    && o["metadata"]["name"] == name
                    && ns.is_none_or(|ns| o["metadata"]["namespace"] == ns)
            })
        };
        objects
            .iter()
            .filter(|b| {
                (b["kind"] == "RoleBinding" && b["metadata"]["namespace"] == access.namespace)
                    || b["kind"] == "ClusterRoleBinding"
            })
            .filter(|b| binds(b, user, groups))
            .filter_map(|b| {
                let name = b["roleRef"]["name"].as_str().unwrap_or_default();
                match b["roleRef"]["kind"].as_str() {
                    Some("Role") if b["kind"] == "RoleBinding" => {
                        find("Role", Some(access.namespace), name)
                    }
                    Some("ClusterRole") => find("ClusterRole", None, name),
                    _ => None,
                }
            })
            .any(|role| {
                role["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| rule_allows(r, access))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subresources_match_as_a_whole() {
        let rule = json!({"apiGroups": ["cdi.kubevirt.io"], "resources": ["datavolumes/source"], "verbs": ["create"]});
        let access = |resource| Access {
            verb: "create",
            group: "cdi.kubevirt.io",
            resource,
            namespace: "images",
            name: "fedora",
        };
        assert!(rule_allows(&rule, &access("datavolumes/source")));
        assert!(!rule_allows(&rule, &access("datavolumes")));
        let wide = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        assert!(rule_allows(&wide, &access("datavolumes/source")));
        let named = json!({"apiGroups": ["cdi.kubevirt.io"], "resources": ["datavolumes/source"], "verbs": ["create"], "resourceNames": ["other"]});
        assert!(!rule_allows(&named, &access("datavolumes/source")));
    }
}
