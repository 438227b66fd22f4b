//! What this backend tells the facade about itself (see [`kubecloud_kube::plugin`]): the part it is
//! and the RBAC it needs, read from its driver and from `kubecloud-kube`: LINSTOR CSI through
//! Kubernetes (the REST API is LINSTOR's, not RBAC's), and what `connect` reads to find LINSTOR.

use kubecloud_kube::plugin::{Need, Part, READ, Rbac, Unexercised, WRITE};

/// Every verb on every resource this backend sends, and those the conformance suite does not
/// exercise.
pub const RBAC: Rbac = Rbac {
    backend: crate::rest::BACKEND,
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
    Need {
        group: "",
        resources: &["persistentvolumes"],
        // Deleting a volume waits (through one shared watch) until its PersistentVolume is gone;
        // reading many volumes reads their PVs with one list, not one GET each.
        verbs: READ,
    },
    // A StorageClass per tier and replica count (cluster-scoped, shared); `connect` lists them
    // for tiers.
    Need {
        group: "storage.k8s.io",
        resources: &["storageclasses"],
        verbs: &["get", "list", "create", "patch"],
    },
    // Deleting a snapshot waits (shared watch) until the snapshot controller let it go.
    Need {
        group: "snapshot.storage.k8s.io",
        resources: &["volumesnapshots"],
        verbs: WRITE,
    },
    Need {
        group: "snapshot.storage.k8s.io",
        resources: &["volumesnapshotclasses"],
        verbs: &["get", "create", "patch"],
    },
    // Imports from http(s) URLs are CDI DataVolumes named after the volume.
    Need {
        group: "cdi.kubevirt.io",
        resources: &["datavolumes"],
        verbs: WRITE,
    },
    // `connect` finds LINSTOR: the LinstorCluster, the controller's Service it owns (a labelled
    // list, in every namespace unless Piraeus' namespace is given), and the client Secret in that
    // namespace.
    Need {
        group: "piraeus.io",
        resources: &["linstorclusters"],
        verbs: &["list"],
    },
    Need {
        group: "",
        resources: &["services"],
        verbs: &["list"],
    },
    Need {
        group: "",
        resources: &["secrets"],
        verbs: &["get"],
    },
];

const NOT_EXERCISED: &[Unexercised] = &[];
