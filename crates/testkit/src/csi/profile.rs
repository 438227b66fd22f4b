//! What each simulated CSI driver can do, from the driver's own documentation and controller
//! source, and how its `CreateVolume` refuses what it cannot.
//!
//! Sources (read for this module):
//! - Ceph RBD and CephFS: ceph/ceph-csi `internal/rbd/controllerserver.go` (`validateVolumeReq`:
//!   multi-node access only for `block` volumes; `imageFeatures` required; `clusterID`/`pool`
//!   required), `internal/cephfs/controllerserver.go`, `docs/rbd/deploy.md`,
//!   `docs/cephfs/deploy.md`, `internal/util/util.go` (`RoundOffVolSize`: sizes round up to
//!   MiB, and to GiB from 1 GiB on), Rook's `deploy/examples/csi/rbd/storageclass.yaml` (class
//!   `rook-ceph-block` → here `ceph-block`, pool `replicapool` with `replicated.size: 3`) and
//!   `csi/cephfs/storageclass.yaml` (`rook-cephfs` → here `ceph-filesystem`, `fsName: myfs`).
//!   Replicas are a property of the Ceph pool, not of the class.
//! - Longhorn: longhorn.io `docs/latest/references/storage-class-parameters` (`numberOfReplicas`
//!   default `"3"`, `staleReplicaTimeout`, `migratable`, `dataLocality`, `fsType`), the RWX
//!   pages (`ReadWriteMany` filesystem volumes through a share-manager NFS export; a
//!   `ReadWriteMany` *block* volume only when `migratable: "true"`, which is what KubeVirt live
//!   migration uses), `csi/controller_server.go` in longhorn/longhorn-manager, the volume
//!   expansion page (online since v1.4.0, offline only before: see
//!   `CsiInstall::offline_expansion_only`). Replicas are a class parameter.
//! - OpenEBS Mayastor (replicated PV): openebs/mayastor-docs `reference/storage-class-parameters.md`
//!   (`repl`, `protocol: nvmf`, `ioTimeout`, `thin`, `fsType`); `ReadWriteOnce` only; snapshots
//!   and restore from a snapshot, no volume-to-volume clone; replicas are the class's `repl`
//!   and each needs a pool on a distinct node; `advanced-operations/re-resize` on openebs.io
//!   (expansion online and offline since 2.6).
//! - OpenEBS LocalPV-LVM: openebs/lvm-localpv `docs/storageclasses.md` (`volgroup` or
//!   `vgpattern` required, `thinProvision`, `fsType`, `shared`; `WaitForFirstConsumer`
//!   recommended; topology key `openebs.io/nodename`), `docs/snapshot.md` (snapshots, but no
//!   restore and no clone); one copy on one node; extents of 4 MiB.
//! - democratic-csi: democratic-csi/democratic-csi `README.md` and
//!   `src/driver/controller-zfs/index.js` (zvols over iSCSI or NVMe-oF, datasets over NFS;
//!   snapshots and clones through ZFS; expansion); replicas are the ZFS pool's redundancy (one
//!   copy as far as Kubernetes sees).
//! - The generic driver stands for any CSI driver kubecloud knows nothing about: single-node
//!   access, no snapshots, no clones, no expansion (the least a driver offers).
//!
//! Where a driver's documentation is silent or ambiguous the profile is the stricter reading.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A simulated CSI driver. See the [module docs](crate::csi) for what each does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CsiProfile {
    /// Ceph RBD (`rbd.csi.ceph.com`, ceph-csi as Rook deploys it): Filesystem and Block;
    /// `ReadWriteMany` only in Block mode; snapshots, clones, online expansion; required class
    /// parameters `clusterID`, `pool`, `imageFeatures`; replicas are the pool's `size`
    /// (`replicapool`: 3, `replicapool-2x`: 2).
    CephRbd,
    /// CephFS (`cephfs.csi.ceph.com`): Filesystem only, `ReadWriteMany` fine; snapshots,
    /// clones, online expansion without a node step; required `clusterID`, `fsName`.
    CephFs,
    /// Longhorn (`driver.longhorn.io`): replicas from `numberOfReplicas` (default 3); RWX
    /// Filesystem through a share-manager, RWX Block only with `migratable: "true"`;
    /// snapshots, clones, online expansion.
    Longhorn,
    /// OpenEBS Mayastor (`io.openebs.csi-mayastor`): `ReadWriteOnce` only; replicas from `repl`
    /// (at most one per node); `protocol: nvmf` required; snapshots and restore, no
    /// volume-to-volume clone; online expansion (since 2.6).
    Mayastor,
    /// OpenEBS LocalPV-LVM (`local.csi.openebs.io`): `ReadWriteOnce` only, one node (topology
    /// `openebs.io/nodename`), classes `WaitForFirstConsumer`; `volgroup` or `vgpattern`
    /// required; snapshots but no restore or clone; online expansion.
    LocalPvLvm,
    /// democratic-csi with a ZFS iSCSI driver (`org.democratic-csi.iscsi`): Filesystem
    /// single-node (or read-only many), Block any access; snapshots, clones, expansion.
    DemocraticIscsi,
    /// democratic-csi with a ZFS NFS driver (`org.democratic-csi.nfs`): Filesystem only, any
    /// access mode; snapshots, clones, expansion without a node step.
    DemocraticNfs,
    /// democratic-csi with a ZFS NVMe-oF driver (`org.democratic-csi.nvmeof`): as iSCSI.
    DemocraticNvmeof,
    /// An unknown driver (`csi.example.com`): single-node access in both modes and nothing
    /// else — no snapshots, clones or expansion.
    Generic,
}

