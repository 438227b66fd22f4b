//! Which tenant an object belongs to, and the labels that say so.
//!
//! Every object a backend creates carries [`MANAGED_BY`] = `kubecloud`, [`TENANT`] = the tenant
//! and [`NAME`] = the domain resource's name. Namespaced objects live in the tenant's namespace;
//! cluster-scoped ones (a network backend's VPCs and subnets, say) are told apart by the tenant label, which
//! [`ensure_owned`] checks on every read and write.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubecloud_core::{Error, ResourceKind, Result, Tenant};

/// `app.kubernetes.io/managed-by`: always `kubecloud` on objects kubecloud created.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY`].
pub const MANAGER: &str = "kubecloud";
/// The tenant that owns the object.
pub const TENANT: &str = "kubecloud.io/tenant";
/// The domain resource (VM, volume, subnet...) the object belongs to.
pub const NAME: &str = "kubecloud.io/name";
/// The field manager of every server-side apply kubecloud sends.
pub const FIELD_MANAGER: &str = "kubecloud";

/// The namespace holding a tenant's namespaced objects: the tenant's name.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// assert_eq!(kubecloud_kube::tenant_namespace(&acme), "acme");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn tenant_namespace(tenant: &Tenant) -> String {
    tenant.as_str().to_string()
}

/// The ownership labels for an object of `tenant` that belongs to the domain resource `name`.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// let labels = kubecloud_kube::ownership_labels(&acme, "web-1");
/// assert_eq!(labels["kubecloud.io/tenant"], "acme");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn ownership_labels(tenant: &Tenant, name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), MANAGER.to_string()),
        (TENANT.to_string(), tenant.as_str().to_string()),
        (NAME.to_string(), name.to_string()),
    ])
}

/// A label selector matching every object kubecloud manages for `tenant`.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// assert_eq!(kubecloud_kube::tenant_selector(&acme), "app.kubernetes.io/managed-by=kubecloud,kubecloud.io/tenant=acme");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn tenant_selector(tenant: &Tenant) -> String {
    format!("{MANAGED_BY}={MANAGER},{TENANT}={}", tenant.as_str())
}

/// Whether kubecloud created the object for `tenant`.
pub fn is_owned(meta: &ObjectMeta, tenant: &Tenant) -> bool {
    let labels = meta.labels.as_ref();
    let get = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    get(MANAGED_BY) == Some(MANAGER) && get(TENANT) == Some(tenant.as_str())
}

/// Refuses an object that `tenant` does not own with [`Error::NotFound`] — the same answer as
/// for an object that does not exist, so one tenant cannot even learn that another's exists.
pub fn ensure_owned(
    meta: &ObjectMeta,
    tenant: &Tenant,
    kind: ResourceKind,
    name: &str,
) -> Result<()> {
    if is_owned(meta, tenant) {
        Ok(())
    } else {
        tracing::debug!(%tenant, %kind, name, "object exists but belongs to someone else; answering not found");
        Err(Error::not_found(kind, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_tenants_object_reads_as_not_found() {
        let acme = Tenant::new("acme").unwrap();
        let globex = Tenant::new("globex").unwrap();
        let meta = ObjectMeta {
            labels: Some(ownership_labels(&acme, "net")),
            ..ObjectMeta::default()
        };
        assert!(ensure_owned(&meta, &acme, ResourceKind::Subnet, "net").is_ok());
        let err = ensure_owned(&meta, &globex, ResourceKind::Subnet, "net").unwrap_err();
        assert!(err.is_not_found());
        let unlabelled = ObjectMeta::default();
        assert!(ensure_owned(&unlabelled, &acme, ResourceKind::Subnet, "net").is_err());
    }
}
