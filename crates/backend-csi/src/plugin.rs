//! What this backend tells the facade about itself (see [`kubecloud_kube::plugin`]): the part it
//! is and the RBAC it needs, read from its driver, from `kubecloud-kube`'s shared claims layer
//! and from what `connect` reads to find the tiers.

use kubecloud_kube::plugin::{Need, Part, Rbac, Unexercised, WRITE};

/// Every verb on every resource this backend sends, and those the conformance suite does not
/// exercise.
pub const RBAC: Rbac = Rbac {
    backend: crate::BACKEND,
    part: Part::Storage,
    needs: NEEDS,
    not_exercised: NOT_EXERCISED,
};

const NEEDS: &[Need] = &[
    Need {
        group: "",
        resources: &["persistentvolumeclaims"],
        verbs: WRITE,
    },
    // Deleting waits (one shared watch) until the PV is gone; pools sum the PVs of each tier.
    Need {
        group: "",
        resources: &["persistentvolumes"],
        verbs: &["list", "watch"],
    },
    // Where no CSINode lists a driver, the nodes it may run on are the cluster's Nodes.
    Need {
        group: "",
        resources: &["nodes"],
        verbs: &["list"],
    },
    // Why a claim is not bound (or not grown): its Warning events.
    Need {
        group: "",
        resources: &["events"],
        verbs: &["list"],
    },
    // Tiers (`connect` and pools list them), classes derived for a replica count or RWX block.
    Need {
        group: "storage.k8s.io",
        resources: &["storageclasses"],
        verbs: &["get", "list", "create", "patch"],
    },
    // `connect` reads which drivers provision persistent volumes; pools and replica checks
    // read where drivers run and what they report free; deleting and offline resizing read
    // whether the volume is attached.
    Need {
        group: "storage.k8s.io",
        resources: &[
            "csidrivers",
            "csinodes",
            "csistoragecapacities",
            "volumeattachments",
        ],
        verbs: &["list"],
    },
    // Deleting a snapshot waits (shared watch) until the snapshot controller let it go.
    Need {
        group: "snapshot.storage.k8s.io",
        resources: &["volumesnapshots"],
        verbs: WRITE,
    },
    // `connect` finds each driver's VolumeSnapshotClass.
    Need {
        group: "snapshot.storage.k8s.io",
        resources: &["volumesnapshotclasses"],
        verbs: &["list"],
    },
    // `Cloud::connect` asks LINSTOR's connector first (where Piraeus runs, storage is
    // LINSTOR's), which lists the LinstorClusters to find out.
    Need {
        group: "piraeus.io",
        resources: &["linstorclusters"],
        verbs: &["list"],
    },
    // Imports from http(s) URLs are CDI DataVolumes named after the volume.
    Need {
        group: "cdi.kubevirt.io",
        resources: &["datavolumes"],
        verbs: WRITE,
    },
];

const DERIVED: &str = "classes are derived only on drivers taking the replica count or RWX \
     block as a class parameter (Longhorn, Mayastor); the whole stack of the RBAC test runs Ceph \
     RBD, whose classes are used as they are (crates/backend-csi/tests/conformance.rs derives \
     them on Longhorn and Mayastor)";

const NOT_EXERCISED: &[Unexercised] = &[
    Unexercised {
        group: "storage.k8s.io",
        resource: "storageclasses",
        verb: "create",
        why: DERIVED,
    },
    Unexercised {
        group: "storage.k8s.io",
        resource: "storageclasses",
        verb: "patch",
        why: DERIVED,
    },
];