/// How a driver grows volumes (`EXPAND_VOLUME` and its `ONLINE`/`OFFLINE` plugin capability).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expansion {
    /// No `EXPAND_VOLUME`: no external-resizer runs for it.
    None,
    /// Only volumes no pod uses.
    Offline,
    /// Also volumes in use.
    Online,
}

/// `ReadWriteOnce`, `ReadOnlyMany`, `ReadWriteMany`, `ReadWriteOncePod`.
pub(crate) const RWO: &str = "ReadWriteOnce";
pub(crate) const ROX: &str = "ReadOnlyMany";
pub(crate) const RWX: &str = "ReadWriteMany";
pub(crate) const RWOP: &str = "ReadWriteOncePod";

/// A `CreateVolume` refusal: a gRPC status code and its description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RpcError {
    pub(crate) code: &'static str,
    pub(crate) desc: String,
}

impl RpcError {
    pub(crate) fn new(code: &'static str, desc: impl Into<String>) -> Self {
        RpcError {
            code,
            desc: desc.into(),
        }
    }

    pub(crate) fn invalid(desc: impl Into<String>) -> Self {
        Self::new("InvalidArgument", desc)
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rpc error: code = {} desc = {}", self.code, self.desc)
    }
}

/// What a `CreateVolume` asks, as the external-provisioner builds it.
#[derive(Clone, Debug)]
pub(crate) struct CreateRequest {
    pub(crate) name: String,
    pub(crate) bytes: u64,
    pub(crate) parameters: BTreeMap<String, String>,
    pub(crate) block: bool,
    pub(crate) access_modes: Vec<String>,
    /// The node the scheduler chose (`WaitForFirstConsumer`) or the provisioner picked.
    pub(crate) node: Option<String>,
    /// The cluster's nodes carrying the driver (for placement).
    pub(crate) nodes: Vec<String>,
}

/// Where a validated request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    pub(crate) replicas: u32,
    pub(crate) pool: Option<String>,
    pub(crate) node: Option<String>,
}

/// Ceph pools of the simulated Rook cluster and their replica count (`spec.replicated.size`).
pub(crate) const CEPH_POOLS: [(&str, u32); 3] = [
    ("replicapool", 3),
    ("replicapool-2x", 2),
    ("myfs-replicated", 3),
];
/// The Rook cluster's `clusterID` (its namespace, as Rook names it).
pub(crate) const CEPH_CLUSTER_ID: &str = "rook-ceph";
/// The CephFS filesystem.
pub(crate) const CEPH_FS: &str = "myfs";
/// LocalPV-LVM's volume group on every node.
pub(crate) const LVM_VG: &str = "lvmvg";
/// LocalPV-LVM's topology key (`NodeGetInfo`'s accessible topology; kubelet labels the nodes).
pub(crate) const LVM_TOPOLOGY_KEY: &str = "openebs.io/nodename";

impl CsiProfile {
    /// Every profile.
    pub const ALL: [CsiProfile; 9] = [
        CsiProfile::CephRbd,
        CsiProfile::CephFs,
        CsiProfile::Longhorn,
        CsiProfile::Mayastor,
        CsiProfile::LocalPvLvm,
        CsiProfile::DemocraticIscsi,
        CsiProfile::DemocraticNfs,
        CsiProfile::DemocraticNvmeof,
        CsiProfile::Generic,
    ];

