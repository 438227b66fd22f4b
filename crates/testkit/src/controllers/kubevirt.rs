//! A stand-in for KubeVirt's virt-controller and virt-handler.
//!
//! - **VirtualMachine**: creates the DataVolumes of `spec.dataVolumeTemplates` (owned by the VM);
//!   when the run strategy wants the VM running (`Always`, `RerunOnFailure`, or a `Start`
//!   state-change request under `Manual`) and every DataVolume succeeded (or waits for its
//!   first consumer, CDI's phase `WaitForFirstConsumer`), creates a
//!   VirtualMachineInstance from the template (owned by the VM); when it does not (`Halted`, a
//!   `Stop` request), deletes it. Status: `printableStatus` (`Provisioning`, `DataVolumeError`,
//!   `Starting`, `Running`, `Stopping`, `Stopped`, `Migrating`, `ErrorUnschedulable`), `ready`,
//!   `created`, a `Ready` condition.
//! - **VirtualMachineInstance**, one step per reconcile: `Pending` → `Scheduling` →
//!   `Scheduled` on a node (the cluster's Node objects if there are any, else the configured
//!   names, default `node-1`..`node-3`; honouring `nodeSelector` on `kubernetes.io/hostname` and
//!   node labels, the required node affinity of the bound volumes it uses (a local volume's
//!   node), and the first preferred node of the node affinity; else the least loaded; never a
//!   cordoned node, `spec.unschedulable`, as kube-scheduler skips its
//!   `node.kubernetes.io/unschedulable:NoSchedule` taint — migration targets neither) with
//!   a virt-launcher Pod (the template's labels and annotations, `kubevirt.io: virt-launcher`,
//!   `vm.kubevirt.io/name`, `kubevirt.io/created-by: <vmi uid>`) → `Running` with
//!   `status.interfaces` from the pod's network annotations (`ovn.kubernetes.io/ip_address` and
//!   `mac_address` for the pod network, `<nad>.<ns>.ovn.kubernetes.io/...` for Multus networks,
//!   as a network controller or the template wrote them; else a deterministic `10.244.x.y`
//!   pod address and a `52:54:00` MAC). A node nothing can run on leaves the instance
//!   `Scheduling` with `PodScheduled=False/Unschedulable`. While a DataVolume the instance uses
//!   has not succeeded, it stays `Scheduling` with a temporary launcher pod on its node
//!   (annotated `kubevirt.io/ephemeral-provisioning: "true"`, as virt-controller makes one for
//!   `WaitForFirstConsumer` volumes): the consumer that gets the volumes bound; once they are
//!   imported the temporary pod goes and the real launcher pod takes the same node.
//! - **Guest agent** ([`super::kubevirt_guest`]): an instance labelled
//!   [`super::kubevirt_guest::GUEST_AGENT_LABEL`] runs with `AgentConnected` and
//!   `guestOSInfo`; `interfaces[].infoSource` names `guest-agent` only then.
//! - **VirtualMachineInstanceMigration**: refused (phase `Failed`, a `Failed` condition naming
//!   the volumes) when a volume's claim is not ReadWriteMany, as KubeVirt refuses
//!   non-live-migratable VMIs; else `Scheduling` (a target node other than the source, matching
//!   `addedNodeSelector`) → `TargetReady` (a new launcher Pod with the same annotations, so the IP
//!   is kept) → `Running` → `Succeeded`, moving the instance and its `migrationState`; or
//!   `Failed` when told through [`KubeVirtKnobs::fail_next_migration`].
//! - **Live updates** of a running VM (hot-plug volumes and their `volumeStatus`, CPU sockets
//!   and guest memory, `RestartRequired`): see [`super::kubevirt_live_update`].
//! - **Multus networks** (`multus: {networkName}`): the launcher pod carries virt-controller's
//!   network-selection annotation `k8s.v1.cni.cncf.io/networks` (`net1`, `net2`… with the
//!   interface's `macAddress`); Multus' `k8s.v1.cni.cncf.io/network-status` on the pod (see
//!   [`super::whereabouts`]) gives the interfaces' addresses and MACs. With
//!   [`KubeVirtController::with_multus`], the instance runs, and a migration's target is ready,
//!   only once Multus wrote it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::cluster::ObjectEvent;
use crate::status::ApiError;
use crate::store::EventType;

const VM: (&str, &str) = ("kubevirt.io/v1", "VirtualMachine");
const VMI: (&str, &str) = ("kubevirt.io/v1", "VirtualMachineInstance");
const VMIM: (&str, &str) = ("kubevirt.io/v1", "VirtualMachineInstanceMigration");
const DV: (&str, &str) = ("cdi.kubevirt.io/v1beta1", "DataVolume");
/// A node's name and labels.
type NodeInfo = (String, BTreeMap<String, String>);

const HOSTNAME: &str = "kubernetes.io/hostname";
/// The annotation of virt-controller's temporary pod for `WaitForFirstConsumer` volumes.
const EPHEMERAL: &str = "kubevirt.io/ephemeral-provisioning";

/// Knobs of a running [`KubeVirtController`], shared with it. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct KubeVirtKnobs {
    fail_migrations: Arc<AtomicU32>,
    nodes: Arc<Mutex<Vec<String>>>,
}

impl KubeVirtKnobs {
    /// Makes the next `n` migrations fail (after they started).
    pub fn fail_next_migration(&self, n: u32) {
        self.fail_migrations.store(n, Ordering::SeqCst);
    }

    /// The node names used when the cluster has no Node objects.
    pub fn set_nodes(&self, nodes: &[&str]) {
        *self.nodes.lock().unwrap_or_else(|p| p.into_inner()) =
            nodes.iter().map(|n| n.to_string()).collect();
    }

