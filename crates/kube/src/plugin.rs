//! What a Kubernetes backend tells the facade about itself, so the facade names no backend:
//! which part of the cloud it is ([`Part`]) and the RBAC it needs ([`Rbac`]: every verb on every
//! resource it sends, and which of those the conformance suite does not exercise, with why).
//!
//! Each backend crate exports its [`Rbac`] as `plugin::RBAC`; the facade's `rbac::rules`
//! combines those of the parts asked for into one ClusterRole.
//!
//! ```
//! use kubecloud_kube::plugin::{Need, Part, Rbac};
//! const RBAC: Rbac = Rbac {
//!     part: Part::LoadBalancer,
//!     needs: &[Need { group: "example.io", resources: &["pools"], verbs: &["get", "patch"] }],
//!     not_exercised: &[],
//! };
//! assert!(RBAC.needs[0].verbs.contains(&"patch"));
//! ```

use kubecloud_core::{Error, Result};

/// A part of the cloud: which trait a backend implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Virtual machines ([`kubecloud_core::Compute`]).
    Compute,
    /// Block storage ([`kubecloud_core::BlockStorage`]).
    Storage,
    /// Networks ([`kubecloud_core::Network`]).
    Network,
    /// External addresses ([`kubecloud_core::LoadBalancer`]).
    LoadBalancer,
}

impl Part {
    /// Every part, in a stable order.
    pub const ALL: [Part; 4] = [
        Part::Compute,
        Part::Storage,
        Part::Network,
        Part::LoadBalancer,
    ];

    /// The part's name (`compute`, `storage`, `network`, `load_balancer`).
    ///
    /// ```
    /// assert_eq!(kubecloud_kube::plugin::Part::LoadBalancer.name(), "load_balancer");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Part::Compute => "compute",
            Part::Storage => "storage",
            Part::Network => "network",
            Part::LoadBalancer => "load_balancer",
        }
    }
}

impl std::str::FromStr for Part {
    type Err = Error;

    /// A part by its name (`load-balancer` is accepted too); anything else is
    /// [`Error::InvalidInput`] on field `part`.
    fn from_str(s: &str) -> Result<Self> {
        Part::ALL
            .into_iter()
            .find(|p| p.name() == s || (s == "load-balancer" && *p == Part::LoadBalancer))
            .ok_or_else(|| {
                Error::invalid(
                    "part",
                    format!("{s:?} is not one of compute, storage, network, load_balancer"),
                )
            })
    }
}

/// Verbs a backend sends on resources of one API group (`""` for the core group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// The API group.
    pub group: &'static str,
    /// The resources (`resource/subresource` for a subresource).
    pub resources: &'static [&'static str],
    /// The RBAC verbs.
    pub verbs: &'static [&'static str],
}

/// An access a backend needs that the conformance suite does not exercise, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unexercised {
    /// The API group.
    pub group: &'static str,
    /// The resource.
    pub resource: &'static str,
    /// The verb.
    pub verb: &'static str,
    /// Why the suite does not send it.
    pub why: &'static str,
}

/// A backend's RBAC: what it sends, for which part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rbac {
    /// The part the backend is.
    pub part: Part,
    /// Everything it sends (server-side apply is a `patch`, and a `create` when it creates;
    /// `get_opt` a `get`; waits a `list` then a `watch`).
    pub needs: &'static [Need],
    /// The accesses among those the conformance suite does not exercise.
    pub not_exercised: &'static [Unexercised],
}

/// Read verbs.
pub const READ: &[&str] = &["get", "list", "watch"];
/// Read and write verbs (everything server-side apply, waits and deletion send).
pub const WRITE: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];
