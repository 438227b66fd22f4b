//! A simulated CSI storage stack: a driver (its volumes and snapshots) with the Kubernetes
//! side that serves it — the PV controller's part for its claims, the external-provisioner,
//! external-resizer, snapshot-controller and csi-snapshotter sidecars, kubelet's node expansion
//! step and the scheduler's volume binding — modelled on the kubernetes-csi sidecars' source
//! (see each module) and on each driver's documentation ([`CsiProfile`], the `profile` module).
//!
//! [`install`] seeds what a cluster with the driver has and starts its controllers on a
//! [`TestServer`]:
//! - the driver's `CSIDriver` object (the built-in [`PvcBinder`](crate::PvcBinder) leaves the
//!   claims of a driver with a `CSIDriver` object alone);
//! - its StorageClasses (below) and, if it snapshots, a default `VolumeSnapshotClass`
//!   (`deletionPolicy: Delete`);
//! - for Ceph, the namespace `rook-ceph` and the Secrets the classes name
//!   (`rook-csi-rbd-provisioner`, `rook-csi-rbd-node`, `rook-csi-cephfs-provisioner`,
//!   `rook-csi-cephfs-node`); for LocalPV-LVM, the topology label `openebs.io/nodename` on every
//!   `Node` (kubelet adds it when the driver registers; Nodes made later lack it).
//!
//! | profile | driver | classes (default first) | snapshot class |
//! |---|---|---|---|
//! | `CephRbd` | `rbd.csi.ceph.com` | `ceph-block` (pool `replicapool`, 3 replicas), `ceph-block-2x` (`replicapool-2x`, 2), `ceph-block-retain` (`Retain`) | `csi-rbdplugin-snapclass` |
//! | `CephFs` | `cephfs.csi.ceph.com` | `ceph-filesystem` | `csi-cephfsplugin-snapclass` |
//! | `Longhorn` | `driver.longhorn.io` | `longhorn` (3 replicas), `longhorn-r1`, `longhorn-r2`, `longhorn-migratable` (3, `migratable: "true"`) | `longhorn-snapshot-vsc` |
//! | `Mayastor` | `io.openebs.csi-mayastor` | `mayastor-single-replica` (`repl: "1"`), `mayastor-3` (`repl: "3"`) | `csi-mayastor-snapshotclass` |
//! | `LocalPvLvm` | `local.csi.openebs.io` | `openebs-lvmpv`, `openebs-lvmpv-thin` (both `WaitForFirstConsumer`, `volgroup: lvmvg`) | `lvmpv-snapclass` |
//! | `DemocraticIscsi` | `org.democratic-csi.iscsi` | `freenas-iscsi-csi` | `freenas-iscsi-csi` |
//! | `DemocraticNfs` | `org.democratic-csi.nfs` | `freenas-nfs-csi` | `freenas-nfs-csi` |
//! | `DemocraticNvmeof` | `org.democratic-csi.nvmeof` | `freenas-nvmeof-csi` | `freenas-nvmeof-csi` |
//! | `Generic` | `csi.example.com` | `standard` (no expansion) | none |
//!
//! Every class has `reclaimPolicy: Delete` (but `ceph-block-retain`), `allowVolumeExpansion` as
//! the driver expands, `volumeBindingMode: Immediate` (but LVM's). [`CsiInstall`] installs
//! with other classes.
//!
//! ```
//! use kubecloud_testkit::TestServer;
//! use kubecloud_testkit::csi::{self, CsiProfile};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = TestServer::start().await?;
//! let longhorn = csi::install(&server, CsiProfile::Longhorn);
//! assert_eq!(longhorn.default_class(), Some("longhorn"));
//! let sc = server.cluster().get("storage.k8s.io/v1", "StorageClass", None, "longhorn-r2")?;
//! assert_eq!(sc["parameters"]["numberOfReplicas"], "2");
//! assert!(longhorn.volumes().is_empty());
//! # Ok(()) }
//! ```

mod claims;
mod events;
mod profile;
mod provisioner;
mod quantity;
mod resizer;
mod scheduler;
mod snapshotter;
mod state;

pub use profile::{CsiProfile, Expansion};
pub(crate) use quantity::parse as parse_quantity;
pub use state::{ContentSource, CsiSnapshot, CsiVolume, VolumeMode};

