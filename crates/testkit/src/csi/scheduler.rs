//! The part of kube-scheduler's `VolumeBinding` plugin a `WaitForFirstConsumer` claim needs
//! (kubernetes `pkg/scheduler/framework/plugins/volumebinding`, `AssumePodVolumes` /
//! `BindPodVolumes`): when a pod (a VM's virt-launcher pod too) names a Pending claim of the
//! driver whose class binds `WaitForFirstConsumer`, the claim gets
//! `volume.kubernetes.io/selected-node`:
//!
//! - the pod's node if it is already scheduled (the simulated KubeVirt places its launcher pods
//!   itself);
//! - else a node the scheduler would pick: among the cluster's `Node`s, those matching the pod's
//!   `nodeSelector`, the class's `allowedTopologies` and, for a local driver, carrying its
//!   topology label (`openebs.io/nodename` for LocalPV-LVM, set when the driver registered);
//!   the one with the fewest of the driver's volumes, then by name. Once the pod's claims are
//!   bound the pod is bound to that node (`spec.nodeName`), as the scheduler's bind step does.
//!   No node fits: a `FailedScheduling` event on the pod and nothing else.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::claims::{self, SELECTED_NODE, meta};
use super::events::{self, WARNING};
use super::profile::LVM_TOPOLOGY_KEY;
use super::state::DriverState;
use crate::cluster::{Cluster, ObjectEvent};
use crate::controllers::{Controller, ControllerApi, ControllerError, Watched};
use crate::store::EventType;

/// The volume-binding step of the scheduler for one driver's claims.
pub(crate) struct Scheduler {
    name: String,
    driver: DriverState,
}

impl Scheduler {
    pub(crate) fn new(driver: DriverState) -> Self {
        Scheduler {
            name: format!("csi-volume-binding-{}", driver.profile.short_name()),
            driver,
        }
    }

    /// The pod's claims of this driver whose class waits for a consumer, with their class.
    fn late_claims(
        &self,
        api: &Cluster,
        pod: &Value,
    ) -> Result<Vec<(Value, Value)>, ControllerError> {
        let ns = meta(pod, "namespace");
        let mut out = Vec::new();
        for name in claims::claims_of(pod) {
            let Some(claim) = api.get_opt("v1", "PersistentVolumeClaim", Some(ns), &name)? else {
                continue;
            };
            let Some(sc) = claims::class_of(api, &claim)? else {
                continue;
            };
            if sc["provisioner"] == self.driver.profile.driver()
                && sc["volumeBindingMode"] == "WaitForFirstConsumer"
            {
                out.push((claim, sc));
            }
        }
        Ok(out)
    }

    fn pick(
        &self,
        api: &Cluster,
        pod: &Value,
        classes: &[&Value],
    ) -> Result<(Option<String>, usize), ControllerError> {
        let nodes = claims::nodes(api)?;
        let total = nodes.len();
        let selector: BTreeMap<String, String> =
            serde_json::from_value(pod["spec"]["nodeSelector"].clone()).unwrap_or_default();
        let volumes = self.driver.volumes();
        let local = self.driver.profile.local();
        let best = nodes
            .into_iter()
            .filter(|(_, labels)| {
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                    && (!local || labels.contains_key(LVM_TOPOLOGY_KEY))
                    && classes
                        .iter()
                        .all(|sc| claims::allowed_by_topology(sc, labels))
            })
            .map(|(n, _)| n)
            .min_by_key(|n| {
                (
                    volumes
                        .iter()
                        .filter(|v| v.node.as_deref() == Some(n.as_str()))
                        .count(),
                    n.clone(),
                )
            });
        Ok((best, total))
    }

    fn sync_pod(&self, api: &Cluster, pod: &Value) -> Result<(), ControllerError> {
        if !claims::pod_active(pod) {
            return Ok(());
        }
        let late = self.late_claims(api, pod)?;
        if late.is_empty() {
            return Ok(());
        }
        let chosen = late.iter().find_map(|(c, _)| {
            c["metadata"]["annotations"][SELECTED_NODE]
                .as_str()
                .map(String::from)
        });
        let node = match (claims::pod_node(pod), chosen) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => n,
            (None, None) => {
                let classes: Vec<&Value> = late.iter().map(|(_, sc)| sc).collect();
                match self.pick(api, pod, &classes)? {
                    (Some(n), _) => n,
                    (None, total) => {
                        return events::record(
                            api,
                            pod,
                            WARNING,
                            "FailedScheduling",
                            &format!(
                                "0/{total} nodes are available: {total} node(s) didn't find available persistent volumes to bind."
                            ),
                            "default-scheduler",
                        );
                    }
                }
            }
        };
        let ns = meta(pod, "namespace");
        let mut all_bound = true;
        for (claim, _) in &late {
            if claim["status"]["phase"] != "Bound" {
                all_bound = false;
                if claim["metadata"]["annotations"][SELECTED_NODE].is_null() {
                    api.merge_patch(
                        "v1",
                        "PersistentVolumeClaim",
                        Some(ns),
                        meta(claim, "name"),
                        &json!({"metadata": {"annotations": {SELECTED_NODE: node}}}),
                    )?;
                }
            }
        }
        if all_bound && claims::pod_node(pod).is_none() {
            api.merge_patch(
                "v1",
                "Pod",
                Some(ns),
                meta(pod, "name"),
                &json!({"spec": {"nodeName": node}}),
            )?;
        }
        Ok(())
    }
}

#[async_trait]
impl Controller for Scheduler {
    fn name(&self) -> &str {
        &self.name
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("", "pods"),
            Watched::new("", "persistentvolumeclaims"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let api = api.in_process()?;
        let Some(ns) = ev.namespace.as_deref() else {
            return Ok(());
        };
        match (ev.resource.as_str(), ev.kind) {
            (_, EventType::Deleted) => Ok(()),
            ("pods", _) => match api.get_opt("v1", "Pod", Some(ns), &ev.name)? {
                Some(pod) => self.sync_pod(api, &pod),
                None => Ok(()),
            },
            ("persistentvolumeclaims", _) if ev.object["status"]["phase"] == "Bound" => {
                // Unscheduled pods waiting for this claim.
                for pod in api.list("v1", "Pod", Some(ns))? {
                    if claims::pod_node(&pod).is_none()
                        && claims::claims_of(&pod).contains(&ev.name)
                    {
                        self.sync_pod(api, &pod)?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
