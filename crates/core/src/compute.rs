//! Virtual machines: specs, status, the [`Compute`] trait and its capabilities.

use std::collections::BTreeMap;
use std::net::IpAddr;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::addr::MacAddress;
use crate::attach::VmAttachments;
use crate::catalog::{CatalogImage, CatalogImageSpec};
use crate::console::{ConsoleKind, ConsoleStream};
use crate::error::{Error, Result};
use crate::name::{Labels, Tenant, validate_labels, validate_name, validate_user_labels};
use crate::secret::SecretString;
use crate::size::ByteSize;
use crate::storage::{AccessMode, VolumeMode};

/// The most bytes of cloud-init data (user data, network data and SSH keys together) a VM may
/// carry: what one Kubernetes Secret holds (`MaxSecretSize`, 1 MiB, counted over the values of
/// its data), where the compute backends keep it.
pub const MAX_CLOUD_INIT_SIZE: usize = 1024 * 1024;

/// What a VM should be: create-or-update through [`Compute::apply_vm`].
///
/// ```
/// use kubecloud_core::{VmSpec, VmResources, BootDisk, NetworkInterface, ByteSize};
/// let spec = VmSpec {
///     name: "web-1".into(),
///     resources: VmResources::Custom { cpu_cores: 2, memory: ByteSize::gib(4) },
///     boot_disk: BootDisk::Volume { volume: "web-1-root".into() },
///     interfaces: vec![NetworkInterface::on_subnet("eth0", "frontend")],
///     ..VmSpec::default()
/// };
/// assert!(spec.validate().is_ok());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmSpec {
    /// The VM's name (a DNS-1123 label), unique in its tenant.
    pub name: String,
    /// CPU and memory, or an instance type.
    pub resources: VmResources,
    /// The disk the VM boots from.
    pub boot_disk: BootDisk,
    /// Extra data volumes (names of the tenant's block volumes), attached in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_volumes: Vec<String>,
    /// Network interfaces, in order; empty means one interface on the default pod network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<NetworkInterface>,
    /// Cloud-init user data, network data and SSH keys (secret material).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_init: Option<CloudInit>,
    /// When the VM should run.
    #[serde(default)]
    pub run_strategy: RunStrategy,
    /// Node placement hints.
    #[serde(default, skip_serializing_if = "Placement::is_empty")]
    pub placement: Placement,
    /// Labels (selectable by services and exposures).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// CPU and memory of a VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum VmResources {
    /// Explicit cores and memory.
    #[serde(rename_all = "camelCase")]
    Custom {
        /// Virtual CPU cores (1 to 512).
        cpu_cores: u32,
        /// Guest memory (at least 16 MiB).
        memory: ByteSize,
    },
    /// A named instance type (KubeVirt's `VirtualMachineClusterInstancetype`, or the backend's
    /// equivalent).
    InstanceType {
        /// The instance type's name.
        name: String,
    },
}

impl Default for VmResources {
    fn default() -> Self {
        Self::Custom {
            cpu_cores: 1,
            memory: ByteSize::gib(1),
        }
    }
}

/// Where a VM boots from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum BootDisk {
    /// An existing block volume of the tenant (see [`crate::BlockStorage`]).
    Volume {
        /// The volume's name.
        volume: String,
    },
    /// A container-disk image (ephemeral: changes are lost on restart).
    ContainerImage {
        /// The image reference, e.g. `quay.io/containerdisks/fedora:40`.
        image: String,
    },
    /// A disk imported from an http(s) URL into a new volume owned by the VM.
    Import {
        /// The http(s) URL of a raw or qcow2 image.
        url: String,
        /// The size of the new volume.
        size: ByteSize,
        /// The storage tier (pool) of the new volume; the backend's default if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tier: Option<String>,
        /// Replicas of the new volume.
        #[serde(default = "one")]
        replicas: u8,
        /// Access mode of the new volume (RWX for live migration).
        #[serde(default)]
        access: AccessMode,
        /// Volume mode of the new volume.
        #[serde(default)]
        mode: VolumeMode,
    },
    /// A clone of a catalog image (see [`crate::catalog`]) into a new volume owned by the VM,
    /// `<vm>-boot` like an import's: the storage's own clone or snapshot where it can, never
    /// another download. The image must exist and be ready.
    Catalog {
        /// The catalog image's name.
        image: String,
        /// The size of the new volume: at least the image's; the image's if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<ByteSize>,
        /// The storage tier (pool) of the new volume; the backend's default if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tier: Option<String>,
        /// Replicas of the new volume.
        #[serde(default = "one")]
        replicas: u8,
        /// Access mode of the new volume (RWX for live migration).
        #[serde(default)]
        access: AccessMode,
        /// Volume mode of the new volume.
        #[serde(default)]
        mode: VolumeMode,
    },
}

fn one() -> u8 {
    1
}

impl Default for BootDisk {
    fn default() -> Self {
        Self::ContainerImage {
            image: "quay.io/containerdisks/fedora:latest".into(),
        }
    }
}

