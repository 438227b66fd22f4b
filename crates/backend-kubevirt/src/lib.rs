//! # kubecloud-kubevirt
//!
//! The [`kubecloud_core::Compute`] backend on [KubeVirt](https://kubevirt.io) and
//! [CDI](https://github.com/kubevirt/containerized-data-importer).
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
//! use kubecloud_core::{Compute, Tenant, VmAttachments, VmSpec};
//! let compute = kubecloud_kubevirt::KubeVirt::builder(client)
//!     .storage_class("linstor-rwx")
//!     .build();
//! let acme = Tenant::new("acme")?;
//! let spec = VmSpec { name: "web-1".into(), ..VmSpec::default() };
//! // No interface, no volume: nothing to attach (see `VmAttachments::resolve`).
//! let vm = compute.apply_vm(&acme, &spec, &VmAttachments::default()).await?;
//! # Ok(()) }
//! ```
//!
//! ## What a VM becomes
//!
//! | domain | Kubernetes |
//! |---|---|
//! | VM `m` of tenant `t` | `VirtualMachine` `m` (kubevirt.io/v1) in namespace `t`, labelled with the VM's labels, `app.kubernetes.io/{name,instance,component}` and the ownership labels; the applied spec (secret material masked) in annotation `kubecloud.io/spec` |
//! | run strategy | `spec.runStrategy` (`Always`, `Halted`, `Manual`, `RerunOnFailure`) |
//! | `Custom { cpu_cores, memory }` | `domain.cpu.sockets` (`cores: 1`, `threads: 1`: KubeVirt adds CPUs live by sockets), `domain.memory.guest` |
//! | `InstanceType { name }` | `spec.instancetype` (`VirtualMachineClusterInstancetype`, or the namespaced kind per [`KubeVirtBuilder::instancetype_kind`]) |
//! | boot disk, data volumes | disks `boot` (bootOrder 1), `data-<volume>` ([`translate::data_disk`]) per data volume, all `bus: virtio`, in that order |
//! | `BootDisk::Volume { v }`, data volumes | `persistentVolumeClaim` of the claim storage attached ([`kubecloud_core::VolumeAttachment::claim`]); data volumes `hotpluggable: true` (attached and detached live on a running VM, see the `hotplug` module) |
//! | the spec a running instance booted with | template annotation `kubecloud.io/booted-spec` (secret material masked), copied onto the instance: what `restart_required` is computed against |
//! | `BootDisk::ContainerImage` | `containerDisk` |
//! | `BootDisk::Import` | a CDI `DataVolume` (cdi.kubevirt.io/v1beta1) `<m>-boot` in `spec.dataVolumeTemplates`: http source, `storage` with size, access mode and volume mode as asked, the tier as StorageClass (else [`KubeVirtBuilder::storage_class`], else the cluster default); labelled as the tenant's volume `<m>-boot` so the storage backend sees it |
//! | cloud-init | `cloudInitNoCloud` with `secretRef` (and `networkDataSecretRef`) to Secret `<m>-cloudinit` (keys `userdata`, `networkdata`), never inline |
//! | SSH keys | `accessCredentials[].sshPublicKey` from Secret `<m>-ssh` (keys `key0`, `key1`...), propagated by `noCloud` or the QEMU guest agent ([`KubeVirtBuilder::ssh_propagation`]) |
//! | placement | `nodeSelector`; preferred nodes as preferred node affinity (weights 100, 90...); a spread group as preferred pod anti-affinity on label `kubecloud.io/spread-group` |
//! | migratable (no RWO import, no bridge on the pod network) | `evictionStrategy: LiveMigrate` |
//!
//! The VM's labels are copied onto `spec.template.metadata.labels`, so a Service selecting VM
//! labels selects the VM's virt-launcher pod. The Secrets carry the ownership labels and an
//! owner reference to the VirtualMachine, so they go with it.
//!
//! ### Interfaces
//!
//! The backend knows no network's API: each interface is attached as the network backend
//! answered ([`kubecloud_core::InterfaceAttachment`], handed to `apply_vm` in
//! [`kubecloud_core::VmAttachments`]):
//!
//! - the network: `pod: {}` for the pod network, `multus: {networkName: "<ns>/<name>"}` for a
//!   Multus network (KubeVirt builds the pod's network-selection annotation from it, with the
//!   interface's MAC);
//! - the binding (`masquerade: {}` or `bridge: {}`) and a fixed MAC as `macAddress`;
//! - the attachment's pod annotations on the VM's pod template (`spec.template.metadata`), so
//!   the network reads them on the VM's pod; the *live* ones (security groups, port security)
//!   are also kept in step on a running VM's instance and pods, and removed there when no
//!   longer wanted, since KubeVirt does not carry template changes to a running VM;
//! - a bridge binding on the pod network whose network keeps addresses over migration gets
//!   KubeVirt's `kubevirt.io/allow-pod-bridge-network-live-migration` annotation.
//!
//! A spec without interfaces gets one masquerade interface `default` on the pod network.
//!
//! ## Lifecycle
//!
//! Start, stop and restart go through KubeVirt's subresource API
//! (`PUT /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{vm}/start|stop|restart`),
//! as `virtctl` does; virt-api then changes the run strategy or the instance. A later
//! `apply_vm` of the same spec re-asserts the spec's run strategy. Live migration creates a
//! `VirtualMachineInstanceMigration`; a migration to a named node adds
//! `addedNodeSelector: {kubernetes.io/hostname: <node>}`. Before that,
//! [`kubecloud_core::Compute::migration_blockers`] lists every reason it cannot work: each
//! volume whose claim is not RWX (read from the claims), each bridge binding on the pod network,
//! a VM that does not run, a cluster with fewer than two nodes.
//!
//! Status is read from the VirtualMachine (`printableStatus`, `ready`, conditions), its
//! VirtualMachineInstance (phase, `nodeName`, `interfaces[].ipAddress|mac`, `migrationState`)
//! and the import DataVolume (phase, progress): `Provisioning` while the import runs, `Failed`
//! with condition `ImportFailed` when it fails, `Failed` with `Unschedulable` or KubeVirt's
//! error status, `Migrating` while a migration runs and `MigrationFailed` when one failed.
//! [`kubecloud_core::Compute::watch_vm`] merges three watches (VM, VMI, DataVolume), never
//! polls.
//!
//! Deletion deletes the VirtualMachine, the Secrets and the import DataVolume it created and its
//! migrations; it never touches an object without the tenant's ownership labels. The
//! VirtualMachine and the DataVolume are deleted with foreground propagation (as
//! `kubectl delete --cascade=foreground` does), and `delete_vm` returns when they are gone, which
//! the garbage collector allows only once the instance, its launcher pod and the import claim are
//! gone; then it waits for the claim's PersistentVolume too (the CSI driver deletes it after the
//! storage behind it). Waiting goes through the shared watches of those kinds, never polling.
//!
//! ## Crates chosen, and why
//! - `kube` (through `kubecloud-kube`): the client. KubeVirt and CDI objects are read and sent
//!   as the typed models of `kubecloud-models` (generated from the upstream CRDs by kopium;
//!   `Api<VirtualMachine>`, `Api<VirtualMachineInstance>`, `Api<DataVolume>`, the snapshot
//!   kinds): a field that does not decode is an error naming the object and the field. They are
//!   built as JSON first (the golden-tested translation, also the GitOps output) and converted
//!   into the model before they are sent; migrations, which are only written, stay dynamic.
//! - `http`: the request type for the subresource calls `kube` has no typed verb for.