    /// The CSI driver name (the `CSIDriver` object's name and the classes' `provisioner`).
    ///
    /// ```
    /// use kubecloud_testkit::csi::CsiProfile;
    /// assert_eq!(CsiProfile::Longhorn.driver(), "driver.longhorn.io");
    /// ```
    pub fn driver(&self) -> &'static str {
        match self {
            CsiProfile::CephRbd => "rbd.csi.ceph.com",
            CsiProfile::CephFs => "cephfs.csi.ceph.com",
            CsiProfile::Longhorn => "driver.longhorn.io",
            CsiProfile::Mayastor => "io.openebs.csi-mayastor",
            CsiProfile::LocalPvLvm => "local.csi.openebs.io",
            CsiProfile::DemocraticIscsi => "org.democratic-csi.iscsi",
            CsiProfile::DemocraticNfs => "org.democratic-csi.nfs",
            CsiProfile::DemocraticNvmeof => "org.democratic-csi.nvmeof",
            CsiProfile::Generic => "csi.example.com",
        }
    }

    /// A short lowercase name (`ceph-rbd`, `longhorn`, ...), used in controller names.
    pub fn short_name(&self) -> &'static str {
        match self {
            CsiProfile::CephRbd => "ceph-rbd",
            CsiProfile::CephFs => "cephfs",
            CsiProfile::Longhorn => "longhorn",
            CsiProfile::Mayastor => "mayastor",
            CsiProfile::LocalPvLvm => "lvm-localpv",
            CsiProfile::DemocraticIscsi => "democratic-iscsi",
            CsiProfile::DemocraticNfs => "democratic-nfs",
            CsiProfile::DemocraticNvmeof => "democratic-nvmeof",
            CsiProfile::Generic => "generic",
        }
    }

    /// Access modes accepted for Filesystem volumes.
    pub fn filesystem_access_modes(&self) -> &'static [&'static str] {
        match self {
            CsiProfile::CephRbd | CsiProfile::DemocraticIscsi | CsiProfile::DemocraticNvmeof => {
                &[RWO, RWOP, ROX]
            }
            CsiProfile::CephFs | CsiProfile::DemocraticNfs => &[RWO, RWOP, RWX, ROX],
            CsiProfile::Longhorn => &[RWO, RWOP, RWX],
            CsiProfile::Mayastor | CsiProfile::LocalPvLvm | CsiProfile::Generic => &[RWO, RWOP],
        }
    }

    /// Access modes accepted for Block volumes (empty: no Block volumes). Longhorn's
    /// `ReadWriteMany` needs the class parameter `migratable: "true"` besides.
    pub fn block_access_modes(&self) -> &'static [&'static str] {
        match self {
            CsiProfile::CephRbd | CsiProfile::DemocraticIscsi | CsiProfile::DemocraticNvmeof => {
                &[RWO, RWOP, RWX, ROX]
            }
            CsiProfile::CephFs | CsiProfile::DemocraticNfs => &[],
            CsiProfile::Longhorn => &[RWO, RWOP, RWX],
            CsiProfile::Mayastor | CsiProfile::LocalPvLvm | CsiProfile::Generic => &[RWO, RWOP],
        }
    }

    /// Whether it takes snapshots (`CREATE_DELETE_SNAPSHOT`; a csi-snapshotter sidecar runs).
    pub fn snapshots(&self) -> bool {
        !matches!(self, CsiProfile::Generic)
    }

    /// Whether it restores a snapshot into a new volume.
    pub fn restores(&self) -> bool {
        self.snapshots() && !matches!(self, CsiProfile::LocalPvLvm)
    }

    /// Whether it clones a volume (`CLONE_VOLUME`).
    pub fn clones(&self) -> bool {
        !matches!(
            self,
            CsiProfile::Mayastor | CsiProfile::LocalPvLvm | CsiProfile::Generic
        )
    }

    /// How it grows volumes.
    pub fn expansion(&self) -> Expansion {
        match self {
            CsiProfile::Generic => Expansion::None,
            _ => Expansion::Online,
        }
    }

    /// Whether a grown Filesystem volume needs the node step (`NodeExpandVolume`, kubelet),
    /// i.e. `ControllerExpandVolume` answers `node_expansion_required`.
    pub fn node_expansion(&self, block: bool) -> bool {
        !block && !matches!(self, CsiProfile::CephFs | CsiProfile::DemocraticNfs)
    }

    /// Whether volumes live on one node (topology), so the PV gets node affinity.
    pub fn local(&self) -> bool {
        matches!(self, CsiProfile::LocalPvLvm)
    }

    /// Whether replicas come from a class parameter (`true`) or from the storage pool
    /// (`false`).
    pub fn replicas_from_class(&self) -> bool {
        matches!(self, CsiProfile::Longhorn | CsiProfile::Mayastor)
    }

    /// The size the driver makes for a request of `bytes`.
    pub(crate) fn round_up(&self, bytes: u64) -> u64 {
        const MI: u64 = 1 << 20;
        const GI: u64 = 1 << 30;
        let up = |b: u64, unit: u64| b.div_ceil(unit).max(1) * unit;
        match self {
            CsiProfile::CephRbd | CsiProfile::CephFs if bytes < GI => up(bytes, MI),
            CsiProfile::CephRbd | CsiProfile::CephFs => up(bytes, GI),
            CsiProfile::Longhorn => up(bytes, 2 * MI),
            CsiProfile::LocalPvLvm => up(bytes, 4 * MI),
            _ => bytes,
        }
    }

    /// Checks a `CreateVolume` the way the driver's controller does, and says where it goes.
    pub(crate) fn validate(&self, req: &CreateRequest) -> Result<Placement, RpcError> {
        let p = &req.parameters;
        let param = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let allowed = if req.block {
            self.block_access_modes()
        } else {
            self.filesystem_access_modes()
        };
        if req.block && allowed.is_empty() {
            return Err(RpcError::invalid(match self {
                CsiProfile::CephFs => "block volume not supported".to_string(),
                _ => "invalid access_type, block volumes are not supported by this driver"
                    .to_string(),
            }));
        }
        if let Some(bad) = req
            .access_modes
            .iter()
            .find(|m| !allowed.contains(&m.as_str()))
        {
            return Err(self.access_refusal(bad, req.block));
        }
        let multi = req.access_modes.iter().any(|m| m == RWX);
        match self {
            CsiProfile::CephRbd => {
                let cluster =
                    param("clusterID").ok_or_else(|| RpcError::invalid("clusterID must be set"))?;
                if cluster != CEPH_CLUSTER_ID {
                    return Err(RpcError::invalid(format!(
                        "failed to fetch monitor list using clusterID ({cluster}): missing configuration for cluster ID \"{cluster}\""
                    )));
                }
                if param("imageFeatures").is_none() {
                    return Err(RpcError::invalid("empty imageFeatures parameter"));
                }
                let pool = param("pool")
                    .ok_or_else(|| RpcError::invalid("missing required parameter pool"))?;
                let size = ceph_pool(pool)?;
                Ok(Placement {
                    replicas: size,
                    pool: Some(pool.to_string()),
                    node: None,
                })
            }
            CsiProfile::CephFs => {
                let cluster =
                    param("clusterID").ok_or_else(|| RpcError::invalid("clusterID must be set"))?;
                if cluster != CEPH_CLUSTER_ID {
                    return Err(RpcError::invalid(format!(
                        "failed to fetch monitor list using clusterID ({cluster}): missing configuration for cluster ID \"{cluster}\""
                    )));
                }
                let fs = param("fsName")
                    .ok_or_else(|| RpcError::invalid("missing required parameter fsName"))?;
                if fs != CEPH_FS {
                    return Err(RpcError::new(
                        "NotFound",
                        format!("filesystem {fs} not found in Ceph cluster"),
                    ));
                }
                let pool = param("pool").unwrap_or("myfs-replicated");
                let size = ceph_pool(pool)?;
                Ok(Placement {
                    replicas: size,
                    pool: Some(pool.to_string()),
                    node: None,
                })
            }
            CsiProfile::Longhorn => {
                let replicas = match param("numberOfReplicas") {
                    None => 3,
                    Some(n) => n
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=20).contains(n))
                        .ok_or_else(|| {
                            RpcError::invalid(format!("invalid parameter numberOfReplicas: {n}"))
                        })?,
                };
                let migratable = param("migratable") == Some("true");
                if req.block && multi && !migratable {
                    return Err(RpcError::invalid(
                        "ReadWriteMany block volumes are only supported for migratable volumes (set the parameter migratable: \"true\")",
                    ));
                }
                if migratable && !req.block {
                    return Err(RpcError::invalid(
                        "migratable volumes are only supported in Block volume mode",
                    ));
                }
                Ok(Placement {
                    replicas,
                    pool: None,
                    node: None,
                })
            }
            CsiProfile::Mayastor => {
                match param("protocol") {
                    Some("nvmf") => {}
                    other => {
                        return Err(RpcError::invalid(format!(
                            "Invalid protocol: {}",
                            other.unwrap_or("")
                        )));
                    }
                }
                let replicas =
                    match param("repl") {
                        None => 1,
                        Some(n) => n.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                            RpcError::invalid(format!("Invalid replica count: {n}"))
                        })?,
                    };
                if replicas as usize > req.nodes.len() {
                    return Err(RpcError::new(
                        "ResourceExhausted",
                        format!(
                            "Not enough suitable pools available, {}/{replicas}",
                            req.nodes.len()
                        ),
                    ));
                }
                Ok(Placement {
                    replicas,
                    pool: None,
                    node: None,
                })
            }
            CsiProfile::LocalPvLvm => {
                let pattern = match (param("volgroup"), param("vgpattern")) {
                    (Some(vg), _) => format!("^{vg}$"),
                    (None, Some(pattern)) => pattern.to_string(),
                    (None, None) => {
                        return Err(RpcError::invalid(
                            "one of the parameters volgroup or vgpattern must be set",
                        ));
                    }
                };
                let matches = regex::Regex::new(&pattern)
                    .map_err(|e| RpcError::invalid(format!("invalid vgpattern {pattern:?}: {e}")))?
                    .is_match(LVM_VG);
                let node = req
                    .node
                    .clone()
                    .or_else(|| req.nodes.first().cloned())
                    .filter(|_| matches);
                let Some(node) = node else {
                    return Err(RpcError::new(
                        "ResourceExhausted",
                        format!(
                            "no vg available to serve volume request having regex=\"{pattern}\" & capacity=\"{}\"",
                            req.bytes
                        ),
                    ));
                };
                Ok(Placement {
                    replicas: 1,
                    pool: Some(LVM_VG.to_string()),
                    node: Some(node),
                })
            }
            CsiProfile::DemocraticIscsi
            | CsiProfile::DemocraticNfs
            | CsiProfile::DemocraticNvmeof
            | CsiProfile::Generic => Ok(Placement {
                replicas: 1,
                pool: None,
                node: None,
            }),
        }
    }

    fn access_refusal(&self, mode: &str, block: bool) -> RpcError {
        let kind = if block { "block" } else { "filesystem" };
        match self {
            CsiProfile::CephRbd if mode == RWX => RpcError::invalid(
                "multi node access modes are only supported on rbd `block` type volumes",
            ),
            CsiProfile::Mayastor => {
                RpcError::invalid(format!("Invalid volume access mode: {}", csi_mode(mode)))
            }
            CsiProfile::LocalPvLvm => RpcError::invalid(format!(
                "only SINGLE_NODE_WRITER access mode is supported, got {}",
                csi_mode(mode)
            )),
            CsiProfile::Longhorn => RpcError::invalid(format!(
                "access mode {} is not supported for {kind} volumes",
                csi_mode(mode)
            )),
            _ => RpcError::invalid(format!(
                "invalid access_mode, {} for {kind} volumes",
                csi_mode(mode)
            )),
        }
    }

    /// The `CSIDriver` object a real installation of the driver registers.
    pub(crate) fn csi_driver_object(&self) -> Value {
        let (attach, pod_info, fs_group) = match self {
            CsiProfile::CephRbd => (true, false, "File"),
            CsiProfile::CephFs => (false, false, "File"),
            CsiProfile::Longhorn => (true, true, "ReadWriteOnceWithFSType"),
            CsiProfile::Mayastor => (true, false, "File"),
            CsiProfile::LocalPvLvm => (false, true, "ReadWriteOnceWithFSType"),
            CsiProfile::DemocraticIscsi
            | CsiProfile::DemocraticNfs
            | CsiProfile::DemocraticNvmeof => (true, true, "ReadWriteOnceWithFSType"),
            CsiProfile::Generic => (true, false, "ReadWriteOnceWithFSType"),
        };
        json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSIDriver",
            "metadata": {"name": self.driver()},
            "spec": {
                "attachRequired": attach,
                "podInfoOnMount": pod_info,
                "fsGroupPolicy": fs_group,
                "requiresRepublish": false,
                "storageCapacity": self.local(),
                "seLinuxMount": matches!(self, CsiProfile::CephRbd | CsiProfile::CephFs),
                "volumeLifecycleModes": ["Persistent"],
            },
        })
    }

    /// The StorageClasses a typical installation has (names in the [module docs](crate::csi)).
    pub(crate) fn default_classes(&self) -> Vec<Value> {
        let driver = self.driver();
        let class = |name: &str, default: bool, params: Value, expand: bool, binding: &str| {
            let mut sc = json!({
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": name},
                "provisioner": driver,
                "parameters": params,
                "reclaimPolicy": "Delete",
                "allowVolumeExpansion": expand,
                "volumeBindingMode": binding,
            });
            if default {
                sc["metadata"]["annotations"] =
                    json!({"storageclass.kubernetes.io/is-default-class": "true"});
            }
            sc
        };
        let expand = self.expansion() != Expansion::None;
        let rbd = |pool: &str| {
            json!({
                "clusterID": CEPH_CLUSTER_ID, "pool": pool, "imageFormat": "2",
                "imageFeatures": "layering",
                "csi.storage.k8s.io/provisioner-secret-name": "rook-csi-rbd-provisioner",
                "csi.storage.k8s.io/provisioner-secret-namespace": "rook-ceph",
                "csi.storage.k8s.io/controller-expand-secret-name": "rook-csi-rbd-provisioner",
                "csi.storage.k8s.io/controller-expand-secret-namespace": "rook-ceph",
                "csi.storage.k8s.io/node-stage-secret-name": "rook-csi-rbd-node",
                "csi.storage.k8s.io/node-stage-secret-namespace": "rook-ceph",
                "csi.storage.k8s.io/fstype": "ext4",
            })
        };
        match self {
            CsiProfile::CephRbd => {
                let mut retain = class(
                    "ceph-block-retain",
                    false,
                    rbd("replicapool"),
                    true,
                    "Immediate",
                );
                retain["reclaimPolicy"] = json!("Retain");
                vec![
                    class("ceph-block", true, rbd("replicapool"), true, "Immediate"),
                    class(
                        "ceph-block-2x",
                        false,
                        rbd("replicapool-2x"),
                        true,
                        "Immediate",
                    ),
                    retain,
                ]
            }
            CsiProfile::CephFs => vec![class(
                "ceph-filesystem",
                true,
                json!({
                    "clusterID": CEPH_CLUSTER_ID, "fsName": CEPH_FS, "pool": "myfs-replicated",
                    "csi.storage.k8s.io/provisioner-secret-name": "rook-csi-cephfs-provisioner",
                    "csi.storage.k8s.io/provisioner-secret-namespace": "rook-ceph",
                    "csi.storage.k8s.io/controller-expand-secret-name": "rook-csi-cephfs-provisioner",
                    "csi.storage.k8s.io/controller-expand-secret-namespace": "rook-ceph",
                    "csi.storage.k8s.io/node-stage-secret-name": "rook-csi-cephfs-node",
                    "csi.storage.k8s.io/node-stage-secret-namespace": "rook-ceph",
                }),
                true,
                "Immediate",
            )],
            CsiProfile::Longhorn => {
                let lh = |n: &str| {
                    json!({"numberOfReplicas": n, "staleReplicaTimeout": "30",
                           "fromBackup": "", "fsType": "ext4", "dataLocality": "disabled"})
                };
                let mut migratable = lh("3");
                migratable["migratable"] = json!("true");
                vec![
                    class("longhorn", true, lh("3"), true, "Immediate"),
                    class("longhorn-r1", false, lh("1"), true, "Immediate"),
                    class("longhorn-r2", false, lh("2"), true, "Immediate"),
                    class("longhorn-migratable", false, migratable, true, "Immediate"),
                ]
            }
            CsiProfile::Mayastor => {
                let ms = |n: &str| json!({"repl": n, "protocol": "nvmf", "ioTimeout": "30", "thin": "true", "fsType": "ext4"});
                vec![
                    class("mayastor-single-replica", true, ms("1"), true, "Immediate"),
                    class("mayastor-3", false, ms("3"), true, "Immediate"),
                ]
            }
            CsiProfile::LocalPvLvm => vec![
                class(
                    "openebs-lvmpv",
                    true,
                    json!({"storage": "lvm", "volgroup": LVM_VG, "fsType": "ext4"}),
                    true,
                    "WaitForFirstConsumer",
                ),
                class(
                    "openebs-lvmpv-thin",
                    false,
                    json!({"storage": "lvm", "volgroup": LVM_VG, "fsType": "ext4", "thinProvision": "yes"}),
                    true,
                    "WaitForFirstConsumer",
                ),
            ],
            CsiProfile::DemocraticIscsi => vec![class(
                "freenas-iscsi-csi",
                true,
                json!({"fsType": "ext4"}),
                true,
                "Immediate",
            )],
            CsiProfile::DemocraticNfs => vec![class(
                "freenas-nfs-csi",
                true,
                json!({"fsType": "nfs"}),
                true,
                "Immediate",
            )],
            CsiProfile::DemocraticNvmeof => vec![class(
                "freenas-nvmeof-csi",
                true,
                json!({"fsType": "ext4"}),
                true,
                "Immediate",
            )],
            CsiProfile::Generic => vec![class("standard", true, json!({}), expand, "Immediate")],
        }
    }

    /// The default VolumeSnapshotClass, if the driver snapshots.
    pub(crate) fn snapshot_class(&self) -> Option<Value> {
        if !self.snapshots() {
            return None;
        }
        let (name, params) = match self {
            CsiProfile::CephRbd => (
                "csi-rbdplugin-snapclass",
                json!({"clusterID": CEPH_CLUSTER_ID,
                       "csi.storage.k8s.io/snapshotter-secret-name": "rook-csi-rbd-provisioner",
                       "csi.storage.k8s.io/snapshotter-secret-namespace": "rook-ceph"}),
            ),
            CsiProfile::CephFs => (
                "csi-cephfsplugin-snapclass",
                json!({"clusterID": CEPH_CLUSTER_ID,
                       "csi.storage.k8s.io/snapshotter-secret-name": "rook-csi-cephfs-provisioner",
                       "csi.storage.k8s.io/snapshotter-secret-namespace": "rook-ceph"}),
            ),
            CsiProfile::Longhorn => ("longhorn-snapshot-vsc", json!({"type": "snap"})),
            CsiProfile::Mayastor => ("csi-mayastor-snapshotclass", json!({})),
            CsiProfile::LocalPvLvm => ("lvmpv-snapclass", json!({})),
            CsiProfile::DemocraticIscsi => ("freenas-iscsi-csi", json!({})),
            CsiProfile::DemocraticNfs => ("freenas-nfs-csi", json!({})),
            CsiProfile::DemocraticNvmeof => ("freenas-nvmeof-csi", json!({})),
            CsiProfile::Generic => return None,
        };
        Some(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": name, "annotations": {"snapshot.storage.kubernetes.io/is-default-class": "true"}},
            "driver": self.driver(),
            "deletionPolicy": "Delete",
            "parameters": params,
        }))
    }

    /// Secrets the classes name (Rook writes them in its namespace).
    pub(crate) fn secrets(&self) -> &'static [&'static str] {
        match self {
            CsiProfile::CephRbd => &["rook-csi-rbd-provisioner", "rook-csi-rbd-node"],
            CsiProfile::CephFs => &["rook-csi-cephfs-provisioner", "rook-csi-cephfs-node"],
            _ => &[],
        }
    }

    /// The volume handle the driver gives a volume made for `name` (`pvc-<uid>`).
    pub(crate) fn volume_handle(&self, name: &str, pool: Option<&str>) -> String {
        let uuid = name.strip_prefix("pvc-").unwrap_or(name);
        match self {
            CsiProfile::CephRbd | CsiProfile::CephFs => {
                let pool_id = CEPH_POOLS
                    .iter()
                    .position(|(p, _)| Some(*p) == pool)
                    .map_or(1, |i| i + 1);
                format!(
                    "0001-{:04x}-{CEPH_CLUSTER_ID}-{pool_id:016x}-{}",
                    CEPH_CLUSTER_ID.len(),
                    uuid_for(&format!("{}/{name}", self.driver()), uuid)
                )
            }
            CsiProfile::Mayastor => uuid.to_string(),
            _ => name.to_string(),
        }
    }

    /// The snapshot handle the driver gives a snapshot `name` (`snapshot-<uid>`) of `volume`.
    pub(crate) fn snapshot_handle(&self, name: &str, volume: &str) -> String {
        let uuid = name.strip_prefix("snapshot-").unwrap_or(name);
        match self {
            CsiProfile::CephRbd | CsiProfile::CephFs => {
                let prefix: String = volume.splitn(5, '-').take(4).collect::<Vec<_>>().join("-");
                format!("{prefix}-{}", uuid_for(&format!("snap/{name}"), uuid))
            }
            CsiProfile::Longhorn => format!("snap://{volume}/{name}"),
            CsiProfile::Mayastor => uuid.to_string(),
            CsiProfile::LocalPvLvm => format!("{volume}@{name}"),
            _ => format!("{volume}@{name}"),
        }
    }
}

