//! The claim side of a CSI driver: kube-controller-manager's PV controller (for the driver's
//! claims) and the driver's external-provisioner sidecar, acting on the driver's state.
//!
//! Upstream read for this: kubernetes-csi/external-provisioner `pkg/controller/controller.go`
//! (`prepareProvision`, `Provision`, `getPVCSource`, `getSnapshotSource`, `Delete`,
//! `removePrefixedParameters`), sig-storage-lib-external-provisioner `controller/controller.go`
//! (events `Provisioning`, `ProvisioningFailed`, `ProvisioningSucceeded`), kubernetes
//! `pkg/controller/volume/persistentvolume/pv_controller.go` (`ExternalProvisioning`,
//! `WaitForFirstConsumer`, the bind annotations, reclaim).
//!
//! For a Pending claim whose class's `provisioner` is this driver:
//! 1. the PV controller sets `volume.kubernetes.io/storage-provisioner` (and the beta
//!    annotation); with `volumeBindingMode: WaitForFirstConsumer` and no
//!    `volume.kubernetes.io/selected-node` it records `WaitForFirstConsumer` ("waiting for first
//!    consumer to be created before binding") and waits; else it records `ExternalProvisioning`;
//! 2. the external-provisioner records `Provisioning`, checks what `prepareProvision` checks
//!    (data source kind and API group, the driver's clone/snapshot capabilities, `selector`,
//!    reserved `csi.storage.k8s.io/` parameters, the provisioner secret, the clone source —
//!    bound, same class, same volume mode, not smaller — or the snapshot — bound, ready, same
//!    driver, `restoreSize` not above the request), calls the driver's `CreateVolume` and on
//!    refusal records `ProvisioningFailed` with `failed to provision volume with StorageClass
//!    "<class>": <error>` (driver errors read `rpc error: code = <Code> desc = <text>`); the
//!    claim stays Pending (re-tried on its next change, its class's, its source's);
//! 3. on success it creates the PV `pvc-<claim uid>`: `pv.kubernetes.io/provisioned-by`, the
//!    deletion-secret annotations, finalizers `kubernetes.io/pv-protection` and
//!    `external-provisioner.volume.kubernetes.io/finalizer`, `csi.driver`, `volumeHandle`,
//!    `fsType` (Filesystem), `volumeAttributes` (the driver's volume context and
//!    `storage.kubernetes.io/csiProvisionerIdentity`), the secret references the class names,
//!    capacity as the driver made it, the class's reclaim policy and mount options, node
//!    affinity for a local volume, `claimRef`; and records `ProvisioningSucceeded`;
//! 4. the PV controller binds: PV `Bound`, claim `spec.volumeName`, annotations
//!    `pv.kubernetes.io/bind-completed` and `pv.kubernetes.io/bound-by-controller`, status
//!    `Bound` with the PV's capacity and access modes.
//!
//! When the claim is gone its PV follows the reclaim policy: `Delete` deletes the driver's
//! volume and the PV; `Retain` leaves both, the PV `Released`.
//!
//! Differs from upstream: same-class clones only (external-provisioner v5 dropped that check;
//! stricter here); a data source in another namespace (`dataSourceRef.namespace`, alpha
//! `CrossNamespaceVolumeDataSource`) is refused; no retries with backoff — a refused claim is
//! retried when it, its class or its source changes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::claims::{self, SELECTED_NODE, SNAP_API, STORAGE_PROVISIONER, meta};
use super::events::{self, NORMAL, WARNING};
use super::profile::{CreateRequest, LVM_TOPOLOGY_KEY};
use super::quantity;
use super::state::{ContentSource, DriverState};
use crate::cluster::{Cluster, ObjectEvent};
use crate::controllers::{Controller, ControllerApi, ControllerError, Watched};
use crate::store::EventType;

const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
const PROVISIONER_FINALIZER: &str = "external-provisioner.volume.kubernetes.io/finalizer";
const CSI_PREFIX: &str = "csi.storage.k8s.io/";
const PV_CONTROLLER: &str = "persistentvolume-controller";