impl BootDisk {
    /// A clone of catalog image `image` of the image's size, one replica, RWO block, in the
    /// default tier.
    ///
    /// ```
    /// use kubecloud_core::BootDisk;
    /// assert!(matches!(BootDisk::catalog("fedora-40"), BootDisk::Catalog { size: None, .. }));
    /// ```
    pub fn catalog(image: impl Into<String>) -> Self {
        Self::Catalog {
            image: image.into(),
            size: None,
            tier: None,
            replicas: 1,
            access: AccessMode::ReadWriteOnce,
            mode: VolumeMode::Block,
        }
    }

    /// Whether the VM gets a boot volume of its own (`<vm>-boot`): an import or a catalog clone.
    pub fn owns_volume(&self) -> bool {
        matches!(self, Self::Import { .. } | Self::Catalog { .. })
    }

    /// The name of the volume kubecloud creates for an [`BootDisk::Import`] or
    /// [`BootDisk::Catalog`] of VM `vm`.
    ///
    /// ```
    /// assert_eq!(kubecloud_core::BootDisk::import_volume_name("web-1"), "web-1-boot");
    /// ```
    pub fn import_volume_name(vm: &str) -> String {
        format!("{vm}-boot")
    }
}

/// One network interface of a VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkInterface {
    /// The interface's name in the VM spec (a DNS-1123 label, e.g. `eth0`).
    pub name: String,
    /// What the interface attaches to.
    pub attachment: Attachment,
    /// A fixed IP address (must lie in the subnet); kept across live migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_ip: Option<IpAddr>,
    /// A fixed MAC address; kept across live migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
    /// Security groups applied to this interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
}

impl NetworkInterface {
    /// An interface on the tenant subnet `subnet`, with a dynamic address.
    pub fn on_subnet(name: impl Into<String>, subnet: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            attachment: Attachment::Subnet {
                subnet: subnet.into(),
            },
            fixed_ip: None,
            mac: None,
            security_groups: Vec::new(),
        }
    }

    /// An interface on the default pod network with masquerade binding.
    pub fn pod_network(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            attachment: Attachment::PodNetwork {
                binding: PodBinding::Masquerade,
            },
            fixed_ip: None,
            mac: None,
            security_groups: Vec::new(),
        }
    }

    /// The same interface with a fixed IP.
    pub fn with_fixed_ip(mut self, ip: IpAddr) -> Self {
        self.fixed_ip = Some(ip);
        self
    }

    /// The same interface with a fixed MAC.
    pub fn with_mac(mut self, mac: MacAddress) -> Self {
        self.mac = Some(mac);
        self
    }

    /// The subnet this interface attaches to, if any.
    pub fn subnet(&self) -> Option<&str> {
        match &self.attachment {
            Attachment::Subnet { subnet } => Some(subnet),
            Attachment::PodNetwork { .. } => None,
        }
    }
}

/// What an interface attaches to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Attachment {
    /// The cluster's default pod network.
    PodNetwork {
        /// How the VM is bound to the pod's interface.
        #[serde(default)]
        binding: PodBinding,
    },
    /// A subnet of the tenant's VPC (see [`crate::Network`]).
    Subnet {
        /// The subnet's name.
        subnet: String,
    },
}

/// How a VM attaches to the pod network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PodBinding {
    /// NAT behind the pod's address (migratable).
    #[default]
    Masquerade,
    /// The VM takes the pod's address (not migratable without the backend's support).
    Bridge,
    /// The VM's NIC is a macvtap device on a node interface: a secondary network of
    /// `macvtap-cni` only (a network backend answers it for such a subnet; refused on the pod
    /// network). KubeVirt binds it with its `macvtap` network binding plugin and cannot
    /// live-migrate it (`binding: {name: macvtap}`; KubeVirt user guide, "Macvtap binding":
    /// migration support No, primary network No).
    Macvtap,
}

/// Cloud-init data. All of it is secret material: kept out of `Debug` and stored by backends as
/// Secrets, never inline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudInit {
    /// `#cloud-config` user data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<SecretString>,
    /// Network config (version 2) data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_data: Option<SecretString>,
    /// SSH public keys to authorize for the default user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<SecretString>,
}

/// When a VM should run (KubeVirt's `runStrategy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunStrategy {
    /// Always running; restarted if it stops.
    #[default]
    Always,
    /// Stopped.
    Halted,
    /// Started and stopped only on request.
    Manual,
    /// Restarted only when it fails.
    RerunOnFailure,
}

/// Node placement hints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Only nodes carrying all these labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub node_selector: Labels,
    /// Nodes to prefer, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_nodes: Vec<String>,
    /// VMs with the same group are kept on different nodes where possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_group: Option<String>,
}

impl Placement {
    /// Whether no hint is given.
    pub fn is_empty(&self) -> bool {
        self.node_selector.is_empty()
            && self.preferred_nodes.is_empty()
            && self.spread_group.is_none()
    }
}

