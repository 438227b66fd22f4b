//! Whole-VM snapshots as KubeVirt's `VirtualMachineSnapshot` and `VirtualMachineRestore` do
//! them: a snapshot records the VM's spec and volumes and becomes ready after one driver step; a
//! restore puts the recorded spec back into the stopped VM, which stays stopped.

use kubecloud_core::{
    Error, ResourceKind, Result, Tenant, VmPhase, VmSnapshot, VmSpec, validate_name,
};

use crate::driver::StepKind;
use crate::state::{State, find};

/// A VM snapshot, the spec it recorded and its epoch.
pub(crate) struct VmSnapshotRecord {
    pub(crate) snapshot: VmSnapshot,
    spec: VmSpec,
    epoch: u64,
}

impl State {
    /// Marks a VM snapshot ready (a driver step).
    pub(crate) fn advance_vm_snapshot(&mut self, tenant: &Tenant, name: &str, epoch: u64) {
        if let Some(record) = self
            .tenants
            .get_mut(tenant)
            .and_then(|ts| ts.vm_snapshots.get_mut(name))
            && record.epoch == epoch
        {
            record.snapshot.ready = true;
            record.snapshot.message = None;
        }
    }

    pub(crate) fn snapshot_vm(
        &mut self,
        tenant: &Tenant,
        vm: &str,
        name: &str,
    ) -> Result<VmSnapshot> {
        validate_name("vm", vm)?;
        validate_name("snapshot", name)?;
        let ts = self.tenant(tenant);
        let record = find(ts, |t| &t.vms, ResourceKind::Vm, vm)?;
        if ts.is_some_and(|t| t.vm_snapshots.contains_key(name)) {
            return Err(Error::already_exists(ResourceKind::VmSnapshot, name));
        }
        let spec = record.spec.clone();
        let snapshot = VmSnapshot {
            name: name.to_string(),
            vm: vm.to_string(),
            ready: false,
            volumes: spec.volumes(),
            message: Some("in progress".into()),
        };
        let epoch = self.queue.schedule(StepKind::VmSnapshot, tenant, name);
        self.tenant_mut(tenant).vm_snapshots.insert(
            name.to_string(),
            VmSnapshotRecord {
                snapshot: snapshot.clone(),
                spec,
                epoch,
            },
        );
        tracing::debug!(%tenant, vm, snapshot = name, "vm snapshot taken");
        Ok(snapshot)
    }

    pub(crate) fn list_vm_snapshots(&self, tenant: &Tenant, vm: Option<&str>) -> Vec<VmSnapshot> {
        self.tenant(tenant)
            .map(|ts| {
                ts.vm_snapshots
                    .values()
                    .filter(|r| vm.is_none_or(|vm| r.snapshot.vm == vm))
                    .map(|r| r.snapshot.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn restore_vm(&mut self, tenant: &Tenant, vm: &str, name: &str) -> Result<()> {
        validate_name("vm", vm)?;
        validate_name("snapshot", name)?;
        let ts = self.tenant(tenant);
        let current = find(ts, |t| &t.vms, ResourceKind::Vm, vm)?;
        let record = find(ts, |t| &t.vm_snapshots, ResourceKind::VmSnapshot, name)?;
        if record.snapshot.vm != vm {
            return Err(Error::conflict(
                ResourceKind::Vm,
                vm,
                format!("snapshot {name:?} is of vm {:?}", record.snapshot.vm),
            ));
        }
        let phase = current.status.phase;
        if phase != VmPhase::Stopped {
            return Err(Error::conflict(
                ResourceKind::Vm,
                vm,
                format!("the VM is {phase}; stop it before restoring it"),
            ));
        }
        let spec = record.spec.clone();
        // The VM stays stopped: make the run strategy of the restored spec the current one first,
        // so that applying it does not start the VM.
        if let Some(current) = self.tenant_mut(tenant).vms.get_mut(vm) {
            current.spec.run_strategy = spec.run_strategy;
        }
        self.apply_vm(tenant, &spec)?;
        tracing::debug!(%tenant, vm, snapshot = name, "vm restored");
        Ok(())
    }

    pub(crate) fn delete_vm_snapshot(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        self.tenants
            .get_mut(tenant)
            .and_then(|ts| ts.vm_snapshots.remove(name))
            .map(|_| ())
            .ok_or_else(|| Error::not_found(ResourceKind::VmSnapshot, name))
    }
}
