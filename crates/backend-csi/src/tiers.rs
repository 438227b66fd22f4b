//! Tiers from the cluster's StorageClasses (pure): each class of a CSI driver is a tier named
//! after it, unless the label [`TIER_LABEL`] groups several classes of one driver into one tier
//! (for instance `longhorn-r1` and `longhorn-r3` as tier `replicated`, the replica count then
//! choosing the class). The tier holding the cluster's default class
//! (`storageclass.kubernetes.io/is-default-class: "true"`) is the default tier.
//!
//! A class's replica count: the driver's class parameter ([`Replication::ClassParameter`]), the
//! annotation [`REPLICAS_ANNOTATION`] where replication is a property of the pool
//! ([`Replication::Pool`]; a class stating none promises one copy), one for local volumes.

use std::collections::BTreeMap;

use crate::profiles::{Profile, Replication, RwxBlock};
use crate::snapshot_class::VolumeSnapshotClass;
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use kubecloud_core::{Error, Result, validate_name};

/// Label on a StorageClass: the tier it belongs to (default: a tier of its own, named after it).
pub const TIER_LABEL: &str = "kubecloud.io/tier";
/// Annotation on a StorageClass whose driver keeps copies as a pool property (Ceph, ZFS): how
/// many copies the pool behind it keeps, as its administrator states it.
pub const REPLICAS_ANNOTATION: &str = "kubecloud.io/replicas";
/// The annotation marking the cluster's default StorageClass.
pub const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// The annotation marking a driver's default VolumeSnapshotClass.
pub const DEFAULT_SNAPSHOT_CLASS: &str = "snapshot.storage.kubernetes.io/is-default-class";

/// A StorageClass as this backend reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Class {
    /// The class's name.
    pub name: String,
    /// Its CSI driver (`provisioner`).
    pub driver: String,
    /// The replica count it gives.
    pub replicas: u8,
    /// Whether it serves ReadWriteMany block volumes.
    pub rwx_block: bool,
    /// Whether it allows expansion (`allowVolumeExpansion`).
    pub expansion: bool,
    /// Whether it is the cluster's default class.
    pub default: bool,
    /// The class itself (what a derived class copies).
    pub object: StorageClass,
}

/// A tier: the classes of one driver users pick by one name.
#[derive(Clone, Debug, PartialEq)]
pub struct Tier {
    /// The tier's name.
    pub name: String,
    /// The driver's profile.
    pub profile: Profile,
    /// The driver's name.
    pub driver: String,
    /// Its classes, the default one first, then by name.
    pub classes: Vec<Class>,
    /// The VolumeSnapshotClass of the driver snapshots are taken with (its default one, else
    /// the first by name), when one exists.
    pub snapshot_class: Option<String>,
    /// Whether the driver publishes its capacity (`CSIDriver` `spec.storageCapacity`: the
    /// external-provisioner then keeps `CSIStorageCapacity` objects).
    pub capacity_tracked: bool,
}

impl Tier {
    /// Whether this tier holds the cluster's default class.
    pub fn is_default(&self) -> bool {
        self.classes.iter().any(|c| c.default)
    }

    /// The class a derived class copies: the default one, else the first.
    pub fn base(&self) -> &Class {
        &self.classes[0]
    }

    /// Whether snapshots (and restores) are possible on this tier.
    pub fn snapshots(&self) -> bool {
        self.profile.snapshots && self.snapshot_class.is_some()
    }

    /// Whether some class of the tier may be grown.
    pub fn expansion(&self) -> bool {
        self.profile.expansion && self.classes.iter().any(|c| c.expansion)
    }

    /// The most replicas a volume of this tier may ask for.
    pub fn max_replicas(&self) -> u8 {
        match self.profile.replication {
            Replication::ClassParameter(_) => kubecloud_core::MAX_REPLICAS,
            Replication::Pool | Replication::Local => {
                self.classes.iter().map(|c| c.replicas).max().unwrap_or(1)
            }
        }
    }
}

/// The replica count class `sc` gives under `profile`.
fn replicas_of(profile: &Profile, sc: &StorageClass) -> u8 {
    let parse = |v: Option<&String>| v.and_then(|v| v.trim().parse::<u8>().ok());
    match profile.replication {
        Replication::ClassParameter(key) => {
            parse(sc.parameters.as_ref().and_then(|p| p.get(key))).unwrap_or(1)
        }
        Replication::Pool => parse(
            sc.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REPLICAS_ANNOTATION)),
        )
        .unwrap_or(1),
        Replication::Local => 1,
    }
    .max(1)
}

