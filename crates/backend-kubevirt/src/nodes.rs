//! Node maintenance (an operator's calls): the cluster's `Node`s, cordoning one (a merge patch of
//! `spec.unschedulable` with kubecloud's field manager, as `kubectl cordon` patches it; the
//! scheduler then gives the node the `node.kubernetes.io/unschedulable:NoSchedule` taint and
//! places neither new launcher pods nor migration targets there), and the VMs running on a node
//! across all tenants (their `VirtualMachineInstance`s' `status.nodeName`).

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kubecloud_core::{Error, NodeInfo, ResourceKind, Result, Tenant, VmRef};
use kubecloud_kube::{FIELD_MANAGER, MANAGED_BY, MANAGER, TENANT, from_kube};
use kubecloud_models::kubevirt::VirtualMachineInstance;

use crate::{BACKEND, KubeVirt};

fn info(node: &Node) -> NodeInfo {
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        schedulable: !node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
    }
}

impl KubeVirt {
    /// Every node, by name.
    pub(crate) async fn nodes_list(&self) -> Result<Vec<NodeInfo>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let list = self
            .writer
            .retry()
            .run("list nodes", || async {
                api.list(&ListParams::default())
                    .await
                    .map_err(|e| from_kube(BACKEND, ResourceKind::Node, "", e))
            })
            .await?;
        let mut out: Vec<NodeInfo> = list.items.iter().map(info).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Cordons or uncordons `node`: a merge patch of `spec.unschedulable` (`true`, or removed),
    /// sent only if it changes something; a missing node is [`Error::NotFound`].
    pub(crate) async fn node_set_schedulable(
        &self,
        node: &str,
        schedulable: bool,
    ) -> Result<NodeInfo> {
        let api: Api<Node> = Api::all(self.client.clone());
        let current = self
            .writer
            .get_opt(&api, node, ResourceKind::Node, node)
            .await?
            .ok_or_else(|| Error::not_found(ResourceKind::Node, node))?;
        if info(&current).schedulable == schedulable {
            return Ok(info(&current));
        }
        let value = if schedulable {
            serde_json::Value::Null
        } else {
            serde_json::Value::Bool(true)
        };
        let patch = serde_json::json!({"spec": {"unschedulable": value}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let patched = self
            .writer
            .retry()
            .run("patch node", || async {
                api.patch(node, &params, &Patch::Merge(&patch))
                    .await
                    .map_err(|e| from_kube(BACKEND, ResourceKind::Node, node, e))
            })
            .await?;
        tracing::info!(node, schedulable, "node schedulability changed");
        Ok(info(&patched))
    }

    /// The VMs kubecloud manages, of every tenant, whose instance runs on `node` (one list of
    /// instances across namespaces, by the managed-by label).
    pub(crate) async fn node_vms(&self, node: &str) -> Result<Vec<VmRef>> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        self.writer
            .get_opt(&nodes, node, ResourceKind::Node, node)
            .await?
            .ok_or_else(|| Error::not_found(ResourceKind::Node, node))?;
        let api: Api<VirtualMachineInstance> = Api::all(self.client.clone());
        let params = ListParams::default().labels(&format!("{MANAGED_BY}={MANAGER}"));
        let list = self
            .writer
            .retry()
            .run("list instances", || async {
                api.list(&params)
                    .await
                    .map_err(|e| from_kube(BACKEND, ResourceKind::Vm, "", e))
            })
            .await?;
        let mut out = Vec::new();
        for vmi in &list.items {
            let on_node = vmi.status.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
            let ns = vmi.metadata.namespace.as_deref().unwrap_or_default();
            let tenant_label = vmi
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(TENANT))
                .map(String::as_str);
            // A tenant's VMs live in its namespace and carry its label; anything else is not
            // one of ours.
            if !on_node || tenant_label != Some(ns) || vmi.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let (Ok(tenant), Some(name)) = (Tenant::new(ns), vmi.metadata.name.clone()) else {
                continue;
            };
            out.push(VmRef { tenant, vm: name });
        }
        out.sort_by(|a, b| (a.tenant.as_str(), &a.vm).cmp(&(b.tenant.as_str(), &b.vm)));
        Ok(out)
    }
}
