//! Least privilege: the exact RBAC rules the backends need, as a `ClusterRole`. Each backend
//! crate says what it sends (`plugin::RBAC`, see `kubecloud_kube::plugin`); this module
//! combines those of the parts asked for, and adds the tenant namespaces every part makes.
//!
//! A ClusterRole, because tenants are namespaces the SDK creates (so no namespaced Role could
//! be bound in advance), and because several kinds are cluster-scoped or live in a system's own
//! namespace (a network backend's VPCs and subnets, a load balancer's pools, StorageClasses,
//! PersistentVolumes, Nodes, Namespaces). Every read and write is still checked against the tenant's ownership
//! labels by the backends themselves.
//!
//! Discovery (`/api`, `/apis`, `/version`) is left out: these non-resource URLs are readable by
//! every authenticated user through the default ClusterRole `system:discovery`.
//!
//! ```
//! use kubecloud::{Part, rbac};
//! let rules = rbac::rules(&[Part::Storage]);
//! assert!(rules.allows(&rbac::Access::new("", "persistentvolumeclaims", "patch")));
//! assert!(!rules.allows(&rbac::Access::new("kubevirt.io", "virtualmachines", "list")));
//! let yaml = rules.to_cluster_role_yaml("kubecloud");
//! assert!(yaml.contains("kind: ClusterRole"));
//! ```

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::ObjectMeta;

use crate::connect::Part;

/// One permission: a verb on a resource (`resource/subresource` for a subresource) of an API
/// group (`""` for the core group).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Access {
    /// The API group.
    pub group: String,
    /// The resource, e.g. `virtualmachines` or `persistentvolumeclaims/status`.
    pub resource: String,
    /// The RBAC verb.
    pub verb: String,
}

impl Access {
    /// A verb on a resource of a group.
    pub fn new(group: &str, resource: &str, verb: &str) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
            verb: verb.into(),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {group}/{}", self.verb, self.resource)
    }
}

/// Every part makes the tenant's namespace on first use (`ensure_namespace`: get, then apply).
const NAMESPACES: &[&str] = &["get", "create", "patch"];

/// Every cloud keeps tenant quotas in a `ResourceQuota` of the tenant's namespace
/// ([`crate::KubeQuotas`]): read before each create from the shared watch of the kind (list,
/// watch; a get while it has not listed), applied (created on first apply), and watched until
/// the quota controller has counted the namespace.
const RESOURCE_QUOTAS: &[&str] = &["get", "create", "patch", "list", "watch"];

/// Why `access` is granted although the conformance suite does not exercise it, if it is one of
/// those documented exceptions.
pub fn not_exercised_by_conformance(access: &Access) -> Option<&'static str> {
    crate::backends::RBAC
        .iter()
        .flat_map(|b| b.not_exercised)
        .find(|u| u.group == access.group && u.resource == access.resource && u.verb == access.verb)
        .map(|u| u.why)
}

/// The rules for a set of parts. See [`rules`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// group -> resource -> verbs
    table: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

/// The exact rules the backends of `parts` need (each backend crate's `plugin::RBAC`, which
/// includes what [`crate::Cloud::connect_with`] reads to find and configure it), plus the
/// tenant namespaces: every backend of this build for those parts (storage: LINSTOR's and the
/// CSI backend's, as `connect` may pick either). [`rules_for`] gives those of the backends a
/// cloud runs.
pub fn rules(parts: &[Part]) -> Rules {
    table_of(
        !parts.is_empty(),
        crate::backends::RBAC
            .iter()
            .filter(|b| parts.contains(&b.part)),
    )
}

/// The exact rules of the backends named `backends` (their `backend_name()`, as
/// [`crate::Cloud::backend_names`] lists them), plus the tenant namespaces.
///
/// ```
/// use kubecloud::rbac::{self, Access};
/// let csi = rbac::rules_for(&["csi"]);
/// assert!(csi.allows(&Access::new("storage.k8s.io", "csistoragecapacities", "list")));
/// assert!(!csi.allows(&Access::new("", "services", "list")), "LINSTOR's controller lookup");
/// ```
pub fn rules_for(backends: &[&str]) -> Rules {
    table_of(
        !backends.is_empty(),
        crate::backends::RBAC
            .iter()
            .filter(|b| backends.contains(&b.backend)),
    )
}

