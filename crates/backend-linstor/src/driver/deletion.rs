//! Deleting a volume and waiting until it is gone: its DataVolume (for an import), its claim,
//! and the claim's PersistentVolume, which the CSI driver deletes only after it has deleted the
//! LINSTOR resource behind it. So when `delete_volume` returns, the storage is released, except
//! after a forced delete, which returns once the volume is marked for deletion (a claim a pod
//! uses stays until the pod is gone, as kube-controller-manager's PVC protection keeps it).

use std::time::Duration;

use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::Api;
use kubecloud_core::{ResourceKind, Result, Tenant, wait};
use kubecloud_kube::names;

use super::Owned;
use crate::builder::Linstor;

impl Linstor {
    /// Deletes what `owned` found of the volume `name` (foreground propagation) and waits,
    /// through the shared watches of their kinds, until the DataVolume, the claim and its
    /// PersistentVolume are gone: all of it within one `delete_timeout` (or the deadline of the
    /// operation it is part of, if earlier), not a timeout per object. A claim a pod still uses
    /// keeps its `kubernetes.io/pvc-protection` finalizer; the timeout then says so.
    pub(super) async fn delete_and_wait(
        &self,
        tenant: &Tenant,
        name: &str,
        owned: &Owned,
    ) -> Result<()> {
        let timeout = self.inner.delete_timeout;
        let all = self.delete_and_wait_within(tenant, name, owned, timeout, true);
        wait::within(timeout, ResourceKind::Volume, name, "gone", all).await
    }

    /// Deletes what `owned` found of the volume `name` without waiting: for a forced delete,
    /// whose claim a pod may still use; it keeps its `kubernetes.io/pvc-protection` finalizer
    /// (from kube-apiserver's admission) until the pod is gone, however long that is. The claim
    /// and its storage go once the VM using it is deleted.
    pub(super) async fn delete_without_waiting(
        &self,
        tenant: &Tenant,
        name: &str,
        owned: &Owned,
    ) -> Result<()> {
        let timeout = self.inner.delete_timeout;
        self.delete_and_wait_within(tenant, name, owned, timeout, false)
            .await
    }

    async fn delete_and_wait_within(
        &self,
        tenant: &Tenant,
        name: &str,
        owned: &Owned,
        timeout: Duration,
        wait: bool,
    ) -> Result<()> {
        let writer = &self.inner.writer;
        let object = names::claim(name);
        let volume = owned
            .pvc
            .as_ref()
            .and_then(|c| c.spec.as_ref())
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty());
        let data_volumes = self.data_volumes(tenant);
        // The DataVolume first, so CDI does not make its claim again; in the foreground, it
        // stays until its claim is gone.
        let dv_uid = match owned.dv {
            Some(_) => {
                writer
                    .delete_foreground(&data_volumes, &object, ResourceKind::Volume, name)
                    .await?
            }
            None => None,
        };
        let claims = self.claims(tenant);
        let claim_uid = writer
            .delete_foreground(&claims, &object, ResourceKind::Volume, name)
            .await?;
        if !wait {
            tracing::debug!(%tenant, volume = name, "volume marked for deletion, in use");
            return Ok(());
        }
        if dv_uid.is_some() {
            writer
                .wait_gone(
                    &data_volumes,
                    &object,
                    dv_uid.as_deref(),
                    ResourceKind::Volume,
                    name,
                    timeout,
                )
                .await?;
        }
        writer
            .wait_gone(
                &claims,
                &object,
                claim_uid.as_deref(),
                ResourceKind::Volume,
                name,
                timeout,
            )
            .await?;
        if let Some(volume) = volume {
            let volumes: Api<PersistentVolume> = Api::all(self.inner.client.clone());
            writer
                .wait_gone(&volumes, &volume, None, ResourceKind::Volume, name, timeout)
                .await?;
        }
        tracing::debug!(%tenant, volume = name, "volume deleted");
        Ok(())
    }
}
