//! The one error type every kubecloud operation returns.

use std::fmt;
use std::time::Duration;

use crate::quota::QuotaResource;

/// Shorthand for `Result<T, kubecloud_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds of resource kubecloud manages, used to say *what* an error is about.
///
/// ```
/// use kubecloud_core::ResourceKind;
/// assert_eq!(ResourceKind::Vm.to_string(), "vm");
/// ```
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ResourceKind {
    /// A tenant (a Kubernetes namespace).
    Tenant,
    /// A virtual machine.
    Vm,
    /// A live migration of a virtual machine.
    Migration,
    /// A block volume.
    Volume,
    /// A snapshot of a block volume.
    Snapshot,
    /// A snapshot of a whole virtual machine (its spec and volumes).
    VmSnapshot,
    /// A storage pool (a tier).
    StoragePool,
    /// A virtual private cloud.
    Vpc,
    /// A subnet of a VPC.
    Subnet,
    /// A fixed IP (and MAC) reservation.
    IpReservation,
    /// A security group.
    SecurityGroup,
    /// An internal service (stable address and DNS name).
    Service,
    /// A pool of external addresses.
    AddressPool,
    /// A load-balancer exposure of VMs.
    Exposure,
    /// A cluster node.
    Node,
    /// An address from the provider's external network.
    ExternalIp,
    /// A floating IP: an external address bound one-to-one to a tenant's reservation.
    FloatingIp,
    /// An outbound NAT rule of a subnet behind an external address.
    SnatRule,
    /// An image of the shared catalog.
    CatalogImage,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tenant => "tenant",
            Self::Vm => "vm",
            Self::Migration => "migration",
            Self::Volume => "volume",
            Self::Snapshot => "snapshot",
            Self::VmSnapshot => "vm snapshot",
            Self::StoragePool => "storage pool",
            Self::Vpc => "vpc",
            Self::Subnet => "subnet",
            Self::IpReservation => "ip reservation",
            Self::SecurityGroup => "security group",
            Self::Service => "service",
            Self::AddressPool => "address pool",
            Self::Exposure => "exposure",
            Self::Node => "node",
            Self::ExternalIp => "external ip",
            Self::FloatingIp => "floating ip",
            Self::SnatRule => "snat rule",
            Self::CatalogImage => "catalog image",
        })
    }
}

