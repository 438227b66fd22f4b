//! The contract between the backends: how a VM is attached to networks and volumes.
//!
//! A [`Compute`](crate::Compute) backend knows no other system's API. Before it applies a VM,
//! the facade asks the [`Network`] backend how each interface is attached
//! ([`Network::attach_interfaces`]) and the [`BlockStorage`] backend how each volume is
//! ([`BlockStorage::attach_volume`]), and hands the answers to
//! [`Compute::apply_vm`](crate::Compute::apply_vm) as [`VmAttachments`]. The compute backend
//! applies what it is handed: the network selection and binding of each interface, the
//! annotations the network reads on the VM's pod, and the claim of each volume.
//!
//! An attachment also says what the network guarantees ([`Guarantees`]): whether the address is
//! kept over live migration (so a bridge binding on the pod network may migrate) and which
//! security groups are in force on the port.
//!
//! ```
//! use kubecloud_core::{InterfaceAttachment, NetworkInterface, NetworkSelection, PodBinding};
//! let eth0 = NetworkInterface::pod_network("eth0");
//! let attachment = InterfaceAttachment::pod(&eth0, PodBinding::Masquerade);
//! assert_eq!(attachment.network, NetworkSelection::PodNetwork);
//! assert!(attachment.guarantees.security_groups.is_empty());
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    AccessMode, BlockStorage, BootDisk, Error, MacAddress, Network, NetworkInterface, PodBinding,
    Result, Tenant, VmSpec,
};

/// Which network of the VM's pod an interface rides.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NetworkSelection {
    /// The pod's default network (the cluster's primary CNI).
    PodNetwork,
    /// A Multus network: the `NetworkAttachmentDefinition` `name` in `namespace`.
    Multus {
        /// The definition's namespace.
        namespace: String,
        /// The definition's name.
        name: String,
    },
}

/// What a network promises about an attached interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Guarantees {
    /// The interface keeps its IP and MAC when the VM live-migrates (the network hands the
    /// target pod the source pod's address), so even a bridge binding on the pod network can
    /// migrate.
    pub addresses_kept_on_migration: bool,
    /// The security groups (domain names) in force on the interface's port, in the order the
    /// interface names them. Empty: the network's documented default applies.
    pub security_groups: Vec<String>,
}

/// How one VM interface is attached: the [`Network`] backend's answer, applied by
/// [`Compute`](crate::Compute).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceAttachment {
    /// The VM interface's name.
    pub interface: String,
    /// The network the interface rides.
    pub network: NetworkSelection,
    /// How the VM's NIC is bound to the pod's interface.
    pub binding: PodBinding,
    /// The MAC the VM's NIC takes, if fixed.
    pub mac: Option<MacAddress>,
    /// Annotations the VM's pod carries for the network, set when the pod is created (placement
    /// on a subnet, a fixed address).
    pub pod_annotations: BTreeMap<String, String>,
    /// Labels the VM's pod carries for the network, which its policies select pods by (the
    /// security groups of a network enforcing them with pod-selecting policies, such as
    /// `MultiNetworkPolicy`): set on new pods, and kept in step on the VM's running instance and
    /// pods by the compute backend, like [`InterfaceAttachment::live_pod_annotations`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub live_pod_labels: BTreeMap<String, String>,
    /// Every label key [`InterfaceAttachment::live_pod_labels`] may hold for this network
    /// (whether set now or not): the keys the compute backend removes from a running pod when
    /// the attachment no longer sets them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live_label_keys: Vec<String>,
    /// Annotations the network also reads on a running pod (security groups, port security):
    /// the compute backend keeps them in step on the VM's running pod too, and removes those
    /// that are no longer wanted.
    pub live_pod_annotations: BTreeMap<String, String>,
    /// Every annotation key [`InterfaceAttachment::live_pod_annotations`] may hold for this
    /// network (whether set now or not): the keys the compute backend removes from a running pod
    /// when the attachment no longer sets them.
    pub live_annotation_keys: Vec<String>,
    /// What the network guarantees.
    pub guarantees: Guarantees,
}