/// The PV controller and external-provisioner of one driver. See the [module docs](self).
pub(crate) struct Provisioner {
    name: String,
    driver: DriverState,
}

/// Why provisioning stopped.
enum Stop {
    /// Refused: record `ProvisioningFailed` with this text.
    Refused(String),
    /// Not for this provisioner (an external populator's data source).
    Ignored,
    /// An API error: retry.
    Api(ControllerError),
}

impl From<crate::status::ApiError> for Stop {
    fn from(e: crate::status::ApiError) -> Self {
        Stop::Api(e.into())
    }
}

impl From<ControllerError> for Stop {
    fn from(e: ControllerError) -> Self {
        Stop::Api(e)
    }
}

impl Provisioner {
    pub(crate) fn new(driver: DriverState) -> Self {
        Provisioner {
            name: format!("csi-provisioner-{}", driver.profile.short_name()),
            driver,
        }
    }

    fn driver_name(&self) -> &'static str {
        self.driver.profile.driver()
    }

    fn component(&self) -> String {
        format!("{}_csi-provisioner", self.driver_name())
    }

    fn sync(&self, api: &Cluster, claim: &Value) -> Result<(), ControllerError> {
        if claims::deleting(claim) || claim["status"]["phase"] == "Bound" {
            return Ok(());
        }
        let Some(sc) = claims::class_of(api, claim)? else {
            return Ok(());
        };
        if sc["provisioner"] != self.driver_name() {
            return Ok(());
        }
        let annotations = &claim["metadata"]["annotations"];
        if annotations[STORAGE_PROVISIONER] != self.driver_name() {
            api.merge_patch(
                "v1",
                "PersistentVolumeClaim",
                Some(meta(claim, "namespace")),
                meta(claim, "name"),
                &json!({"metadata": {"annotations": {
                    STORAGE_PROVISIONER: self.driver_name(),
                    claims::BETA_STORAGE_PROVISIONER: self.driver_name(),
                }}}),
            )?;
            // The claim's change brings it back here.
            return Ok(());
        }
        let pv_name = format!("pvc-{}", meta(claim, "uid"));
        if let Some(pv) = api.get_opt("v1", "PersistentVolume", None, &pv_name)?
            && pv["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
        {
            return self.bind(api, claim, &pv);
        }
        let selected = annotations[SELECTED_NODE].as_str().map(String::from);
        if sc["volumeBindingMode"] == "WaitForFirstConsumer" && selected.is_none() {
            return events::record(
                api,
                claim,
                NORMAL,
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
                PV_CONTROLLER,
            );
        }
        events::record(
            api,
            claim,
            NORMAL,
            "ExternalProvisioning",
            &format!(
                "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                self.driver_name()
            ),
            PV_CONTROLLER,
        )?;
        events::record(
            api,
            claim,
            NORMAL,
            "Provisioning",
            &format!(
                "External provisioner is provisioning volume for claim \"{}/{}\"",
                meta(claim, "namespace"),
                meta(claim, "name")
            ),
            &self.component(),
        )?;
        match self.provision(api, claim, &sc, &pv_name, selected) {
            Ok(pv) => {
                events::record(
                    api,
                    claim,
                    NORMAL,
                    "ProvisioningSucceeded",
                    &format!("Successfully provisioned volume {pv_name}"),
                    &self.component(),
                )?;
                self.bind(api, claim, &pv)
            }
            Err(Stop::Refused(why)) => events::record(
                api,
                claim,
                WARNING,
                "ProvisioningFailed",
                &format!(
                    "failed to provision volume with StorageClass \"{}\": {why}",
                    meta(&sc, "name")
                ),
                &self.component(),
            ),
            Err(Stop::Ignored) => Ok(()),
            Err(Stop::Api(e)) => Err(e),
        }
    }

    /// `prepareProvision` and `Provision`: the PV to create, made.
    fn provision(
        &self,
        api: &Cluster,
        claim: &Value,
        sc: &Value,
        pv_name: &str,
        selected: Option<String>,
    ) -> Result<Value, Stop> {
        let profile = self.driver.profile;
        let ns = meta(claim, "namespace");
        // Data source (dataSourceRef wins, as the API server mirrors the two).
        let source = if claim["spec"]["dataSourceRef"].is_object() {
            &claim["spec"]["dataSourceRef"]
        } else {
            &claim["spec"]["dataSource"]
        };
        let mut content = None;
        if source.is_object() {
            let kind = source["kind"].as_str().unwrap_or_default();
            let name = source["name"].as_str().unwrap_or_default();
            let group = source["apiGroup"].as_str().unwrap_or_default();
            if name.is_empty() {
                return Err(Stop::Refused(format!(
                    "the PVC source not found for PVC {}",
                    meta(claim, "name")
                )));
            }
            match (kind, group) {
                ("VolumeSnapshot", "snapshot.storage.k8s.io") => {
                    if !profile.snapshots() {
                        return Err(Stop::Refused("CSI driver does not support snapshot restore: controller CREATE_DELETE_SNAPSHOT capability is not reported".into()));
                    }
                }
                ("VolumeSnapshot", other) => {
                    return Err(Stop::Refused(format!(
                        "the PVC source does not belong to the right APIGroup. Expected snapshot.storage.k8s.io, Got {other}"
                    )));
                }
                ("PersistentVolumeClaim", "") => {
                    if !profile.clones() {
                        return Err(Stop::Refused("CSI driver does not support clone operations: controller CLONE_VOLUME capability is not reported".into()));
                    }
                }
                _ => {
                    events::record(
                        api,
                        claim,
                        NORMAL,
                        "Provisioning",
                        "Assuming an external populator will provision the volume",
                        &self.component(),
                    )?;
                    return Err(Stop::Ignored);
                }
            }
            if let Some(other_ns) = source["namespace"].as_str()
                && other_ns != ns
            {
                return Err(Stop::Refused(format!(
                    "error getting handle for DataSource Type {kind} by Name {name}: the data source is in namespace {other_ns:?}, not the claim's {ns:?} (cross-namespace data sources need the CrossNamespaceVolumeDataSource feature gate, which is off)"
                )));
            }
            let wrap = |e: String| {
                Stop::Refused(format!(
                    "error getting handle for DataSource Type {kind} by Name {name}: {e}"
                ))
            };
            content = Some(if kind == "VolumeSnapshot" {
                self.snapshot_source(api, claim, sc, name)
                    .map_err(|e| match e {
                        Stop::Refused(m) => wrap(m),
                        other => other,
                    })?
            } else {
                self.claim_source(api, claim, sc, name)
                    .map_err(|e| match e {
                        Stop::Refused(m) => wrap(m),
                        other => other,
                    })?
            });
        }
        if claim["spec"]["selector"].is_object() {
            return Err(Stop::Refused("claim Selector is not supported".into()));
        }
        let params: BTreeMap<String, String> =
            serde_json::from_value(sc["parameters"].clone()).unwrap_or_default();
        let fs_keys: Vec<&String> = params
            .keys()
            .filter(|k| k.eq_ignore_ascii_case("fstype") || *k == "csi.storage.k8s.io/fstype")
            .collect();
        if fs_keys.len() > 1 {
            return Err(Stop::Refused(
                "fstype specified in parameters with both \"fstype\" and \"csi.storage.k8s.io/fstype\" keys".into(),
            ));
        }
        let fs_type = fs_keys.first().map(|k| params[*k].clone());
        let bytes = quantity::parse(&claim["spec"]["resources"]["requests"]["storage"])
            .ok_or_else(|| Stop::Refused("claim has no storage request".into()))?;
        // Secrets named by the class (`getSecretReference` / `getCredentials`).
        if let (Some(secret), Some(secret_ns)) = (
            params.get("csi.storage.k8s.io/provisioner-secret-name"),
            params.get("csi.storage.k8s.io/provisioner-secret-namespace"),
        ) && api
            .get_opt("v1", "Secret", Some(secret_ns), secret)?
            .is_none()
        {
            return Err(Stop::Refused(format!(
                "error getting secret {secret} in namespace {secret_ns}: secrets \"{secret}\" not found"
            )));
        }
        let mut stripped = BTreeMap::new();
        for (k, v) in &params {
            if let Some(rest) = k.strip_prefix(CSI_PREFIX) {
                const KNOWN: [&str; 15] = [
                    "fstype",
                    "provisioner-secret-name",
                    "provisioner-secret-namespace",
                    "controller-publish-secret-name",
                    "controller-publish-secret-namespace",
                    "node-stage-secret-name",
                    "node-stage-secret-namespace",
                    "node-publish-secret-name",
                    "node-publish-secret-namespace",
                    "controller-expand-secret-name",
                    "controller-expand-secret-namespace",
                    "secret-name",
                    "secret-namespace",
                    "node-expand-secret-name",
                    "node-expand-secret-namespace",
                ];
                if !KNOWN.contains(&rest) {
                    return Err(Stop::Refused(format!(
                        "failed to strip CSI Parameters of prefixed keys: found unknown parameter key \"{k}\" with reserved namespace {CSI_PREFIX}"
                    )));
                }
            } else {
                stripped.insert(k.clone(), v.clone());
            }
        }
        // The nodes the driver runs on (topology), and the node for a local volume.
        let all_nodes = claims::nodes(api)?;
        let topology_nodes: Vec<String> = all_nodes
            .iter()
            .filter(|(_, labels)| {
                (!profile.local() || labels.contains_key(LVM_TOPOLOGY_KEY))
                    && claims::allowed_by_topology(sc, labels)
            })
            .map(|(n, _)| n.clone())
            .collect();
        let node = match selected {
            Some(n) => Some(n),
            None if profile.local() => {
                // Immediate binding of a local volume: the least used eligible node.
                let volumes = self.driver.volumes();
                topology_nodes
                    .iter()
                    .min_by_key(|n| {
                        volumes
                            .iter()
                            .filter(|v| v.node.as_deref() == Some(n.as_str()))
                            .count()
                    })
                    .cloned()
            }
            None => None,
        };
        let node = node.filter(|n| !profile.local() || topology_nodes.contains(n));
        let block = claims::is_block(claim);
        let req = CreateRequest {
            name: pv_name.to_string(),
            bytes,
            parameters: stripped,
            block,
            access_modes: claims::access_modes(claim),
            node,
            nodes: topology_nodes,
        };
        let volume = self
            .driver
            .create_volume(&req, content)
            .map_err(|e| Stop::Refused(e.to_string()))?;
        // The PV.
        let mut attributes = serde_json::Map::new();
        attributes.insert(
            "storage.kubernetes.io/csiProvisionerIdentity".into(),
            json!(format!("1767225600000-8081-{}", self.driver_name())),
        );
        for (k, v) in &volume.parameters {
            attributes.insert(k.clone(), json!(v));
        }
        match profile {
            super::CsiProfile::CephRbd => {
                attributes.insert(
                    "imageName".into(),
                    json!(format!(
                        "csi-vol-{}",
                        &volume.handle[volume.handle.len().saturating_sub(36)..]
                    )),
                );
            }
            super::CsiProfile::LocalPvLvm => {
                attributes.insert("openebs.io/cas-type".into(), json!("localpv-lvm"));
                attributes.insert("openebs.io/volgroup".into(), json!(volume.pool));
            }
            _ => {}
        }
        let mut csi = json!({
            "driver": self.driver_name(),
            "volumeHandle": volume.handle,
            "volumeAttributes": attributes,
        });
        if !block {
            csi["fsType"] = json!(fs_type.unwrap_or_else(|| "ext4".into()));
        }
        for (field, prefix) in [
            ("controllerPublishSecretRef", "controller-publish"),
            ("nodeStageSecretRef", "node-stage"),
            ("nodePublishSecretRef", "node-publish"),
            ("controllerExpandSecretRef", "controller-expand"),
            ("nodeExpandSecretRef", "node-expand"),
        ] {
            if let (Some(n), Some(s)) = (
                params.get(&format!("{CSI_PREFIX}{prefix}-secret-name")),
                params.get(&format!("{CSI_PREFIX}{prefix}-secret-namespace")),
            ) {
                csi[field] = json!({"name": n, "namespace": s});
            }
        }
        let (del_name, del_ns) = (
            params
                .get("csi.storage.k8s.io/provisioner-secret-name")
                .cloned()
                .unwrap_or_default(),
            params
                .get("csi.storage.k8s.io/provisioner-secret-namespace")
                .cloned()
                .unwrap_or_default(),
        );
        let mut pv = json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": {
                    "pv.kubernetes.io/provisioned-by": self.driver_name(),
                    "volume.kubernetes.io/provisioner-deletion-secret-name": del_name,
                    "volume.kubernetes.io/provisioner-deletion-secret-namespace": del_ns,
                },
                "finalizers": [PV_PROTECTION, PROVISIONER_FINALIZER],
            },
            "spec": {
                "accessModes": claim["spec"]["accessModes"],
                "capacity": {"storage": quantity::format(volume.size_bytes)},
                "csi": csi,
                "persistentVolumeReclaimPolicy": sc["reclaimPolicy"].as_str().unwrap_or("Delete"),
                "storageClassName": meta(sc, "name"),
                "volumeMode": if block { "Block" } else { "Filesystem" },
                "claimRef": {
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "namespace": ns, "name": meta(claim, "name"), "uid": meta(claim, "uid"),
                    "resourceVersion": meta(claim, "resourceVersion"),
                },
            },
        });
        if sc["mountOptions"].is_array() {
            pv["spec"]["mountOptions"] = sc["mountOptions"].clone();
        }
        if let Some(node) = volume.node.as_deref().filter(|_| profile.local()) {
            pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": LVM_TOPOLOGY_KEY, "operator": "In", "values": [node]}]}
            ]}});
        }
        match api.create(pv) {
            Ok(pv) => Ok(pv),
            Err(e) if e.is_conflict() => Ok(api.get("v1", "PersistentVolume", None, pv_name)?),
            Err(e) => Err(e.into()),
        }
    }

    /// `getPVCSource`.
    fn claim_source(
        &self,
        api: &Cluster,
        claim: &Value,
        sc: &Value,
        name: &str,
    ) -> Result<ContentSource, Stop> {
        let ns = meta(claim, "namespace");
        let Some(src) = api.get_opt("v1", "PersistentVolumeClaim", Some(ns), name)? else {
            return Err(Stop::Refused(format!(
                "error getting PVC {name} (namespace \"{ns}\") from api server: persistentvolumeclaim \"{name}\" not found"
            )));
        };
        if src["status"]["phase"] != "Bound" {
            return Err(Stop::Refused(format!(
                "the PVC DataSource {name} must have a status of Bound.  Got {}",
                src["status"]
            )));
        }
        if claims::deleting(&src) {
            return Err(Stop::Refused(format!(
                "the PVC DataSource {name} is currently being deleted"
            )));
        }
        let src_class = src["spec"]["storageClassName"].as_str().unwrap_or_default();
        if src_class != meta(sc, "name") {
            return Err(Stop::Refused(format!(
                "the source PVC and destination PVCs must be in the same storage class for cloning.  Source is in {src_class}, but new PVC is in {}",
                meta(sc, "name")
            )));
        }
        let want = quantity::parse(&claim["spec"]["resources"]["requests"]["storage"]).unwrap_or(0);
        let have = quantity::parse(&src["spec"]["resources"]["requests"]["storage"]).unwrap_or(0);
        if want < have {
            return Err(Stop::Refused(format!(
                "error, new PVC request must be greater than or equal in size to the specified PVC data source, requested {want} but source is {have}"
            )));
        }
        let invalid = || Stop::Refused("claim in dataSource not bound or invalid".into());
        let pv_name = src["spec"]["volumeName"].as_str().unwrap_or_default();
        let pv = api
            .get_opt("v1", "PersistentVolume", None, pv_name)?
            .ok_or_else(invalid)?;
        if pv["spec"]["csi"]["driver"] != self.driver_name()
            || pv["spec"]["claimRef"]["uid"] != src["metadata"]["uid"]
            || pv["status"]["phase"] != "Bound"
        {
            return Err(invalid());
        }
        let src_block = pv["spec"]["volumeMode"] == "Block";
        if src_block != claims::is_block(claim) {
            let (s, d) = if src_block {
                ("Block", "Filesystem")
            } else {
                ("Filesystem", "Block")
            };
            return Err(Stop::Refused(format!(
                "the source PVC and destination PVCs must have the same volume mode for cloning.  Source is {s}, but new PVC requested {d}"
            )));
        }
        Ok(ContentSource::Volume(
            pv["spec"]["csi"]["volumeHandle"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ))
    }

    /// `getSnapshotSource`.
    fn snapshot_source(
        &self,
        api: &Cluster,
        claim: &Value,
        sc: &Value,
        name: &str,
    ) -> Result<ContentSource, Stop> {
        let ns = meta(claim, "namespace");
        let not_bound = || Stop::Refused(format!("snapshot {name} not bound"));
        let Some(vs) = api.get_opt(SNAP_API, "VolumeSnapshot", Some(ns), name)? else {
            return Err(Stop::Refused(format!(
                "error getting snapshot {name} from api server: volumesnapshots.snapshot.storage.k8s.io \"{name}\" not found"
            )));
        };
        if claims::deleting(&vs) {
            return Err(Stop::Refused(format!("snapshot {name} is being deleted")));
        }
        let content_name = vs["status"]["boundVolumeSnapshotContentName"]
            .as_str()
            .ok_or_else(not_bound)?;
        let content = api
            .get_opt(SNAP_API, "VolumeSnapshotContent", None, content_name)?
            .ok_or_else(not_bound)?;
        if content["spec"]["volumeSnapshotRef"]["uid"] != vs["metadata"]["uid"]
            || content["spec"]["driver"] != sc["provisioner"]
        {
            return Err(not_bound());
        }
        if vs["status"]["readyToUse"] != true {
            return Err(Stop::Refused(format!("snapshot {name} is not Ready")));
        }
        let handle = content["status"]["snapshotHandle"]
            .as_str()
            .ok_or_else(|| Stop::Refused(format!("snapshot handle {name} is not available")))?;
        if let Some(restore) = quantity::parse(&vs["status"]["restoreSize"]) {
            let want =
                quantity::parse(&claim["spec"]["resources"]["requests"]["storage"]).unwrap_or(0);
            if want < restore {
                return Err(Stop::Refused(format!(
                    "requested volume size {want} is less than the size {restore} for the source snapshot {name}"
                )));
            }
        }
        if !self.driver.profile.restores() {
            return Err(Stop::Refused(
                super::profile::RpcError::new(
                    "Unimplemented",
                    "creating a volume from a snapshot is not supported",
                )
                .to_string(),
            ));
        }
        Ok(ContentSource::Snapshot(handle.to_string()))
    }

    /// The PV controller binding the claim and its PV.
    fn bind(&self, api: &Cluster, claim: &Value, pv: &Value) -> Result<(), ControllerError> {
        let pv_name = meta(pv, "name");
        if pv["status"]["phase"] != "Bound" {
            api.merge_patch_status(
                "v1",
                "PersistentVolume",
                None,
                pv_name,
                &json!({"status": {"phase": "Bound"}}),
            )?;
        }
        let ns = meta(claim, "namespace");
        let name = meta(claim, "name");
        let annotations = &claim["metadata"]["annotations"];
        if claim["spec"]["volumeName"] != pv_name
            || annotations["pv.kubernetes.io/bind-completed"] != "yes"
        {
            api.merge_patch(
                "v1",
                "PersistentVolumeClaim",
                Some(ns),
                name,
                &json!({
                    "metadata": {"annotations": {
                        "pv.kubernetes.io/bind-completed": "yes",
                        "pv.kubernetes.io/bound-by-controller": "yes",
                    }},
                    "spec": {"volumeName": pv_name},
                }),
            )?;
        }
        api.merge_patch_status(
            "v1",
            "PersistentVolumeClaim",
            Some(ns),
            name,
            &json!({"status": {
                "phase": "Bound",
                "accessModes": pv["spec"]["accessModes"],
                "capacity": pv["spec"]["capacity"],
            }}),
        )?;
        Ok(())
    }

    /// The claim is gone: its PV's reclaim policy applies.
    fn reclaim(&self, api: &Cluster, claim: &Value) -> Result<(), ControllerError> {
        let uid = meta(claim, "uid").to_string();
        let driver = self.driver_name();
        for pv in api.list("v1", "PersistentVolume", None)? {
            if pv["spec"]["claimRef"]["uid"] != uid.as_str()
                || pv["spec"]["csi"]["driver"] != driver
            {
                continue;
            }
            let name = meta(&pv, "name").to_string();
            if pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete" {
                let handle = pv["spec"]["csi"]["volumeHandle"]
                    .as_str()
                    .unwrap_or_default();
                self.driver.delete_volume(handle);
                let kept = claims::finalizers_without(&pv, &[PV_PROTECTION, PROVISIONER_FINALIZER]);
                api.merge_patch(
                    "v1",
                    "PersistentVolume",
                    None,
                    &name,
                    &json!({"metadata": {"finalizers": kept}}),
                )?;
                claims::delete_quietly(api, "v1", "PersistentVolume", None, &name)?;
            } else if pv["status"]["phase"] != "Released" {
                api.merge_patch_status(
                    "v1",
                    "PersistentVolume",
                    None,
                    &name,
                    &json!({"status": {"phase": "Released"}}),
                )?;
            }
        }
        Ok(())
    }

    /// Pending claims of `namespace` (all namespaces if `None`) matching `keep`, synced again.
    fn resync(
        &self,
        api: &Cluster,
        namespace: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<(), ControllerError> {
        for claim in api.list("v1", "PersistentVolumeClaim", namespace)? {
            if claim["status"]["phase"] != "Bound" && keep(&claim) {
                self.sync(api, &claim)?;
            }
        }
        Ok(())
    }
}

