//! MACs from Kubemacpool ([`crate::MultusBuilder::kubemacpool`]): the tenant's namespace is
//! labelled `mutatevirtualmachines.kubemacpool.io: allocate`, which Kubemacpool's
//! `VirtualMachine` webhook selects in opt-in mode (and does not exclude in opt-out mode), so
//! every VM created or updated there gets MACs from Kubemacpool's range for its masquerade and
//! Multus interfaces without one (k8snetworkplumbingwg/kubemacpool
//! `config/default/mutatevirtualmachines_opt_in_patch.yaml`, `pkg/pool-manager/pool.go`).
//!
//! The label is applied by its own field manager ([`FIELD_MANAGER`]), so the namespace's other
//! labels, applied by kubecloud's manager, are not touched and a re-apply of them does not drop
//! it.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use kubecloud_core::{ResourceKind, Result, Tenant};
use kubecloud_kube::{from_kube, tenant_namespace};
use serde_json::json;

use crate::{BACKEND, Multus};

/// Kubemacpool's namespace label (its VM webhook's name).
pub const OPT_IN_LABEL: &str = "mutatevirtualmachines.kubemacpool.io";
/// The label's value that opts a namespace in.
pub const OPT_IN: &str = "allocate";
/// The field manager of the label.
pub const FIELD_MANAGER: &str = "kubecloud-multus-kubemacpool";

/// The apply configuration labelling namespace `namespace` for Kubemacpool.
///
/// ```
/// let ns = kubecloud_multus::macpool::opt_in_namespace("acme");
/// assert_eq!(ns["metadata"]["labels"]["mutatevirtualmachines.kubemacpool.io"], "allocate");
/// ```
pub fn opt_in_namespace(namespace: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {OPT_IN_LABEL: OPT_IN}},
    })
}

impl Multus {
    /// With Kubemacpool: makes sure the tenant's namespace exists and carries the opt-in label
    /// (one read when it does).
    pub(crate) async fn opt_in_to_kubemacpool(&self, tenant: &Tenant) -> Result<()> {
        if !self.kubemacpool {
            return Ok(());
        }
        kubecloud_kube::ensure_namespace(&self.client, &self.writer, tenant).await?;
        let name = tenant_namespace(tenant);
        let api: Api<Namespace> = Api::all(self.client.clone());
        let current = self
            .writer
            .get_opt(&api, &name, ResourceKind::Tenant, tenant.as_str())
            .await?;
        let labelled = current
            .as_ref()
            .and_then(|n| n.metadata.labels.as_ref())
            .and_then(|l| l.get(OPT_IN_LABEL))
            .is_some_and(|v| v == OPT_IN);
        if labelled {
            return Ok(());
        }
        let applied = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Apply(opt_in_namespace(&name)),
            )
            .await
            .map_err(|e| from_kube(BACKEND, ResourceKind::Tenant, tenant.as_str(), e))?;
        self.writer.informers().observe(&api, &applied);
        tracing::debug!(namespace = %name, "namespace opted in to Kubemacpool");
        Ok(())
    }
}