fn table_of<'a>(
    any: bool,
    backends: impl Iterator<Item = &'a kubecloud_kube::plugin::Rbac>,
) -> Rules {
    let mut table: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    if any {
        let verbs = table
            .entry(String::new())
            .or_default()
            .entry("namespaces".into())
            .or_default();
        verbs.extend(NAMESPACES.iter().map(|v| v.to_string()));
        let verbs = table
            .entry(String::new())
            .or_default()
            .entry("resourcequotas".into())
            .or_default();
        verbs.extend(RESOURCE_QUOTAS.iter().map(|v| v.to_string()));
    }
    for need in backends.flat_map(|b| b.needs) {
        for resource in need.resources {
            let verbs = table
                .entry(need.group.to_string())
                .or_default()
                .entry(resource.to_string())
                .or_default();
            verbs.extend(need.verbs.iter().map(|v| v.to_string()));
        }
    }
    Rules { table }
}

impl Rules {
    /// Whether the rules allow `access`.
    pub fn allows(&self, access: &Access) -> bool {
        self.table
            .get(&access.group)
            .and_then(|resources| resources.get(&access.resource))
            .is_some_and(|verbs| verbs.contains(&access.verb))
    }

    /// Every access the rules grant, sorted.
    pub fn accesses(&self) -> Vec<Access> {
        let mut out = Vec::new();
        for (group, resources) in &self.table {
            for (resource, verbs) in resources {
                for verb in verbs {
                    out.push(Access::new(group, resource, verb));
                }
            }
        }
        out
    }

    /// The rules as RBAC `PolicyRule`s: one per group and set of verbs, resources sorted.
    pub fn policy_rules(&self) -> Vec<PolicyRule> {
        let mut out = Vec::new();
        for (group, resources) in &self.table {
            let mut by_verbs: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
            for (resource, verbs) in resources {
                by_verbs
                    .entry(verbs.iter().cloned().collect())
                    .or_default()
                    .push(resource.clone());
            }
            for (verbs, resources) in by_verbs {
                out.push(PolicyRule {
                    api_groups: Some(vec![group.clone()]),
                    resources: Some(resources),
                    verbs,
                    ..PolicyRule::default()
                });
            }
        }
        out
    }

