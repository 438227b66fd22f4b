//! The simulated driver's own state — its volumes and snapshots, as the storage system behind
//! the CSI controller service holds them — and the CSI controller calls acting on it
//! (`CreateVolume`, `DeleteVolume`, `ControllerExpandVolume`, `CreateSnapshot`,
//! `DeleteSnapshot`), each idempotent by name as the CSI spec requires.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::profile::{CreateRequest, CsiProfile, Expansion, RpcError};

/// How a volume is presented to pods (`spec.volumeMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeMode {
    /// A mounted filesystem.
    Filesystem,
    /// A raw block device.
    Block,
}

/// What a volume was made from (`VolumeContentSource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentSource {
    /// A clone of the volume with this handle.
    Volume(String),
    /// A restore of the snapshot with this handle.
    Snapshot(String),
}

/// A volume as the driver holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsiVolume {
    /// The volume handle (`spec.csi.volumeHandle` of its PV).
    pub handle: String,
    /// The `CreateVolume` name (the PV's name, `pvc-<claim uid>`).
    pub name: String,
    /// Its size in bytes (what the driver made, rounded up as it rounds).
    pub size_bytes: u64,
    /// Copies of the data the storage system keeps (class parameter or pool property, see
    /// [`CsiProfile::replicas_from_class`]).
    pub replicas: u32,
    /// The storage pool, Ceph pool or volume group, where the driver has one.
    pub pool: Option<String>,
    /// Filesystem or Block.
    pub volume_mode: VolumeMode,
    /// The claim's access modes.
    pub access_modes: Vec<String>,
    /// What it was made from.
    pub source: Option<ContentSource>,
    /// The node holding it, for a local volume (LocalPV-LVM).
    pub node: Option<String>,
    /// The class parameters it was made with (the `csi.storage.k8s.io/` ones stripped, as the
    /// external-provisioner strips them).
    pub parameters: BTreeMap<String, String>,
}

/// A snapshot as the driver holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsiSnapshot {
    /// The snapshot handle (`status.snapshotHandle` of its VolumeSnapshotContent).
    pub handle: String,
    /// The `CreateSnapshot` name (`snapshot-<VolumeSnapshot uid>`).
    pub name: String,
    /// The handle of the volume it was taken of.
    pub source_volume: String,
    /// The size a restore needs at least (the volume's size when taken).
    pub size_bytes: u64,
}

#[derive(Debug, Default)]
struct Inner {
    volumes: BTreeMap<String, CsiVolume>,
    snapshots: BTreeMap<String, CsiSnapshot>,
    fail_provision: VecDeque<String>,
    fail_resize: VecDeque<String>,
}

/// The driver's state, shared by its controllers and its [`super::CsiDriver`] handle.
#[derive(Clone, Debug)]
pub(crate) struct DriverState {
    pub(crate) profile: CsiProfile,
    /// How it expands (the profile's, or an older release's).
    pub(crate) expansion: Expansion,
    inner: Arc<Mutex<Inner>>,
}

impl DriverState {
    pub(crate) fn new(profile: CsiProfile, expansion: Expansion) -> Self {
        DriverState {
            profile,
            expansion,
            inner: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn volumes(&self) -> Vec<CsiVolume> {
        self.lock().volumes.values().cloned().collect()
    }

    pub(crate) fn volume(&self, handle: &str) -> Option<CsiVolume> {
        self.lock().volumes.get(handle).cloned()
    }

    pub(crate) fn snapshots(&self) -> Vec<CsiSnapshot> {
        self.lock().snapshots.values().cloned().collect()
    }

    pub(crate) fn snapshot(&self, handle: &str) -> Option<CsiSnapshot> {
        self.lock().snapshots.get(handle).cloned()
    }

    pub(crate) fn fail_next_provision(&self, message: String) {
        self.lock().fail_provision.push_back(message);
    }

    pub(crate) fn fail_next_resize(&self, message: String) {
        self.lock().fail_resize.push_back(message);
    }

    /// `CreateVolume`: validates, then makes (or finds, by name) the volume.
    pub(crate) fn create_volume(
        &self,
        req: &CreateRequest,
        source: Option<ContentSource>,
    ) -> Result<CsiVolume, RpcError> {
        let mut inner = self.lock();
        if let Some(existing) = inner.volumes.values().find(|v| v.name == req.name) {
            return Ok(existing.clone());
        }
        if let Some(message) = inner.fail_provision.pop_front() {
            return Err(RpcError::new("Internal", message));
        }
        let placement = self.profile.validate(req)?;
        let mut size = req.bytes;
        match &source {
            Some(ContentSource::Volume(h)) => {
                let src = inner.volumes.get(h).ok_or_else(|| {
                    RpcError::new("NotFound", format!("source volume {h} not found"))
                })?;
                size = size.max(src.size_bytes);
            }
            Some(ContentSource::Snapshot(h)) => {
                let src = inner.snapshots.get(h).ok_or_else(|| {
                    RpcError::new("NotFound", format!("source snapshot {h} not found"))
                })?;
                size = size.max(src.size_bytes);
            }
            None => {}
        }
        let handle = self
            .profile
            .volume_handle(&req.name, placement.pool.as_deref());
        let volume = CsiVolume {
            handle: handle.clone(),
            name: req.name.clone(),
            size_bytes: self.profile.round_up(size),
            replicas: placement.replicas,
            pool: placement.pool,
            volume_mode: if req.block {
                VolumeMode::Block
            } else {
                VolumeMode::Filesystem
            },
            access_modes: req.access_modes.clone(),
            source,
            node: placement.node,
            parameters: req.parameters.clone(),
        };
        inner.volumes.insert(handle, volume.clone());
        Ok(volume)
    }

    /// `DeleteVolume`: gone (also when it was already gone).
    pub(crate) fn delete_volume(&self, handle: &str) {
        self.lock().volumes.remove(handle);
    }

    /// `ControllerExpandVolume`: the new size.
    pub(crate) fn expand_volume(&self, handle: &str, bytes: u64) -> Result<u64, RpcError> {
        let mut inner = self.lock();
        if let Some(message) = inner.fail_resize.pop_front() {
            return Err(RpcError::new("Internal", message));
        }
        let profile = self.profile;
        let volume = inner
            .volumes
            .get_mut(handle)
            .ok_or_else(|| RpcError::new("NotFound", format!("volume {handle} not found")))?;
        volume.size_bytes = volume.size_bytes.max(profile.round_up(bytes));
        Ok(volume.size_bytes)
    }

    /// `CreateSnapshot` of `volume` named `name` (or the one already made under that name).
    pub(crate) fn create_snapshot(
        &self,
        name: &str,
        volume: &str,
    ) -> Result<CsiSnapshot, RpcError> {
        let mut inner = self.lock();
        if let Some(existing) = inner.snapshots.values().find(|s| s.name == name) {
            return Ok(existing.clone());
        }
        let src = inner.volumes.get(volume).ok_or_else(|| {
            RpcError::new("NotFound", format!("source volume {volume} not found"))
        })?;
        let snapshot = CsiSnapshot {
            handle: self.profile.snapshot_handle(name, volume),
            name: name.to_string(),
            source_volume: volume.to_string(),
            size_bytes: src.size_bytes,
        };
        inner
            .snapshots
            .insert(snapshot.handle.clone(), snapshot.clone());
        Ok(snapshot)
    }

    /// `DeleteSnapshot`.
    pub(crate) fn delete_snapshot(&self, handle: &str) {
        self.lock().snapshots.remove(handle);
    }
}
