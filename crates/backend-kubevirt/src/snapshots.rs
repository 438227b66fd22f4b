//! Whole-VM snapshots and restore: `VirtualMachineSnapshot` and `VirtualMachineRestore`
//! (snapshot.kubevirt.io/v1beta1), sent through `kubecloud-kube`, waited on through a watch.

use kube::api::ListParams;
use kubecloud_core::wait::Check;
use kubecloud_core::{Error, ResourceKind, Result, Tenant, VmPhase, VmSnapshot, validate_name};
use kubecloud_kube::{convert, ensure_owned, tenant_namespace, tenant_selector};
use kubecloud_models::kubevirt::{VirtualMachineRestore, VirtualMachineSnapshot};

use crate::driver::stored_spec;
use crate::translate::{self, VM_LABEL, VOLUMES_ANNOTATION};
use crate::{BACKEND, KubeVirt, apis};

/// The domain view of a `VirtualMachineSnapshot`.
pub(crate) fn vm_snapshot_of(object: &VirtualMachineSnapshot) -> VmSnapshot {
    let meta = &object.metadata;
    let status = object.status.as_ref();
    let ready = status.and_then(|s| s.ready_to_use) == Some(true);
    let volumes = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(VOLUMES_ANNOTATION))
        .map(|v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let message = if ready {
        None
    } else {
        let failure = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.r#type == "Failure" && c.status == "True")
            .and_then(|c| c.message.as_deref());
        Some(
            status
                .and_then(|s| s.error.as_ref())
                .and_then(|e| e.message.as_deref())
                .or(failure)
                .map(String::from)
                .unwrap_or_else(|| {
                    status
                        .and_then(|s| s.phase.as_deref())
                        .unwrap_or("Pending")
                        .to_lowercase()
                }),
        )
    };
    VmSnapshot {
        name: meta.name.clone().unwrap_or_default(),
        vm: meta
            .labels
            .as_ref()
            .and_then(|l| l.get(VM_LABEL))
            .cloned()
            .unwrap_or_default(),
        ready,
        volumes,
        message,
    }
}

/// Whether a `VirtualMachineRestore` is done (or failed for good).
fn restore_done(restore: Option<&VirtualMachineRestore>) -> Check {
    let Some(restore) = restore else {
        return Check::Failed("the VirtualMachineRestore was deleted".into());
    };
    let status = restore.status.as_ref();
    if status.and_then(|s| s.complete) == Some(true) {
        return Check::Met;
    }
    match status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.r#type == "Failure" && c.status == "True")
    {
        Some(c) => Check::Failed(
            c.message
                .as_deref()
                .unwrap_or("the restore failed")
                .to_string(),
        ),
        None => Check::Pending,
    }
}

impl KubeVirt {
    /// The tenant's `VirtualMachineSnapshot` `name`, checked for ownership.
    async fn snapshot_object(&self, tenant: &Tenant, name: &str) -> Result<VirtualMachineSnapshot> {
        let api = apis::vm_snapshots(&self.client, &tenant_namespace(tenant));
        let found = self
            .writer
            .get_opt(&api, name, ResourceKind::VmSnapshot, name)
            .await?
            .ok_or_else(|| Error::not_found(ResourceKind::VmSnapshot, name))?;
        ensure_owned(&found.metadata, tenant, ResourceKind::VmSnapshot, name)?;
        Ok(found)
    }

    pub(crate) async fn take_vm_snapshot(
        &self,
        tenant: &Tenant,
        vm: &str,
        name: &str,
    ) -> Result<VmSnapshot> {
        validate_name("vm", vm)?;
        validate_name("snapshot", name)?;
        let object = self.vm_object(tenant, vm).await?;
        let spec = stored_spec(&object.metadata, vm)?;
        let api = apis::vm_snapshots(&self.client, &tenant_namespace(tenant));
        if self
            .writer
            .get_opt(&api, name, ResourceKind::VmSnapshot, name)
            .await?
            .is_some()
        {
            return Err(Error::already_exists(ResourceKind::VmSnapshot, name));
        }
        let desired: VirtualMachineSnapshot = convert(
            &translate::vm_snapshot(tenant, vm, name, &spec.volumes()),
            BACKEND,
            ResourceKind::VmSnapshot,
            name,
        )?;
        let applied = self
            .writer
            .apply(&api, &desired, ResourceKind::VmSnapshot, name)
            .await?;
        tracing::debug!(%tenant, vm, snapshot = name, "vm snapshot requested");
        Ok(vm_snapshot_of(&applied))
    }

