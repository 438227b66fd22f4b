//! A request → the StorageClass it goes to (pure; golden-tested): an existing class of the tier
//! giving what the spec asks, or one derived from the tier's class where the driver takes the
//! difference as a class parameter; otherwise a typed refusal naming the driver and the class.
//!
//! | request | class |
//! |---|---|
//! | tier `t`, `r` replicas, driver with a replica parameter `k` (Longhorn `numberOfReplicas`, Mayastor `repl`) | a class of `t` with `k: "r"`, else `kubecloud-<t>-r<r>[-rwx]` derived from `t`'s default class with `k: "r"` |
//! | `r` replicas, replication a pool property (Ceph, democratic-csi) or local (LocalPV-LVM) | a class of `t` giving `r` copies (annotation `kubecloud.io/replicas`; one for local volumes), else `InvalidInput` on `replicas` naming the driver and the classes |
//! | RWX block (live migration) | a class serving it: Ceph RBD any class; Longhorn one with `migratable: "true"` (else derived with it); any other driver: `Unsupported` naming the driver and the class |
//! | RWX filesystem, block or filesystem mode the driver does not serve | `Unsupported` naming the driver and the class |
//!
//! Volumes, imports and snapshots are the shared claims of [`kubecloud_kube::claims`],
//! re-exported here.

use std::collections::BTreeMap;

use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubecloud_core::{AccessMode, Error, Result, VolumeMode, VolumeSpec};
use kubecloud_kube::{MANAGED_BY, MANAGER};

pub use kubecloud_kube::claims::{
    DATA_VOLUME_API, REPLICAS, SIZE, SOURCE, TIER, VOLUME, bytes_of, claim, claim_of_data_volume,
    data_volume, is_rwx_block, spec_from_claim, volume_attachment, volume_snapshot,
};

use crate::BACKEND;
use crate::profiles::{Replication, RwxBlock};
use crate::tiers::{Class, TIER_LABEL, Tier};

/// Where a volume's claim goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// An existing class of the tier.
    Existing(String),
    /// A class derived from the tier's class, applied before the claim.
    Derived(Box<StorageClass>),
}

impl Choice {
    /// The class's name.
    pub fn class_name(&self) -> String {
        match self {
            Choice::Existing(name) => name.clone(),
            Choice::Derived(sc) => sc.metadata.name.clone().unwrap_or_default(),
        }
    }
}

fn refused(tier: &Tier, operation: String, capability: &str) -> Error {
    Error::unsupported(
        BACKEND,
        format!(
            "{operation} on driver {} ({}), class {:?} of tier {:?}",
            tier.driver,
            tier.profile.name,
            tier.base().name,
            tier.name
        ),
        capability,
    )
}

/// Refuses what `tier`'s driver cannot serve at all: a volume mode, ReadWriteMany filesystem,
/// ReadWriteMany block.
pub fn check_modes(tier: &Tier, spec: &VolumeSpec) -> Result<()> {
    let profile = &tier.profile;
    match spec.mode {
        VolumeMode::Block if !profile.block => {
            return Err(refused(tier, "create_volume (block mode)".into(), "block"));
        }
        VolumeMode::Filesystem if !profile.filesystem => {
            return Err(refused(
                tier,
                "create_volume (filesystem mode)".into(),
                "filesystem",
            ));
        }
        _ => {}
    }
    if spec.access == AccessMode::ReadWriteMany {
        let served = match spec.mode {
            VolumeMode::Block => profile.can_rwx_block(),
            VolumeMode::Filesystem => profile.rwx_filesystem,
        };
        if !served {
            let (what, capability) = match spec.mode {
                VolumeMode::Block => (
                    "ReadWriteMany block, needed for live migration",
                    "rwx_block",
                ),
                VolumeMode::Filesystem => ("ReadWriteMany filesystem", "rwx_filesystem"),
            };
            return Err(refused(tier, format!("create_volume ({what})"), capability));
        }
    }
    Ok(())
}

/// The name of a class derived for `tier` with `replicas` replicas (and RWX block).
///
/// ```
/// assert_eq!(kubecloud_csi::translate::derived_class_name("longhorn", 2, true), "kubecloud-longhorn-r2-rwx");
/// ```
pub fn derived_class_name(tier: &str, replicas: u8, rwx_block: bool) -> String {
    let suffix = if rwx_block { "-rwx" } else { "" };
    format!("kubecloud-{tier}-r{replicas}{suffix}")
}