/// Whether class `sc` serves RWX block under `profile`.
fn rwx_block_of(profile: &Profile, sc: &StorageClass) -> bool {
    match profile.rwx_block {
        RwxBlock::Yes => true,
        RwxBlock::No => false,
        RwxBlock::ClassParameter { key, value } => sc
            .parameters
            .as_ref()
            .and_then(|p| p.get(key))
            .is_some_and(|v| v.eq_ignore_ascii_case(value)),
    }
}

/// Class `sc` as this backend reads it.
pub fn class_of(sc: &StorageClass) -> Class {
    let profile = Profile::of(&sc.provisioner);
    Class {
        name: sc.metadata.name.clone().unwrap_or_default(),
        driver: sc.provisioner.clone(),
        replicas: replicas_of(&profile, sc),
        rwx_block: rwx_block_of(&profile, sc),
        expansion: sc.allow_volume_expansion == Some(true),
        default: sc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS))
            .is_some_and(|v| v == "true"),
        object: sc.clone(),
    }
}

/// What the cluster says about its CSI drivers: their StorageClasses, VolumeSnapshotClasses
/// and CSIDriver objects.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// The StorageClasses.
    pub classes: Vec<StorageClass>,
    /// The VolumeSnapshotClasses.
    pub snapshot_classes: Vec<VolumeSnapshotClass>,
    /// The CSIDrivers.
    pub drivers: Vec<CSIDriver>,
    /// Whether the API server serves `CSIStorageCapacity` (where it does not, no driver's
    /// capacity is tracked, whatever its CSIDriver says).
    pub capacity_served: bool,
}

/// Whether the cluster's CSIDriver `driver` provisions persistent volumes (its
/// `volumeLifecycleModes` default to `Persistent`).
fn persistent(drivers: &[CSIDriver], driver: &str) -> Option<bool> {
    let d = drivers
        .iter()
        .find(|d| d.metadata.name.as_deref() == Some(driver))?;
    let modes = d.spec.volume_lifecycle_modes.as_deref().unwrap_or_default();
    Some(modes.is_empty() || modes.iter().any(|m| m == "Persistent"))
}

/// The snapshot class of `driver`: its default one, else the first by name.
fn snapshot_class_of(snapshot_classes: &[VolumeSnapshotClass], driver: &str) -> Option<String> {
    snapshot_classes
        .iter()
        .filter(|c| c.driver == driver)
        .min_by_key(|c| (!c.is_default(), c.name()))
        .map(|c| c.name().to_string())
}