impl VmSpec {
    /// Checks the whole spec; the error names the first bad field (e.g. `interfaces[1].name`).
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        match &self.resources {
            VmResources::Custom { cpu_cores, memory } => {
                if !(1..=512).contains(cpu_cores) {
                    return Err(Error::invalid(
                        "resources.cpuCores",
                        format!("{cpu_cores} is outside 1..=512"),
                    ));
                }
                if *memory < ByteSize::mib(16) {
                    return Err(Error::invalid(
                        "resources.memory",
                        format!("{memory} is below the minimum of 16Mi"),
                    ));
                }
                if *memory > ByteSize::tib(16) {
                    return Err(Error::invalid(
                        "resources.memory",
                        format!("{memory} is above the maximum of 16Ti"),
                    ));
                }
            }
            VmResources::InstanceType { name } => validate_name("resources.name", name)?,
        }
        match &self.boot_disk {
            BootDisk::Volume { volume } => validate_name("bootDisk.volume", volume)?,
            BootDisk::ContainerImage { image } => {
                if image.trim().is_empty() || image.contains(char::is_whitespace) {
                    return Err(Error::invalid(
                        "bootDisk.image",
                        "must be a container image reference",
                    ));
                }
            }
            BootDisk::Import {
                url,
                size,
                replicas,
                tier,
                ..
            } => {
                crate::import::validate_import_url("bootDisk.url", url)?;
                crate::storage::validate_size("bootDisk.size", *size)?;
                crate::storage::validate_replicas("bootDisk.replicas", *replicas)?;
                if let Some(tier) = tier {
                    validate_name("bootDisk.tier", tier)?;
                }
                validate_name("name", &BootDisk::import_volume_name(&self.name))?;
            }
            BootDisk::Catalog {
                image,
                size,
                replicas,
                tier,
                ..
            } => {
                validate_name("bootDisk.image", image)?;
                if let Some(size) = size {
                    crate::storage::validate_size("bootDisk.size", *size)?;
                }
                crate::storage::validate_replicas("bootDisk.replicas", *replicas)?;
                if let Some(tier) = tier {
                    validate_name("bootDisk.tier", tier)?;
                }
                validate_name("name", &BootDisk::import_volume_name(&self.name))?;
            }
        }
        for (i, volume) in self.data_volumes.iter().enumerate() {
            validate_name(&format!("dataVolumes[{i}]"), volume)?;
            if self.data_volumes[..i].contains(volume) {
                return Err(Error::invalid(
                    format!("dataVolumes[{i}]"),
                    format!("{volume:?} is attached twice"),
                ));
            }
            if matches!(&self.boot_disk, BootDisk::Volume { volume: boot } if boot == volume) {
                return Err(Error::invalid(
                    format!("dataVolumes[{i}]"),
                    format!("{volume:?} is already the boot disk"),
                ));
            }
        }
        for (i, iface) in self.interfaces.iter().enumerate() {
            let field = |f: &str| format!("interfaces[{i}].{f}");
            validate_name(&field("name"), &iface.name)?;
            if self.interfaces[..i].iter().any(|o| o.name == iface.name) {
                return Err(Error::invalid(
                    field("name"),
                    format!("{:?} is used twice", iface.name),
                ));
            }
            match &iface.attachment {
                Attachment::Subnet { subnet } => validate_name(&field("subnet"), subnet)?,
                Attachment::PodNetwork { binding } => {
                    if *binding == PodBinding::Macvtap {
                        return Err(Error::invalid(
                            field("attachment.podNetwork.binding"),
                            "macvtap binds secondary networks only (a subnet on macvtap), not \
                             the pod network",
                        ));
                    }
                    if iface.fixed_ip.is_some() {
                        return Err(Error::invalid(
                            field("fixedIp"),
                            "the pod network does not take fixed IPs; attach to a subnet",
                        ));
                    }
                }
            }
            if let Some(mac) = iface.mac
                && mac.is_multicast()
            {
                return Err(Error::invalid(
                    field("mac"),
                    format!("{mac} is a multicast address"),
                ));
            }
            for (j, sg) in iface.security_groups.iter().enumerate() {
                validate_name(&field(&format!("securityGroups[{j}]")), sg)?;
            }
        }
        if self
            .interfaces
            .iter()
            .filter(|i| matches!(i.attachment, Attachment::PodNetwork { .. }))
            .count()
            > 1
        {
            return Err(Error::invalid(
                "interfaces",
                "at most one interface may use the pod network",
            ));
        }
        if let Some(ci) = &self.cloud_init {
            let size = ci.user_data.as_ref().map_or(0, |d| d.expose().len())
                + ci.network_data.as_ref().map_or(0, |d| d.expose().len())
                + ci.ssh_keys.iter().map(|k| k.expose().len()).sum::<usize>();
            if size > MAX_CLOUD_INIT_SIZE {
                // Secret material: its size only.
                return Err(Error::invalid(
                    "cloudInit",
                    format!(
                        "{size} bytes of user data, network data and SSH keys; a Kubernetes Secret holds at most {MAX_CLOUD_INIT_SIZE}"
                    ),
                ));
            }
            for (i, key) in ci.ssh_keys.iter().enumerate() {
                let k = key.expose().trim();
                let known = [
                    "ssh-rsa ",
                    "ssh-ed25519 ",
                    "ecdsa-sha2-",
                    "sk-ssh-ed25519",
                    "sk-ecdsa-sha2-",
                ];
                if !known.iter().any(|p| k.starts_with(p)) {
                    // The key itself is secret material: do not echo it.
                    return Err(Error::invalid(
                        format!("cloudInit.sshKeys[{i}]"),
                        "is not an OpenSSH public key",
                    ));
                }
            }
        }
        validate_user_labels("labels", &self.labels)?;
        validate_labels("placement.nodeSelector", &self.placement.node_selector)?;
        Ok(())
    }

    /// The tenant volumes this VM uses (boot volume or imported boot volume, then data volumes).
    pub fn volumes(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.boot_disk {
            BootDisk::Volume { volume } => out.push(volume.clone()),
            BootDisk::Import { .. } | BootDisk::Catalog { .. } => {
                out.push(BootDisk::import_volume_name(&self.name))
            }
            BootDisk::ContainerImage { .. } => {}
        }
        out.extend(self.data_volumes.iter().cloned());
        out
    }
}

