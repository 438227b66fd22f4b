//! Driver profiles: what kubecloud knows about each CSI driver, from the driver's own
//! documentation, and how a request maps onto it.
//!
//! | driver | profile | modes | RWX | snapshots / restore | clones | expansion | replicas |
//! |---|---|---|---|---|---|---|---|
//! | `rbd.csi.ceph.com` | [`CEPH_RBD`] | block, filesystem | block | yes / yes | yes | online | pool property (`pool`) |
//! | `cephfs.csi.ceph.com` | [`CEPH_FS`] | filesystem | filesystem | yes / yes | yes | online | pool property (`fsName`, `pool`) |
//! | `driver.longhorn.io` | [`LONGHORN`] | block, filesystem | filesystem (share manager); block only with `migratable: "true"` | yes / yes | yes | online | class parameter `numberOfReplicas` |
//! | `io.openebs.csi-mayastor` | [`MAYASTOR`] | block, filesystem | none | yes / yes | no | online | class parameter `repl` |
//! | `local.csi.openebs.io` | [`LOCAL_PV_LVM`] | block, filesystem | none | yes / **no** | no | online | local: one copy |
//! | `org.democratic-csi.iscsi` | [`DEMOCRATIC_ISCSI`] | block, filesystem | none | yes / yes | yes | yes | pool property (ZFS) |
//! | `org.democratic-csi.nvmeof` | [`DEMOCRATIC_NVMEOF`] | block, filesystem | none | yes / yes | yes | yes | pool property (ZFS) |
//! | `org.democratic-csi.nfs` | [`DEMOCRATIC_NFS`] | filesystem | filesystem | yes / yes | yes | yes | pool property (ZFS) |
//! | anything else | [`Profile::unknown`] | block, filesystem | none | when a VolumeSnapshotClass of the driver exists | no | when the class has `allowVolumeExpansion` | pool property |
//!
//! Sources (each driver's own documentation):
//! - Ceph CSI: the support matrix of `ceph/ceph-csi` `README.md` ("Dynamically provision,
//!   de-provision Block mode RWX volume", snapshots, clones, resize for RBD and CephFS; RBD
//!   filesystem volumes are RWO only), `docs/rbd/deploy.md` and `docs/cephfs/deploy.md` (class
//!   parameters `clusterID`, `pool`, `fsName`: the replica count is the Ceph pool's `size`,
//!   not a class parameter).
//! - Longhorn: <https://longhorn.io/docs/latest/references/storage-class-parameters/>
//!   (`numberOfReplicas`; `migratable`: "allows for a Longhorn volume to be live migrated from
//!   one node to another... requires the volume to be RWX block"), RWX filesystem volumes
//!   through its share manager (`nodes-and-volumes/volumes/rwx-volumes`), CSI snapshots and
//!   volume cloning (`snapshots-and-backups/csi-snapshot-support`, `advanced-resources/
//!   cloning`), online expansion (`nodes-and-volumes/volumes/expansion`).
//! - OpenEBS Replicated PV Mayastor: <https://openebs.io/docs/user-guides/replicated-storage-user-guide/replicated-pv-mayastor/configuration/rs-storage-class-parameters>
//!   (`repl`: "the control plane will try to keep always this many copies", `protocol: nvmf`),
//!   volume snapshots and restore, volume expansion; access mode ReadWriteOnce only.
//! - OpenEBS LocalPV-LVM (`openebs/lvm-localpv` `README.md` feature list): raw block,
//!   resize, snapshots, no clone and no restore from a snapshot; one node holds the volume.
//! - democratic-csi (`democratic-csi/democratic-csi` `README.md`: "resizing, snapshots, clones";
//!   the driver names its charts' examples use, `org.democratic-csi.iscsi`, `.nfs`, `.nvmeof`):
//!   ZFS zvols shared over iSCSI or NVMe-oF (RWO), datasets over NFS (RWX filesystem);
//!   redundancy is the ZFS pool's.
//!
//! What the cluster says wins where it says less: a class without `allowVolumeExpansion` is not
//! grown, and snapshots need a VolumeSnapshotClass of the driver (see [`crate::capabilities`]).

/// How a driver keeps copies of a volume, and so how a replica count in a request maps onto a
/// StorageClass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replication {
    /// The count is a class parameter (the key): a tier's class with that count is used, or one
    /// derived from the tier's class with the parameter set.
    ClassParameter(&'static str),
    /// The count is a property of the storage pool behind the class (Ceph's pool `size`, a ZFS
    /// pool's redundancy), invisible to Kubernetes: the administrator states it on the class
    /// with the annotation [`crate::tiers::REPLICAS_ANNOTATION`]; a request for another count
    /// is refused, naming the driver and the class.
    Pool,
    /// One copy on the node that holds the volume (local volumes).
    Local,
}

