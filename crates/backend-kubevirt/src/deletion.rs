//! Deleting a VM's import DataVolume and waiting until it, its claim and the claim's
//! PersistentVolume are gone (see the crate docs: deletion completes before `delete_vm` returns).

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;
use kubecloud_core::{BootDisk, ResourceKind, Result, Tenant};
use kubecloud_kube::is_owned;
use kubecloud_models::cdi::DataVolume;

use crate::{KubeVirt, apis};

/// An import DataVolume being deleted: what to wait for.
pub(crate) struct Import {
    api: Api<DataVolume>,
    name: String,
    uid: Option<String>,
    /// The PersistentVolume its claim was bound to, if any.
    volume: Option<String>,
}

impl KubeVirt {
    /// Deletes the VM's import DataVolume (if it exists and is the tenant's) with foreground
    /// propagation, so it stays until CDI's claim is gone; remembers the claim's volume first.
    pub(crate) async fn delete_import(&self, tenant: &Tenant, vm: &str) -> Result<Option<Import>> {
        let ns = kubecloud_kube::tenant_namespace(tenant);
        let api = apis::data_volumes(&self.client, &ns);
        let name = BootDisk::import_volume_name(vm);
        let Some(found) = self
            .writer
            .get_opt(&api, &name, ResourceKind::Vm, vm)
            .await?
        else {
            return Ok(None);
        };
        if !is_owned(&found.metadata, tenant) {
            return Ok(None);
        }
        // CDI names the claim after the DataVolume.
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let volume = self
            .writer
            .get_opt(&claims, &name, ResourceKind::Vm, vm)
            .await?
            .and_then(|c| c.spec.and_then(|s| s.volume_name))
            .filter(|v| !v.is_empty());
        let uid = self
            .writer
            .delete_foreground(&api, &name, ResourceKind::Vm, vm)
            .await?;
        Ok(Some(Import {
            api,
            name,
            uid,
            volume,
        }))
    }

    /// Waits until the import DataVolume is gone (its claim with it), then its volume.
    pub(crate) async fn wait_import_gone(
        &self,
        vm: &str,
        import: Import,
        timeout: Duration,
    ) -> Result<()> {
        self.writer
            .wait_gone(
                &import.api,
                &import.name,
                import.uid.as_deref(),
                ResourceKind::Vm,
                vm,
                timeout,
            )
            .await?;
        if let Some(volume) = import.volume {
            let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
            self.writer
                .wait_gone(&volumes, &volume, None, ResourceKind::Vm, vm, timeout)
                .await?;
        }
        Ok(())
    }
}