    pub(crate) async fn vm_snapshots(
        &self,
        tenant: &Tenant,
        vm: Option<&str>,
    ) -> Result<Vec<VmSnapshot>> {
        let mut selector = tenant_selector(tenant);
        if let Some(vm) = vm {
            validate_name("vm", vm)?;
            selector.push_str(&format!(",{VM_LABEL}={vm}"));
        }
        let api = apis::vm_snapshots(&self.client, &tenant_namespace(tenant));
        let params = ListParams::default().labels(&selector);
        let list = self
            .writer
            .list(&api, &params, ResourceKind::VmSnapshot, "")
            .await?;
        let mut out: Vec<VmSnapshot> = list.iter().map(vm_snapshot_of).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(crate) async fn restore_from(&self, tenant: &Tenant, vm: &str, name: &str) -> Result<()> {
        validate_name("vm", vm)?;
        validate_name("snapshot", name)?;
        let mut object = self.vm_object(tenant, vm).await?;
        let snapshot = vm_snapshot_of(&self.snapshot_object(tenant, name).await?);
        if snapshot.vm != vm {
            return Err(Error::conflict(
                ResourceKind::Vm,
                vm,
                format!("snapshot {name:?} is of vm {:?}", snapshot.vm),
            ));
        }
        let mut phase = self.read_vm(tenant, &object, vm).await?.status.phase;
        if phase == VmPhase::Stopping {
            // On its way to Stopped (the instance is still terminating: a read right after a
            // stop can see it): wait on the VM's watch rather than refuse.
            use kubecloud_core::Compute;
            let stopped = kubecloud_core::wait::until(
                self.watch_vm(tenant, vm).await?,
                kubecloud_core::wait::vm_phase(VmPhase::Stopped),
                self.options.restore_timeout,
            )
            .await?;
            phase = stopped.status.phase;
            // The restore is named after the VM's revision: the one it stopped at.
            object = self.vm_object(tenant, vm).await?;
        }
        if phase != VmPhase::Stopped {
            return Err(Error::conflict(
                ResourceKind::Vm,
                vm,
                format!("the VM is {phase}; stop it before restoring it"),
            ));
        }
        // One restore per VM state: a retried call names the same object.
        let revision = object.metadata.resource_version.clone().unwrap_or_default();
        let restore = format!("{name}-restore-{revision}");
        let desired: VirtualMachineRestore = convert(
            &translate::vm_restore(tenant, vm, name, &restore),
            BACKEND,
            ResourceKind::Vm,
            vm,
        )?;
        let api = apis::vm_restores(&self.client, &tenant_namespace(tenant));
        self.writer
            .apply(&api, &desired, ResourceKind::Vm, vm)
            .await?;
        tracing::debug!(%tenant, vm, snapshot = name, restore, "vm restore requested");
        self.writer
            .wait_for(
                &api,
                &restore,
                ResourceKind::Vm,
                vm,
                self.options.restore_timeout,
                restore_done,
            )
            .await?;
        // The restore is a record of a finished operation; it has nothing left to do.
        self.writer
            .delete(&api, &restore, ResourceKind::Vm, vm)
            .await?;
        // The controller rewrote the VM before it marked the restore complete: the wait above
        // is a barrier for later reads of the VM (`Writer::current`, the first state of
        // `watch_vm`), which reflect the restored spec.
        tracing::debug!(%tenant, vm, snapshot = name, "vm restored");
        Ok(())
    }

    pub(crate) async fn drop_vm_snapshot(&self, tenant: &Tenant, name: &str) -> Result<()> {
        validate_name("snapshot", name)?;
        self.snapshot_object(tenant, name).await?;
        let api = apis::vm_snapshots(&self.client, &tenant_namespace(tenant));
        self.writer
            .delete(&api, name, ResourceKind::VmSnapshot, name)
            .await?;
        Ok(())
    }
}