impl InterfaceAttachment {
    /// A plain attachment of `iface` to the pod network with `binding`, nothing guaranteed: what
    /// a cluster's default network gives without a network backend's help.
    ///
    /// ```
    /// use kubecloud_core::{InterfaceAttachment, NetworkInterface, PodBinding};
    /// let a = InterfaceAttachment::pod(&NetworkInterface::pod_network("eth0"), PodBinding::Bridge);
    /// assert_eq!((a.interface.as_str(), a.binding), ("eth0", PodBinding::Bridge));
    /// ```
    pub fn pod(iface: &NetworkInterface, binding: PodBinding) -> Self {
        Self {
            interface: iface.name.clone(),
            network: NetworkSelection::PodNetwork,
            binding,
            mac: iface.mac,
            pod_annotations: BTreeMap::new(),
            live_pod_labels: BTreeMap::new(),
            live_label_keys: Vec::new(),
            live_pod_annotations: BTreeMap::new(),
            live_annotation_keys: Vec::new(),
            guarantees: Guarantees::default(),
        }
    }

    /// Whether the VM can live-migrate with this interface: not with a macvtap binding, and not
    /// with a bridge binding on the pod network unless the network keeps the address.
    ///
    /// ```
    /// use kubecloud_core::{InterfaceAttachment, NetworkInterface, PodBinding};
    /// let eth0 = NetworkInterface::pod_network("eth0");
    /// assert!(InterfaceAttachment::pod(&eth0, PodBinding::Masquerade).migratable());
    /// assert!(!InterfaceAttachment::pod(&eth0, PodBinding::Bridge).migratable());
    /// ```
    pub fn migratable(&self) -> bool {
        if self.binding == PodBinding::Macvtap {
            return false;
        }
        self.network != NetworkSelection::PodNetwork
            || self.binding != PodBinding::Bridge
            || self.guarantees.addresses_kept_on_migration
    }
}

/// How one volume is attached: the [`BlockStorage`] backend's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeAttachment {
    /// The tenant volume.
    pub volume: String,
    /// The PersistentVolumeClaim (in the tenant's namespace) the VM mounts.
    pub claim: String,
    /// The volume's access mode (read-write-many lets the VM live-migrate).
    pub access: AccessMode,
}

/// Everything a VM is attached to: one answer per spec interface and per volume the VM mounts
/// from storage ([`VmSpec::interfaces`] order; boot volume, then data volumes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmAttachments {
    /// One per interface of the spec.
    pub interfaces: Vec<InterfaceAttachment>,
    /// One per volume of the spec that storage provides (an imported boot disk is the compute
    /// backend's own).
    pub volumes: Vec<VolumeAttachment>,
}

