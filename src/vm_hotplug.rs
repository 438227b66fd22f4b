//! Hot-plug conveniences of [`TenantVms`]: attach or detach a data volume, plug or unplug an
//! interface of a running VM. Each reads the VM's spec, changes it and applies it
//! ([`TenantVms::apply`]): the spec stays the one description of the VM (see
//! [`kubecloud_core::hotplug`]), and a tenant spec applied later agrees with what was plugged
//! only if it says the same.

use std::time::Duration;

use kubecloud_core::wait;
use kubecloud_core::{AccessMode, Error, NetworkInterface, ResourceKind, Result, Vm, VmPhase};

use crate::tenant::check_name;
use crate::vms::TenantVms;

impl TenantVms<'_> {
    /// The VM `name`, which must run (hot-plug changes a running VM; apply a new spec to change
    /// a stopped one): [`Error::Conflict`] otherwise.
    async fn running(&self, name: &str, operation: &str) -> Result<Vm> {
        check_name("name", name)?;
        let vm = self.backend.get_vm(self.tenant, name).await?;
        if !matches!(vm.status.phase, VmPhase::Running | VmPhase::Migrating) {
            return Err(Error::conflict(
                ResourceKind::Vm,
                name,
                format!(
                    "the VM is {}; {operation} changes a running VM (apply a new spec to change a stopped one)",
                    vm.status.phase
                ),
            ));
        }
        Ok(vm)
    }

    /// Attaches the tenant's volume `volume` to the running VM `name` as a data volume, live,
    /// and waits (on a watch, at most `timeout`) until the guest has it
    /// ([`kubecloud_core::VmStatus::attached_volumes`]). Nothing changes if it is attached.
    /// Refused before anything is sent: without the backend's `hotplug_volumes`
    /// ([`Error::Unsupported`]), a VM that does not run or a read-write-once volume another VM
    /// uses ([`Error::Conflict`]), a volume the tenant does not have ([`Error::NotFound`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kubecloud::{ByteSize, Cloud, VmSpec, VolumeSpec};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kubecloud::Result<()> {
    /// let acme = Cloud::in_memory().tenant("acme")?;
    /// acme.volumes().create(&VolumeSpec::blank("logs", ByteSize::gib(1))).await?;
    /// acme.vms().apply(&VmSpec { name: "box".into(), ..VmSpec::default() }).await?;
    /// acme.vms().wait_running("box", Duration::from_secs(10)).await?;
    /// let vm = acme.vms().attach_volume("box", "logs", Duration::from_secs(10)).await?;
    /// assert_eq!(vm.status.attached_volumes, vec!["logs".to_string()]);
    /// # Ok(()) }
    /// ```
    pub async fn attach_volume(&self, name: &str, volume: &str, timeout: Duration) -> Result<Vm> {
        check_name("volume", volume)?;
        let op = "vms.attach_volume";
        self.require_hotplug(op, "hotplug_volumes", |c| c.hotplug_volumes)?;
        let vm = self.running(name, op).await?;
        let mut spec = vm.spec.clone();
        if !spec.volumes().iter().any(|v| v == volume) {
            let found = self.cloud.storage.get_volume(self.tenant, volume).await?;
            if found.spec.access == AccessMode::ReadWriteOnce {
                let users = self.backend.volume_users(self.tenant).await?;
                if let Some(other) = users
                    .get(volume)
                    .into_iter()
                    .flatten()
                    .find(|u| u.as_str() != name)
                {
                    return Err(Error::conflict(
                        ResourceKind::Volume,
                        volume,
                        format!("the volume is read-write-once and already used by vm {other:?}"),
                    ));
                }
            }
            spec.data_volumes.push(volume.to_string());
            self.apply(&spec).await?;
        }
        self.wait(
            name,
            wait::vm_volumes_attached(vec![volume.to_string()], Vec::new()),
            timeout,
        )
        .await
    }

    /// Detaches data volume `volume` from the running VM `name`, live, and waits (at most
    /// `timeout`) until the guest no longer has it. [`Error::NotFound`] (kind `Volume`) if the
    /// VM has no such data volume; refused like [`TenantVms::attach_volume`] otherwise.
    pub async fn detach_volume(&self, name: &str, volume: &str, timeout: Duration) -> Result<Vm> {
        check_name("volume", volume)?;
        let op = "vms.detach_volume";
        self.require_hotplug(op, "hotplug_volumes", |c| c.hotplug_volumes)?;
        let vm = self.running(name, op).await?;
        let mut spec = vm.spec.clone();
        if !spec.data_volumes.iter().any(|v| v == volume) {
            return Err(Error::not_found(ResourceKind::Volume, volume));
        }
        spec.data_volumes.retain(|v| v != volume);
        self.apply(&spec).await?;
        self.wait(
            name,
            wait::vm_volumes_attached(Vec::new(), vec![volume.to_string()]),
            timeout,
        )
        .await
    }

    /// Plugs interface `interface` (on a subnet) into the running VM `name`, live; the other
    /// interfaces keep their addresses. Refused without the backend's `hotplug_interfaces`
    /// ([`Error::Unsupported`]), on a VM that does not run or already has an interface of that
    /// name ([`Error::Conflict`]), or for a pod-network interface ([`Error::InvalidInput`]
    /// naming `interface.attachment`).
    pub async fn add_interface(&self, name: &str, interface: &NetworkInterface) -> Result<Vm> {
        let op = "vms.add_interface";
        self.require_hotplug(op, "hotplug_interfaces", |c| c.hotplug_interfaces)?;
        if interface.subnet().is_none() {
            return Err(Error::invalid(
                "interface.attachment",
                "only an interface on a subnet can be plugged into a running VM",
            ));
        }
        let vm = self.running(name, op).await?;
        let mut spec = vm.spec.clone();
        if spec.interfaces.iter().any(|i| i.name == interface.name) {
            return Err(Error::conflict(
                ResourceKind::Vm,
                name,
                format!("the VM already has an interface {:?}", interface.name),
            ));
        }
        spec.interfaces.push(interface.clone());
        self.apply(&spec).await
    }

    /// Unplugs interface `interface` from the running VM `name`, live. [`Error::NotFound`]
    /// (kind `Vm`, naming the interface) if it has none of that name; refused like
    /// [`TenantVms::add_interface`] otherwise.
    pub async fn remove_interface(&self, name: &str, interface: &str) -> Result<Vm> {
        check_name("interface", interface)?;
        let op = "vms.remove_interface";
        self.require_hotplug(op, "hotplug_interfaces", |c| c.hotplug_interfaces)?;
        let vm = self.running(name, op).await?;
        let mut spec = vm.spec.clone();
        if !spec.interfaces.iter().any(|i| i.name == interface) {
            return Err(Error::not_found(
                ResourceKind::Vm,
                format!("{name}/interfaces/{interface}"),
            ));
        }
        spec.interfaces.retain(|i| i.name != interface);
        self.apply(&spec).await
    }

    fn require_hotplug(
        &self,
        operation: &str,
        capability: &str,
        has: impl Fn(&kubecloud_core::ComputeCapabilities) -> bool,
    ) -> Result<()> {
        crate::tenant::require(
            self.backend.backend_name(),
            operation,
            capability,
            has(&self.backend.capabilities()),
        )
    }
}