/// A VM as it is: its spec and observed status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Vm {
    /// The spec last applied.
    pub spec: VmSpec,
    /// What the backend observes.
    pub status: VmStatus,
}

impl Vm {
    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// The observed state of a VM.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmStatus {
    /// Where the VM is in its life.
    pub phase: VmPhase,
    /// The node it runs on, when running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Addresses per interface, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceStatus>,
    /// Conditions with reasons (e.g. `Ready`, `Migratable`, `ImportFailed`, `AgentConnected`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The data volumes attached to the running VM and ready in it, in spec order (empty when
    /// it does not run): a volume hot-plugged by [`Compute::apply_vm`] is listed once the guest
    /// has it, and no longer once it is detached (see [`crate::hotplug`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_volumes: Vec<String>,
    /// The spec fields the running VM gets only when it restarts (`resources.cpuCores`,
    /// `bootDisk`...; see [`crate::hotplug::live_changes`]); empty when it runs with its spec.
    /// A restart ([`Compute::power`]) clears it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_required: Vec<String>,
    /// What the guest agent reports, while one is connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<crate::nodes::GuestInfo>,
}

impl VmStatus {
    /// The condition of that type, if reported.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// Addresses of one VM interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStatus {
    /// The interface's name.
    pub name: String,
    /// Its IP address, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// Its MAC address, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddress>,
}

/// A condition reported on a resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Whether it holds.
    pub status: bool,
    /// A machine-readable reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable message.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Where a VM is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VmPhase {
    /// Disks are being prepared (imports, clones).
    #[default]
    Provisioning,
    /// Scheduled and booting.
    Starting,
    /// Running.
    Running,
    /// Shutting down.
    Stopping,
    /// Stopped.
    Stopped,
    /// Live-migrating to another node.
    Migrating,
    /// Failed; see the conditions for why.
    Failed,
}

impl std::fmt::Display for VmPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Provisioning => "Provisioning",
            Self::Starting => "Starting",
            Self::Running => "Running",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Migrating => "Migrating",
            Self::Failed => "Failed",
        })
    }
}

/// A power operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PowerAction {
    /// Start a stopped VM.
    Start,
    /// Stop a running VM.
    Stop,
    /// Restart a running VM.
    Restart,
}

/// Where a live migration should go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MigrationTarget {
    /// Any node the scheduler picks.
    #[default]
    AnyNode,
    /// The named node.
    Node(String),
}

/// A live migration as started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Migration {
    /// The VM being migrated.
    pub vm: String,
    /// The node it leaves.
    pub source_node: String,
    /// The node it goes to, once chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_node: Option<String>,
}

/// One reason a VM cannot live-migrate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MigrationBlocker {
    /// A volume is not read-write-many.
    VolumeNotShared {
        /// The volume's name.
        volume: String,
    },
    /// A container disk or other local-only disk.
    LocalDisk {
        /// What it is.
        disk: String,
    },
    /// An interface binds the pod network in bridge mode.
    BridgeOnPodNetwork {
        /// The interface's name.
        interface: String,
    },
    /// An interface has the macvtap binding, which KubeVirt cannot live-migrate.
    MacvtapBinding {
        /// The interface's name.
        interface: String,
    },
    /// The VM is not running.
    NotRunning {
        /// Its phase.
        phase: VmPhase,
    },
    /// No other node can take it.
    NoTargetNode {
        /// Why.
        reason: String,
    },
    /// Something else the backend reports.
    Other {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for MigrationBlocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::VolumeNotShared { volume } => {
                write!(f, "volume {volume:?} is not read-write-many")
            }
            Self::LocalDisk { disk } => write!(f, "disk {disk:?} is local to the node"),
            Self::BridgeOnPodNetwork { interface } => {
                write!(
                    f,
                    "interface {interface:?} uses bridge binding on the pod network"
                )
            }
            Self::MacvtapBinding { interface } => write!(
                f,
                "interface {interface:?} uses the macvtap binding, which cannot live-migrate"
            ),
            Self::NotRunning { phase } => write!(f, "the VM is {phase}, not running"),
            Self::NoTargetNode { reason } => write!(f, "no target node: {reason}"),
            Self::Other { reason } => f.write_str(reason),
        }
    }
}

