//! The tenant's namespace, created on first use.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kubecloud_core::{ResourceKind, Result, Tenant};

use crate::apply::Writer;
use crate::ownership::{MANAGED_BY, MANAGER, TENANT, tenant_namespace};

/// The namespaces a [`Writer`] has made sure of, so that creating a thousand objects in one
/// namespace reads it once, not a thousand times. A write that finds the namespace gone (deleted
/// by hand) forgets it, so the next [`ensure_namespace`] creates it again.
#[derive(Clone, Debug, Default)]
pub(crate) struct EnsuredNamespaces {
    known: Arc<Mutex<HashSet<String>>>,
    /// Held while a namespace is being made sure of, so that many concurrent first writes read
    /// it once and the others wait for that answer.
    ensuring: Arc<tokio::sync::Mutex<()>>,
}

impl EnsuredNamespaces {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn contains(&self, namespace: &str) -> bool {
        self.lock().contains(namespace)
    }

    fn insert(&self, namespace: String) {
        self.lock().insert(namespace);
    }

    /// Forgets `namespace` (a write into it answered "not found").
    pub(crate) fn forget(&self, namespace: &str) {
        self.lock().remove(namespace);
    }
}

/// Makes sure the tenant's namespace exists (server-side apply, skipped when it is already as
/// kubecloud made it), labelled as kubecloud's and the tenant's. A namespace of that name that
/// kubecloud did not create for this tenant (without both labels, e.g. `metallb-system` or
/// another team's namespace) is refused with [`kubecloud_core::Error::Conflict`] and left as it
/// is: a tenant never shares a namespace with anything else. To hand an existing, empty
/// namespace to a tenant on purpose, label it `app.kubernetes.io/managed-by=kubecloud` and
/// `kubecloud.io/tenant=<tenant>` first. Backends call it before the
/// first write of a namespaced object for a tenant; after the first call a [`Writer`] remembers
/// the namespace and sends nothing.
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
) -> Result<()> {
    let name = tenant_namespace(tenant);
    let ensured = writer.ensured_namespaces();
    if ensured.contains(&name) {
        return Ok(());
    }
    let _one_at_a_time = ensured.ensuring.lock().await;
    if ensured.contains(&name) {
        return Ok(());
    }
    let api: Api<Namespace> = Api::all(client.clone());
    let namespace = namespace_object(tenant);
    let current = writer
        .get_opt(&api, &name, ResourceKind::Tenant, tenant.as_str())
        .await?;
    if let Some(current) = &current {
        ensure_tenant_home(current, tenant)?;
    }
    writer
        .apply_if_changed(
            &api,
            current.as_ref(),
            &namespace,
            ResourceKind::Tenant,
            tenant.as_str(),
        )
        .await?;
    writer.ensured_namespaces().insert(name);
    Ok(())
}

/// Refuses a namespace that is not kubecloud's for `tenant` (see [`ensure_namespace`]).
fn ensure_tenant_home(namespace: &Namespace, tenant: &Tenant) -> Result<()> {
    let labels = namespace.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    if label(MANAGED_BY) == Some(MANAGER) && label(TENANT) == Some(tenant.as_str()) {
        return Ok(());
    }
    Err(kubecloud_core::Error::conflict(
        ResourceKind::Tenant,
        tenant.as_str(),
        format!(
            "namespace {:?} exists and kubecloud did not create it for this tenant (it lacks the \
             labels {MANAGED_BY}={MANAGER} and {TENANT}={tenant}); a tenant never shares a \
             namespace with anything else",
            tenant_namespace(tenant)
        ),
    ))
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