/// The tiers of `cluster`, by name: the classes of CSI drivers (a known profile, or a driver
/// with a CSIDriver object provisioning persistent volumes), grouped by [`TIER_LABEL`] or one
/// tier per class. A tier label grouping classes of two drivers is refused; a class whose tier
/// name is not a DNS label (a class name with dots, say) is left out with a warning.
///
/// ```
/// use k8s_openapi::api::storage::v1::StorageClass;
/// use kubecloud_csi::tiers::{Cluster, tiers_of};
/// let mut sc = StorageClass::default();
/// sc.metadata.name = Some("longhorn".into());
/// sc.provisioner = "driver.longhorn.io".into();
/// sc.parameters = Some([("numberOfReplicas".to_string(), "3".to_string())].into());
/// let tiers = tiers_of(&Cluster { classes: vec![sc], ..Cluster::default() }).unwrap();
/// assert_eq!(tiers[0].name, "longhorn");
/// assert_eq!(tiers[0].classes[0].replicas, 3);
/// ```
pub fn tiers_of(cluster: &Cluster) -> Result<Vec<Tier>> {
    let mut by_tier: BTreeMap<String, Vec<Class>> = BTreeMap::new();
    for sc in &cluster.classes {
        let profile = Profile::of(&sc.provisioner);
        let served = if profile.unknown {
            persistent(&cluster.drivers, &sc.provisioner) == Some(true)
        } else {
            persistent(&cluster.drivers, &sc.provisioner) != Some(false)
        };
        if !served {
            continue;
        }
        let class = class_of(sc);
        let tier = sc
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(TIER_LABEL))
            .cloned()
            .unwrap_or_else(|| class.name.clone());
        by_tier.entry(tier).or_default().push(class);
    }
    let mut tiers = Vec::new();
    for (name, mut classes) in by_tier {
        // A class named unlike a tier (dots, more than 63 characters) is no tier: users could
        // not name it. The others still are.
        if let Err(e) = validate_name("tier", &name) {
            let classes: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
            tracing::warn!(tier = %name, ?classes, error = %e, "StorageClasses left out: not a tier name (label them kubecloud.io/tier)");
            continue;
        }
        let driver = classes[0].driver.clone();
        if let Some(other) = classes.iter().find(|c| c.driver != driver) {
            return Err(Error::invalid(
                "tier",
                format!(
                    "tier {name:?} groups classes of two drivers ({driver} and {}, class {:?}); a tier is one driver's",
                    other.driver, other.name
                ),
            ));
        }
        classes.sort_by(|a, b| (!a.default, &a.name).cmp(&(!b.default, &b.name)));
        let profile = Profile::of(&driver);
        let capacity_tracked = cluster.capacity_served
            && cluster.drivers.iter().any(|d| {
                d.metadata.name.as_deref() == Some(driver.as_str())
                    && d.spec.storage_capacity == Some(true)
            });
        tiers.push(Tier {
            capacity_tracked,
            snapshot_class: snapshot_class_of(&cluster.snapshot_classes, &driver),
            name,
            profile,
            driver,
            classes,
        });
    }
    Ok(tiers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(
        name: &str,
        driver: &str,
        params: &[(&str, &str)],
        labels: &[(&str, &str)],
    ) -> StorageClass {
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            },
            "provisioner": driver,
            "parameters": params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        }))
        .unwrap()
    }

    #[test]
    fn a_tier_label_groups_classes_and_the_replica_parameter_is_read() {
        let cluster = Cluster {
            classes: vec![
                class(
                    "lh-1",
                    "driver.longhorn.io",
                    &[("numberOfReplicas", "1")],
                    &[(TIER_LABEL, "lh")],
                ),
                class(
                    "lh-3",
                    "driver.longhorn.io",
                    &[("numberOfReplicas", "3"), ("migratable", "true")],
                    &[(TIER_LABEL, "lh")],
                ),
                class("local-path", "rancher.io/local-path", &[], &[]),
            ],
            ..Cluster::default()
        };
        let tiers = tiers_of(&cluster).unwrap();
        assert_eq!(
            tiers.len(),
            1,
            "a non-CSI provisioner without CSIDriver is no tier: {tiers:?}"
        );
        let replicas: Vec<(u8, bool)> = tiers[0]
            .classes
            .iter()
            .map(|c| (c.replicas, c.rwx_block))
            .collect();
        assert_eq!(replicas, [(1, false), (3, true)]);
    }

    #[test]
    fn a_class_named_unlike_a_tier_is_left_out_not_fatal() {
        let cluster = Cluster {
            classes: vec![
                class("csi.rbd.fast", "rbd.csi.ceph.com", &[], &[]),
                class("ceph", "rbd.csi.ceph.com", &[], &[]),
            ],
            ..Cluster::default()
        };
        let names: Vec<String> = tiers_of(&cluster)
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["ceph"]);
    }

    #[test]
    fn a_tier_of_two_drivers_is_refused() {
        let cluster = Cluster {
            classes: vec![
                class("a", "driver.longhorn.io", &[], &[(TIER_LABEL, "t")]),
                class("b", "rbd.csi.ceph.com", &[], &[(TIER_LABEL, "t")]),
            ],
            ..Cluster::default()
        };
        assert_eq!(
            tiers_of(&cluster).unwrap_err().invalid_field(),
            Some("tier")
        );
    }

    #[test]
    fn the_default_snapshot_class_of_the_driver_is_chosen() {
        let mut default = VolumeSnapshotClass::new("b", "rbd.csi.ceph.com");
        default.metadata.annotations =
            Some([(DEFAULT_SNAPSHOT_CLASS.to_string(), "true".to_string())].into());
        let vscs = vec![
            VolumeSnapshotClass::new("a", "rbd.csi.ceph.com"),
            default,
            VolumeSnapshotClass::new("c", "other"),
        ];
        assert_eq!(
            snapshot_class_of(&vscs, "rbd.csi.ceph.com").as_deref(),
            Some("b")
        );
        assert_eq!(snapshot_class_of(&vscs, "driver.longhorn.io"), None);
    }

    #[test]
    fn pool_replication_is_what_the_class_annotation_states() {
        let mut sc = class("ceph", "rbd.csi.ceph.com", &[("pool", "replicapool")], &[]);
        assert_eq!(
            class_of(&sc).replicas,
            1,
            "a class stating nothing promises one copy"
        );
        sc.metadata.annotations = Some([(REPLICAS_ANNOTATION.to_string(), "3".to_string())].into());
        assert_eq!(class_of(&sc).replicas, 3);
    }
}
