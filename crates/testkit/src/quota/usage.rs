//! What one object uses of each quota resource, as kube-apiserver's quota evaluators count it
//! (kubernetes `pkg/quota/v1/evaluator/core/`: `pods.go`, `persistent_volume_claims.go`,
//! `services.go`; every other resource by the object-count evaluator of
//! `staging/src/k8s.io/apiserver/pkg/quota/v1/generic/evaluator.go`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::quantity::Amount;

/// Resource name → amount.
pub(crate) type ResourceList = BTreeMap<String, Amount>;

/// The storage-class-scoped resource suffix of `persistent_volume_claims.go`.
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// `count/<resource>` for the core group, `count/<resource>.<group>` otherwise
/// (`ObjectCountQuotaResourceNameFor`).
pub(crate) fn count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// Which evaluator counts a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Evaluator {
    Pods,
    Claims,
    Services,
    /// Object count only.
    Count,
}

impl Evaluator {
    pub(crate) fn of(group: &str, plural: &str) -> Self {
        match (group, plural) {
            ("", "pods") => Self::Pods,
            ("", "persistentvolumeclaims") => Self::Claims,
            ("", "services") => Self::Services,
            _ => Self::Count,
        }
    }

    /// Whether the evaluator charges this operation (`Handles`): every evaluator charges a
    /// create; claims and services also an update (a grown claim, a service turned into a
    /// load balancer); pods only on create (in-place resize is not modelled); object counts
    /// only on create.
    pub(crate) fn handles_update(self) -> bool {
        matches!(self, Self::Claims | Self::Services)
    }

    /// Whether a quota resource name is one this evaluator tracks (`MatchingResources`).
    pub(crate) fn matches(self, group: &str, plural: &str, resource: &str) -> bool {
        if resource == count_name(group, plural) {
            return true;
        }
        match self {
            Self::Pods => POD_RESOURCES.contains(&resource),
            Self::Claims => {
                matches!(resource, "persistentvolumeclaims" | "requests.storage")
                    || resource
                        .split_once(STORAGE_CLASS_SUFFIX)
                        .is_some_and(|(_, r)| {
                            matches!(r, "requests.storage" | "persistentvolumeclaims")
                        })
            }
            Self::Services => matches!(
                resource,
                "services" | "services.loadbalancers" | "services.nodeports"
            ),
            Self::Count => false,
        }
    }

    /// The object's usage (`Usage`).
    pub(crate) fn usage(self, group: &str, plural: &str, object: &Value) -> ResourceList {
        let mut out = ResourceList::new();
        out.insert(count_name(group, plural), Amount::count(1));
        match self {
            Self::Pods => pod_usage(object, &mut out),
            Self::Claims => claim_usage(object, &mut out),
            Self::Services => service_usage(object, &mut out),
            Self::Count => {}
        }
        out
    }

    /// The resources of `hard` the object must specify and does not (`Constraints`): a pod
    /// under a quota on CPU or memory must give that request or limit in every container.
    pub(crate) fn missing(self, object: &Value, hard: &[&str]) -> Vec<String> {
        if self != Self::Pods {
            return Vec::new();
        }
        let containers = object["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut missing = Vec::new();
        for resource in hard {
            let (section, name) = match *resource {
                "cpu" | "requests.cpu" => ("requests", "cpu"),
                "memory" | "requests.memory" => ("requests", "memory"),
                "limits.cpu" => ("limits", "cpu"),
                "limits.memory" => ("limits", "memory"),
                _ => continue,
            };
            if containers
                .iter()
                .any(|c| c["resources"][section][name].is_null())
            {
                missing.push((*resource).to_string());
            }
        }
        missing.sort();
        missing.dedup();
        missing
    }
}

const POD_RESOURCES: &[&str] = &[
    "pods",
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    "ephemeral-storage",
    "requests.ephemeral-storage",
    "limits.ephemeral-storage",
];

fn sum(containers: &Value, section: &str, name: &str) -> Option<Amount> {
    let mut total: Option<Amount> = None;
    for c in containers.as_array().into_iter().flatten() {
        if let Some(q) = Amount::from_json(&c["resources"][section][name]) {
            total = Some(total.unwrap_or_default().plus(q));
        }
    }
    total
}

fn max_of(containers: &Value, section: &str, name: &str) -> Option<Amount> {
    containers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Amount::from_json(&c["resources"][section][name]))
        .reduce(Amount::max)
}

/// `podComputeUsageHelper`: the containers' sum, at least the largest init container, plus the
/// pod overhead; a pod in a terminal phase uses nothing but its count (`QuotaV1Pod`).
fn pod_usage(pod: &Value, out: &mut ResourceList) {
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if matches!(phase, "Succeeded" | "Failed") {
        return;
    }
    out.insert("pods".into(), Amount::count(1));
    let spec = &pod["spec"];
    for (section, name, keys) in [
        ("requests", "cpu", &["requests.cpu", "cpu"][..]),
        ("requests", "memory", &["requests.memory", "memory"][..]),
        (
            "requests",
            "ephemeral-storage",
            &["requests.ephemeral-storage", "ephemeral-storage"][..],
        ),
        ("limits", "cpu", &["limits.cpu"][..]),
        ("limits", "memory", &["limits.memory"][..]),
        (
            "limits",
            "ephemeral-storage",
            &["limits.ephemeral-storage"][..],
        ),
    ] {
        let containers = sum(&spec["containers"], section, name);
        let init = max_of(&spec["initContainers"], section, name);
        let overhead = Amount::from_json(&spec["overhead"][name]);
        let total = match (containers, init) {
            (Some(c), Some(i)) => Some(c.max(i)),
            (c, i) => c.or(i),
        }
        .map(|t| overhead.map_or(t, |o| t.plus(o)));
        if let Some(total) = total {
            for key in keys {
                out.insert((*key).to_string(), total);
            }
        }
    }
}

/// `PersistentVolumeClaim` usage: one claim, its storage (the larger of the request and what
/// was allocated, `RecoverVolumeExpansionFailure`), and both per storage class.
fn claim_usage(claim: &Value, out: &mut ResourceList) {
    out.insert("persistentvolumeclaims".into(), Amount::count(1));
    let request =
        Amount::from_json(&claim["spec"]["resources"]["requests"]["storage"]).unwrap_or_default();
    let allocated = Amount::from_json(&claim["status"]["allocatedResources"]["storage"]);
    let storage = allocated.map_or(request, |a| request.max(a));
    out.insert("requests.storage".into(), storage);
    if let Some(class) = claim["spec"]["storageClassName"]
        .as_str()
        .filter(|c| !c.is_empty())
    {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            Amount::count(1),
        );
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
            storage,
        );
    }
}

/// `Service` usage: one service, one load balancer if of that type, and one node port per
/// port of a `NodePort` or `LoadBalancer` service.
fn service_usage(service: &Value, out: &mut ResourceList) {
    out.insert("services".into(), Amount::count(1));
    let ty = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
    let ports = service["spec"]["ports"].as_array().map_or(0, Vec::len) as u64;
    let lb = u64::from(ty == "LoadBalancer");
    out.insert("services.loadbalancers".into(), Amount::count(lb));
    let node_ports = match ty {
        "NodePort" => ports,
        "LoadBalancer"
            if service["spec"]["allocateLoadBalancerNodePorts"] != Value::Bool(false) =>
        {
            ports
        }
        _ => 0,
    };
    out.insert("services.nodeports".into(), Amount::count(node_ports));
}