/// Whether ReadWriteMany block volumes (what live migration needs) are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RwxBlock {
    /// Always.
    Yes,
    /// Only from a class carrying this parameter with this value (a class derived with it is
    /// used when the tier's class lacks it).
    ClassParameter {
        /// The parameter.
        key: &'static str,
        /// Its value.
        value: &'static str,
    },
    /// Never.
    No,
}

/// What kubecloud knows about a CSI driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The profile's name, for people.
    pub name: &'static str,
    /// The CSI driver name (the classes' `provisioner`); empty for [`Profile::unknown`].
    pub driver: &'static str,
    /// Raw block volumes.
    pub block: bool,
    /// Filesystem volumes.
    pub filesystem: bool,
    /// ReadWriteMany block volumes.
    pub rwx_block: RwxBlock,
    /// ReadWriteMany filesystem volumes.
    pub rwx_filesystem: bool,
    /// VolumeSnapshots and restores from them (both: a snapshot that cannot be restored is no
    /// snapshot to kubecloud).
    pub snapshots: bool,
    /// Clones through a PVC `dataSource`.
    pub clones: bool,
    /// Growing volumes (the class must allow it too).
    pub expansion: bool,
    /// Growing volumes in use.
    pub online_expansion: bool,
    /// How copies are kept.
    pub replication: Replication,
    /// Whether this profile's capabilities are read from the cluster rather than known.
    pub unknown: bool,
}

/// Ceph RBD through ceph-csi.
pub const CEPH_RBD: Profile = Profile {
    name: "Ceph RBD",
    driver: "rbd.csi.ceph.com",
    block: true,
    filesystem: true,
    rwx_block: RwxBlock::Yes,
    rwx_filesystem: false,
    snapshots: true,
    clones: true,
    expansion: true,
    online_expansion: true,
    replication: Replication::Pool,
    unknown: false,
};

/// CephFS through ceph-csi.
pub const CEPH_FS: Profile = Profile {
    name: "CephFS",
    driver: "cephfs.csi.ceph.com",
    block: false,
    filesystem: true,
    rwx_block: RwxBlock::No,
    rwx_filesystem: true,
    snapshots: true,
    clones: true,
    expansion: true,
    online_expansion: true,
    replication: Replication::Pool,
    unknown: false,
};

/// The Longhorn parameter that makes a volume live-migratable.
pub const LONGHORN_MIGRATABLE: &str = "migratable";

/// Longhorn.
pub const LONGHORN: Profile = Profile {
    name: "Longhorn",
    driver: "driver.longhorn.io",
    block: true,
    filesystem: true,
    rwx_block: RwxBlock::ClassParameter {
        key: LONGHORN_MIGRATABLE,
        value: "true",
    },
    rwx_filesystem: true,
    snapshots: true,
    clones: true,
    expansion: true,
    online_expansion: true,
    replication: Replication::ClassParameter("numberOfReplicas"),
    unknown: false,
};

/// OpenEBS Replicated PV Mayastor.
pub const MAYASTOR: Profile = Profile {
    name: "OpenEBS Mayastor",
    driver: "io.openebs.csi-mayastor",
    block: true,
    filesystem: true,
    rwx_block: RwxBlock::No,
    rwx_filesystem: false,
    snapshots: true,
    clones: false,
    expansion: true,
    online_expansion: true,
    replication: Replication::ClassParameter("repl"),
    unknown: false,
};

/// OpenEBS LocalPV-LVM.
pub const LOCAL_PV_LVM: Profile = Profile {
    name: "OpenEBS LocalPV-LVM",
    driver: "local.csi.openebs.io",
    block: true,
    filesystem: true,
    rwx_block: RwxBlock::No,
    rwx_filesystem: false,
    // LVM snapshots exist, but no volume is restored from one: not a snapshot to kubecloud.
    snapshots: false,
    clones: false,
    expansion: true,
    online_expansion: true,
    replication: Replication::Local,
    unknown: false,
};

const fn democratic(name: &'static str, driver: &'static str, nfs: bool) -> Profile {
    Profile {
        name,
        driver,
        block: !nfs,
        filesystem: true,
        rwx_block: RwxBlock::No,
        rwx_filesystem: nfs,
        snapshots: true,
        clones: true,
        expansion: true,
        online_expansion: !nfs,
        replication: Replication::Pool,
        unknown: false,
    }
}

