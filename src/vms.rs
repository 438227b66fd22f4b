//! [`TenantVms`]: a tenant's virtual machines.

use std::time::Duration;

use futures::stream::BoxStream;
use kubecloud_core::wait::{self, Condition};
use kubecloud_core::{
    BootDisk, Compute, ConsoleKind, ConsoleStream, Labels, Migration, MigrationBlocker,
    MigrationTarget, PowerAction, Result, Tenant, Vm, VmAttachments, VmResources, VmSnapshot,
    VmSpec, validate_labels, validate_name,
};

use crate::cloud::Cloud;
use crate::tenant::{check_name, require};

/// A tenant's virtual machines (from [`crate::TenantHandle::vms`]).
///
/// ```
/// use std::time::Duration;
/// use kubecloud::{Cloud, VmSpec};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kubecloud::Result<()> {
/// let acme = Cloud::in_memory().tenant("acme")?;
/// acme.vms().apply(&VmSpec { name: "box".into(), ..VmSpec::default() }).await?;
/// let vm = acme.vms().wait_running("box", Duration::from_secs(10)).await?;
/// assert!(vm.status.node.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TenantVms<'a> {
    pub(crate) backend: &'a dyn Compute,
    pub(crate) cloud: &'a Cloud,
    pub(crate) tenant: &'a Tenant,
}

impl<'a> TenantVms<'a> {
    pub(crate) fn new(cloud: &'a Cloud, tenant: &'a Tenant) -> Self {
        Self {
            backend: &*cloud.compute,
            cloud,
            tenant,
        }
    }

    fn require(&self, operation: &str, capability: &str, has: bool) -> Result<()> {
        require(self.backend.backend_name(), operation, capability, has)
    }

    /// Creates the VM or updates it to `spec` (idempotent). Its interfaces and volumes are
    /// attached as the network and storage backends answer ([`VmAttachments::resolve`]), which
    /// refuse references the tenant does not have before the compute backend is called.
    pub async fn apply(&self, spec: &VmSpec) -> Result<Vm> {
        spec.validate()?;
        let caps = self.backend.capabilities();
        let op = "vms.apply";
        match &spec.resources {
            VmResources::InstanceType { .. } => {
                self.require(op, "instance_types", caps.instance_types)?
            }
            VmResources::Custom { .. } => {}
        }
        match &spec.boot_disk {
            BootDisk::ContainerImage { .. } => {
                self.require(op, "container_disks", caps.container_disks)?
            }
            BootDisk::Import {
                url, size, mode, ..
            } => {
                self.require(op, "http_import", caps.http_import)?;
                let storage = &self.cloud.storage;
                storage.capabilities().check_size(
                    "bootDisk.size",
                    *size,
                    *mode,
                    storage.backend_name(),
                )?;
                crate::import::check_import_urls(
                    &self.cloud.import_policy,
                    &[("bootDisk.url".to_string(), url.as_str())],
                )
                .await?;
            }
            BootDisk::Catalog {
                image, size, mode, ..
            } => {
                self.require(op, "catalog", caps.catalog)?;
                if let Some(size) = size {
                    let storage = &self.cloud.storage;
                    storage.capabilities().check_size(
                        "bootDisk.size",
                        *size,
                        *mode,
                        storage.backend_name(),
                    )?;
                }
                // Unknown, not ready or too small: refused naming the field, nothing sent. A
                // VM whose clone exists keeps it whatever the image does now.
                let exists = match self.backend.get_vm(self.tenant, &spec.name).await {
                    Ok(_) => true,
                    Err(e) if e.is_not_found() => false,
                    Err(e) => return Err(e),
                };
                if !exists {
                    let found = match self.backend.get_catalog_image(image).await {
                        Ok(found) => Some(found),
                        Err(e) if e.is_not_found() => None,
                        Err(e) => return Err(e),
                    };
                    kubecloud_core::catalog::check_boot_image(
                        "bootDisk.image",
                        "bootDisk.size",
                        image,
                        *size,
                        found.as_ref(),
                    )?;
                }
            }
            BootDisk::Volume { .. } => {}
        }
        if spec.cloud_init.is_some() {
            self.require(op, "cloud_init", caps.cloud_init)?;
        }
        if spec
            .interfaces
            .iter()
            .any(|i| i.fixed_ip.is_some() || i.mac.is_some())
        {
            self.require(op, "fixed_addresses", caps.fixed_addresses)?;
        }
        let attachments = VmAttachments::resolve(
            self.tenant,
            spec,
            Some(&*self.cloud.network),
            Some(&*self.cloud.storage),
        )
        .await?;
        self.check_quota(spec).await?;
        self.backend.apply_vm(self.tenant, spec, &attachments).await
    }

