//! The naming conventions every backend shares, so one backend can find what another made
//! without importing it (the compute backend learns claims and networks from the attachments the
//! storage and network backends hand it, `kubecloud_core::VmAttachments`).
//!
//! | domain resource | Kubernetes object |
//! |---|---|
//! | tenant `t` | namespace `t` |
//! | volume `v` of `t` | PersistentVolumeClaim `v` in namespace `t` |
//! | cluster-scoped object for resource `r` of `t` (a network backend's VPCs and subnets, a load balancer's pools) | [`cluster_scoped`]`(t, r)` = `t-r` (shortened with a hash when too long) |
//! | secondary subnet `s` of `t` | NetworkAttachmentDefinition `s` in namespace `t` |
//! | VM `m`'s cloud-init | Secret `m-cloudinit` in namespace `t` |
//! | VM `m`'s SSH keys | Secret `m-ssh` in namespace `t` |
//!
//! `tenant-name` is not injective: tenant `a` with resource `b-c` and tenant `a-b` with resource
//! `c` both give `a-b-c`. Names are kept as they are (objects already on clusters keep theirs);
//! instead, before taking a cluster-scoped name a backend checks the live object's ownership
//! labels with [`ensure_name_free_for`], which refuses a name held by another resource with a
//! clear [`kubecloud_core::Error::Conflict`].
//!
//! VM labels are copied onto the VM's pod template, so a Service selecting VM labels selects the
//! VM's virt-launcher pod.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubecloud_core::{Error, ResourceKind, Result, Tenant};

use crate::ownership::{MANAGED_BY, MANAGER, NAME, TENANT};

/// The longest name a DNS-1123 label allows.
const MAX_LABEL: usize = 63;

/// The PersistentVolumeClaim of volume `volume` (in the tenant's namespace).
///
/// ```
/// assert_eq!(kubecloud_kube::names::claim("web-root"), "web-root");
/// ```
pub fn claim(volume: &str) -> String {
    volume.to_string()
}

/// The name of a cluster-scoped object standing for resource `name` of `tenant`: `tenant-name`,
/// or, when that exceeds 63 characters, a prefix of it and a stable 8-hex-digit hash of the whole,
/// so names stay unique per tenant and valid as DNS labels.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// assert_eq!(kubecloud_kube::names::cluster_scoped(&acme, "web"), "acme-web");
/// let long = kubecloud_kube::names::cluster_scoped(&acme, &"x".repeat(63));
/// assert_eq!(long.len(), 63);
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn cluster_scoped(tenant: &Tenant, name: &str) -> String {
    let full = format!("{}-{name}", tenant.as_str());
    if full.len() <= MAX_LABEL {
        return full;
    }
    let hash = fnv1a(full.as_bytes());
    let keep = MAX_LABEL - 9;
    let prefix = full[..keep].trim_end_matches('-');
    format!("{prefix}-{hash:08x}")
}

/// Checks that the live object `existing`, found at the name `object` that resource `name` of
/// `tenant` maps to, is that very resource's (same tenant and resource labels): `Ok` when it
/// is, and otherwise an [`Error::Conflict`] about `name` saying who holds the name — another
/// tenant's resource whose `tenant-name` spells the same (the other tenant is not named, so one
/// tenant learns nothing about another), another resource of this tenant, or an object kubecloud
/// does not manage. Nothing is sent; call it before applying.
///
/// ```
/// use kubecloud_core::{ResourceKind, Tenant};
/// use kubecloud_kube::{names, ownership_labels};
/// use kubecloud_kube::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
/// let (a, a_b) = (Tenant::new("a")?, Tenant::new("a-b")?);
/// assert_eq!(names::cluster_scoped(&a, "b-c"), names::cluster_scoped(&a_b, "c"));
/// let held = ObjectMeta { labels: Some(ownership_labels(&a, "b-c")), ..Default::default() };
/// assert!(names::ensure_name_free_for(&held, &a, ResourceKind::Vpc, "b-c", "a-b-c").is_ok());
/// let err = names::ensure_name_free_for(&held, &a_b, ResourceKind::Vpc, "c", "a-b-c").unwrap_err();
/// assert!(err.to_string().contains("another tenant"), "{err}");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn ensure_name_free_for(
    existing: &ObjectMeta,
    tenant: &Tenant,
    kind: ResourceKind,
    name: &str,
    object: &str,
) -> Result<()> {
    let labels = existing.labels.as_ref();
    let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    let holder = if get(MANAGED_BY) != Some(MANAGER) || get(TENANT).is_none() {
        "an object kubecloud does not manage".to_string()
    } else if get(TENANT) != Some(tenant.as_str()) {
        format!(
            "another tenant's resource (tenant and resource names joined by '-' spell the same \
             name for both); choose another name for this {kind}"
        )
    } else {
        match get(NAME) {
            Some(other) if other == name => return Ok(()),
            Some(other) => format!("this tenant's resource {other:?}"),
            None => "an object of this tenant without a resource label".to_string(),
        }
    };
    tracing::debug!(%tenant, %kind, name, object, "object name held by another resource");
    Err(Error::conflict(
        kind,
        name,
        format!("the object name {object:?} is already used by {holder}"),
    ))
}

/// The NetworkAttachmentDefinition of secondary subnet `subnet` (in the tenant's namespace).
pub fn attachment(subnet: &str) -> String {
    subnet.to_string()
}

/// The Secret holding VM `vm`'s cloud-init user and network data.
pub fn cloud_init_secret(vm: &str) -> String {
    format!("{vm}-cloudinit")
}

/// The Secret holding VM `vm`'s SSH public keys.
pub fn ssh_secret(vm: &str) -> String {
    format!("{vm}-ssh")
}

/// FNV-1a, 32 bits: a tiny stable hash for name shortening (not for security).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_held_by_another_resource_is_a_conflict_naming_the_holder_kind() {
        let (a, a_b) = (Tenant::new("a").unwrap(), Tenant::new("a-b").unwrap());
        let object = cluster_scoped(&a, "b-c");
        assert_eq!(object, cluster_scoped(&a_b, "c"), "the collision");
        let held = ObjectMeta {
            labels: Some(crate::ownership_labels(&a, "b-c")),
            ..ObjectMeta::default()
        };
        assert!(ensure_name_free_for(&held, &a, ResourceKind::Subnet, "b-c", &object).is_ok());
        let err =
            ensure_name_free_for(&held, &a_b, ResourceKind::Subnet, "c", &object).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Conflict { .. }), "{text}");
        assert!(
            text.contains("another tenant") && text.contains("\"a-b-c\""),
            "{text}"
        );
        assert!(
            !text.contains("\"b-c\""),
            "the other tenant's resource is not named: {text}"
        );
        let err = ensure_name_free_for(&held, &a, ResourceKind::Subnet, "x", &object).unwrap_err();
        assert!(err.to_string().contains("resource \"b-c\""), "{err}");
        let foreign = ObjectMeta::default();
        let err =
            ensure_name_free_for(&foreign, &a, ResourceKind::Subnet, "b-c", &object).unwrap_err();
        assert!(err.to_string().contains("does not manage"), "{err}");
    }

    #[test]
    fn shortened_names_stay_unique_and_valid() {
        let t = Tenant::new("t".repeat(40)).unwrap();
        let a = cluster_scoped(&t, &"a".repeat(40));
        let b = cluster_scoped(&t, &format!("{}b", "a".repeat(39)));
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(n.len() <= 63);
            assert!(kubecloud_core::validate_name("n", n).is_ok(), "{n}");
        }
    }
}
