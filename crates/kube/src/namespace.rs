//! The tenant's namespace, created on first use.

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kubecloud_core::{ResourceKind, Result, Tenant};

use crate::apply::Writer;
use crate::ownership::{MANAGED_BY, MANAGER, TENANT, tenant_namespace};

/// Makes sure the tenant's namespace exists (server-side apply, so it is idempotent and cheap to
/// repeat), labelled as kubecloud's and the tenant's. Backends call it before the first write of
/// a namespaced object for a tenant.
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// kubecloud_kube::ensure_namespace(&client, &kubecloud_kube::Writer::new("example"), &acme).await?;
/// # Ok(()) }
/// ```
pub async fn ensure_namespace(
    client: &kube::Client,
    writer: &Writer,
    tenant: &Tenant,
) -> Result<Namespace> {
    let api: Api<Namespace> = Api::all(client.clone());
    let name = tenant_namespace(tenant);
    let namespace = namespace_object(tenant);
    let current = writer
        .get_opt(&api, &name, ResourceKind::Tenant, tenant.as_str())
        .await?;
    let (ns, _) = writer
        .apply_if_changed(
            &api,
            current.as_ref(),
            &namespace,
            ResourceKind::Tenant,
            tenant.as_str(),
        )
        .await?;
    Ok(ns)
}

/// The tenant's `Namespace` as [`ensure_namespace`] applies it (before the applied-hash
/// annotation): named after the tenant, labelled as kubecloud's and the tenant's.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// let ns = kubecloud_kube::namespace_object(&acme);
/// assert_eq!(ns.metadata.name.as_deref(), Some("acme"));
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn namespace_object(tenant: &Tenant) -> Namespace {
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(tenant_namespace(tenant));
    namespace.metadata.labels = Some(
        [
            (MANAGED_BY.to_string(), MANAGER.to_string()),
            (TENANT.to_string(), tenant.as_str().to_string()),
        ]
        .into(),
    );
    namespace
}
