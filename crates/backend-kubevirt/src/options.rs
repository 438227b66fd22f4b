//! The backend's options, set through [`crate::KubeVirtBuilder`].

use std::time::Duration;

/// Which instance-type kind `VmResources::InstanceType` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InstancetypeKind {
    /// `VirtualMachineClusterInstancetype` (cluster-wide; the default).
    #[default]
    Cluster,
    /// `VirtualMachineInstancetype` in the tenant's namespace.
    Namespaced,
}

/// How SSH public keys reach the guest (`accessCredentials[].sshPublicKey.propagationMethod`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SshPropagation {
    /// Through the cloud-init NoCloud data source at boot (the default; needs no agent).
    #[default]
    NoCloud,
    /// Through the QEMU guest agent at run time, for these guest users (keys can change without
    /// a reboot).
    QemuGuestAgent {
        /// The guest users whose `authorized_keys` get the keys.
        users: Vec<String>,
    },
}

/// The backend's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The StorageClass of imported boot volumes without a tier (`None`: the cluster default).
    pub storage_class: Option<String>,
    /// The kind `VmResources::InstanceType` refers to.
    pub instancetype_kind: InstancetypeKind,
    /// How SSH keys are propagated.
    pub ssh_propagation: SshPropagation,
    /// How long a restore of a VM from a snapshot may take.
    pub restore_timeout: Duration,
    /// How long deleting a VM may take until it and what it owned (instance, launcher pod, import
    /// DataVolume, its claim and volume) are gone.
    pub delete_timeout: Duration,
    /// The namespace of the image catalog (see [`crate::catalog`]).
    pub catalog_namespace: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            storage_class: None,
            instancetype_kind: InstancetypeKind::Cluster,
            ssh_propagation: SshPropagation::NoCloud,
            restore_timeout: Duration::from_secs(300),
            delete_timeout: Duration::from_secs(300),
            catalog_namespace: kubecloud_core::DEFAULT_CATALOG_NAMESPACE.to_string(),
        }
    }
}