/// What a compute backend can do. The facade checks these before dispatching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeCapabilities {
    /// Live migration (of VMs whose volumes are all RWX).
    pub live_migration: bool,
    /// Live migration to a named node.
    pub migrate_to_node: bool,
    /// Named instance types.
    pub instance_types: bool,
    /// Container-disk boot images.
    pub container_disks: bool,
    /// Boot disks imported from http(s) URLs.
    pub http_import: bool,
    /// Cloud-init user data and SSH keys.
    pub cloud_init: bool,
    /// Fixed IPs and MACs on interfaces.
    pub fixed_addresses: bool,
    /// Snapshots of whole VMs and restore of a VM from one
    /// ([`Compute::snapshot_vm`], [`Compute::restore_vm`]).
    #[serde(default)]
    pub vm_snapshots: bool,
    /// An image catalog shared by all tenants and boot disks cloned from it
    /// ([`Compute::apply_catalog_image`], [`BootDisk::Catalog`]).
    #[serde(default)]
    pub catalog: bool,
    /// A running VM's serial console as a byte stream ([`Compute::console`]).
    #[serde(default)]
    pub serial_console: bool,
    /// A running VM's VNC display as an RFB byte stream ([`Compute::vnc`]).
    #[serde(default)]
    pub vnc: bool,
    /// Data volumes added to or removed from a running VM's spec are attached and detached
    /// live (see [`crate::hotplug`]); without it they wait for a restart.
    #[serde(default)]
    pub hotplug_volumes: bool,
    /// Interfaces on a subnet added to or removed from a running VM's spec are plugged and
    /// unplugged live; without it they wait for a restart.
    #[serde(default)]
    pub hotplug_interfaces: bool,
    /// More CPU cores and memory for a running VM, up to its [`crate::hotplug::LiveLimits`],
    /// are added live; without it they wait for a restart.
    #[serde(default)]
    pub live_resize: bool,
}

/// A point-in-time snapshot of a whole VM: its spec and its volumes.
///
/// ```
/// use kubecloud_core::VmSnapshot;
/// let snap: VmSnapshot = serde_json::from_str(
///     r#"{"name":"before-upgrade","vm":"web-1","ready":true,"volumes":["web-1-boot"]}"#,
/// ).unwrap();
/// assert!(snap.ready && snap.message.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmSnapshot {
    /// The snapshot's name, unique among the tenant's VM snapshots.
    pub name: String,
    /// The VM it was taken of.
    pub vm: String,
    /// Whether it is complete and can be restored from.
    pub ready: bool,
    /// The tenant volumes it captured (see [`VmSpec::volumes`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Why it is not ready (in progress, or failed), when the backend says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Virtual machines of a tenant. Implemented by each compute backend; every call names the tenant
/// and can only see that tenant's VMs.
///
/// A contract between the facade and implementations: few methods, conveniences elsewhere
/// (see [`crate::wait`]).
#[async_trait]
pub trait Compute: Send + Sync + std::fmt::Debug {
    /// The backend's name for errors (`"kubevirt"`, `"memory"`).
    fn backend_name(&self) -> &str;
    /// The namespaces the backend's system runs in or keeps its own objects in (MetalLB's
    /// `metallb-system`, say): never a tenant's. [`Tenant`] names equal to one of them are
    /// refused by the facade before anything is sent. None by default.
    fn system_namespaces(&self) -> Vec<String> {
        Vec::new()
    }
    /// What this backend can do.
    fn capabilities(&self) -> ComputeCapabilities;