/// The class derived from `base` for `tier` with `parameters` set: the same driver,
/// parameters, reclaim policy, binding mode, expansion, mount options and topologies, labelled
/// as kubecloud's and as the tier's (so connecting again finds it in the tier), never default.
pub fn derived_class(
    tier: &str,
    base: &Class,
    name: String,
    parameters: &[(&str, String)],
) -> StorageClass {
    let mut params = base.object.parameters.clone().unwrap_or_default();
    for (k, v) in parameters {
        params.insert((*k).to_string(), v.clone());
    }
    StorageClass {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.to_string(), MANAGER.to_string()),
                (TIER_LABEL.to_string(), tier.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        provisioner: base.driver.clone(),
        parameters: Some(params),
        allow_volume_expansion: base.object.allow_volume_expansion,
        reclaim_policy: base.object.reclaim_policy.clone(),
        volume_binding_mode: base.object.volume_binding_mode.clone(),
        mount_options: base.object.mount_options.clone(),
        allowed_topologies: base.object.allowed_topologies.clone(),
    }
}

/// The class of `tier` a volume of `spec` goes to (see the module docs); the checks of
/// [`check_modes`] first.
///
/// ```
/// use k8s_openapi::api::storage::v1::StorageClass;
/// use kubecloud_core::{ByteSize, VolumeSpec};
/// use kubecloud_csi::tiers::{Cluster, tiers_of};
/// use kubecloud_csi::translate::{Choice, choose_class};
/// let mut sc = StorageClass::default();
/// sc.metadata.name = Some("mayastor-1".into());
/// sc.provisioner = "io.openebs.csi-mayastor".into();
/// sc.parameters = Some([("repl".to_string(), "1".to_string())].into());
/// let tier = &tiers_of(&Cluster { classes: vec![sc], ..Cluster::default() }).unwrap()[0];
/// let one = VolumeSpec::blank("db", ByteSize::gib(1));
/// assert_eq!(choose_class(tier, &one).unwrap(), Choice::Existing("mayastor-1".into()));
/// let Choice::Derived(three) = choose_class(tier, &one.with_replicas(3)).unwrap() else { panic!() };
/// assert_eq!(three.parameters.unwrap()["repl"], "3");
/// ```
pub fn choose_class(tier: &Tier, spec: &VolumeSpec) -> Result<Choice> {
    check_modes(tier, spec)?;
    let rwx = is_rwx_block(spec);
    let serves = |c: &Class| !rwx || c.rwx_block;
    let fitting = tier
        .classes
        .iter()
        .find(|c| c.replicas == spec.replicas && serves(c));
    if let Some(c) = fitting {
        return Ok(Choice::Existing(c.name.clone()));
    }
    match tier.profile.replication {
        Replication::ClassParameter(key) => {
            let mut parameters = vec![(key, spec.replicas.to_string())];
            if rwx && let RwxBlock::ClassParameter { key, value } = tier.profile.rwx_block {
                parameters.push((key, value.to_string()));
            }
            // Prefer a class serving RWX block as the base of an RWX block class.
            let base = tier
                .classes
                .iter()
                .find(|c| serves(c))
                .unwrap_or(tier.base());
            let name = derived_class_name(&tier.name, spec.replicas, rwx);
            Ok(Choice::Derived(Box::new(derived_class(
                &tier.name,
                base,
                name,
                &parameters,
            ))))
        }
        Replication::Pool | Replication::Local => {
            let given: Vec<String> = tier
                .classes
                .iter()
                .filter(|c| serves(c))
                .map(|c| format!("{:?} gives {}", c.name, c.replicas))
                .collect();
            let why = match tier.profile.replication {
                Replication::Local => "local volumes have one copy".to_string(),
                _ => format!(
                    "the copies are a property of the storage pool behind a class, stated by its \
                     annotation {}",
                    crate::tiers::REPLICAS_ANNOTATION
                ),
            };
            Err(Error::invalid(
                "replicas",
                format!(
                    "{} replicas: no class of tier {:?} on driver {} ({}) gives them ({}; {why})",
                    spec.replicas,
                    tier.name,
                    tier.driver,
                    tier.profile.name,
                    if given.is_empty() {
                        "none serves the access mode".to_string()
                    } else {
                        given.join(", ")
                    }
                ),
            ))
        }
    }
}