use std::sync::Arc;

use serde_json::{Value, json};

use crate::TestServer;
use crate::cluster::Cluster;
use crate::controllers::{Controller, ControllerHandle};
use crate::status::ApiError;
use state::DriverState;

/// A running simulated CSI driver: its state and controllers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CsiDriver {
    state: DriverState,
    classes: Vec<String>,
    default_class: Option<String>,
    snapshot_class: Option<String>,
    controllers: Vec<ControllerHandle>,
}

impl CsiDriver {
    /// The profile.
    pub fn profile(&self) -> CsiProfile {
        self.state.profile
    }

    /// The CSI driver name.
    pub fn driver(&self) -> &'static str {
        self.state.profile.driver()
    }

    /// How it expands volumes (the profile's, unless installed with
    /// [`CsiInstall::offline_expansion_only`]).
    pub fn expansion(&self) -> Expansion {
        self.state.expansion
    }

    /// The StorageClasses installed for it.
    pub fn storage_classes(&self) -> &[String] {
        &self.classes
    }

    /// The installed class annotated as the cluster default, if any.
    pub fn default_class(&self) -> Option<&str> {
        self.default_class.as_deref()
    }

    /// The default VolumeSnapshotClass, if the driver snapshots.
    pub fn snapshot_class(&self) -> Option<&str> {
        self.snapshot_class.as_deref()
    }

    /// The driver's volumes (what the storage system holds), by handle.
    pub fn volumes(&self) -> Vec<CsiVolume> {
        self.state.volumes()
    }

    /// One volume by handle.
    pub fn volume(&self, handle: &str) -> Option<CsiVolume> {
        self.state.volume(handle)
    }

    /// The driver's snapshots, by handle.
    pub fn snapshots(&self) -> Vec<CsiSnapshot> {
        self.state.snapshots()
    }

    /// One snapshot by handle.
    pub fn snapshot(&self, handle: &str) -> Option<CsiSnapshot> {
        self.state.snapshot(handle)
    }

    /// The next `CreateVolume` fails with `code = Internal desc = <message>` (each call queues
    /// one failure); the claim gets `ProvisioningFailed` and is provisioned at its next change.
    pub fn fail_next_provision(&self, message: impl Into<String>) {
        self.state.fail_next_provision(message.into());
    }

    /// The next `ControllerExpandVolume` fails with `code = Internal desc = <message>`; the
    /// resizer records `VolumeResizeFailed` and retries.
    pub fn fail_next_resize(&self, message: impl Into<String>) {
        self.state.fail_next_resize(message.into());
    }

    /// The handles of its controllers (provisioner, resizer, snapshotter, volume binding), to
    /// pause or delay them.
    pub fn controllers(&self) -> &[ControllerHandle] {
        &self.controllers
    }
}

/// Installs `profile` on `server` with its typical classes (see the [module docs](self)).
///
/// # Panics
///
/// If the server refuses the installation's own objects (a default class of another driver is
/// fine; an object of the same name that is no StorageClass is not): use [`CsiInstall`] to get
/// the error instead.
pub fn install(server: &TestServer, profile: CsiProfile) -> CsiDriver {
    CsiInstall::new(profile)
        .install(server)
        .unwrap_or_else(|e| panic!("installing the {} CSI driver: {e}", profile.driver()))
}

/// Installs a driver with chosen StorageClasses.
///
/// ```
/// use kubecloud_testkit::TestServer;
/// use kubecloud_testkit::csi::{CsiInstall, CsiProfile};
/// use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TestServer::start().await?;
/// let rbd = CsiInstall::new(CsiProfile::CephRbd)
///     .without_default_classes()
///     .class(json!({
///         "metadata": {"name": "rbd-wffc"},
///         "volumeBindingMode": "WaitForFirstConsumer",
///         "parameters": {"clusterID": "rook-ceph", "pool": "replicapool", "imageFeatures": "layering"},
///     }))
///     .install(&server)?;
/// assert_eq!(rbd.storage_classes(), ["rbd-wffc"]);
/// # Ok(()) }
/// ```
#[must_use]
#[derive(Clone, Debug)]
pub struct CsiInstall {
    profile: CsiProfile,
    default_classes: bool,
    classes: Vec<Value>,
    expansion: Expansion,
}

