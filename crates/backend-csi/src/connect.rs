//! Connecting (what `Cloud::connect` does for storage when LINSTOR is not installed): the tiers
//! from the cluster's StorageClasses of CSI drivers, their CSIDrivers and VolumeSnapshotClasses
//! (three lists, nothing written), imports when CDI is installed, snapshots when the snapshot
//! CRDs are.
//!
//! Where Piraeus runs LINSTOR (a `LinstorCluster` exists), storage is the LINSTOR backend's,
//! which knows more about LINSTOR than a profile can: `Cloud::connect` tries LINSTOR's
//! connector first and this one only when LINSTOR declines, unless the options choose this one
//! (`ConnectOptions::backend(Part::Storage, "csi")`).
//!
//! ```
//! use kubecloud_csi::connect::{CsiConnect, CsiSettings};
//! use kubecloud_kube::connect::ConnectOptions;
//! let options = ConnectOptions::new().csi_default_tier("ceph-rbd");
//! assert_eq!(options.setting::<CsiSettings>().unwrap().default_tier.as_deref(), Some("ceph-rbd"));
//! ```

use std::sync::Arc;

use kubecloud_core::Result;
use kubecloud_kube::connect::{Built, ConnectOptions, Connector, Installed, VOLUME_SNAPSHOTS};
use kubecloud_kube::plugin::Part;

use crate::{BACKEND, Csi};

/// The CSI backend's settings on [`ConnectOptions`] (see [`CsiConnect`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsiSettings {
    /// The tier of volumes that name none (else the tier of the cluster's default class).
    pub default_tier: Option<String>,
    /// The namespaces the CSI drivers run in (no tenant takes them).
    pub system_namespaces: Vec<String>,
}

/// The CSI backend's settings on [`ConnectOptions`].
pub trait CsiConnect: Sized {
    /// The tier of volumes that name none.
    fn csi_default_tier(self, tier: impl Into<String>) -> Self;
    /// A namespace a CSI driver runs in: reported as a system namespace, which no tenant takes.
    ///
    /// ```
    /// use kubecloud_csi::connect::{CsiConnect, CsiSettings};
    /// let options = kubecloud_kube::connect::ConnectOptions::new().csi_system_namespace("rook-ceph");
    /// assert_eq!(options.setting::<CsiSettings>().unwrap().system_namespaces, ["rook-ceph"]);
    /// ```
    fn csi_system_namespace(self, namespace: impl Into<String>) -> Self;
}

fn edited(options: ConnectOptions, change: impl FnOnce(&mut CsiSettings)) -> ConnectOptions {
    let mut settings = options
        .setting::<CsiSettings>()
        .cloned()
        .unwrap_or_default();
    change(&mut settings);
    options.with(settings)
}

impl CsiConnect for ConnectOptions {
    fn csi_default_tier(self, tier: impl Into<String>) -> Self {
        edited(self, |s| s.default_tier = Some(tier.into()))
    }

    fn csi_system_namespace(self, namespace: impl Into<String>) -> Self {
        edited(self, |s| s.system_namespaces.push(namespace.into()))
    }
}

/// Builds the CSI backend when connecting (see the module docs).
///
/// ```
/// use kubecloud_kube::connect::Connector;
/// assert_eq!(kubecloud_csi::connect::CONNECTOR.name(), "csi");
/// ```
pub const CONNECTOR: CsiConnector = CsiConnector;

/// The [`Connector`] of the CSI backend.
#[derive(Clone, Copy, Debug)]
pub struct CsiConnector;

#[kubecloud_core::async_trait]
impl Connector for CsiConnector {
    fn name(&self) -> &'static str {
        BACKEND
    }

    fn part(&self) -> Part {
        Part::Storage
    }

    async fn connect(
        &self,
        client: &kube::Client,
        installed: &Installed,
        options: &ConnectOptions,
    ) -> Result<std::result::Result<Built, String>> {
        let given = options
            .setting::<CsiSettings>()
            .cloned()
            .unwrap_or_default();
        let mut builder = Csi::discover(client.clone(), installed.has(&VOLUME_SNAPSHOTS))
            .await?
            .http_import(installed.has(&kubecloud_kube::cdi::SYSTEM));
        if let Some(tier) = given.default_tier {
            builder = builder.default_tier(tier);
        }
        for namespace in given.system_namespaces {
            builder = builder.system_namespace(namespace);
        }
        match builder.build() {
            Ok(csi) => {
                tracing::info!(?csi, "storage on the cluster's CSI drivers");
                Ok(Ok(Built::Storage(Arc::new(csi))))
            }
            Err(e) if e.invalid_field() == Some("tiers") => Ok(Err(format!("no CSI storage: {e}"))),
            Err(e) => Err(e),
        }
    }
}