    /// The waits this backend keeps even when an apply does not wait
    /// ([`wait::send_only`](crate::wait::send_only)), each with the reason a later step needs
    /// it; none by default. A tenant's plan reports them on the steps they hold up.
    fn kept_waits(&self) -> &'static [crate::wait::KeptWait] {
        &[]
    }
    /// Creates the VM or updates it to `spec` (idempotent: the same spec twice changes nothing),
    /// attached as `attachments` say (from the network and storage backends, see
    /// [`VmAttachments::resolve`]). Attachments that are not `spec`'s are refused before
    /// anything is sent ([`VmAttachments::check_for`]). A running VM is never restarted by it:
    /// what the backend can change live (data volumes, interfaces, more CPU and memory, per
    /// its capabilities) it changes live, the rest waits for a restart and is named in
    /// [`VmStatus::restart_required`] (see [`crate::hotplug`]).
    async fn apply_vm(
        &self,
        tenant: &Tenant,
        spec: &VmSpec,
        attachments: &VmAttachments,
    ) -> Result<Vm>;
    /// The VM named `name`.
    async fn get_vm(&self, tenant: &Tenant, name: &str) -> Result<Vm>;
    /// The tenant's VMs carrying all `selector` labels (all VMs for an empty selector), by name.
    async fn list_vms(&self, tenant: &Tenant, selector: &Labels) -> Result<Vec<Vm>>;
    /// The names of the instance types VMs of `tenant` may name ([`VmResources::InstanceType`]),
    /// or `None` (the default) if the backend cannot tell; a plan refuses a VM naming one that
    /// is not listed.
    async fn list_instance_types(&self, tenant: &Tenant) -> Result<Option<Vec<String>>> {
        let _ = tenant;
        Ok(None)
    }
    /// The specs of the VMs [`Compute::list_vms`] lists, in the same order, without reading
    /// their state: what planning compares against. The default lists the VMs; a backend that
    /// keeps a VM's spec apart from its state (KubeVirt: in an annotation, the state in the VM's
    /// instance and import) reads only the specs.
    async fn list_vm_specs(&self, tenant: &Tenant, selector: &Labels) -> Result<Vec<VmSpec>> {
        Ok(self
            .list_vms(tenant, selector)
            .await?
            .into_iter()
            .map(|vm| vm.spec)
            .collect())
    }
    /// The VMs using each volume of the tenant (volume name -> VM names, sorted): what a
    /// volume's [`crate::VolumeStatus::used_by`] says and what refuses deleting a volume in use
    /// (the storage backend cannot know which VM uses a volume). The default counts every VM
    /// whose spec mounts the volume; a backend that knows which VMs run (KubeVirt: their
    /// instances) counts those.
    async fn volume_users(&self, tenant: &Tenant) -> Result<BTreeMap<String, Vec<String>>> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for vm in self.list_vm_specs(tenant, &Labels::new()).await? {
            for volume in vm.volumes() {
                users.entry(volume).or_default().push(vm.name.clone());
            }
        }
        for vms in users.values_mut() {
            vms.sort();
            vms.dedup();
        }
        Ok(users)
    }
    /// Starts, stops or restarts the VM.
    async fn power(&self, tenant: &Tenant, name: &str, action: PowerAction) -> Result<Vm>;
    /// Every reason the VM cannot live-migrate now (empty when it can).
    async fn migration_blockers(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<Vec<MigrationBlocker>>;
    /// Starts a live migration; the VM's IPs and MACs are kept. Refused with
    /// [`Error::Conflict`] listing every blocker.
    async fn migrate(
        &self,
        tenant: &Tenant,
        name: &str,
        target: &MigrationTarget,
    ) -> Result<Migration>;
    /// Deletes the VM and what it created for itself (imported boot volumes, cloud-init secrets).
    async fn delete_vm(&self, tenant: &Tenant, name: &str) -> Result<()>;
    /// The VM's state now and at every change, until it is deleted (the stream then ends).
    async fn watch_vm(&self, tenant: &Tenant, name: &str)
    -> Result<BoxStream<'static, Result<Vm>>>;

    /// Takes snapshot `snapshot` of the whole VM `vm` (its spec and volumes), running or
    /// stopped. Returns at once; the snapshot becomes [`VmSnapshot::ready`] when complete.
    /// A taken name is refused with [`Error::AlreadyExists`], a missing VM with
    /// [`Error::NotFound`]. Backends without [`ComputeCapabilities::vm_snapshots`] refuse with
    /// [`Error::Unsupported`] (the default).
    async fn snapshot_vm(&self, tenant: &Tenant, vm: &str, snapshot: &str) -> Result<VmSnapshot> {
        let _ = (tenant, vm, snapshot);
        Err(Error::unsupported(
            self.backend_name(),
            "vms.snapshot",
            "vm_snapshots",
        ))
    }

    /// The tenant's VM snapshots, of one VM or all, by name.
    async fn list_vm_snapshots(
        &self,
        tenant: &Tenant,
        vm: Option<&str>,
    ) -> Result<Vec<VmSnapshot>> {
        let _ = (tenant, vm);
        Err(Error::unsupported(
            self.backend_name(),
            "vms.snapshots",
            "vm_snapshots",
        ))
    }

    /// Restores VM `vm` in place from its snapshot `snapshot` (as KubeVirt's
    /// `VirtualMachineRestore` does): the VM's spec becomes the snapshot's and its volumes go back
    /// to their content then; the VM stays stopped. Returns once the restore is complete. The VM
    /// must be stopped ([`Error::Conflict`] otherwise, and for a snapshot of another VM);
    /// a missing VM or snapshot is [`Error::NotFound`].
    async fn restore_vm(&self, tenant: &Tenant, vm: &str, snapshot: &str) -> Result<()> {
        let _ = (tenant, vm, snapshot);
        Err(Error::unsupported(
            self.backend_name(),
            "vms.restore",
            "vm_snapshots",
        ))
    }

    /// Creates or updates catalog image `spec.name` (an operator's call, not a tenant's): its
    /// import starts at once; the image becomes [`CatalogImage::ready`] when it is done.
    /// Bad input is refused naming the field before anything is sent. Backends without
    /// [`ComputeCapabilities::catalog`] refuse with [`Error::Unsupported`] (the default).
    async fn apply_catalog_image(&self, spec: &CatalogImageSpec) -> Result<CatalogImage> {
        let _ = spec;
        Err(Error::unsupported(
            self.backend_name(),
            "catalog.apply",
            "catalog",
        ))
    }

    /// Catalog image `name` ([`Error::NotFound`] of kind `CatalogImage` if missing).
    async fn get_catalog_image(&self, name: &str) -> Result<CatalogImage> {
        let _ = name;
        Err(Error::unsupported(
            self.backend_name(),
            "catalog.get",
            "catalog",
        ))
    }

    /// Catalog image `name` now and at every change, until it is deleted (the stream then ends).
    async fn watch_catalog_image(
        &self,
        name: &str,
    ) -> Result<BoxStream<'static, Result<CatalogImage>>> {
        let _ = name;
        Err(Error::unsupported(
            self.backend_name(),
            "catalog.watch",
            "catalog",
        ))
    }

    /// Every catalog image, by name. Tenants may read these.
    async fn list_catalog_images(&self) -> Result<Vec<CatalogImage>> {
        Err(Error::unsupported(
            self.backend_name(),
            "catalog.list",
            "catalog",
        ))
    }

    /// Deletes catalog image `name` and its imports ([`Error::NotFound`] if missing). VMs cloned
    /// from it keep their volumes.
    async fn delete_catalog_image(&self, name: &str) -> Result<()> {
        let _ = name;
        Err(Error::unsupported(
            self.backend_name(),
            "catalog.delete",
            "catalog",
        ))
    }

    /// Deletes a VM snapshot ([`Error::NotFound`] if missing).
    async fn delete_vm_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()> {
        let _ = (tenant, snapshot);
        Err(Error::unsupported(
            self.backend_name(),
            "vms.delete_snapshot",
            "vm_snapshots",
        ))
    }

    /// The serial console of VM `vm`, connected: what the guest prints, and what it reads as
    /// typed (see [`ConsoleStream`]). A missing VM (or another tenant's) is
    /// [`Error::NotFound`]; a VM that does not run is [`Error::Conflict`]. Backends without
    /// [`ComputeCapabilities::serial_console`] refuse with [`Error::Unsupported`] (the default).
    async fn console(&self, tenant: &Tenant, vm: &str) -> Result<ConsoleStream> {
        let _ = (tenant, vm);
        let kind = ConsoleKind::Serial;
        Err(Error::unsupported(
            self.backend_name(),
            kind.operation(),
            kind.capability(),
        ))
    }

    /// The VNC display of VM `vm`, connected: RFB 3.8 from the server's `RFB 003.008\n`
    /// greeting on (see [`ConsoleStream`]). Errors as [`Compute::console`]'s; backends without
    /// [`ComputeCapabilities::vnc`] refuse with [`Error::Unsupported`] (the default).
    async fn vnc(&self, tenant: &Tenant, vm: &str) -> Result<ConsoleStream> {
        let _ = (tenant, vm);
        let kind = ConsoleKind::Vnc;
        Err(Error::unsupported(
            self.backend_name(),
            kind.operation(),
            kind.capability(),
        ))
    }

    /// The cluster's nodes, by name (an operator's call, not a tenant's). Backends without
    /// node maintenance refuse with [`Error::Unsupported`] (the default).
    async fn list_nodes(&self) -> Result<Vec<crate::nodes::NodeInfo>> {
        Err(Error::unsupported(
            self.backend_name(),
            "nodes.list",
            "node_maintenance",
        ))
    }

    /// Cordons (`schedulable: false`: no new VM and no migration lands on it) or uncordons
    /// node `node` ([`Error::NotFound`] of kind `Node` if missing). VMs running there stay.
    async fn set_node_schedulable(
        &self,
        node: &str,
        schedulable: bool,
    ) -> Result<crate::nodes::NodeInfo> {
        let _ = (node, schedulable);
        Err(Error::unsupported(
            self.backend_name(),
            "nodes.cordon",
            "node_maintenance",
        ))
    }

    /// The VMs of every tenant running on node `node` (an operator's call), by tenant and name.
    async fn vms_on_node(&self, node: &str) -> Result<Vec<crate::nodes::VmRef>> {
        let _ = node;
        Err(Error::unsupported(
            self.backend_name(),
            "nodes.vms",
            "node_maintenance",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> VmSpec {
        VmSpec {
            name: "web-1".into(),
            interfaces: vec![NetworkInterface::on_subnet("eth0", "front")],
            ..VmSpec::default()
        }
    }

    #[test]
    fn macvtap_is_refused_on_the_pod_network_and_never_migrates() {
        let mut spec = base();
        spec.interfaces = vec![NetworkInterface {
            attachment: Attachment::PodNetwork {
                binding: PodBinding::Macvtap,
            },
            ..NetworkInterface::pod_network("eth0")
        }];
        let err = spec.validate().unwrap_err();
        assert_eq!(
            err.invalid_field(),
            Some("interfaces[0].attachment.podNetwork.binding")
        );
        let on_subnet = NetworkInterface::on_subnet("eth0", "lan");
        let mut a = crate::InterfaceAttachment::pod(&on_subnet, PodBinding::Macvtap);
        a.network = crate::NetworkSelection::Multus {
            namespace: "acme".into(),
            name: "lan".into(),
        };
        a.guarantees.addresses_kept_on_migration = true;
        assert!(!a.migratable());
        let blocker = MigrationBlocker::MacvtapBinding {
            interface: "eth0".into(),
        };
        assert!(blocker.to_string().contains("macvtap"));
    }

    #[test]
    fn bad_fields_are_named() {
        type Mutation = Box<dyn Fn(&mut VmSpec)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|s| s.name = "Web".into()), "name"),
            (
                Box::new(|s| {
                    s.resources = VmResources::Custom {
                        cpu_cores: 0,
                        memory: ByteSize::gib(1),
                    }
                }),
                "resources.cpuCores",
            ),
            (
                Box::new(|s| {
                    s.resources = VmResources::Custom {
                        cpu_cores: 1,
                        memory: ByteSize::kib(1),
                    }
                }),
                "resources.memory",
            ),
            (
                Box::new(|s| {
                    s.boot_disk = BootDisk::Import {
                        url: "ftp://x/y.img".into(),
                        size: ByteSize::gib(1),
                        tier: None,
                        replicas: 1,
                        access: AccessMode::ReadWriteOnce,
                        mode: VolumeMode::Block,
                    }
                }),
                "bootDisk.url",
            ),
            (
                Box::new(|s| {
                    s.boot_disk = BootDisk::Import {
                        url: "https://x/y.img".into(),
                        size: ByteSize(0),
                        tier: None,
                        replicas: 1,
                        access: AccessMode::ReadWriteOnce,
                        mode: VolumeMode::Block,
                    }
                }),
                "bootDisk.size",
            ),
            (
                Box::new(|s| {
                    s.interfaces
                        .push(NetworkInterface::on_subnet("eth0", "back"))
                }),
                "interfaces[1].name",
            ),
            (
                Box::new(|s| {
                    s.interfaces.push(
                        NetworkInterface::pod_network("pod")
                            .with_fixed_ip("10.0.0.1".parse().unwrap()),
                    )
                }),
                "interfaces[1].fixedIp",
            ),
            (
                Box::new(|s| s.data_volumes = vec!["d".into(), "d".into()]),
                "dataVolumes[1]",
            ),
            (
                Box::new(|s| {
                    s.cloud_init = Some(CloudInit {
                        ssh_keys: vec!["not a key".into()],
                        ..CloudInit::default()
                    })
                }),
                "cloudInit.sshKeys[0]",
            ),
        ];
        for (mutate, field) in cases {
            let mut spec = base();
            mutate(&mut spec);
            let err = spec.validate().unwrap_err();
            assert_eq!(err.invalid_field(), Some(field), "{err}");
        }
        assert!(base().validate().is_ok());
    }

    #[test]
    fn debug_of_a_spec_hides_cloud_init_secrets() {
        let mut spec = base();
        spec.cloud_init = Some(CloudInit {
            user_data: Some("#cloud-config\npassword: hunter2".into()),
            ssh_keys: vec!["ssh-ed25519 AAAAsecretkey me@host".into()],
            ..CloudInit::default()
        });
        let shown = format!("{spec:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("AAAAsecretkey"),
            "{shown}"
        );
        let err = VmSpec {
            cloud_init: Some(CloudInit {
                ssh_keys: vec!["AAAAsecretkey".into()],
                ..CloudInit::default()
            }),
            ..base()
        }
        .validate()
        .unwrap_err();
        assert!(!err.to_string().contains("AAAAsecretkey"));
    }

    #[test]
    fn spec_reads_from_yaml_and_refuses_unknown_fields() {
        let yaml = "name: db\nresources: { custom: { cpuCores: 2, memory: 4Gi } }\nbootDisk: { import: { url: 'https://example.com/f.qcow2', size: 20Gi, access: readWriteMany } }\nrunStrategy: manual\n";
        let spec: VmSpec = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(spec.run_strategy, RunStrategy::Manual);
        assert_eq!(spec.volumes(), vec!["db-boot".to_string()]);
        assert!(serde_saphyr::from_str::<VmSpec>("name: db\nresourcez: {}\n").is_err());
    }
}