/// A boxed error from a backend, kept as the `source()` of [`Error::Backend`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in kubecloud, by meaning rather than by backend.
///
/// `Display` is one short sentence; detail from a backend sits in [`std::error::Error::source`].
/// Secrets never appear in any variant.
///
/// ```
/// use kubecloud_core::{Error, ResourceKind};
/// let err = Error::not_found(ResourceKind::Vm, "web-1");
/// assert!(err.is_not_found());
/// assert!(!err.is_temporary());
/// assert_eq!(err.to_string(), "vm \"web-1\" not found");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The named resource does not exist (in the calling tenant).
    #[error("{kind} \"{name}\" not found")]
    NotFound {
        /// What was looked for.
        kind: ResourceKind,
        /// Its name.
        name: String,
    },
    /// A resource with that name exists already.
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists {
        /// What was to be created.
        kind: ResourceKind,
        /// Its name.
        name: String,
    },
    /// The request contradicts the current state (a volume in use, an IP taken, a CIDR overlap).
    #[error("{kind} \"{name}\": {reason}")]
    Conflict {
        /// The resource the request was about.
        kind: ResourceKind,
        /// Its name.
        name: String,
        /// Why the request cannot be carried out now.
        reason: String,
    },
    /// The input is invalid; nothing was sent or changed.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field, as a path into the spec (for example `interfaces[0].fixed_ip`).
        field: String,
        /// Why the value is refused.
        reason: String,
    },
    /// The backend cannot do this at all; nothing was sent.
    #[error("{backend} does not support {operation} (missing capability: {capability})")]
    Unsupported {
        /// The backend's name.
        backend: String,
        /// The operation asked for.
        operation: String,
        /// The capability flag it lacks.
        capability: String,
    },
    /// A finite resource ran out (subnet addresses, pool addresses, storage capacity, nodes).
    #[error("{kind} \"{name}\" exhausted: {reason}")]
    Exhausted {
        /// The exhausted resource's kind.
        kind: ResourceKind,
        /// Its name.
        name: String,
        /// What ran out.
        reason: String,
    },
    /// The request would take the tenant past its quota ([`crate::Quota`]); nothing was sent
    /// or changed. Amounts are in the resource's unit ([`QuotaResource::amount`]: bytes for
    /// memory and storage, a count otherwise).
    ///
    /// ```
    /// use kubecloud_core::{Error, QuotaResource};
    /// let err = Error::QuotaExceeded { tenant: "acme".into(), resource: QuotaResource::Vms,
    ///     limit: 2, used: 2, requested: 1 };
    /// assert!(err.is_quota_exceeded());
    /// assert_eq!(err.to_string(),
    ///     "tenant \"acme\" exceeded its vms quota: requested 1, used 2, limited to 2");
    /// ```
    #[error(
        "tenant \"{tenant}\" exceeded its {resource} quota: requested {}, used {}, limited to {}",
        resource.amount(*requested), resource.amount(*used), resource.amount(*limit)
    )]
    QuotaExceeded {
        /// The tenant.
        tenant: String,
        /// The resource past its limit.
        resource: QuotaResource,
        /// The limit.
        limit: u64,
        /// What the tenant held.
        used: u64,
        /// What the request asked for.
        requested: u64,
    },
    /// A resource reached a terminal failure state (import failed, VM failed, migration failed).
    #[error("{kind} \"{name}\" failed: {reason}")]
    Failed {
        /// The failed resource's kind.
        kind: ResourceKind,
        /// Its name.
        name: String,
        /// The reason the system reported.
        reason: String,
    },
    /// A wait (or an operation made of waits, such as a tenant's `destroy`) ended before its
    /// condition held: what was awaited (the resource and the condition), the time it was given
    /// and the last state seen, such as the finalizers that kept an object from going.
    ///
    /// ```
    /// use std::time::Duration;
    /// use kubecloud_core::{Error, ResourceKind};
    /// let err = Error::timeout(ResourceKind::Volume, "web-root", "gone", Duration::from_secs(2),
    ///     "PersistentVolumeClaim acme/web-root: deletionTimestamp set, finalizers [kubernetes.io/pvc-protection]");
    /// assert_eq!(err.to_string(), "timed out after 2s waiting for volume \"web-root\": gone \
    ///     (last seen: PersistentVolumeClaim acme/web-root: deletionTimestamp set, finalizers [kubernetes.io/pvc-protection])");
    /// ```
    #[error(
        "timed out after {after:?} waiting for {kind} \"{name}\": {waiting_for} (last seen: {last_seen})"
    )]
    Timeout {
        /// The kind of the resource awaited.
        kind: ResourceKind,
        /// Its name.
        name: String,
        /// The condition awaited, in words ("vm running", "gone").
        waiting_for: String,
        /// The time the wait was given: its own timeout, or the timeout of the operation it
        /// was part of when that ended first.
        after: Duration,
        /// The last state observed.
        last_seen: String,
    },
    /// The backend failed; `source()` holds its own error.
    #[error("{backend}: {message}")]
    Backend {
        /// The backend's name.
        backend: String,
        /// A short description.
        message: String,
        /// Whether retrying the same request may succeed.
        temporary: bool,
        /// The backend's own error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// A [`Error::NotFound`].
    pub fn not_found(kind: ResourceKind, name: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            name: name.into(),
        }
    }

    /// An [`Error::AlreadyExists`].
    pub fn already_exists(kind: ResourceKind, name: impl Into<String>) -> Self {
        Self::AlreadyExists {
            kind,
            name: name.into(),
        }
    }

    /// A [`Error::Conflict`].
    pub fn conflict(
        kind: ResourceKind,
        name: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Conflict {
            kind,
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::InvalidInput`] naming the field and the reason.
    ///
    /// ```
    /// let err = kubecloud_core::Error::invalid("size", "must be greater than zero");
    /// assert_eq!(err.to_string(), "invalid size: must be greater than zero");
    /// ```
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Exhausted`].
    pub fn exhausted(
        kind: ResourceKind,
        name: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::Exhausted {
            kind,
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Failed`].
    pub fn failed(kind: ResourceKind, name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Failed {
            kind,
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Unsupported`].
    pub fn unsupported(
        backend: impl Into<String>,
        operation: impl Into<String>,
        capability: impl Into<String>,
    ) -> Self {
        Self::Unsupported {
            backend: backend.into(),
            operation: operation.into(),
            capability: capability.into(),
        }
    }

    /// An [`Error::Timeout`].
    pub fn timeout(
        kind: ResourceKind,
        name: impl Into<String>,
        waiting_for: impl Into<String>,
        after: Duration,
        last_seen: impl Into<String>,
    ) -> Self {
        Self::Timeout {
            kind,
            name: name.into(),
            waiting_for: waiting_for.into(),
            after,
            last_seen: last_seen.into(),
        }
    }

    /// Whether this is [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// A [`Error::Backend`] error wrapping a source.
    pub fn backend(
        backend: impl Into<String>,
        message: impl Into<String>,
        temporary: bool,
        source: impl Into<BoxError>,
    ) -> Self {
        Self::Backend {
            backend: backend.into(),
            message: message.into(),
            temporary,
            source: Some(source.into()),
        }
    }

    /// Whether retrying the same request later may succeed (a backend hiccup or a timeout);
    /// retry only these.
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::Backend { temporary, .. } => *temporary,
            Self::Timeout { .. } => true,
            _ => false,
        }
    }

    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether this is [`Error::QuotaExceeded`].
    pub fn is_quota_exceeded(&self) -> bool {
        matches!(self, Self::QuotaExceeded { .. })
    }

    /// The resource an [`Error::QuotaExceeded`] names, if it is one.
    pub fn quota_resource(&self) -> Option<&QuotaResource> {
        match self {
            Self::QuotaExceeded { resource, .. } => Some(resource),
            _ => None,
        }
    }

    /// Whether this is [`Error::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::AlreadyExists { .. })
    }

    /// Whether this is [`Error::InvalidInput`].
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidInput { .. })
    }

    /// The field an [`Error::InvalidInput`] names, if it is one.
    pub fn invalid_field(&self) -> Option<&str> {
        match self {
            Self::InvalidInput { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Prefixes the field of an [`Error::InvalidInput`] with `prefix` (for nested specs); other
    /// errors pass through unchanged.
    ///
    /// ```
    /// let err = kubecloud_core::Error::invalid("name", "empty").within("vms[2]");
    /// assert_eq!(err.invalid_field(), Some("vms[2].name"));
    /// ```
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Self::InvalidInput { field, reason } => Self::InvalidInput {
                field: format!("{prefix}.{field}"),
                reason,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_backend_hiccups_and_timeouts_are_temporary() {
        let io = std::io::Error::other("connection reset");
        assert!(Error::backend("kubevirt", "write failed", true, io).is_temporary());
        assert!(
            Error::timeout(
                ResourceKind::Vm,
                "a",
                "vm running",
                Duration::from_secs(1),
                "starting"
            )
            .is_temporary()
        );
        assert!(!Error::not_found(ResourceKind::Vm, "a").is_temporary());
        assert!(!Error::conflict(ResourceKind::Volume, "a", "in use").is_temporary());
        assert!(!Error::invalid("size", "zero").is_temporary());
    }

    #[test]
    fn backend_detail_is_in_source_not_display() {
        let io = std::io::Error::other("tls handshake eof");
        let err = Error::backend("linstor", "request failed", true, io);
        assert_eq!(err.to_string(), "linstor: request failed");
        let source = std::error::Error::source(&err).expect("source kept");
        assert_eq!(source.to_string(), "tls handshake eof");
    }
}