impl std::fmt::Display for CsiProfile {
    /// The short name ([`CsiProfile::short_name`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.short_name())
    }
}

impl std::str::FromStr for CsiProfile {
    type Err = String;

    /// A profile by its short name ([`CsiProfile::short_name`]) or its driver name.
    ///
    /// ```
    /// use kubecloud_testkit::csi::CsiProfile;
    /// assert_eq!("longhorn".parse(), Ok(CsiProfile::Longhorn));
    /// assert_eq!("rbd.csi.ceph.com".parse(), Ok(CsiProfile::CephRbd));
    /// assert!("nfs".parse::<CsiProfile>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CsiProfile::ALL
            .into_iter()
            .find(|p| p.short_name() == s || p.driver() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = CsiProfile::ALL.iter().map(|p| p.short_name()).collect();
                format!("unknown CSI profile {s:?} (one of {})", names.join(", "))
            })
    }
}

fn ceph_pool(pool: &str) -> Result<u32, RpcError> {
    CEPH_POOLS
        .iter()
        .find(|(p, _)| *p == pool)
        .map(|(_, size)| *size)
        .ok_or_else(|| {
            RpcError::new(
                "Internal",
                format!("pool not found: pool ({pool}) not found in Ceph cluster"),
            )
        })
}

/// A CSI access mode name, as drivers print it.
fn csi_mode(mode: &str) -> &'static str {
    match mode {
        RWO => "SINGLE_NODE_WRITER",
        RWOP => "SINGLE_NODE_SINGLE_WRITER",
        ROX => "MULTI_NODE_READER_ONLY",
        RWX => "MULTI_NODE_MULTI_WRITER",
        _ => "UNKNOWN",
    }
}