    fn take_failure(&self) -> bool {
        self.fail_migrations
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Simulated virt-controller and virt-handler. Not registered by default.
///
/// ```
/// use kubecloud_testkit::{KubeVirtController, TestServer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kubevirt = KubeVirtController::new();
/// let knobs = kubevirt.knobs();
/// let server = TestServer::builder()
///     .seed_yaml(&kubevirt.node_manifests())
///     .controller(kubevirt)
///     .start()
///     .await?;
/// knobs.fail_next_migration(1);
/// # drop(server); Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct KubeVirtController {
    knobs: KubeVirtKnobs,
    multus: bool,
    rbac: super::authz::Rbac,
}

impl Default for KubeVirtController {
    fn default() -> Self {
        let knobs = KubeVirtKnobs::default();
        knobs.set_nodes(&["node-1", "node-2", "node-3"]);
        Self {
            knobs,
            multus: false,
            rbac: super::authz::Rbac::default(),
        }
    }
}

/// Whether node labels satisfy one of `terms` (`NodeSelectorTerm`s with `matchExpressions`
/// `In`, `NotIn`, `Exists`, `DoesNotExist`).
fn node_matches_terms(labels: &BTreeMap<String, String>, terms: &[Value]) -> bool {
    terms.iter().any(|term| {
        term["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                let value = labels.get(e["key"].as_str().unwrap_or_default());
                let listed = |v: &String| {
                    e["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|x| x.as_str() == Some(v.as_str()))
                };
                match e["operator"].as_str() {
                    Some("In") => value.is_some_and(listed),
                    Some("NotIn") => !value.is_some_and(listed),
                    Some("Exists") => value.is_some(),
                    Some("DoesNotExist") => value.is_none(),
                    _ => false,
                }
            })
    })
}

fn hash(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn meta<'a>(o: &'a Value, field: &str) -> &'a str {
    o["metadata"][field].as_str().unwrap_or_default()
}

fn owner(o: &Value, kind: &str) -> Value {
    json!([{
        "apiVersion": VM.0, "kind": kind, "name": meta(o, "name"), "uid": meta(o, "uid"),
        "controller": true, "blockOwnerDeletion": true,
    }])
}

impl KubeVirtController {
    /// A controller with nodes `node-1`..`node-3`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same controller with these node names (when the cluster has no Node objects).
    pub fn with_nodes(self, nodes: &[&str]) -> Self {
        self.knobs.set_nodes(nodes);
        self
    }

    /// The same controller in a cluster running the simulated Multus
    /// ([`super::whereabouts::WhereaboutsController`]): an instance with Multus networks runs,
    /// and a migration's target is ready, only once Multus wrote the pod's network-status (as
    /// the pod's sandbox waits for the CNI `ADD`). Off by default: without the Multus double
    /// nothing writes it (the Kube-OVN double writes its own annotations).
    pub fn with_multus(mut self) -> Self {
        self.multus = true;
        self
    }

    /// The cluster RBAC virt-controller's clone authorization reads (a VM's DataVolume template
    /// cloning from another namespace needs its service account allowed there); none by
    /// default, so such clones are refused.
    pub fn with_rbac(mut self, rbac: super::authz::Rbac) -> Self {
        self.rbac = rbac;
        self
    }

    /// Whether `pod` still waits for Multus' `ADD` of its networks.
    fn awaits_multus(&self, pod: &Value) -> bool {
        let ann = &pod["metadata"]["annotations"];
        self.multus
            && ann[super::whereabouts::NETWORKS].is_string()
            && ann[super::whereabouts::NETWORK_STATUS].is_null()
    }

    /// The knobs to change its behaviour while it runs.
    pub fn knobs(&self) -> KubeVirtKnobs {
        self.knobs.clone()
    }

