//! Whole-VM snapshots and restore: `VirtualMachineSnapshot` and `VirtualMachineRestore`
//! (snapshot.kubevirt.io/v1beta1), sent through `kubecloud-kube`, waited on through a watch.

use kube::api::{DynamicObject, ListParams};
use kubecloud_core::wait::Check;
use kubecloud_core::{Error, ResourceKind, Result, Tenant, VmPhase, VmSnapshot, validate_name};
use kubecloud_kube::{ensure_owned, from_kube, tenant_namespace, tenant_selector};
use serde_json::Value;

use crate::driver::{stored_spec, to_value};
use crate::translate::{self, VM_LABEL, VOLUMES_ANNOTATION};
use crate::{BACKEND, KubeVirt, apis};

/// The domain view of a `VirtualMachineSnapshot`.
pub(crate) fn vm_snapshot_of(object: &DynamicObject) -> VmSnapshot {
    let meta = &object.metadata;
    let value = to_value(object);
    let status = &value["status"];
    let ready = status["readyToUse"] == true;
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
        let failure = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Failure" && c["status"] == "True")
            .and_then(|c| c["message"].as_str());
        Some(
            status["error"]["message"]
                .as_str()
                .or(failure)
                .map(String::from)
                .unwrap_or_else(|| status["phase"].as_str().unwrap_or("Pending").to_lowercase()),
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
fn restore_done(restore: Option<&DynamicObject>) -> Check {
    let Some(restore) = restore else {
        return Check::Failed("the VirtualMachineRestore was deleted".into());
    };
    let value: Value = to_value(restore);
    let status = &value["status"];
    if status["complete"] == true {
        return Check::Met;
    }
    match status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Failure" && c["status"] == "True")
    {
        Some(c) => Check::Failed(
            c["message"]
                .as_str()
                .unwrap_or("the restore failed")
                .to_string(),
        ),
        None => Check::Pending,
    }
}

impl KubeVirt {
    /// The tenant's `VirtualMachineSnapshot` `name`, checked for ownership.
    async fn snapshot_object(&self, tenant: &Tenant, name: &str) -> Result<DynamicObject> {
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
        let spec = stored_spec(&object, vm)?;
        let api = apis::vm_snapshots(&self.client, &tenant_namespace(tenant));
        if self
            .writer
            .get_opt(&api, name, ResourceKind::VmSnapshot, name)
            .await?
            .is_some()
        {
            return Err(Error::already_exists(ResourceKind::VmSnapshot, name));
        }
        let desired: DynamicObject =
            serde_json::from_value(translate::vm_snapshot(tenant, vm, name, &spec.volumes()))
                .map_err(|e| Error::backend(BACKEND, "building the snapshot", false, e))?;
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
            .retry()
            .run("list vm snapshots", || async {
                api.list(&params)
                    .await
                    .map_err(|e| from_kube(BACKEND, ResourceKind::VmSnapshot, "", e))
            })
            .await?;
        let mut out: Vec<VmSnapshot> = list.items.iter().map(vm_snapshot_of).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(crate) async fn restore_from(&self, tenant: &Tenant, vm: &str, name: &str) -> Result<()> {
        validate_name("vm", vm)?;
        validate_name("snapshot", name)?;
        let object = self.vm_object(tenant, vm).await?;
        let snapshot = vm_snapshot_of(&self.snapshot_object(tenant, name).await?);
        if snapshot.vm != vm {
            return Err(Error::conflict(
                ResourceKind::Vm,
                vm,
                format!("snapshot {name:?} is of vm {:?}", snapshot.vm),
            ));
        }
        let current = self.read_vm(tenant, &object, vm).await?;
        let phase = current.status.phase;
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
        let desired: DynamicObject =
            serde_json::from_value(translate::vm_restore(tenant, vm, name, &restore))
                .map_err(|e| Error::backend(BACKEND, "building the restore", false, e))?;
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