/// A deterministic uuid-looking string for `key` (the uid's own shape when it has one).
fn uuid_for(key: &str, uid: &str) -> String {
    if uid.len() == 36 && uid.chars().filter(|c| *c == '-').count() == 4 {
        return uid.to_string();
    }
    use sha2::Digest;
    let h: String = sha2::Sha256::digest(key.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        profile: CsiProfile,
        block: bool,
        modes: &[&str],
        params: &[(&str, &str)],
    ) -> CreateRequest {
        let mut parameters: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if parameters.is_empty() {
            let sc = &profile.default_classes()[0];
            parameters = serde_json::from_value(sc["parameters"].clone()).unwrap();
        }
        CreateRequest {
            name: "pvc-1".into(),
            bytes: 1 << 30,
            parameters,
            block,
            access_modes: modes.iter().map(|m| m.to_string()).collect(),
            node: None,
            nodes: vec!["node-1".into(), "node-2".into(), "node-3".into()],
        }
    }

    #[test]
    fn rbd_takes_rwx_only_in_block_mode() {
        let rbd = CsiProfile::CephRbd;
        let err = rbd.validate(&req(rbd, false, &[RWX], &[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rpc error: code = InvalidArgument desc = multi node access modes are only supported on rbd `block` type volumes"
        );
        assert_eq!(
            rbd.validate(&req(rbd, true, &[RWX], &[])).unwrap().replicas,
            3
        );
    }

    #[test]
    fn every_default_class_provisions_a_single_node_volume() {
        for p in CsiProfile::ALL {
            for sc in p.default_classes() {
                let params: BTreeMap<String, String> =
                    serde_json::from_value(sc["parameters"].clone()).unwrap();
                // A migratable Longhorn class is for Block volumes (live migration).
                let block = sc["parameters"]["migratable"] == "true";
                let mut r = req(p, block, &[RWO], &[]);
                r.parameters = params;
                assert!(p.validate(&r).is_ok(), "{p:?} {}", sc["metadata"]["name"]);
            }
        }
    }
}
