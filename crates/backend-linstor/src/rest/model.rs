//! The parts of LINSTOR's REST objects this crate reads (unknown fields ignored on the way in).

use serde::Deserialize;

/// `Node`.
#[derive(Clone, Debug, Deserialize)]
pub struct Node {
    /// Its name.
    pub name: String,
    /// `Satellite`, `Controller`, `Combined` or `Auxiliary` (any case).
    #[serde(rename = "type")]
    pub node_type: String,
    /// `ONLINE`, `OFFLINE`, ...
    #[serde(default)]
    pub connection_status: Option<String>,
}

impl Node {
    /// Whether the node can hold replicas.
    pub fn is_satellite(&self) -> bool {
        let t = self.node_type.to_ascii_lowercase();
        t == "satellite" || t == "combined"
    }
}

/// `StoragePool` (from `/v1/view/storage-pools`); capacities in KiB.
#[derive(Clone, Debug, Deserialize)]
pub struct StoragePool {
    /// The pool's name.
    pub storage_pool_name: String,
    /// The node it is on.
    #[serde(default)]
    pub node_name: String,
    /// `LVM`, `LVM_THIN`, `ZFS`, `ZFS_THIN`, `DISKLESS`, ...
    pub provider_kind: String,
    /// Free KiB.
    #[serde(default)]
    pub free_capacity: Option<u64>,
    /// Total KiB.
    #[serde(default)]
    pub total_capacity: Option<u64>,
}

impl StoragePool {
    /// Whether the pool stores data (diskless pools do not).
    pub fn is_diskful(&self) -> bool {
        self.provider_kind != "DISKLESS"
    }
}

/// `AutoSelectFilter`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AutoSelectFilter {
    /// Replicas to place.
    #[serde(default)]
    pub place_count: Option<u32>,
    /// One storage pool.
    #[serde(default)]
    pub storage_pool: Option<String>,
    /// Storage pools to place in.
    #[serde(default)]
    pub storage_pool_list: Option<Vec<String>>,
    /// Diskless resources on the other nodes.
    #[serde(default)]
    pub diskless_on_remaining: Option<bool>,
}

/// `ResourceGroup`.
#[derive(Clone, Debug, Deserialize)]
pub struct ResourceGroup {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// How it places.
    #[serde(default)]
    pub select_filter: Option<AutoSelectFilter>,
}

impl ResourceGroup {
    /// The storage pools the group places in (empty: any).
    pub fn storage_pools(&self) -> Vec<String> {
        let f = self.select_filter.clone().unwrap_or_default();
        f.storage_pool_list
            .filter(|l| !l.is_empty())
            .or_else(|| f.storage_pool.map(|p| vec![p]))
            .unwrap_or_default()
    }

    /// The group's place count (LINSTOR's default is 2).
    pub fn place_count(&self) -> u32 {
        self.select_filter
            .as_ref()
            .and_then(|f| f.place_count)
            .unwrap_or(2)
    }
}

/// `ResourceState`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ResourceState {
    /// DRBD primary somewhere (a VM or pod has it open).
    #[serde(default)]
    pub in_use: Option<bool>,
}

/// `VolumeState`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct VolumeState {
    /// The DRBD disk state: `UpToDate`, `Inconsistent`, `Outdated`, `Diskless`, `DUnknown`, ...
    #[serde(default)]
    pub disk_state: Option<String>,
}

/// `Volume` of a resource.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Volume {
    /// The volume number.
    #[serde(default)]
    pub volume_number: Option<i32>,
    /// Its pool.
    #[serde(default)]
    pub storage_pool_name: Option<String>,
    /// Its state.
    #[serde(default)]
    pub state: Option<VolumeState>,
}

/// `ResourceWithVolumes` (from `/v1/view/resources`).
#[derive(Clone, Debug, Deserialize)]
pub struct Resource {
    /// The resource definition's name.
    pub name: String,
    /// The node.
    pub node_name: String,
    /// `DISKLESS`, `DRBD_DISKLESS`, `TIE_BREAKER`, ...
    #[serde(default)]
    pub flags: Vec<String>,
    /// Whether it is in use.
    #[serde(default)]
    pub state: Option<ResourceState>,
    /// Its volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

impl Resource {
    /// Whether the resource is primary (in use) on its node.
    pub fn in_use(&self) -> bool {
        self.state.as_ref().and_then(|s| s.in_use).unwrap_or(false)
    }

    /// The DRBD disk state of volume 0.
    pub fn disk_state(&self) -> Option<&str> {
        self.volumes
            .first()
            .and_then(|v| v.state.as_ref())
            .and_then(|s| s.disk_state.as_deref())
    }

    /// Whether the resource has no local data.
    pub fn is_diskless(&self) -> bool {
        self.flags
            .iter()
            .any(|f| f == "DISKLESS" || f == "DRBD_DISKLESS" || f == "TIE_BREAKER")
    }
}