/// democratic-csi over iSCSI (ZFS zvols).
pub const DEMOCRATIC_ISCSI: Profile =
    democratic("democratic-csi iSCSI", "org.democratic-csi.iscsi", false);
/// democratic-csi over NVMe-oF (ZFS zvols).
pub const DEMOCRATIC_NVMEOF: Profile =
    democratic("democratic-csi NVMe-oF", "org.democratic-csi.nvmeof", false);
/// democratic-csi over NFS (ZFS datasets).
pub const DEMOCRATIC_NFS: Profile =
    democratic("democratic-csi NFS", "org.democratic-csi.nfs", true);

/// Every known profile.
pub const KNOWN: [Profile; 8] = [
    CEPH_RBD,
    CEPH_FS,
    LONGHORN,
    MAYASTOR,
    LOCAL_PV_LVM,
    DEMOCRATIC_ISCSI,
    DEMOCRATIC_NVMEOF,
    DEMOCRATIC_NFS,
];

impl Profile {
    /// The profile of CSI driver `driver`: a known one, or [`Profile::unknown`]. Rook prefixes
    /// the Ceph drivers with its namespace (`rook-ceph.rbd.csi.ceph.com`), and democratic-csi's
    /// names are chosen at install (`org.democratic-csi.iscsi` in its examples, anything ending
    /// in `.iscsi`, `.nfs` or `.nvmeof` under `democratic-csi`): those are recognised too.
    ///
    /// ```
    /// use kubecloud_csi::profiles::{CEPH_RBD, Profile};
    /// assert_eq!(Profile::of("rbd.csi.ceph.com"), CEPH_RBD);
    /// assert_eq!(Profile::of("rook-ceph.rbd.csi.ceph.com").name, "Ceph RBD");
    /// assert!(Profile::of("csi.example.com").unknown);
    /// ```
    pub fn of(driver: &str) -> Profile {
        if let Some(p) = KNOWN.iter().find(|p| p.driver == driver) {
            return *p;
        }
        for p in [CEPH_RBD, CEPH_FS] {
            if driver.ends_with(&format!(".{}", p.driver)) {
                return p;
            }
        }
        if driver.contains("democratic-csi") {
            for p in [DEMOCRATIC_ISCSI, DEMOCRATIC_NVMEOF, DEMOCRATIC_NFS] {
                let suffix = p.driver.rsplit('.').next().unwrap_or_default();
                if driver.ends_with(&format!(".{suffix}")) {
                    return p;
                }
            }
        }
        Profile::unknown()
    }

    /// The profile of a driver kubecloud has no knowledge of: both modes, ReadWriteOnce only,
    /// no clones (a driver's clone support is not visible in Kubernetes), snapshots and
    /// expansion as the cluster says (a VolumeSnapshotClass of the driver; the class's
    /// `allowVolumeExpansion`), replication a pool property.
    pub const fn unknown() -> Profile {
        Profile {
            name: "unknown driver",
            driver: "",
            block: true,
            filesystem: true,
            rwx_block: RwxBlock::No,
            rwx_filesystem: false,
            snapshots: true,
            clones: false,
            expansion: true,
            online_expansion: false,
            replication: Replication::Pool,
            unknown: true,
        }
    }

    /// Whether the driver serves ReadWriteMany block volumes from some class.
    pub fn can_rwx_block(&self) -> bool {
        self.rwx_block != RwxBlock::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_driver_maps_to_its_own_profile() {
        for p in KNOWN {
            assert_eq!(Profile::of(p.driver), p, "{}", p.driver);
        }
    }

    #[test]
    fn prefixed_and_renamed_drivers_are_recognised_and_others_are_unknown() {
        assert_eq!(Profile::of("rook-ceph.cephfs.csi.ceph.com"), CEPH_FS);
        assert_eq!(
            Profile::of("org.democratic-csi.truenas.nfs"),
            DEMOCRATIC_NFS
        );
        assert!(Profile::of("nfs.csi.k8s.io").unknown);
        assert!(Profile::of("fake.rbd.csi.ceph.com.evil").unknown);
    }

    #[test]
    fn only_ceph_rbd_and_migratable_longhorn_serve_rwx_block() {
        let rwx: Vec<&str> = KNOWN
            .iter()
            .filter(|p| p.can_rwx_block())
            .map(|p| p.name)
            .collect();
        assert_eq!(rwx, ["Ceph RBD", "Longhorn"]);
    }
}