    /// What applying `spec` takes on top of what its VM (if it exists) holds, checked
    /// against the tenant's quota.
    async fn check_quota(&self, spec: &VmSpec) -> Result<()> {
        if crate::quota::limits(self.cloud, self.tenant)
            .await?
            .is_unlimited()
        {
            return Ok(());
        }
        let existing = self
            .backend
            .list_vm_specs(self.tenant, &kubecloud_core::Labels::new())
            .await?
            .into_iter()
            .find(|v| v.name == spec.name);
        crate::quota::check_tiered(self.cloud, self.tenant, |default| {
            let new = kubecloud_core::Consumption::of_vm(spec, default);
            match &existing {
                Some(old) => new.beyond(&kubecloud_core::Consumption::of_vm(old, default)),
                None => new,
            }
        })
        .await
    }

    /// The VM named `name`.
    pub async fn get(&self, name: &str) -> Result<Vm> {
        check_name("name", name)?;
        self.backend.get_vm(self.tenant, name).await
    }

    /// The tenant's VMs with all `selector` labels (all for an empty selector).
    pub async fn list(&self, selector: &Labels) -> Result<Vec<Vm>> {
        validate_labels("selector", selector)?;
        self.backend.list_vms(self.tenant, selector).await
    }

    /// The specs of the tenant's VMs with all `selector` labels, without their state (cheaper
    /// than [`TenantVms::list`] where the backend keeps them apart; what `plan` reads).
    pub async fn list_specs(&self, selector: &Labels) -> Result<Vec<VmSpec>> {
        validate_labels("selector", selector)?;
        self.backend.list_vm_specs(self.tenant, selector).await
    }

    /// Starts the VM.
    pub async fn start(&self, name: &str) -> Result<Vm> {
        self.power(name, PowerAction::Start).await
    }

    /// Stops the VM.
    pub async fn stop(&self, name: &str) -> Result<Vm> {
        self.power(name, PowerAction::Stop).await
    }

    /// Restarts the VM.
    pub async fn restart(&self, name: &str) -> Result<Vm> {
        self.power(name, PowerAction::Restart).await
    }

    async fn power(&self, name: &str, action: PowerAction) -> Result<Vm> {
        check_name("name", name)?;
        self.backend.power(self.tenant, name, action).await
    }

    /// Every reason the VM cannot live-migrate now (empty when it can).
    pub async fn migration_blockers(&self, name: &str) -> Result<Vec<MigrationBlocker>> {
        check_name("name", name)?;
        self.require(
            "vms.migration_blockers",
            "live_migration",
            self.backend.capabilities().live_migration,
        )?;
        self.backend.migration_blockers(self.tenant, name).await
    }

    /// Live-migrates the VM (to any node, or a named one); IPs and MACs are kept.
    pub async fn migrate(&self, name: &str, target: &MigrationTarget) -> Result<Migration> {
        check_name("name", name)?;
        let caps = self.backend.capabilities();
        self.require("vms.migrate", "live_migration", caps.live_migration)?;
        if let MigrationTarget::Node(node) = target {
            validate_name("target", node)?;
            self.require("vms.migrate", "migrate_to_node", caps.migrate_to_node)?;
        }
        self.backend.migrate(self.tenant, name, target).await
    }

    /// Deletes the VM and what it created for itself.
    pub async fn delete(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        self.backend.delete_vm(self.tenant, name).await
    }

    fn require_snapshots(&self, operation: &str) -> Result<()> {
        self.require(
            operation,
            "vm_snapshots",
            self.backend.capabilities().vm_snapshots,
        )
    }

    /// Takes snapshot `snapshot` of the whole VM `name` (its spec and volumes), running or
    /// stopped; it becomes ready when complete.
    pub async fn snapshot(&self, name: &str, snapshot: &str) -> Result<VmSnapshot> {
        check_name("name", name)?;
        check_name("snapshot", snapshot)?;
        self.require_snapshots("vms.snapshot")?;
        self.backend.snapshot_vm(self.tenant, name, snapshot).await
    }