    /// Node objects for the configured names (labelled `kubernetes.io/hostname`), as YAML for
    /// [`crate::TestServerBuilder::seed_yaml`]: kubelets registering.
    pub fn node_manifests(&self) -> String {
        self.configured_nodes()
            .iter()
            .map(|n| {
                format!(
                    "apiVersion: v1\nkind: Node\nmetadata: {{name: {n}, labels: {{{HOSTNAME}: {n}}}}}\n"
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }

    fn configured_nodes(&self) -> Vec<String> {
        self.knobs
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Nodes and their labels.
    async fn nodes(&self, api: &ControllerApi) -> Result<Vec<NodeInfo>, ControllerError> {
        let listed = api.list("v1", "Node", None).await?;
        if listed.is_empty() {
            return Ok(self
                .configured_nodes()
                .into_iter()
                .map(|n| (n.clone(), BTreeMap::from([(HOSTNAME.to_string(), n)])))
                .collect());
        }
        // kube-scheduler: a cordoned node (`spec.unschedulable`, which the node lifecycle
        // controller turns into the `node.kubernetes.io/unschedulable:NoSchedule` taint that
        // launcher pods do not tolerate) takes neither new pods nor migration targets.
        Ok(listed
            .iter()
            .filter(|n| n["spec"]["unschedulable"] != true)
            .map(|n| {
                let labels =
                    serde_json::from_value(n["metadata"]["labels"].clone()).unwrap_or_default();
                (meta(n, "name").to_string(), labels)
            })
            .collect())
    }

    /// Picks a node for `spec` (a VMI spec) other than `avoid`, honouring `extra` selectors.
    /// The required node affinity (`nodeSelectorTerms`) of the bound volumes of the claims
    /// `spec` (a VMI spec) names: a local volume (LocalPV-LVM) can only be used on its node, as
    /// kube-scheduler's `VolumeBinding` filter checks for bound claims.
    async fn volume_node_terms(
        api: &ControllerApi,
        ns: &str,
        spec: &Value,
    ) -> Result<Vec<Vec<Value>>, ControllerError> {
        let mut out = Vec::new();
        for v in spec["volumes"].as_array().into_iter().flatten() {
            let Some(claim) = v["persistentVolumeClaim"]["claimName"]
                .as_str()
                .or(v["dataVolume"]["name"].as_str())
            else {
                continue;
            };
            let Some(pv) = api
                .get_opt("v1", "PersistentVolumeClaim", Some(ns), claim)
                .await?
                .and_then(|c| c["spec"]["volumeName"].as_str().map(String::from))
            else {
                continue;
            };
            if let Some(terms) = api
                .get_opt("v1", "PersistentVolume", None, &pv)
                .await?
                .and_then(|pv| {
                    pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
                        .as_array()
                        .cloned()
                })
            {
                out.push(terms);
            }
        }
        Ok(out)
    }

    async fn pick_node(
        &self,
        api: &ControllerApi,
        ns: &str,
        spec: &Value,
        avoid: Option<&str>,
        extra: &Value,
    ) -> Result<Option<String>, ControllerError> {
        let matches = |labels: &BTreeMap<String, String>, sel: &Value| {
            sel.as_object().is_none_or(|m| {
                m.iter()
                    .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
            })
        };
        let volume_terms = Self::volume_node_terms(api, ns, spec).await?;
        let candidates: Vec<String> = self
            .nodes(api)
            .await?
            .into_iter()
            .filter(|(n, l)| {
                Some(n.as_str()) != avoid
                    && matches(l, &spec["nodeSelector"])
                    && matches(l, extra)
                    && volume_terms
                        .iter()
                        .all(|terms| node_matches_terms(l, terms))
            })
            .map(|(n, _)| n)
            .collect();
        let preferred =
            spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|t| {
                    t["preference"]["matchExpressions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                })
                .filter(|e| e["key"] == HOSTNAME && e["operator"] == "In")
                .flat_map(|e| e["values"].as_array().into_iter().flatten())
                .filter_map(|v| v.as_str())
                .find(|n| candidates.iter().any(|c| c == n));
        if let Some(n) = preferred {
            return Ok(Some(n.to_string()));
        }
        // One pass over the stored instances for all candidates, counting without copying
        // them (a scheduler's cache of what runs where; a copy per scheduling made N VMIs
        // quadratic with a large constant).
        let mut load: BTreeMap<String, usize> = BTreeMap::new();
        api.for_each(VMI.0, VMI.1, None, |vmi| {
            if let Some(node) = vmi["status"]["nodeName"].as_str() {
                *load.entry(node.to_string()).or_default() += 1;
            }
        })
        .await?;
        Ok(candidates
            .into_iter()
            .min_by_key(|n| load.get(n).copied().unwrap_or(0)))
    }

    async fn set_vm_status(
        api: &ControllerApi,
        vm: &Value,
        printable: &str,
        ready: bool,
    ) -> Result<(), ControllerError> {
        let created = printable != "Stopped" && printable != "Provisioning";
        let mut conditions = vec![
            json!({"type": "Ready", "status": if ready {"True"} else {"False"},
                            "reason": if ready {""} else {"VMINotRunning"}}),
        ];
        // `RestartRequired` stays while the instance runs (see `kubevirt_live_update`).
        if matches!(printable, "Running" | "Migrating") {
            conditions.extend(
                vm["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["type"] == super::kubevirt_live_update::RESTART_REQUIRED)
                    .cloned(),
            );
        }
        let status = json!({"status": {
            "printableStatus": printable,
            "ready": ready,
            "created": created,
            "conditions": conditions,
        }});
        let current = &vm["status"];
        if current["printableStatus"] == printable && current["ready"] == ready {
            return Ok(());
        }
        api.merge_patch_status(
            VM.0,
            VM.1,
            Some(meta(vm, "namespace")),
            meta(vm, "name"),
            &status,
        )
        .await?;
        Ok(())
    }

    /// A DataVolume template KubeVirt may not create: the event `UnauthorizedDataVolumeCreate`
    /// on the VM and its `Failure` condition (reason `FailedCreate`), as virt-controller records
    /// the sync error (`vm.go`, `processFailureCondition`).
    async fn refuse_data_volume(
        api: &ControllerApi,
        vm: &Value,
        dv: &str,
        reason: &str,
    ) -> Result<(), ControllerError> {
        let ns = meta(vm, "namespace");
        let name = meta(vm, "name");
        let message = format!("not authorized to create DataVolume: {reason}");
        let failure = vm["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Failure");
        if failure.is_some_and(|c| c["message"] == message.as_str()) {
            return Ok(());
        }
        let event_name = format!("{name}.{dv}.unauthorized");
        if api
            .get_opt("v1", "Event", Some(ns), &event_name)
            .await?
            .is_none()
        {
            api.create(json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": event_name, "namespace": ns},
                "involvedObject": {"apiVersion": VM.0, "kind": VM.1, "name": name, "namespace": ns, "uid": meta(vm, "uid")},
                "type": "Warning",
                "reason": "UnauthorizedDataVolumeCreate",
                "message": format!("Not authorized to create DataVolume {dv}: {reason}"),
                "source": {"component": "virtualmachine-controller"},
            }))
            .await?;
        }
        let mut conditions: Vec<Value> = vm["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["type"] != "Failure")
            .collect();
        conditions.push(json!({
            "type": "Failure", "status": "True", "reason": "FailedCreate",
            "message": message, "lastTransitionTime": crate::meta::now(),
        }));
        api.merge_patch_status(
            VM.0,
            VM.1,
            Some(ns),
            name,
            &json!({"status": {"conditions": conditions, "printableStatus": "Provisioning"}}),
        )
        .await?;
        Ok(())
    }

    async fn reconcile_vm(&self, api: &ControllerApi, vm: &Value) -> Result<(), ControllerError> {
        if vm["metadata"]["deletionTimestamp"].is_string() {
            return Ok(());
        }
        let ns = meta(vm, "namespace");
        let name = meta(vm, "name");
        // DataVolumes from templates.
        let mut dv_state = "Succeeded";
        for t in vm["spec"]["dataVolumeTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let dv_name = t["metadata"]["name"].as_str().unwrap_or_default();
            let dv = match api.get_opt(DV.0, DV.1, Some(ns), dv_name).await? {
                Some(dv) => dv,
                None => {
                    // virt-controller's authorizeDataVolume (`pkg/virt-controller/watch/vm/vm.go`):
                    // a clone from another namespace needs the VM's service account to be
                    // allowed there (CDI's AuthorizeSA); else an event, a `Failure` condition,
                    // and no DataVolume.
                    let sa = vm["spec"]["template"]["spec"]["serviceAccountName"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .unwrap_or("default");
                    if let Err(reason) =
                        super::cdi_catalog::authorize_clone(api, &self.rbac, ns, sa, &t["spec"])
                            .await?
                    {
                        return Self::refuse_data_volume(api, vm, dv_name, &reason).await;
                    }
                    let mut metadata = t["metadata"].clone();
                    metadata["namespace"] = json!(ns);
                    metadata["ownerReferences"] = owner(vm, VM.1);
                    api.create(json!({"apiVersion": DV.0, "kind": DV.1, "metadata": metadata, "spec": t["spec"]})).await?
                }
            };
            match dv["status"]["phase"].as_str() {
                // A DataVolume waiting for its first consumer: the VM starts, and its
                // instance's temporary pod is that consumer (virt-controller's `vm.go`).
                Some("Succeeded" | "WaitForFirstConsumer") => {}
                Some("Failed") => dv_state = "Failed",
                _ if dv_state != "Failed" => dv_state = "Pending",
                _ => {}
            }
        }
        let strategy = vm["spec"]["runStrategy"].as_str().unwrap_or("Halted");
        let vmi = api.get_opt(VMI.0, VMI.1, Some(ns), name).await?;
        let vmi_live = vmi
            .as_ref()
            .filter(|v| v["metadata"]["deletionTimestamp"].is_null());
        // State-change requests (Manual, restart).
        let requests = vm["status"]["stateChangeRequests"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut want = match strategy {
            "Always" => true,
            "RerunOnFailure" => vmi_live.is_none_or(|v| v["status"]["phase"] != "Succeeded"),
            "Manual" => vmi_live.is_some_and(|v| {
                v["status"]["phase"] != "Succeeded" && v["status"]["phase"] != "Failed"
            }),
            _ => false,
        };
        if !requests.is_empty() {
            for r in &requests {
                match r["action"].as_str() {
                    Some("Stop") => want = false,
                    Some("Start") => want = true,
                    _ => {}
                }
            }
            if !want && let Some(v) = vmi_live {
                delete_quietly(api, VMI, ns, meta(v, "name")).await?;
            }
            api.merge_patch_status(
                VM.0,
                VM.1,
                Some(ns),
                name,
                &json!({"status": {"stateChangeRequests": null}}),
            )
            .await?;
            if !want {
                return Self::set_vm_status(api, vm, "Stopping", false).await;
            }
        }
        if !want {
            if let Some(v) = vmi_live {
                delete_quietly(api, VMI, ns, meta(v, "name")).await?;
                return Self::set_vm_status(api, vm, "Stopping", false).await;
            }
            return Self::set_vm_status(api, vm, "Stopped", false).await;
        }
        if dv_state == "Failed" {
            return Self::set_vm_status(api, vm, "DataVolumeError", false).await;
        }
        if dv_state == "Pending" {
            return Self::set_vm_status(api, vm, "Provisioning", false).await;
        }
        let Some(vmi) = vmi else {
            let template = &vm["spec"]["template"];
            let mut metadata = template["metadata"].clone();
            if !metadata.is_object() {
                metadata = json!({});
            }
            metadata["name"] = json!(name);
            metadata["namespace"] = json!(ns);
            metadata["ownerReferences"] = owner(vm, VM.1);
            metadata["labels"]["kubevirt.io/vm"] = json!(name);
            api.create(json!({
                "apiVersion": VMI.0, "kind": VMI.1, "metadata": metadata,
                "spec": super::kubevirt_live_update::instance_spec(&template["spec"]),
                "status": {"phase": "Pending"},
            }))
            .await?;
            return Self::set_vm_status(api, vm, "Starting", false).await;
        };
        if vmi["metadata"]["deletionTimestamp"].is_string() {
            return Self::set_vm_status(api, vm, "Stopping", false).await;
        }
        let unschedulable = vmi["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable");
        let migrating = vmi["status"]["migrationState"].is_object()
            && vmi["status"]["migrationState"]["completed"] != true
            && vmi["status"]["migrationState"]["failed"] != true;
        match vmi["status"]["phase"].as_str() {
            Some("Running") if migrating => Self::set_vm_status(api, vm, "Migrating", true).await,
            Some("Running") => {
                super::kubevirt_live_update::sync_running(api, vm, &vmi).await?;
                Self::set_vm_status(api, vm, "Running", true).await
            }
            Some("Failed") => Self::set_vm_status(api, vm, "CrashLoopBackOff", false).await,
            Some("Succeeded") => Self::set_vm_status(api, vm, "Stopped", false).await,
            _ if unschedulable => Self::set_vm_status(api, vm, "ErrorUnschedulable", false).await,
            _ => Self::set_vm_status(api, vm, "Starting", false).await,
        }
    }

    fn launcher_pod(vmi: &Value, node: &str, suffix: &str) -> Value {
        let ns = meta(vmi, "namespace");
        let name = meta(vmi, "name");
        let mut labels = vmi["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels["kubevirt.io"] = json!("virt-launcher");
        labels["vm.kubevirt.io/name"] = json!(name);
        labels["kubevirt.io/created-by"] = json!(meta(vmi, "uid"));
        let mut annotations = vmi["metadata"]["annotations"].clone();
        if !annotations.is_object() {
            annotations = json!({});
        }
        annotations["kubevirt.io/domain"] = json!(name);
        // virt-controller's network-selection annotation for the Multus networks
        // (`pkg/network/multus`): `net1`, `net2`… with the interface's MAC.
        if let Some(selection) = Self::network_selection(vmi) {
            annotations[super::whereabouts::NETWORKS] = json!(selection);
        }
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": format!("virt-launcher-{name}-{suffix}"),
                "namespace": ns, "labels": labels, "annotations": annotations,
                "ownerReferences": owner(vmi, VMI.1),
            },
            "spec": {
                "nodeName": node,
                "containers": [{"name": "compute", "image": "quay.io/kubevirt/virt-launcher:v1.6.0"}],
                "volumes": Self::claim_volumes(vmi),
            },
        })
    }

    /// The launcher pod's volumes for the VMI's claims: one `persistentVolumeClaim` volume per
    /// `persistentVolumeClaim` or `dataVolume` volume of the instance (a DataVolume's claim has
    /// its name), named as the instance's volume, as virt-controller renders them.
    fn claim_volumes(vmi: &Value) -> Value {
        let volumes: Vec<Value> = vmi["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            // Hot-pluggable volumes are in their attachment pods, not here.
            .filter(|v| !super::kubevirt_live_update::hotpluggable(v))
            .filter_map(|v| {
                let claim = v["persistentVolumeClaim"]["claimName"]
                    .as_str()
                    .or(v["dataVolume"]["name"].as_str())?;
                Some(json!({"name": v["name"], "persistentVolumeClaim": {"claimName": claim}}))
            })
            .collect();
        json!(volumes)
    }

    /// The `k8s.v1.cni.cncf.io/networks` value for the VMI's Multus networks, if it has any.
    fn network_selection(vmi: &Value) -> Option<String> {
        let ns = meta(vmi, "namespace");
        let ifaces = vmi["spec"]["domain"]["devices"]["interfaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let selection: Vec<Value> = vmi["spec"]["networks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|net| {
                let full = net["multus"]["networkName"].as_str()?;
                let (nad_ns, nad) = full.split_once('/').unwrap_or((ns, full));
                let mac = ifaces
                    .iter()
                    .find(|f| f["name"] == net["name"])
                    .and_then(|f| f["macAddress"].as_str());
                Some((nad_ns.to_string(), nad.to_string(), mac.map(String::from)))
            })
            .enumerate()
            .map(|(i, (nad_ns, nad, mac))| {
                let mut e =
                    json!({"name": nad, "namespace": nad_ns, "interface": format!("net{}", i + 1)});
                if let Some(mac) = mac {
                    e["mac"] = json!(mac);
                }
                e
            })
            .collect();
        (!selection.is_empty()).then(|| serde_json::to_string(&selection).unwrap_or_default())
    }

    /// Multus' `network-status` entry of network `ns/name` on the pod: (address, MAC).
    fn multus_status(pod: &Value, network: &str) -> Option<(Option<String>, Option<String>)> {
        let status = pod["metadata"]["annotations"][super::whereabouts::NETWORK_STATUS].as_str()?;
        let entries: Vec<Value> = serde_json::from_str(status).ok()?;
        let e = entries.iter().find(|e| e["name"] == network)?;
        Some((
            e["ips"][0].as_str().map(String::from),
            e["mac"].as_str().map(String::from),
        ))
    }

    /// The VMI's interfaces as the launcher pod's annotations say.
    fn interfaces(vmi: &Value, pod: &Value) -> Value {
        let ns = meta(vmi, "namespace");
        let uid = meta(vmi, "uid");
        let ann = &pod["metadata"]["annotations"];
        let nets = vmi["spec"]["networks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ifaces = vmi["spec"]["domain"]["devices"]["interfaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let agent = super::kubevirt_guest::agent_os(vmi).is_some();
        let out: Vec<Value> = nets
            .iter()
            .enumerate()
            .map(|(i, net)| {
                let name = net["name"].as_str().unwrap_or_default();
                let prefix = match net["multus"]["networkName"].as_str() {
                    Some(full) => {
                        let (nad_ns, nad) = full.split_once('/').unwrap_or((ns, full));
                        format!("{nad}.{nad_ns}.ovn.")
                    }
                    None => "ovn.".to_string(),
                };
                let h = hash(&format!("{uid}/{name}"));
                let multus = net["multus"]["networkName"].as_str().and_then(|full| {
                    let full = if full.contains('/') {
                        full.to_string()
                    } else {
                        format!("{ns}/{full}")
                    };
                    Self::multus_status(pod, &full)
                });
                let from_multus = multus.is_some();
                let (multus_ip, multus_mac) = multus.unwrap_or((None, None));
                let ip = ann[format!("{prefix}kubernetes.io/ip_address")]
                    .as_str()
                    .map(String::from)
                    .or(multus_ip)
                    .unwrap_or_else(|| format!("10.244.{}.{}", (h >> 8) % 250 + 1, h % 250 + 2));
                let spec_mac = ifaces
                    .iter()
                    .find(|f| f["name"] == name)
                    .and_then(|f| f["macAddress"].as_str());
                let mac = ann[format!("{prefix}kubernetes.io/mac_address")]
                    .as_str()
                    .or(multus_mac.as_deref())
                    .or(spec_mac)
                    .map(String::from)
                    .unwrap_or_else(|| {
                        let b = h.to_be_bytes();
                        format!("52:54:00:{:02x}:{:02x}:{:02x}", b[1], b[2], b[3])
                    });
                json!({"name": name, "ipAddress": ip, "ipAddresses": [ip], "mac": mac,
                       "interfaceName": format!("eth{i}"),
                       "infoSource": super::kubevirt_guest::info_source(agent, from_multus)})
            })
            .collect();
        json!(out)
    }

    /// The launcher pod of `vmi` on its node. Found among the VMI's dependents (the pods it
    /// controls, through the store's owner-reference index, as virt-controller finds them
    /// through its pod informer's controller-ref index) rather than by a label scan of every
    /// pod of the namespace per reconcile.
    async fn current_pod(
        api: &ControllerApi,
        vmi: &Value,
    ) -> Result<Option<Value>, ControllerError> {
        let ns = meta(vmi, "namespace");
        let uid = meta(vmi, "uid");
        let node = vmi["status"]["nodeName"].as_str().unwrap_or_default();
        Ok(api
            .owned_by("v1", "Pod", ns, uid)
            .await?
            .into_iter()
            .find(|p| {
                p["metadata"]["labels"]["kubevirt.io/created-by"] == uid
                    && p["spec"]["nodeName"] == node
                    && p["metadata"]["deletionTimestamp"].is_null()
                    && p["metadata"]["annotations"][EPHEMERAL].is_null()
            })
            .map(|mut p| {
                p["apiVersion"] = json!("v1");
                p
            }))
    }

    /// The instance's temporary pods (`kubevirt.io/ephemeral-provisioning`).
    async fn ephemeral_pods(api: &ControllerApi, vmi: &Value) -> Result<Vec<Value>, ApiError> {
        let mut pods = api
            .owned_by("v1", "Pod", meta(vmi, "namespace"), meta(vmi, "uid"))
            .await?;
        pods.retain(|p| p["metadata"]["annotations"][EPHEMERAL] == "true");
        Ok(pods)
    }

    /// Whether every DataVolume the instance names has succeeded.
    async fn data_volumes_ready(
        &self,
        api: &ControllerApi,
        vmi: &Value,
    ) -> Result<bool, ControllerError> {
        let ns = meta(vmi, "namespace");
        for v in vmi["spec"]["volumes"].as_array().into_iter().flatten() {
            if let Some(dv) = v["dataVolume"]["name"].as_str() {
                let phase = api
                    .get_opt(DV.0, DV.1, Some(ns), dv)
                    .await?
                    .and_then(|d| d["status"]["phase"].as_str().map(String::from));
                if phase.as_deref() != Some("Succeeded") {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The node for a scheduling instance: its temporary pod's, if it has one (its volumes
    /// were bound there), else the scheduler's pick.
    async fn scheduling_node(
        &self,
        api: &ControllerApi,
        vmi: &Value,
    ) -> Result<Option<String>, ControllerError> {
        if let Some(node) = Self::ephemeral_pods(api, vmi)
            .await?
            .iter()
            .find_map(|p| p["spec"]["nodeName"].as_str().map(String::from))
        {
            return Ok(Some(node));
        }
        self.pick_node(
            api,
            meta(vmi, "namespace"),
            &vmi["spec"],
            None,
            &Value::Null,
        )
        .await
    }

    async fn reconcile_vmi(&self, api: &ControllerApi, vmi: &Value) -> Result<(), ControllerError> {
        if vmi["metadata"]["deletionTimestamp"].is_string() {
            return Ok(());
        }
        let ns = meta(vmi, "namespace");
        let name = meta(vmi, "name");
        let patch = async |status: Value| -> Result<(), ControllerError> {
            api.merge_patch(VMI.0, VMI.1, Some(ns), name, &json!({"status": status}))
                .await?;
            Ok(())
        };
        match vmi["status"]["phase"].as_str().unwrap_or("Pending") {
            "Pending" => patch(json!({"phase": "Scheduling"})).await,
            "Scheduling" => match self.scheduling_node(api, vmi).await? {
                Some(node) if !self.data_volumes_ready(api, vmi).await? => {
                    // virt-controller's temporary pod for DataVolumes waiting for their first
                    // consumer (`kubevirt.io/ephemeral-provisioning`): it mounts the claims so
                    // the scheduler binds them; the instance waits until they are imported.
                    let suffix = format!(
                        "{:05x}",
                        hash(&format!("{}{node}/ephemeral", meta(vmi, "uid"))) & 0xfffff
                    );
                    let mut pod = Self::launcher_pod(vmi, &node, &suffix);
                    pod["metadata"]["annotations"][EPHEMERAL] = json!("true");
                    if api
                        .get_opt("v1", "Pod", Some(ns), meta(&pod, "name"))
                        .await?
                        .is_none()
                    {
                        api.create(pod).await?;
                    }
                    Ok(())
                }
                Some(node) => {
                    for temp in Self::ephemeral_pods(api, vmi).await? {
                        delete_quietly(api, ("v1", "Pod"), ns, meta(&temp, "name")).await?;
                    }
                    let suffix = format!(
                        "{:05x}",
                        hash(&format!("{}{node}", meta(vmi, "uid"))) & 0xfffff
                    );
                    let pod = Self::launcher_pod(vmi, &node, &suffix);
                    if api
                        .get_opt("v1", "Pod", Some(ns), meta(&pod, "name"))
                        .await?
                        .is_none()
                    {
                        api.create(pod).await?;
                    }
                    patch(
                        json!({"phase": "Scheduled", "nodeName": node, "conditions": [
                        {"type": "PodScheduled", "status": "True"}]}),
                    )
                    .await
                }
                None => {
                    let already = vmi["status"]["conditions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["reason"] == "Unschedulable");
                    if already {
                        return Ok(());
                    }
                    patch(
                        json!({"conditions": [{"type": "PodScheduled", "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/N nodes are available: node(s) didn't match Pod's node affinity/selector"}]}),
                    ).await
                }
            },
            "Scheduled" => {
                let Some(pod) = Self::current_pod(api, vmi).await? else {
                    return Ok(());
                };
                // The pod runs once Multus added its networks (its network-status).
                if self.awaits_multus(&pod) {
                    return Ok(());
                }
                let mut status = json!({"phase": "Running", "interfaces": Self::interfaces(vmi, &pod),
                    "conditions": [{"type": "PodScheduled", "status": "True"},
                                   {"type": "Ready", "status": "True"},
                                   {"type": "LiveMigratable", "status": "True"}]});
                // virt-handler: the guest's agent connects once the domain runs.
                if let Some(os) = super::kubevirt_guest::agent_os(vmi) {
                    status["guestOSInfo"] = super::kubevirt_guest::os_info(os);
                    if let Some(c) = status["conditions"].as_array_mut() {
                        c.push(super::kubevirt_guest::connected_condition());
                    }
                }
                patch(status).await
            }
            "Running" => {
                // Addresses a network controller wrote later.
                let Some(pod) = Self::current_pod(api, vmi).await? else {
                    return Ok(());
                };
                let ifaces = Self::interfaces(vmi, &pod);
                if vmi["status"]["interfaces"] != ifaces {
                    patch(json!({"interfaces": ifaces})).await?;
                }
                super::kubevirt_live_update::advance_volumes(api, vmi, &pod).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn reconcile_migration(
        &self,
        api: &ControllerApi,
        mig: &Value,
    ) -> Result<(), ControllerError> {
        let ns = meta(mig, "namespace");
        let name = meta(mig, "name");
        let phase = mig["status"]["phase"].as_str().unwrap_or("");
        if matches!(phase, "Succeeded" | "Failed")
            || mig["metadata"]["deletionTimestamp"].is_string()
        {
            return Ok(());
        }
        let set = async |status: Value| -> Result<(), ControllerError> {
            api.merge_patch_status(VMIM.0, VMIM.1, Some(ns), name, &json!({"status": status}))
                .await?;
            Ok(())
        };
        let fail = async |reason: &str, message: &str| {
            set(json!({"phase": "Failed", "conditions": [
                {"type": "Failed", "status": "True", "reason": reason, "message": message}]}))
            .await
        };
        let vmi_name = mig["spec"]["vmiName"].as_str().unwrap_or_default();
        let Some(vmi) = api.get_opt(VMI.0, VMI.1, Some(ns), vmi_name).await? else {
            return fail("VMINotFound", &format!("VMI {vmi_name} does not exist")).await;
        };
        if vmi["status"]["phase"] != "Running" {
            return fail("VMINotRunning", "the VMI is not running").await;
        }
        let patch_vmi = async |state: Value, extra: Value| -> Result<(), ControllerError> {
            let mut status = extra;
            status["migrationState"] = state;
            api.merge_patch(VMI.0, VMI.1, Some(ns), vmi_name, &json!({"status": status}))
                .await?;
            Ok(())
        };
        let source = vmi["status"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let uid = meta(mig, "uid").to_string();
        match phase {
            "" | "Pending" => {
                // KubeVirt refuses VMIs whose volumes are not shared.
                let mut local = Vec::new();
                for v in vmi["spec"]["volumes"].as_array().into_iter().flatten() {
                    let claim = v["persistentVolumeClaim"]["claimName"]
                        .as_str()
                        .or(v["dataVolume"]["name"].as_str());
                    if let Some(claim) = claim {
                        let pvc = api
                            .get_opt("v1", "PersistentVolumeClaim", Some(ns), claim)
                            .await?;
                        let rwx = pvc.as_ref().is_some_and(|p| {
                            p["spec"]["accessModes"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|m| m == "ReadWriteMany")
                        });
                        if !rwx {
                            local.push(claim.to_string());
                        }
                    }
                }
                if !local.is_empty() {
                    let message = format!(
                        "cannot migrate VMI: PVC {} is not shared, live migration requires that all PVCs must be shared (using ReadWriteMany access mode)",
                        local.join(", ")
                    );
                    return fail("DisksNotLiveMigratable", &message).await;
                }
                match self
                    .pick_node(
                        api,
                        ns,
                        &vmi["spec"],
                        Some(&source),
                        &mig["spec"]["addedNodeSelector"],
                    )
                    .await?
                {
                    Some(target) => {
                        patch_vmi(
                            json!({"migrationUid": uid, "sourceNode": source, "targetNode": target,
                                         "completed": false, "failed": false}),
                            json!({}),
                        )
                        .await?;
                        set(
                            json!({"phase": "Scheduling", "migrationState": {"sourceNode": source, "targetNode": target, "migrationUid": uid}}),
                        ).await
                    }
                    None => {
                        fail(
                            "NoTargetNode",
                            "no node matches the migration's node selectors",
                        )
                        .await
                    }
                }
            }
            "Scheduling" => {
                let target = vmi["status"]["migrationState"]["targetNode"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let suffix = format!("{:05x}", hash(&format!("{uid}{target}")) & 0xfffff);
                let pod = Self::launcher_pod(&vmi, &target, &suffix);
                let pod = match api
                    .get_opt("v1", "Pod", Some(ns), meta(&pod, "name"))
                    .await?
                {
                    Some(existing) => existing,
                    None => api.create(pod).await?,
                };
                // The target pod is ready once Multus added its networks (its network-status).
                if self.awaits_multus(&pod) {
                    return Ok(());
                }
                set(json!({"phase": "TargetReady"})).await
            }
            "TargetReady" => set(json!({"phase": "Running"})).await,
            "Running" => {
                let state = vmi["status"]["migrationState"].clone();
                let target = state["targetNode"].as_str().unwrap_or_default().to_string();
                if self.knobs.take_failure() {
                    let mut failed = state.clone();
                    failed["failed"] = json!(true);
                    failed["completed"] = json!(true);
                    failed["failureReason"] = json!("Live migration failed: injected failure");
                    patch_vmi(failed, json!({})).await?;
                    let selector = format!("kubevirt.io/created-by={}", meta(&vmi, "uid"));
                    for p in api.list_selected("v1", "Pod", Some(ns), &selector).await? {
                        if p["spec"]["nodeName"] == target.as_str() {
                            delete_quietly(api, ("v1", "Pod"), ns, meta(&p, "name")).await?;
                        }
                    }
                    return fail("MigrationFailed", "Live migration failed: injected failure")
                        .await;
                }
                let mut done = state.clone();
                done["completed"] = json!(true);
                let selector = format!("kubevirt.io/created-by={}", meta(&vmi, "uid"));
                let pods = api.list_selected("v1", "Pod", Some(ns), &selector).await?;
                let target_pod = pods
                    .iter()
                    .find(|p| p["spec"]["nodeName"] == target.as_str())
                    .cloned();
                let interfaces = target_pod
                    .as_ref()
                    .map(|p| Self::interfaces(&vmi, p))
                    .unwrap_or_else(|| vmi["status"]["interfaces"].clone());
                patch_vmi(done, json!({"nodeName": target, "interfaces": interfaces})).await?;
                for p in &pods {
                    if p["spec"]["nodeName"] != target.as_str() {
                        delete_quietly(api, ("v1", "Pod"), ns, meta(p, "name")).await?;
                    }
                }
                set(json!({"phase": "Succeeded"})).await
            }
            _ => Ok(()),
        }
    }
}

async fn delete_quietly(
    api: &ControllerApi,
    kind: (&str, &str),
    ns: &str,
    name: &str,
) -> Result<(), ControllerError> {
    match api.delete(kind.0, kind.1, Some(ns), name).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl Controller for KubeVirtController {
    fn name(&self) -> &str {
        "virt-controller"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("kubevirt.io", "virtualmachines"),
            Watched::new("kubevirt.io", "virtualmachineinstances"),
            Watched::new("kubevirt.io", "virtualmachineinstancemigrations"),
            Watched::new("cdi.kubevirt.io", "datavolumes"),
            Watched::new("", "pods"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let ns = ev.namespace.as_deref();
        match ev.resource.as_str() {
            "virtualmachines" => match api.get_opt(VM.0, VM.1, ns, &ev.name).await? {
                Some(vm) => self.reconcile_vm(api, &vm).await,
                None => Ok(()),
            },
            "virtualmachineinstances" => {
                if ev.kind != EventType::Deleted
                    && let Some(vmi) = api.get_opt(VMI.0, VMI.1, ns, &ev.name).await?
                {
                    self.reconcile_vmi(api, &vmi).await?;
                }
                // The VM of the same name follows its instance.
                match api.get_opt(VM.0, VM.1, ns, &ev.name).await? {
                    Some(vm) => self.reconcile_vm(api, &vm).await,
                    None => Ok(()),
                }
            }
            "virtualmachineinstancemigrations" => {
                if ev.kind == EventType::Deleted {
                    return Ok(());
                }
                match api.get_opt(VMIM.0, VMIM.1, ns, &ev.name).await? {
                    Some(m) => self.reconcile_migration(api, &m).await,
                    None => Ok(()),
                }
            }
            "datavolumes" => {
                // The owning VM may wait for it.
                let owner = ev.object["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|o| o["kind"] == VM.1)
                    .and_then(|o| o["name"].as_str());
                let Some(vm) = owner else {
                    return Ok(());
                };
                // An instance waiting for its DataVolumes (temporary pod) goes on.
                if let Some(vmi) = api.get_opt(VMI.0, VMI.1, ns, vm).await?
                    && vmi["status"]["phase"] == "Scheduling"
                {
                    self.reconcile_vmi(api, &vmi).await?;
                }
                match api.get_opt(VM.0, VM.1, ns, vm).await? {
                    Some(vm) => self.reconcile_vm(api, &vm).await,
                    None => Ok(()),
                }
            }
            "pods" if ev.kind != EventType::Deleted => {
                let Some(vmi_name) =
                    ev.object["metadata"]["labels"]["vm.kubevirt.io/name"].as_str()
                else {
                    return Ok(());
                };
                if let Some(vmi) = api.get_opt(VMI.0, VMI.1, ns, vmi_name).await? {
                    self.reconcile_vmi(api, &vmi).await?;
                }
                // A migration waiting for its target pod's networks goes on.
                for m in api.list(VMIM.0, VMIM.1, ns).await? {
                    if m["spec"]["vmiName"] == vmi_name && m["status"]["phase"] == "Scheduling" {
                        self.reconcile_migration(api, &m).await?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