impl VmAttachments {
    /// Asks `network` and `storage` how `spec`'s interfaces and volumes are attached; each refuses
    /// references the tenant does not have. A spec with no interface needs no network, and one
    /// mounting no volume needs no storage; otherwise a missing backend is
    /// [`Error::Unsupported`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{Tenant, VmAttachments, VmSpec};
    /// let spec = VmSpec { name: "box".into(), ..VmSpec::default() };
    /// let attachments = VmAttachments::resolve(&Tenant::new("acme")?, &spec, None, None).await?;
    /// assert!(attachments.interfaces.is_empty() && attachments.volumes.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn resolve(
        tenant: &Tenant,
        spec: &VmSpec,
        network: Option<&dyn Network>,
        storage: Option<&dyn BlockStorage>,
    ) -> Result<Self> {
        spec.validate()?;
        let interfaces = match (spec.interfaces.is_empty(), network) {
            (true, _) => Vec::new(),
            (false, Some(network)) => {
                network
                    .attach_interfaces(tenant, &spec.name, &spec.interfaces)
                    .await?
            }
            (false, None) => {
                return Err(Error::unsupported(
                    "none",
                    "vms.apply",
                    "network (a VM with interfaces)",
                ));
            }
        };
        let names = storage_volumes(spec);
        let mut volumes = Vec::with_capacity(names.len());
        for (field, name) in names {
            let storage = storage.ok_or_else(|| {
                Error::unsupported("none", "vms.apply", "block storage (a VM with volumes)")
            })?;
            volumes.push(
                storage
                    .attach_volume(tenant, name)
                    .await
                    .map_err(|e| e.within(&field))?,
            );
        }
        let attachments = Self {
            interfaces,
            volumes,
        };
        attachments.check_for(spec)?;
        Ok(attachments)
    }

    /// The attachment of interface `name`.
    pub fn interface(&self, name: &str) -> Option<&InterfaceAttachment> {
        self.interfaces.iter().find(|a| a.interface == name)
    }

    /// The attachment of volume `name`.
    pub fn volume(&self, name: &str) -> Option<&VolumeAttachment> {
        self.volumes.iter().find(|a| a.volume == name)
    }

    /// Checks that these are `spec`'s attachments: one per interface, in order, and one for
    /// every volume storage provides. Refused with [`Error::InvalidInput`] on field
    /// `attachments` otherwise (a compute backend checks it before sending anything).
    ///
    /// ```
    /// use kubecloud_core::{NetworkInterface, VmAttachments, VmSpec};
    /// let spec = VmSpec {
    ///     name: "box".into(),
    ///     interfaces: vec![NetworkInterface::on_subnet("eth0", "web")],
    ///     ..VmSpec::default()
    /// };
    /// let err = VmAttachments::default().check_for(&spec).unwrap_err();
    /// assert_eq!(err.invalid_field(), Some("attachments.interfaces"));
    /// ```
    pub fn check_for(&self, spec: &VmSpec) -> Result<()> {
        let wanted: Vec<&str> = spec.interfaces.iter().map(|i| i.name.as_str()).collect();
        let got: Vec<&str> = self
            .interfaces
            .iter()
            .map(|a| a.interface.as_str())
            .collect();
        if wanted != got {
            return Err(Error::invalid(
                "attachments.interfaces",
                format!("the spec's interfaces are {wanted:?}, the attachments are for {got:?}"),
            ));
        }
        for (_, volume) in storage_volumes(spec) {
            if self.volume(volume).is_none() {
                return Err(Error::invalid(
                    "attachments.volumes",
                    format!("volume {volume:?} of the spec has no attachment"),
                ));
            }
        }
        Ok(())
    }
}

/// The volumes of `spec` that storage provides, with the field naming each.
fn storage_volumes(spec: &VmSpec) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let BootDisk::Volume { volume } = &spec.boot_disk {
        out.push(("bootDisk.volume".to_string(), volume.as_str()));
    }
    for (i, volume) in spec.data_volumes.iter().enumerate() {
        out.push((format!("dataVolumes[{i}]"), volume.as_str()));
    }
    out
}

/// Refuses with [`Error::Conflict`] when a VM of the tenant uses volume `volume` (as `compute`
/// says, [`crate::Compute::volume_users`]): what deleting a volume without force checks first
/// (the facade's `TenantVolumes::delete` and the conformance suite).
pub async fn ensure_volume_unused(
    compute: &dyn crate::Compute,
    tenant: &Tenant,
    volume: &str,
) -> Result<()> {
    let users = compute.volume_users(tenant).await?;
    match users.get(volume).filter(|vms| !vms.is_empty()) {
        Some(vms) => Err(Error::conflict(
            crate::ResourceKind::Volume,
            volume,
            format!(
                "in use by VM(s) {}; delete with force to delete anyway",
                vms.join(", ")
            ),
        )),
        None => Ok(()),
    }
}