    /// A `ClusterRole` named `name` with these rules.
    pub fn to_cluster_role(&self, name: &str) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                labels: Some(BTreeMap::from([(
                    kubecloud_kube::MANAGED_BY.to_string(),
                    kubecloud_kube::MANAGER.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            rules: Some(self.policy_rules()),
            ..ClusterRole::default()
        }
    }

    /// The `ClusterRole` as YAML, ready for `kubectl apply -f -`.
    pub fn to_cluster_role_yaml(&self, name: &str) -> String {
        let mut role = serde_json::to_value(self.to_cluster_role(name)).unwrap_or_default();
        role["apiVersion"] = "rbac.authorization.k8s.io/v1".into();
        role["kind"] = "ClusterRole".into();
        let ordered = serde_json::json!({
            "apiVersion": role["apiVersion"],
            "kind": role["kind"],
            "metadata": role["metadata"],
            "rules": role["rules"],
        });
        serde_saphyr::to_string(&ordered).unwrap_or_default()
    }
}

/// The name of the node-maintenance `ClusterRole` ([`node_maintenance_rules`]).
pub const NODE_MAINTENANCE_ROLE: &str = "kubecloud-node-maintenance";

/// The exact rules node maintenance needs ([`crate::Cloud::nodes`]: evacuating a node and
/// returning it to service), for an operator's `ClusterRole` kept apart from the tenants'
/// [`rules`] (which never patch Nodes).
///
/// ```
/// use kubecloud::rbac::{self, Access};
/// let admin = rbac::node_maintenance_rules();
/// assert!(admin.allows(&Access::new("", "nodes", "patch")));
/// assert!(!rbac::rules(&kubecloud::Part::ALL).allows(&Access::new("", "nodes", "patch")));
/// let yaml = admin.to_cluster_role_yaml(rbac::NODE_MAINTENANCE_ROLE);
/// assert!(yaml.contains("kubecloud-node-maintenance"));
/// ```
pub fn node_maintenance_rules() -> Rules {
    let mut table: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for need in crate::backends::NODE_MAINTENANCE.iter().copied().flatten() {
        for resource in need.resources {
            table
                .entry(need.group.to_string())
                .or_default()
                .entry(resource.to_string())
                .or_default()
                .extend(need.verbs.iter().map(|v| v.to_string()));
        }
    }
    Rules { table }
}

/// The name of the catalog `Role` and `RoleBinding` ([`catalog_manifests`]).
pub const CATALOG_ROLE: &str = "kubecloud-catalog-reader";

/// The RBAC tenants need in the image catalog's namespace `namespace` (see
/// `kubecloud_kubevirt::catalog`): a `Role` allowing `get`, `list` and `watch` of CDI
/// `datasources` (reading the catalog) and `create` of `datavolumes/source` (what KubeVirt and
/// CDI check for a clone from another namespace, CDI's `authorize_utils.go`), and nothing else
/// of the namespace; bound to every service account (`system:serviceaccounts`), as a VM clones
/// its boot disk under its namespace's service account. For `kubectl apply -f -` (YAML, two
/// documents) beside the [`Rules::to_cluster_role_yaml`] of kubecloud itself.
///
/// ```
/// let [role, binding] = kubecloud::rbac::catalog_manifests("kubecloud-images");
/// assert_eq!(role["kind"], "Role");
/// assert_eq!(role["rules"][1]["resources"][0], "datavolumes/source");
/// assert_eq!(binding["subjects"][0]["name"], "system:serviceaccounts");
/// ```
pub fn catalog_manifests(namespace: &str) -> [serde_json::Value; 2] {
    kubecloud_kubevirt::catalog::rbac_manifests(namespace, CATALOG_ROLE)
}

/// [`catalog_manifests`] as YAML documents.
pub fn catalog_manifests_yaml(namespace: &str) -> String {
    catalog_manifests(namespace)
        .iter()
        .map(|m| format!("---\n{}", serde_saphyr::to_string(m).unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_role_grants_reading_the_catalog_and_cloning_from_it_only() {
        let [role, binding] = catalog_manifests("images");
        let rules = role["rules"].as_array().unwrap();
        let granted: Vec<(String, String)> = rules
            .iter()
            .flat_map(|r| {
                let resources: Vec<String> =
                    serde_json::from_value(r["resources"].clone()).unwrap();
                let verbs: Vec<String> = serde_json::from_value(r["verbs"].clone()).unwrap();
                resources
                    .into_iter()
                    .flat_map(move |res| verbs.clone().into_iter().map(move |v| (res.clone(), v)))
            })
            .collect();
        assert_eq!(
            granted,
            [
                ("datasources".to_string(), "get".to_string()),
                ("datasources".into(), "list".into()),
                ("datasources".into(), "watch".into()),
                ("datavolumes/source".into(), "create".into()),
            ]
        );
        assert_eq!(role["metadata"]["namespace"], "images");
        assert_eq!(binding["roleRef"]["name"], CATALOG_ROLE);
        assert!(catalog_manifests_yaml("images").contains("kind: RoleBinding"));
    }

    #[test]
    fn policy_rules_group_resources_with_the_same_verbs() {
        let rules = rules(&Part::ALL);
        for rule in rules.policy_rules() {
            assert_eq!(rule.api_groups.as_ref().map(Vec::len), Some(1));
            assert!(!rule.verbs.is_empty());
        }
    }
}