    /// The tenant's VM snapshots, of VM `name` or of all VMs.
    pub async fn snapshots(&self, name: Option<&str>) -> Result<Vec<VmSnapshot>> {
        if let Some(name) = name {
            check_name("name", name)?;
        }
        self.require_snapshots("vms.snapshots")?;
        self.backend.list_vm_snapshots(self.tenant, name).await
    }

    /// Restores the stopped VM `name` in place from its snapshot `snapshot` (spec and volumes);
    /// it stays stopped. Returns once the restore is complete.
    pub async fn restore(&self, name: &str, snapshot: &str) -> Result<()> {
        check_name("name", name)?;
        check_name("snapshot", snapshot)?;
        self.require_snapshots("vms.restore")?;
        self.backend.restore_vm(self.tenant, name, snapshot).await
    }

    /// Deletes the VM snapshot `snapshot`.
    pub async fn delete_snapshot(&self, snapshot: &str) -> Result<()> {
        check_name("snapshot", snapshot)?;
        self.require_snapshots("vms.delete_snapshot")?;
        self.backend.delete_vm_snapshot(self.tenant, snapshot).await
    }

    /// The running VM's serial console, connected: read what the guest prints, write what it
    /// should read as typed (see [`ConsoleStream`]). Refused with [`kubecloud_core::Error::Unsupported`]
    /// by a backend without the `serial_console` capability, before anything is sent; a VM the
    /// tenant does not have is not found, one that does not run a conflict.
    ///
    /// ```no_run
    /// # async fn demo(cloud: kubecloud::Cloud) -> Result<(), Box<dyn std::error::Error>> {
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// let mut console = cloud.tenant("acme")?.vms().console("web").await?;
    /// console.write_all(b"\r").await?; // the guest prints its login prompt again
    /// let mut buf = [0u8; 256];
    /// let n = console.read(&mut buf).await?;
    /// println!("{}", String::from_utf8_lossy(&buf[..n]));
    /// # Ok(()) }
    /// ```
    pub async fn console(&self, name: &str) -> Result<ConsoleStream> {
        self.open(name, ConsoleKind::Serial).await
    }

    /// The running VM's VNC display, connected: RFB 3.8 from the server's `RFB 003.008\n`
    /// on, for any VNC client library. Needs the `vnc` capability; errors as
    /// [`TenantVms::console`]'s.
    pub async fn vnc(&self, name: &str) -> Result<ConsoleStream> {
        self.open(name, ConsoleKind::Vnc).await
    }

    async fn open(&self, name: &str, kind: ConsoleKind) -> Result<ConsoleStream> {
        check_name("name", name)?;
        let caps = self.backend.capabilities();
        let has = match kind {
            ConsoleKind::Serial => caps.serial_console,
            ConsoleKind::Vnc => caps.vnc,
        };
        self.require(kind.operation(), kind.capability(), has)?;
        match kind {
            ConsoleKind::Serial => self.backend.console(self.tenant, name).await,
            ConsoleKind::Vnc => self.backend.vnc(self.tenant, name).await,
        }
    }

    /// The VM's state now and at every change.
    pub async fn watch(&self, name: &str) -> Result<BoxStream<'static, Result<Vm>>> {
        check_name("name", name)?;
        self.backend.watch_vm(self.tenant, name).await
    }

    /// Waits (on a watch) until `condition` holds for the VM, failing fast on terminal failure.
    /// The whole wait, opening the watch included, ends by `timeout` (or by the
    /// [`Deadline`](wait::Deadline) of the operation it is part of, if earlier) with
    /// [`Error::Timeout`](crate::Error::Timeout) naming the VM, the condition and its last state
    /// seen.
    pub async fn wait(
        &self,
        name: &str,
        condition: impl Condition<Vm>,
        timeout: Duration,
    ) -> Result<Vm> {
        wait::named(name, self.watch(name), condition, timeout).await
    }

    /// Waits until the VM runs.
    pub async fn wait_running(&self, name: &str, timeout: Duration) -> Result<Vm> {
        self.wait(name, wait::vm_running(), timeout).await
    }
}