mod apis;
mod capabilities;
pub mod catalog;
pub mod console;
mod deletion;
mod driver;
mod guest;
mod hotplug;
mod manifests;
mod nodes;
mod options;
pub mod plugin;
/// Typed models of the KubeVirt kinds (and CDI's `DataVolume`), generated from the upstream
/// CRDs (see `kubecloud-models`).
///
/// ```
/// let vm = kubecloud_kubevirt::models::VirtualMachine::new("web", Default::default());
/// assert_eq!(vm.metadata.name.as_deref(), Some("web"));
/// ```
pub mod models {
    pub use kubecloud_models::cdi::DataVolume;
    pub use kubecloud_models::kubevirt::*;
}
mod snapshots;
mod status;
pub mod translate;
mod watch;

pub use capabilities::capabilities;
pub use options::{InstancetypeKind, Options, SshPropagation};
pub use status::{Observed, vm_status};

use kubecloud_kube::{RetryPolicy, Writer};

/// The backend's name in errors.
pub const BACKEND: &str = "kubevirt";

/// The KubeVirt compute backend. Cheap to clone.
#[derive(Clone)]
pub struct KubeVirt {
    client: kube::Client,
    writer: Writer,
    options: Options,
    capabilities: kubecloud_core::ComputeCapabilities,
}

impl std::fmt::Debug for KubeVirt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeVirt")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KubeVirt {
    /// A builder on `client`.
    pub fn builder(client: kube::Client) -> KubeVirtBuilder {
        KubeVirtBuilder {
            client,
            options: Options::default(),
            retry: RetryPolicy::default(),
            capabilities: capabilities(),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }
}

