//! Dynamic provisioning and binding of PersistentVolumeClaims, as kube-controller-manager's PV
//! controller and a CSI external-provisioner do together.
//!
//! A Pending claim whose StorageClass exists (`spec.storageClassName`, or the class annotated
//! `storageclass.kubernetes.io/is-default-class: "true"` when unset) gets a PersistentVolume
//! `pvc-<claim uid>` with the claim's size, access modes and volume mode, the class's reclaim
//! policy and a `csi` source naming the class's provisioner. The volume is then `Bound` with a
//! `claimRef`, and the claim gets `spec.volumeName`, the bind annotations and status `Bound` with
//! capacity and access modes. Classes with `volumeBindingMode: WaitForFirstConsumer` wait until
//! the claim carries `volume.kubernetes.io/selected-node` (the scheduler sets it on a real
//! cluster). A claim whose class does not exist stays Pending until the class appears. When a
//! claim is deleted, its volume is deleted (reclaim policy `Delete`) or becomes `Released`.
//!
//! Claims of a class whose provisioner has a `CSIDriver` object (a driver installed with its
//! own sidecars, as [`crate::csi::install`] does) are left to that driver's stack.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::cluster::{Cluster, ObjectEvent};
use crate::store::EventType;

/// Provisions and binds volumes for claims. Registered by default.
#[derive(Debug, Default)]
pub struct PvcBinder;

const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

fn storage_class(api: &Cluster, claim: &Value) -> Result<Option<Value>, ControllerError> {
    match claim["spec"]["storageClassName"].as_str() {
        Some("") => Ok(None),
        Some(name) => Ok(api.get_opt("storage.k8s.io/v1", "StorageClass", None, name)?),
        None => Ok(api
            .list("storage.k8s.io/v1", "StorageClass", None)?
            .into_iter()
            .find(|sc| sc["metadata"]["annotations"][DEFAULT_CLASS] == "true")),
    }
}

/// Whether `driver` has a `CSIDriver` object: an installed driver (e.g. [`crate::csi`]) with
/// its own provisioner, whose claims and volumes this binder leaves alone.
fn has_own_stack(api: &Cluster, driver: &str) -> Result<bool, ControllerError> {
    Ok(!driver.is_empty()
        && api
            .get_opt("storage.k8s.io/v1", "CSIDriver", None, driver)?
            .is_some())
}

impl PvcBinder {
    fn bind(api: &Cluster, claim: &Value) -> Result<(), ControllerError> {
        if claim["metadata"]["deletionTimestamp"].is_string() || claim["status"]["phase"] == "Bound"
        {
            return Ok(());
        }
        let ns = claim["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = claim["metadata"]["name"].as_str().unwrap_or_default();
        let uid = claim["metadata"]["uid"].as_str().unwrap_or_default();
        let Some(sc) = storage_class(api, claim)? else {
            return Ok(());
        };
        let annotations = &claim["metadata"]["annotations"];
        if sc["volumeBindingMode"] == "WaitForFirstConsumer"
            && annotations["volume.kubernetes.io/selected-node"].is_null()
        {
            return Ok(());
        }
        let sc_name = sc["metadata"]["name"].as_str().unwrap_or_default();
        let provisioner = sc["provisioner"].as_str().unwrap_or("testkit.kubecloud.io");
        if has_own_stack(api, provisioner)? {
            return Ok(());
        }
        let size = claim["spec"]["resources"]["requests"]["storage"].clone();
        let access_modes = claim["spec"]["accessModes"].clone();
        let pv_name = match claim["spec"]["volumeName"].as_str() {
            Some(v) if !v.is_empty() => v.to_string(),
            _ => format!("pvc-{uid}"),
        };
        let pv = match api.get_opt("v1", "PersistentVolume", None, &pv_name)? {
            Some(pv) => pv,
            None => api.as_manager("csi-provisioner").create(json!({
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": pv_name,
                    "annotations": {"pv.kubernetes.io/provisioned-by": provisioner},
                    "finalizers": ["kubernetes.io/pv-protection"],
                },
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": access_modes,
                    "volumeMode": claim["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
                    "persistentVolumeReclaimPolicy": sc["reclaimPolicy"].as_str().unwrap_or("Delete"),
                    "storageClassName": sc_name,
                    "claimRef": {
                        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "namespace": ns, "name": name, "uid": uid,
                    },
                    "csi": {"driver": provisioner, "volumeHandle": pv_name},
                },
            }))?,
        };
        if pv["status"]["phase"] != "Bound" {
            let mut bound = pv.clone();
            bound["status"]["phase"] = json!("Bound");
            api.replace_status(bound)?;
        }
        let mut c = api.get("v1", "PersistentVolumeClaim", Some(ns), name)?;
        if c["spec"]["volumeName"].as_str() != Some(pv_name.as_str())
            || c["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"].is_null()
        {
            c["spec"]["volumeName"] = json!(pv_name);
            if c["spec"]["storageClassName"].is_null() {
                c["spec"]["storageClassName"] = json!(sc_name);
            }
            let a = &mut c["metadata"]["annotations"];
            a["pv.kubernetes.io/bind-completed"] = json!("yes");
            a["pv.kubernetes.io/bound-by-controller"] = json!("yes");
            a["volume.kubernetes.io/storage-provisioner"] = json!(provisioner);
            c = api.replace(c)?;
        }
        c["status"] =
            json!({"phase": "Bound", "accessModes": access_modes, "capacity": {"storage": size}});
        api.replace_status(c)?;
        Ok(())
    }

    fn release(api: &Cluster, claim: &Value) -> Result<(), ControllerError> {
        let uid = claim["metadata"]["uid"].as_str().unwrap_or_default();
        let bound_to_claim = |pv: &Value| {
            pv["spec"]["claimRef"]["uid"] == uid && !pv["metadata"]["deletionTimestamp"].is_string()
        };
        for pv in api.list_where("v1", "PersistentVolume", None, bound_to_claim)? {
            if has_own_stack(
                api,
                pv["spec"]["csi"]["driver"].as_str().unwrap_or_default(),
            )? {
                continue;
            }
            let name = pv["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete" {
                // The provisioner deletes the volume and drops its protection finalizer.
                let mut unprotected = pv.clone();
                if let Some(f) = unprotected["metadata"]["finalizers"].as_array_mut() {
                    f.retain(|x| x != "kubernetes.io/pv-protection");
                }
                let pv = api.replace(unprotected)?;
                if pv["metadata"]["name"].is_string() {
                    match api.delete("v1", "PersistentVolume", None, &name) {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            } else {
                let mut released = pv.clone();
                released["status"]["phase"] = json!("Released");
                api.replace_status(released)?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Controller for PvcBinder {
    fn name(&self) -> &str {
        "persistentvolume-binder"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("", "persistentvolumeclaims"),
            Watched::new("storage.k8s.io", "storageclasses"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let api = api.in_process()?;
        match (ev.resource.as_str(), ev.kind) {
            ("persistentvolumeclaims", EventType::Deleted) => Self::release(api, &ev.object),
            ("persistentvolumeclaims", _) => {
                let ns = ev.namespace.as_deref();
                match api.get_opt("v1", "PersistentVolumeClaim", ns, &ev.name)? {
                    Some(claim) => Self::bind(api, &claim),
                    None => Ok(()),
                }
            }
            ("storageclasses", EventType::Added | EventType::Modified) => {
                let unbound = |c: &Value| c["status"]["phase"] != "Bound";
                for claim in api.list_where("v1", "PersistentVolumeClaim", None, unbound)? {
                    Self::bind(api, &claim)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