impl CsiInstall {
    /// The driver with its default classes.
    pub fn new(profile: CsiProfile) -> Self {
        CsiInstall {
            profile,
            default_classes: true,
            classes: Vec::new(),
            expansion: profile.expansion(),
        }
    }

    /// The driver expands only volumes no pod uses (its plugin reports `EXPAND_VOLUME` with
    /// `OFFLINE`), as older releases did (Longhorn before v1.4.0). No effect on a driver
    /// without expansion.
    pub fn offline_expansion_only(mut self) -> Self {
        if self.expansion != Expansion::None {
            self.expansion = Expansion::Offline;
        }
        self
    }

    /// Leaves out the profile's typical classes.
    pub fn without_default_classes(mut self) -> Self {
        self.default_classes = false;
        self
    }

    /// Adds a StorageClass; `apiVersion`, `kind` and `provisioner` (the driver) are filled in
    /// when missing.
    pub fn class(mut self, class: Value) -> Self {
        self.classes.push(class);
        self
    }

    fn objects(&self) -> (Vec<Value>, Vec<Value>) {
        let p = self.profile;
        let mut base = Vec::new();
        if !p.secrets().is_empty() {
            base.push(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rook-ceph"}}),
            );
            for s in p.secrets() {
                base.push(json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": s, "namespace": "rook-ceph"},
                    "stringData": {"userID": "csi-user", "userKey": "AQD0simulatedkeyforthetestkit=="},
                }));
            }
        }
        base.push(p.csi_driver_object());
        base.extend(p.snapshot_class());
        let mut classes = if self.default_classes {
            p.default_classes()
        } else {
            Vec::new()
        };
        for c in &self.classes {
            let mut c = c.clone();
            for (k, v) in [
                ("apiVersion", json!("storage.k8s.io/v1")),
                ("kind", json!("StorageClass")),
                ("provisioner", json!(p.driver())),
            ] {
                if c[k].is_null() {
                    c[k] = v;
                }
            }
            classes.push(c);
        }
        (base, classes)
    }

    /// Seeds the objects on `cluster` and returns the driver with its (not yet started)
    /// controllers.
    pub(crate) fn prepare(
        &self,
        cluster: &Cluster,
    ) -> Result<(CsiDriver, Vec<Arc<dyn Controller>>), ApiError> {
        let (base, classes) = self.objects();
        for o in base {
            match cluster.create(o.clone()) {
                Ok(_) => {}
                // Secrets and namespace of an earlier install (another Ceph driver).
                Err(e) if e.is_conflict() && o["kind"] != "CSIDriver" => {}
                Err(e) => return Err(e),
            }
        }
        let mut names = Vec::new();
        let mut default_class = None;
        for c in classes {
            let c = cluster.create(c)?;
            let name = c["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
            {
                default_class.get_or_insert(name.clone());
            }
            names.push(name);
        }
        if self.profile.local() {
            for node in cluster.list("v1", "Node", None)? {
                let name = node["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                cluster.merge_patch(
                    "v1",
                    "Node",
                    None,
                    &name,
                    &json!({"metadata": {"labels": {profile::LVM_TOPOLOGY_KEY: name}}}),
                )?;
            }
        }
        let state = DriverState::new(self.profile, self.expansion);
        let controllers: Vec<Arc<dyn Controller>> = vec![
            Arc::new(provisioner::Provisioner::new(state.clone())),
            Arc::new(resizer::Resizer::new(state.clone())),
            Arc::new(snapshotter::Snapshotter::new(state.clone())),
            Arc::new(scheduler::Scheduler::new(state.clone())),
        ];
        let driver = CsiDriver {
            state,
            classes: names,
            default_class,
            snapshot_class: self
                .profile
                .snapshot_class()
                .and_then(|c| c["metadata"]["name"].as_str().map(String::from)),
            controllers: Vec::new(),
        };
        Ok((driver, controllers))
    }

    /// Seeds the driver's objects on `server` and starts its controllers.
    pub fn install(self, server: &TestServer) -> Result<CsiDriver, ApiError> {
        let (mut driver, controllers) = self.prepare(&server.cluster())?;
        for c in controllers {
            driver.controllers.push(server.add_controller_arc(c));
        }
        Ok(driver)
    }
}
