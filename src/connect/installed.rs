//! Which systems a cluster serves, from one round of API discovery.

use std::collections::BTreeMap;

use kubecloud_core::{Error, Result};

const BACKEND: &str = "kubernetes";

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

    /// Asks the API server once: `GET /apis` asking for aggregated discovery
    /// (`apidiscovery.k8s.io/v2`, Kubernetes 1.26+) and accepting the plain group list older
    /// servers answer instead. Temporary failures (5xx, 429, connection errors) are retried by the
    /// client's retry policy, then reported as a temporary [`Error::Backend`].
    pub async fn discover(client: &kube::Client) -> Result<Self> {
        use kube::core::discovery::v2::ACCEPT_AGGREGATED_DISCOVERY_V2;
        let request = http::Request::get("/apis")
            .header(http::header::ACCEPT, ACCEPT_AGGREGATED_DISCOVERY_V2)
            .body(Vec::new())
            .map_err(|e| Error::backend(BACKEND, "building the discovery request", false, e))?;
        let text = client.request_text(request).await.map_err(|e| {
            let temporary = match &e {
                kube::Error::Api(status) => status.code >= 500 || status.code == 429,
                _ => true,
            };
            Error::backend(BACKEND, "API discovery (GET /apis) failed", temporary, e)
        })?;
        Self::from_document(&text)
    }

    /// From the body of `GET /apis`: an aggregated `APIGroupDiscoveryList` or a plain
    /// `APIGroupList`.
    ///
    /// ```
    /// let doc = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[
    ///   {"name":"kubeovn.io","versions":[{"groupVersion":"kubeovn.io/v1","version":"v1"}]}]}"#;
    /// let installed = kubecloud::connect::Installed::from_document(doc).unwrap();
    /// assert!(installed.has(kubecloud::connect::System::KubeOvn));
    /// ```
    pub fn from_document(text: &str) -> Result<Self> {
        let bad = |e: serde_json::Error| {
            Error::backend(BACKEND, "the API server's discovery document", false, e)
        };
        let doc: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
        let versions = |list: &serde_json::Value| -> Vec<String> {
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["version"].as_str().map(str::to_string))
                .collect()
        };
        let entries = |key: &str| doc[key].as_array().cloned().unwrap_or_default();
        match doc["kind"].as_str() {
            Some("APIGroupDiscoveryList") => {
                Ok(Self::from_groups(entries("items").iter().map(|g| {
                    let name = g["metadata"]["name"].as_str().unwrap_or_default();
                    (name.to_string(), versions(&g["versions"]))
                })))
            }
            Some("APIGroupList") => Ok(Self::from_groups(entries("groups").iter().map(|g| {
                let name = g["name"].as_str().unwrap_or_default();
                (name.to_string(), versions(&g["versions"]))
            }))),
            other => Err(Error::Backend {
                backend: BACKEND.into(),
                message: format!(
                    "GET /apis answered {}, not a discovery document",
                    other.unwrap_or("an object without kind")
                ),
                temporary: false,
                source: None,
            }),
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
