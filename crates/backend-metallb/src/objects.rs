//! Typed handles on the MetalLB kinds (dynamic objects with their API resources).

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kubecloud_core::{Error, Result};
use serde_json::Value;

/// A MetalLB kind the backend writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `IPAddressPool` (v1beta1).
    IpAddressPool,
    /// `L2Advertisement` (v1beta1).
    L2Advertisement,
    /// `BGPAdvertisement` (v1beta1).
    BgpAdvertisement,
    /// `BGPPeer` (v1beta2).
    BgpPeer,
    /// `BFDProfile` (v1beta1).
    BfdProfile,
    /// `Community` (v1beta1).
    Community,
}

impl Kind {
    /// Every kind, pool last (the order deletions go in).
    pub const ALL_POOL_LAST: [Kind; 6] = [
        Kind::L2Advertisement,
        Kind::BgpAdvertisement,
        Kind::BgpPeer,
        Kind::BfdProfile,
        Kind::Community,
        Kind::IpAddressPool,
    ];

    /// The kind of an object's `kind` field.
    pub fn of(object: &Value) -> Option<Kind> {
        Some(match object["kind"].as_str()? {
            "IPAddressPool" => Kind::IpAddressPool,
            "L2Advertisement" => Kind::L2Advertisement,
            "BGPAdvertisement" => Kind::BgpAdvertisement,
            "BGPPeer" => Kind::BgpPeer,
            "BFDProfile" => Kind::BfdProfile,
            "Community" => Kind::Community,
            _ => return None,
        })
    }

    fn gvk_plural(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::IpAddressPool => ("v1beta1", "IPAddressPool", "ipaddresspools"),
            Kind::L2Advertisement => ("v1beta1", "L2Advertisement", "l2advertisements"),
            Kind::BgpAdvertisement => ("v1beta1", "BGPAdvertisement", "bgpadvertisements"),
            Kind::BgpPeer => ("v1beta2", "BGPPeer", "bgppeers"),
            Kind::BfdProfile => ("v1beta1", "BFDProfile", "bfdprofiles"),
            Kind::Community => ("v1beta1", "Community", "communities"),
        }
    }

    /// The kind's API resource.
    pub fn resource(self) -> ApiResource {
        let (version, kind, plural) = self.gvk_plural();
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("metallb.io", version, kind),
            plural,
        )
    }

    /// The kind's API in `namespace`.
    pub fn api(self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &self.resource())
    }
}

/// A JSON object as a [`DynamicObject`].
pub fn dynamic(object: &Value) -> Result<DynamicObject> {
    serde_json::from_value(object.clone())
        .map_err(|e| Error::backend("metallb", "building an object failed", false, e))
}

/// A [`DynamicObject`] as JSON (an object that cannot be is an error, never `null`).
pub fn json(object: &DynamicObject) -> Result<Value> {
    serde_json::to_value(object)
        .map_err(|e| Error::backend("metallb", "reading an object failed", false, e))
}