fn source_is(claim: &Value, kind: &str, name: &str) -> bool {
    ["dataSourceRef", "dataSource"].iter().any(|f| {
        let s = &claim["spec"][*f];
        s["kind"] == kind && s["name"] == name
    })
}

#[async_trait]
impl Controller for Provisioner {
    fn name(&self) -> &str {
        &self.name
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("", "persistentvolumeclaims"),
            Watched::new("storage.k8s.io", "storageclasses"),
            Watched::new("snapshot.storage.k8s.io", "volumesnapshots"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let api = api.in_process()?;
        let ns = ev.namespace.as_deref();
        match (ev.resource.as_str(), ev.kind) {
            ("persistentvolumeclaims", EventType::Deleted) => self.reclaim(api, &ev.object),
            ("persistentvolumeclaims", _) => {
                if let Some(claim) = api.get_opt("v1", "PersistentVolumeClaim", ns, &ev.name)? {
                    self.sync(api, &claim)?;
                    if claim["status"]["phase"] == "Bound" {
                        // Clones waiting for this claim.
                        self.resync(api, ns, |c| source_is(c, "PersistentVolumeClaim", &ev.name))?;
                    }
                }
                Ok(())
            }
            ("storageclasses", EventType::Added | EventType::Modified) => {
                self.resync(api, None, |c| {
                    c["spec"]["storageClassName"] == ev.name.as_str()
                })
            }
            ("volumesnapshots", EventType::Added | EventType::Modified)
                if ev.object["status"]["readyToUse"] == true =>
            {
                self.resync(api, ns, |c| source_is(c, "VolumeSnapshot", &ev.name))
            }
            _ => Ok(()),
        }
    }
}
