//! Least privilege: the exact RBAC rules the backends need, as a `ClusterRole`.
//!
//! A ClusterRole, because tenants are namespaces the SDK creates (so no namespaced Role could
//! be bound in advance), and because several kinds are cluster-scoped (Kube-OVN VPCs and
//! subnets, MetalLB's pools live in MetalLB's namespace, StorageClasses, PersistentVolumes,
//! Nodes, Namespaces). Every read and write is still checked against the tenant's ownership
//! labels by the backends themselves.
//!
//! Discovery (`/api`, `/apis`, `/version`) is left out: these non-resource URLs are readable by
//! every authenticated user through the default ClusterRole `system:discovery`.
//!
//! ```
//! use kubecloud::{Part, rbac};
//! let rules = rbac::rules(&[Part::LoadBalancer]);
//! assert!(rules.allows(&rbac::Access::new("metallb.io", "ipaddresspools", "patch")));
//! assert!(!rules.allows(&rbac::Access::new("kubevirt.io", "virtualmachines", "get")));
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

/// One row of the table: what a part needs on some resources of one group, and why.
struct Need {
    part: Part,
    group: &'static str,
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// What each part sends, read from its driver and from `crates/kube`: server-side apply is a
/// PATCH, and an apply that creates the object is also authorized as `create`; `get_opt` is a
/// `get`; waits and `watch_*` are a `list` then a `watch` (kube's `watch_object`);
/// `ensure_namespace` gets and applies the tenant's Namespace.
const NEEDS: &[Need] = &[
    // --- compute: KubeVirt + CDI
    Need {
        part: Part::Compute,
        group: "kubevirt.io",
        resources: &["virtualmachines"],
        verbs: WRITE,
    },
    // The live annotations of a VM's interfaces (security groups, port security) are
    // merge-patched onto its running instance and launcher pods.
    Need {
        part: Part::Compute,
        group: "kubevirt.io",
        resources: &["virtualmachineinstances"],
        verbs: &["get", "list", "watch", "patch"],
    },
    Need {
        part: Part::Compute,
        group: "",
        resources: &["pods"],
        verbs: &["list", "patch"],
    },
    // Migrations are applied; a VM's migrations go with it (delete collection by label).
    Need {
        part: Part::Compute,
        group: "kubevirt.io",
        resources: &["virtualmachineinstancemigrations"],
        verbs: &["create", "patch", "deletecollection"],
    },
    // Start, stop and restart go through virt-api's subresources, as virtctl does.
    Need {
        part: Part::Compute,
        group: "subresources.kubevirt.io",
        resources: &[
            "virtualmachines/start",
            "virtualmachines/stop",
            "virtualmachines/restart",
        ],
        verbs: &["update"],
    },
    // Import DataVolumes come from the VM's dataVolumeTemplates (KubeVirt creates them); the
    // backend reads and watches them for progress and deletes them with the VM.
    Need {
        part: Part::Compute,
        group: "cdi.kubevirt.io",
        resources: &["datavolumes"],
        verbs: &["get", "list", "watch", "delete"],
    },
    Need {
        part: Part::Compute,
        group: "snapshot.kubevirt.io",
        resources: &["virtualmachinesnapshots"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    Need {
        part: Part::Compute,
        group: "snapshot.kubevirt.io",
        resources: &["virtualmachinerestores"],
        verbs: &["list", "watch", "create", "patch", "delete"],
    },
    // Cloud-init and SSH keys go into Secrets in the tenant's namespace, never inline; a VM's
    // Secrets are found by label when it goes.
    Need {
        part: Part::Compute,
        group: "",
        resources: &["secrets"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    // The claims a VM boots from or mounts (ownership; RWX for live migration).
    Need {
        part: Part::Compute,
        group: "",
        resources: &["persistentvolumeclaims"],
        verbs: &["get"],
    },
    // Deleting a VM waits (through one shared watch of the kind) until its import claim's
    // PersistentVolume is gone.
    Need {
        part: Part::Compute,
        group: "",
        resources: &["persistentvolumes"],
        verbs: READ,
    },
    // Migration to a named node and "fewer than two nodes" blockers.
    Need {
        part: Part::Compute,
        group: "",
        resources: &["nodes"],
        verbs: &["get", "list"],
    },
    // --- storage: LINSTOR CSI through Kubernetes (the REST API is LINSTOR's, not RBAC's)
    Need {
        part: Part::Storage,
        group: "",
        resources: &["persistentvolumeclaims"],
        verbs: WRITE,
    },
    Need {
        part: Part::Storage,
        group: "",
        resources: &["persistentvolumes"],
        // Deleting a volume waits (through one shared watch) until its PersistentVolume is gone;
        // reading many volumes reads their PVs with one list, not one GET each.
        verbs: READ,
    },
    // A StorageClass per tier and replica count (cluster-scoped, shared); `connect` lists them
    // for tiers.
    Need {
        part: Part::Storage,
        group: "storage.k8s.io",
        resources: &["storageclasses"],
        verbs: &["get", "list", "create", "patch"],
    },
    Need {
        part: Part::Storage,
        group: "snapshot.storage.k8s.io",
        resources: &["volumesnapshots"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    Need {
        part: Part::Storage,
        group: "snapshot.storage.k8s.io",
        resources: &["volumesnapshotclasses"],
        verbs: &["get", "create", "patch"],
    },
    // Imports from http(s) URLs are CDI DataVolumes named after the volume.
    Need {
        part: Part::Storage,
        group: "cdi.kubevirt.io",
        resources: &["datavolumes"],
        verbs: WRITE,
    },
    // `connect` finds LINSTOR: the LinstorCluster, the controller's Service, its client Secret.
    Need {
        part: Part::Storage,
        group: "piraeus.io",
        resources: &["linstorclusters"],
        verbs: &["list"],
    },
    Need {
        part: Part::Storage,
        group: "",
        resources: &["services"],
        verbs: &["get", "list"],
    },
    Need {
        part: Part::Storage,
        group: "",
        resources: &["secrets"],
        verbs: &["get"],
    },
    // --- network: Kube-OVN + Multus (all Kube-OVN kinds kubecloud uses are cluster-scoped)
    Need {
        part: Part::Network,
        group: "kubeovn.io",
        resources: &[
            "vpcs",
            "subnets",
            "ips",
            "ovn-eips",
            "ovn-fips",
            "ovn-snat-rules",
        ],
        verbs: WRITE,
    },
    Need {
        part: Part::Network,
        group: "kubeovn.io",
        resources: &["security-groups"],
        // `watch`: the groups an interface names are checked through a shared watch.
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
    },
    // Secondary subnets are Multus attachments in the tenant's namespace.
    Need {
        part: Part::Network,
        group: "k8s.cni.cncf.io",
        resources: &["network-attachment-definitions"],
        verbs: &["get", "create", "patch", "delete"],
    },
    // ClusterIP services.
    Need {
        part: Part::Network,
        group: "",
        resources: &["services"],
        verbs: WRITE,
    },
    // The owner of an address (a pod or a VM) when reservations are listed.
    Need {
        part: Part::Network,
        group: "",
        resources: &["pods"],
        verbs: &["get", "list"],
    },
    Need {
        part: Part::Network,
        group: "kubevirt.io",
        resources: &["virtualmachines"],
        verbs: &["get"],
    },
    // --- load balancer: MetalLB (its objects live in MetalLB's namespace)
    Need {
        part: Part::LoadBalancer,
        group: "metallb.io",
        resources: &["ipaddresspools"],
        verbs: WRITE,
    },
    Need {
        part: Part::LoadBalancer,
        group: "metallb.io",
        resources: &[
            "l2advertisements",
            "bgpadvertisements",
            "bgppeers",
            "bfdprofiles",
            "communities",
        ],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    // LoadBalancer Services in the tenant's namespace; MetalLB reports through Events.
    Need {
        part: Part::LoadBalancer,
        group: "",
        resources: &["services"],
        verbs: WRITE,
    },
    Need {
        part: Part::LoadBalancer,
        group: "",
        resources: &["events"],
        verbs: &["list", "watch"],
    },
    // BGP passwords go into Secrets in MetalLB's namespace.
    Need {
        part: Part::LoadBalancer,
        group: "",
        resources: &["secrets"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
];

/// Every part makes the tenant's namespace on first use (`ensure_namespace`: get, then apply).
const NAMESPACES: &[&str] = &["get", "create", "patch"];

/// Accesses a backend needs that the conformance suite does not exercise, each with the reason
/// (`tests/rbac.rs` exempts exactly these from "every rule was used"). Not listed: a `watch`
/// whose `list` is used, since kube's watcher lists first and watches only while a wait's
/// condition is pending, which depends on timing.
const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[
    ("", "secrets", "get", SECRETS),
    ("", "secrets", "create", SECRETS),
    ("", "secrets", "patch", SECRETS),
    ("", "secrets", "delete", SECRETS),
    (
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "get",
        MULTUS,
    ),
    (
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "create",
        MULTUS,
    ),
    (
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "patch",
        MULTUS,
    ),
    (
        "k8s.cni.cncf.io",
        "network-attachment-definitions",
        "delete",
        MULTUS,
    ),
    ("metallb.io", "bfdprofiles", "get", BGP_EXTRAS),
    ("metallb.io", "bfdprofiles", "create", BGP_EXTRAS),
    ("metallb.io", "bfdprofiles", "patch", BGP_EXTRAS),
    ("metallb.io", "bfdprofiles", "delete", BGP_EXTRAS),
    ("metallb.io", "communities", "get", BGP_EXTRAS),
    ("metallb.io", "communities", "create", BGP_EXTRAS),
    ("metallb.io", "communities", "patch", BGP_EXTRAS),
    ("metallb.io", "communities", "delete", BGP_EXTRAS),
    ("", "pods", "get", POD_OWNER),
];

const SECRETS: &str = "cloud-init and SSH keys (KubeVirt) and BGP passwords (MetalLB) are \
    Secrets; the suite's VMs have no cloud-init and its BGP peers no password (reading the \
    LINSTOR client Secret is tested in tests/connect.rs)";
const MULTUS: &str = "secondary subnets are Multus attachments; the suite's subnets are primary";
const BGP_EXTRAS: &str = "BFD profiles and BGP communities of a pool; the suite's BGP pool sets \
    neither";
const POD_OWNER: &str = "the owner of an address that is a pod; the suite's addresses are VMs' \
    or unbound";

/// Why `access` is granted although the conformance suite does not exercise it, if it is one of
/// those documented exceptions.
pub fn not_exercised_by_conformance(access: &Access) -> Option<&'static str> {
    NOT_EXERCISED
        .iter()
        .find(|(g, r, v, _)| *g == access.group && *r == access.resource && *v == access.verb)
        .map(|(_, _, _, why)| *why)
}

/// The rules for a set of parts. See [`rules`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// group -> resource -> verbs
    table: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

/// The exact rules the backends of `parts` need, plus what [`crate::Cloud::connect_with`] reads
/// to find them (the Piraeus `LinstorCluster`, the controller's Service and client Secret,
/// StorageClasses for tiers) when storage is among them.
pub fn rules(parts: &[Part]) -> Rules {
    let mut table: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    if !parts.is_empty() {
        let verbs = table
            .entry(String::new())
            .or_default()
            .entry("namespaces".into())
            .or_default();
        verbs.extend(NAMESPACES.iter().map(|v| v.to_string()));
    }
    for need in NEEDS.iter().filter(|n| parts.contains(&n.part)) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rules_group_resources_with_the_same_verbs() {
        let rules = rules(&Part::ALL);
        for rule in rules.policy_rules() {
            assert_eq!(rule.api_groups.as_ref().map(Vec::len), Some(1));
            assert!(!rule.verbs.is_empty());
        }
    }
}
