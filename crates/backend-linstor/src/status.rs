//! Reading a volume back: the PVC (spec, phase, capacity), its PV (the LINSTOR resource
//! definition), LINSTOR's resources (replicas and DRBD disk states, in use) and the VMIs using it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, ListParams};
use kubecloud_core::{
    Error, Replica, ReplicaState, ResourceKind, Result, Volume, VolumePhase, VolumeStatus,
};

use crate::builder::Linstor;
use crate::rest::{Subject, model};
use crate::translate::{bytes_of, spec_from_claim};

/// Maps a DRBD disk state to a replica state.
pub fn replica_state(disk_state: Option<&str>, diskless: bool) -> ReplicaState {
    match disk_state {
        Some("UpToDate") => ReplicaState::UpToDate,
        Some("Inconsistent" | "Negotiating" | "Attaching" | "SyncTarget" | "Consistent") => {
            ReplicaState::Inconsistent
        }
        Some("Outdated") => ReplicaState::Outdated,
        Some("Diskless" | "TieBreaker") => ReplicaState::Diskless,
        _ if diskless => ReplicaState::Diskless,
        _ => ReplicaState::Unknown,
    }
}

/// The volume a claim stands for, given its LINSTOR resources. Which VMs use it is the compute
/// backend's to say (`Compute::volume_users`, filled in by the facade): `used_by` is empty.
pub fn volume_of(pvc: &PersistentVolumeClaim, resources: &[model::Resource]) -> Result<Volume> {
    let spec = spec_from_claim(pvc)?;
    let status = pvc.status.clone().unwrap_or_default();
    let size = status
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .map(|q| bytes_of(&q.0))
        .transpose()?
        .unwrap_or_default();
    let replicas: Vec<Replica> = resources
        .iter()
        .map(|r| Replica {
            node: r.node_name.clone(),
            state: replica_state(r.disk_state(), r.is_diskless()),
        })
        .collect();
    let diskful: Vec<&Replica> = replicas
        .iter()
        .filter(|r| r.state != ReplicaState::Diskless)
        .collect();
    let phase = if status.phase.as_deref() != Some("Bound") {
        VolumePhase::Pending
    } else if size < spec.size {
        VolumePhase::Resizing
    } else if diskful.is_empty() {
        VolumePhase::Pending
    } else if diskful.iter().any(|r| r.state == ReplicaState::UpToDate) {
        VolumePhase::Ready
    } else {
        VolumePhase::Populating
    };
    Ok(Volume {
        status: VolumeStatus {
            phase,
            size,
            replicas,
            used_by: Vec::new(),
            progress: None,
            message: None,
        },
        spec,
    })
}

pub use kubecloud_kube::claims::with_import;

impl Linstor {
    /// The LINSTOR resources of the resource definitions `rds`, by definition.
    pub(crate) async fn resources(
        &self,
        rds: &[String],
    ) -> Result<BTreeMap<String, Vec<model::Resource>>> {
        let mut out: BTreeMap<String, Vec<model::Resource>> = BTreeMap::new();
        if rds.is_empty() {
            return Ok(out);
        }
        let query: Vec<String> = rds.iter().map(|r| format!("resources={r}")).collect();
        let list: Vec<model::Resource> = self
            .inner
            .rest
            .get(
                &format!("/v1/view/resources?{}", query.join("&")),
                &Subject::new(ResourceKind::Volume, rds.join(",")),
            )
            .await?;
        for r in list {
            out.entry(r.name.clone()).or_default().push(r);
        }
        Ok(out)
    }

    /// The resource definitions behind several claims, in their order: one GET for one bound
    /// claim, one list of the PersistentVolumes for more (only those the claims name are read).
    async fn resource_definitions(
        &self,
        claims: &[PersistentVolumeClaim],
    ) -> Result<Vec<Option<String>>> {
        let volume_name = |c: &PersistentVolumeClaim| c.spec.as_ref()?.volume_name.clone();
        if claims.iter().filter_map(volume_name).take(2).count() < 2 {
            let mut rds = Vec::with_capacity(claims.len());
            for c in claims {
                rds.push(self.resource_definition(c).await?);
            }
            return Ok(rds);
        }
        let api: Api<PersistentVolume> = Api::all(self.inner.client.clone());
        let pvs = self
            .inner
            .writer
            .list(&api, &ListParams::default(), ResourceKind::Volume, "*")
            .await?;
        let handles: BTreeMap<&str, &str> = pvs
            .iter()
            .filter_map(|pv| {
                let handle = pv.spec.as_ref()?.csi.as_ref()?.volume_handle.as_str();
                Some((pv.metadata.name.as_deref()?, handle))
            })
            .collect();
        Ok(claims
            .iter()
            .map(|c| {
                let pv = volume_name(c)?;
                handles.get(pv.as_str()).map(|h| h.to_string())
            })
            .collect())
    }

    /// The resource definition behind a bound claim (its PV's CSI volume handle).
    pub(crate) async fn resource_definition(
        &self,
        pvc: &PersistentVolumeClaim,
    ) -> Result<Option<String>> {
        let Some(pv_name) = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()) else {
            return Ok(None);
        };
        let api: Api<PersistentVolume> = Api::all(self.inner.client.clone());
        let name = pvc.metadata.name.clone().unwrap_or_default();
        let pv = self
            .inner
            .writer
            .get_opt(&api, &pv_name, ResourceKind::Volume, &name)
            .await?;
        Ok(pv
            .and_then(|pv| pv.spec)
            .and_then(|s| s.csi)
            .map(|csi| csi.volume_handle))
    }

    /// The volumes of several claims, with one request per plane.
    pub(crate) async fn volumes_of(&self, claims: &[PersistentVolumeClaim]) -> Result<Vec<Volume>> {
        let rds = self.resource_definitions(claims).await?;
        let wanted: Vec<String> = rds.iter().flatten().cloned().collect();
        let resources = self.resources(&wanted).await?;
        claims
            .iter()
            .zip(rds)
            .map(|(c, rd)| {
                let found = rd
                    .and_then(|rd| resources.get(&rd).cloned())
                    .unwrap_or_default();
                volume_of(c, &found)
            })
            .collect()
    }

    /// Whether LINSTOR has the volume open (DRBD primary) somewhere: the nodes.
    pub(crate) async fn in_use_on(&self, pvc: &PersistentVolumeClaim) -> Result<Vec<String>> {
        let Some(rd) = self.resource_definition(pvc).await? else {
            return Ok(Vec::new());
        };
        let resources = self.resources(std::slice::from_ref(&rd)).await?;
        Ok(resources
            .get(&rd)
            .into_iter()
            .flatten()
            .filter(|r| r.in_use())
            .map(|r| r.node_name.clone())
            .collect())
    }
}

/// An error for a claim that is not a kubecloud volume of the tenant.
pub fn not_found(name: &str) -> Error {
    Error::not_found(ResourceKind::Volume, name)
}