/// Builds a [`KubeVirt`].
///
/// ```no_run
/// # fn demo(client: kube::Client) {
/// use kubecloud_kubevirt::{InstancetypeKind, KubeVirt};
/// let compute = KubeVirt::builder(client)
///     .storage_class("fast")
///     .instancetype_kind(InstancetypeKind::Namespaced)
///     .build();
/// # }
/// ```
#[must_use]
pub struct KubeVirtBuilder {
    client: kube::Client,
    options: Options,
    retry: RetryPolicy,
    capabilities: kubecloud_core::ComputeCapabilities,
}

impl KubeVirtBuilder {
    /// The StorageClass of imported boot volumes that name no tier.
    pub fn storage_class(mut self, class: impl Into<String>) -> Self {
        self.options.storage_class = Some(class.into());
        self
    }

    /// Which instance-type kind `VmResources::InstanceType` names.
    pub fn instancetype_kind(mut self, kind: InstancetypeKind) -> Self {
        self.options.instancetype_kind = kind;
        self
    }

    /// How SSH keys reach the guest (default NoCloud).
    pub fn ssh_propagation(mut self, propagation: SshPropagation) -> Self {
        self.options.ssh_propagation = propagation;
        self
    }

    /// How long [`kubecloud_core::Compute::restore_vm`] waits for KubeVirt to complete a
    /// restore (default 5 minutes).
    pub fn restore_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.options.restore_timeout = timeout;
        self
    }

    /// How long [`kubecloud_core::Compute::delete_vm`] waits, all told, until the VM and
    /// everything it owned are gone (default 5 minutes): one deadline for every wait of the
    /// deletion, not one each. The deadline of an operation the deletion is part of (a tenant's
    /// `destroy`) ends it earlier if it comes first.
    pub fn delete_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.options.delete_timeout = timeout;
        self
    }

    /// Retries of temporary failures (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Whether whole-VM snapshots are offered (default on). Turn off on a cluster without
    /// KubeVirt's snapshot API (`snapshot.kubevirt.io`) or the volume snapshot CRDs it relies on;
    /// the capability then reads `false` and the facade refuses snapshots before sending anything.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) {
    /// let compute = kubecloud_kubevirt::KubeVirt::builder(client).vm_snapshots(false).build();
    /// assert!(!kubecloud_core::Compute::capabilities(&compute).vm_snapshots);
    /// # }
    /// ```
    pub fn vm_snapshots(mut self, offered: bool) -> Self {
        self.capabilities.vm_snapshots = offered;
        self
    }

    /// Whether boot disks imported from http(s) URLs are offered (default on). Turn off on a
    /// cluster without CDI (`cdi.kubevirt.io`).
    pub fn http_import(mut self, offered: bool) -> Self {
        self.capabilities.http_import = offered;
        self
    }

    /// Whether the image catalog is offered (default on). Turn off on a cluster without CDI
    /// (`cdi.kubevirt.io`, whose `DataSource` and `DataImportCron` it uses).
    pub fn catalog(mut self, offered: bool) -> Self {
        self.capabilities.catalog = offered;
        self
    }

    /// The namespace the image catalog lives in (default
    /// [`kubecloud_core::DEFAULT_CATALOG_NAMESPACE`]); no tenant may be named so.
    pub fn catalog_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.options.catalog_namespace = namespace.into();
        self
    }

    /// The backend.
    pub fn build(self) -> KubeVirt {
        KubeVirt {
            client: self.client,
            writer: Writer::new(BACKEND).with_retry(self.retry),
            options: self.options,
            capabilities: self.capabilities,
        }
    }
}

/// The waits this backend keeps inside [`kubecloud_core::wait::send_only`] (an apply with
/// `wait: false`): each is what a later step cannot be sent without.
///
/// ```
/// use kubecloud_core::ResourceKind;
/// let kept = kubecloud_kubevirt::KEPT_WAITS;
/// assert!(kept.iter().any(|w| w.applies_to(ResourceKind::Vm, true)));
/// assert!(!kept.iter().any(|w| w.applies_to(ResourceKind::Vm, false)));
/// ```
pub const KEPT_WAITS: &[kubecloud_core::wait::KeptWait] =
    &[kubecloud_core::wait::KeptWait::deleting(
        kubecloud_core::ResourceKind::Vm,
        "the VM, its instance and its imported boot disk (claim and volume) are gone",
        "a later step may create a VM of the same name, or delete a volume the VM still holds",
    )];
