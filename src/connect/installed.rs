//! Which systems a cluster serves, from one round of API discovery.

use std::collections::BTreeMap;

use kubecloud_core::{Error, Result};

/// A system kubecloud drives, known by the API group it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    /// KubeVirt (`kubevirt.io/v1`): compute.
    KubeVirt,
    /// CDI (`cdi.kubevirt.io/v1beta1`): imports from http(s) URLs.
    Cdi,
    /// KubeVirt's snapshot API (`snapshot.kubevirt.io/v1beta1`): whole-VM snapshots.
    KubeVirtSnapshots,
    /// The CSI volume snapshot CRDs (`snapshot.storage.k8s.io/v1`): volume snapshots.
    VolumeSnapshots,
    /// The Piraeus operator (`piraeus.io/v1`): where LINSTOR is found.
    Piraeus,
    /// Kube-OVN (`kubeovn.io/v1`): networks.
    KubeOvn,
    /// Multus (`k8s.cni.cncf.io/v1`): secondary subnets.
    Multus,
    /// MetalLB (`metallb.io/v1beta1`): load balancing.
    MetalLb,
}

impl System {
    /// Every system, in a stable order.
    pub const ALL: [System; 8] = [
        System::KubeVirt,
        System::Cdi,
        System::KubeVirtSnapshots,
        System::VolumeSnapshots,
        System::Piraeus,
        System::KubeOvn,
        System::Multus,
        System::MetalLb,
    ];

    /// The system's name, for people.
    pub fn name(self) -> &'static str {
        match self {
            System::KubeVirt => "KubeVirt",
            System::Cdi => "CDI",
            System::KubeVirtSnapshots => "KubeVirt snapshots",
            System::VolumeSnapshots => "the volume snapshot CRDs",
            System::Piraeus => "Piraeus",
            System::KubeOvn => "Kube-OVN",
            System::Multus => "Multus",
            System::MetalLb => "MetalLB",
        }
    }

    /// The API group it serves.
    pub fn group(self) -> &'static str {
        match self {
            System::KubeVirt => "kubevirt.io",
            System::Cdi => "cdi.kubevirt.io",
            System::KubeVirtSnapshots => "snapshot.kubevirt.io",
            System::VolumeSnapshots => "snapshot.storage.k8s.io",
            System::Piraeus => "piraeus.io",
            System::KubeOvn => "kubeovn.io",
            System::Multus => "k8s.cni.cncf.io",
            System::MetalLb => "metallb.io",
        }
    }

    /// The version of its group the backends send.
    pub fn version(self) -> &'static str {
        match self {
            System::KubeVirt | System::KubeOvn | System::Multus | System::Piraeus => "v1",
            System::VolumeSnapshots => "v1",
            System::Cdi | System::KubeVirtSnapshots | System::MetalLb => "v1beta1",
        }
    }
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The API groups a cluster serves, with their versions: what discovery found.
///
/// ```
/// use kubecloud::connect::{Installed, System};
/// let installed = Installed::from_groups([("kubevirt.io", vec!["v1"]), ("metallb.io", vec!["v1beta2"])]);
/// assert!(installed.has(System::KubeVirt));
/// assert!(!installed.has(System::Cdi));
/// assert_eq!(
///     installed.missing(System::MetalLb).unwrap(),
///     "MetalLB is not installed: API group metallb.io is served without version v1beta1"
/// );
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Installed {
    groups: BTreeMap<String, Vec<String>>,
}

impl Installed {
    /// From `(group, versions)` pairs.
    pub fn from_groups<G, V>(groups: impl IntoIterator<Item = (G, Vec<V>)>) -> Self
    where
        G: Into<String>,
        V: Into<String>,
    {
        Self {
            groups: groups
                .into_iter()
                .map(|(g, vs)| (g.into(), vs.into_iter().map(Into::into).collect()))
                .collect(),
        }
    }

    /// Asks the API server once: `GET /apis` with the aggregated discovery media type
    /// (`apidiscovery.k8s.io/v2`), falling back to the plain group list when the server does not
    /// serve aggregated discovery (before Kubernetes 1.26).
    pub async fn discover(client: &kube::Client) -> Result<Self> {
        match client.list_api_groups_aggregated().await {
            Ok(list) => Ok(Self::from_groups(list.items.into_iter().map(|g| {
                let name = g.metadata.and_then(|m| m.name).unwrap_or_default();
                let versions: Vec<String> =
                    g.versions.into_iter().filter_map(|v| v.version).collect();
                (name, versions)
            }))),
            Err(aggregated) => {
                tracing::debug!(error = %aggregated, "no aggregated discovery; asking for the group list");
                let list = client.list_api_groups().await.map_err(|e| {
                    Error::backend("kubernetes", "API discovery (GET /apis) failed", true, e)
                })?;
                Ok(Self::from_groups(list.groups.into_iter().map(|g| {
                    let versions: Vec<String> = g.versions.into_iter().map(|v| v.version).collect();
                    (g.name, versions)
                })))
            }
        }
    }

    /// Whether the cluster serves the version of `system`'s group the backends send.
    pub fn has(&self, system: System) -> bool {
        self.missing(system).is_none()
    }

    /// Why `system` counts as missing (a sentence naming it), or `None` when it is served.
    pub fn missing(&self, system: System) -> Option<String> {
        match self.groups.get(system.group()) {
            None => Some(format!(
                "{} is not installed: API group {} not served",
                capitalised(system.name()),
                system.group()
            )),
            Some(versions) if !versions.iter().any(|v| v == system.version()) => Some(format!(
                "{} is not installed: API group {} is served without version {}",
                capitalised(system.name()),
                system.group(),
                system.version()
            )),
            Some(_) => None,
        }
    }

    /// The versions served of `group` (empty when not served).
    pub fn versions(&self, group: &str) -> &[String] {
        self.groups.get(group).map(Vec::as_slice).unwrap_or(&[])
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
