//! Tenant quotas on Kubernetes: a `ResourceQuota` named [`QUOTA_NAME`] in the tenant's
//! namespace, applied with server-side apply into the namespace [`crate::ensure_namespace`]
//! creates. Its `spec.hard` holds what the cluster can count, so that quota admission refuses a
//! create that raced past kubecloud's own check:
//!
//! | kubecloud limit    | `ResourceQuota` resource              |
//! |--------------------|---------------------------------------|
//! | `vms`              | `count/virtualmachines.kubevirt.io`   |
//! | `volumes`          | `persistentvolumeclaims`              |
//! | `storage`          | `requests.storage`                    |
//! | `publicAddresses`  | `services.loadbalancers` (an upper bound: external IPs are not Services) |
//!
//! vCPUs and memory are not put in the `ResourceQuota`: a VM's virt-launcher pod requests its
//! guest's memory plus KubeVirt's overhead, and its CPU request follows the cluster's CPU
//! allocation ratio, so pod requests do not measure the guest's size (a pod refused by the
//! quota would leave a VM that never starts instead of a clean refusal). Per-tier limits are
//! not either: a tier is served by several storage classes (per replica count and access
//! mode). Those, subnets and external IPs (cluster-scoped objects) rest on kubecloud's own
//! check. The whole [`Quota`] is kept in the annotation [`QUOTA_ANNOTATION`], the source of
//! [`KubeQuotas::get_quota`].
//!
//! [`from_kube`](crate::from_kube) maps quota admission's 403 (`exceeded quota: <name>,
//! requested: <res>=<q>, used: <res>=<q>, limited: <res>=<q>`) to
//! [`Error::QuotaExceeded`] for the resources of the table.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kubecloud_core::wait::Check;
use kubecloud_core::{
    ByteSize, Error, Quota, QuotaResource, Quotas, ResourceKind, Result, Tenant, async_trait,
};

use crate::apply::Writer;
use crate::ownership::{MANAGED_BY, MANAGER, TENANT, tenant_namespace};

/// The name of kubecloud's `ResourceQuota` in a tenant's namespace.
pub const QUOTA_NAME: &str = "kubecloud";

/// The annotation of the `ResourceQuota` holding the tenant's whole [`Quota`] as JSON.
pub const QUOTA_ANNOTATION: &str = "kubecloud.io/quota";

/// The `ResourceQuota` resource counting a tenant's VMs.
pub const VM_COUNT: &str = "count/virtualmachines.kubevirt.io";

/// The `ResourceQuota` of `tenant` for `quota`: what the cluster can count in `spec.hard`, the
/// whole quota in [`QUOTA_ANNOTATION`].
///
/// ```
/// use kubecloud_core::{ByteSize, Quota, Tenant};
/// let acme = Tenant::new("acme")?;
/// let rq = kubecloud_kube::quota::resource_quota(&acme, &Quota::default().with_vms(3).with_storage(ByteSize::gib(100)).with_vcpus(8));
/// let hard = rq.spec.unwrap().hard.unwrap();
/// assert_eq!(hard["count/virtualmachines.kubevirt.io"].0, "3");
/// assert_eq!(hard["requests.storage"].0, "100Gi");
/// assert!(!hard.contains_key("requests.cpu"));
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn resource_quota(tenant: &Tenant, quota: &Quota) -> ResourceQuota {
    let mut hard = BTreeMap::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            hard.insert(name.to_string(), Quantity(v));
        }
    };
    put(VM_COUNT, quota.vms.map(|n| n.to_string()));
    put(
        "persistentvolumeclaims",
        quota.volumes.map(|n| n.to_string()),
    );
    put("requests.storage", quota.storage.map(|s| s.to_string()));
    put(
        "services.loadbalancers",
        quota.public_addresses.map(|n| n.to_string()),
    );
    let mut rq = ResourceQuota::default();
    rq.metadata.name = Some(QUOTA_NAME.to_string());
    rq.metadata.namespace = Some(tenant_namespace(tenant));
    rq.metadata.labels = Some(
        [
            (MANAGED_BY.to_string(), MANAGER.to_string()),
            (TENANT.to_string(), tenant.as_str().to_string()),
        ]
        .into(),
    );
    rq.metadata.annotations = Some(
        [(
            QUOTA_ANNOTATION.to_string(),
            serde_json::to_string(quota).unwrap_or_default(),
        )]
        .into(),
    );
    rq.spec = Some(ResourceQuotaSpec {
        hard: Some(hard),
        ..ResourceQuotaSpec::default()
    });
    rq
}

/// The quota a `ResourceQuota` of kubecloud's holds; a missing or unreadable annotation is an
/// error naming the object, never the default.
pub fn quota_of(rq: &ResourceQuota) -> Result<Quota> {
    let namespace = rq.metadata.namespace.clone().unwrap_or_default();
    let text = rq
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(QUOTA_ANNOTATION))
        .ok_or_else(|| {
            Error::failed(
                ResourceKind::Tenant,
                &namespace,
                format!(
                    "ResourceQuota {namespace}/{QUOTA_NAME} lacks its {QUOTA_ANNOTATION} annotation"
                ),
            )
        })?;
    serde_json::from_str(text).map_err(|e| {
        Error::failed(
            ResourceKind::Tenant,
            &namespace,
            format!("ResourceQuota {namespace}/{QUOTA_NAME}: annotation {QUOTA_ANNOTATION}: {e}"),
        )
    })
}

/// Reads quota admission's 403 message: the first exceeded resource kubecloud knows, with its
/// requested, used and limited amounts (in the resource's unit). `None` for any other message.
///
/// ```
/// use kubecloud_core::QuotaResource;
/// let m = "persistentvolumeclaims \"b\" is forbidden: exceeded quota: kubecloud, requested: \
///          requests.storage=2Gi, used: requests.storage=1Gi, limited: requests.storage=2Gi";
/// let (resource, requested, used, limit) = kubecloud_kube::quota::exceeded(m).unwrap();
/// assert_eq!(resource, QuotaResource::Storage);
/// assert_eq!((requested, used, limit), (2 << 30, 1 << 30, 2 << 30));
/// ```
pub fn exceeded(message: &str) -> Option<(QuotaResource, u64, u64, u64)> {
    let (_, rest) = message.split_once("exceeded quota: ")?;
    let (_, rest) = rest.split_once(", requested: ")?;
    let (requested, rest) = rest.split_once(", used: ")?;
    let (used, limited) = rest.split_once(", limited: ")?;
    let pairs = |s: &str| -> BTreeMap<String, String> {
        s.split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    };
    let (requested, used, limited) = (pairs(requested), pairs(used), pairs(limited));
    requested.iter().find_map(|(name, asked)| {
        let resource = match name.as_str() {
            VM_COUNT => QuotaResource::Vms,
            "persistentvolumeclaims" | "count/persistentvolumeclaims" => QuotaResource::Volumes,
            "requests.storage" => QuotaResource::Storage,
            "services.loadbalancers" => QuotaResource::PublicAddresses,
            _ => return None,
        };
        let bytes = resource.is_bytes();
        let amount = |s: &str| -> Option<u64> {
            if bytes {
                s.parse::<ByteSize>().ok().map(ByteSize::as_u64)
            } else {
                s.parse().ok()
            }
        };
        Some((
            resource,
            amount(asked)?,
            amount(used.get(name)?)?,
            amount(limited.get(name)?)?,
        ))
    })
}

/// Tenant quotas kept in each tenant's `ResourceQuota` (see the module docs).
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
/// use kubecloud_core::{Quota, Quotas, Tenant};
/// let quotas = kubecloud_kube::quota::KubeQuotas::new(client);
/// quotas.set_quota(&Tenant::new("acme")?, &Quota::default().with_vms(10)).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct KubeQuotas {
    client: kube::Client,
    writer: Writer,
    timeout: Duration,
}

impl std::fmt::Debug for KubeQuotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeQuotas")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KubeQuotas {
    /// Quotas on the cluster of `client`; [`KubeQuotas::set_quota`] waits up to 30 s for the
    /// resource quota controller to count the namespace.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            writer: Writer::new("kubernetes"),
            timeout: Duration::from_secs(30),
        }
    }

    /// The same store waiting up to `timeout` for the quota controller after a change.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn api(&self, tenant: &Tenant) -> Api<ResourceQuota> {
        Api::namespaced(self.client.clone(), &tenant_namespace(tenant))
    }
}

/// Whether the quota controller has counted the namespace for `spec.hard`: quota admission
/// refuses every write it constrains until it has (`status unknown for quota`).
fn counted(rq: &ResourceQuota) -> bool {
    let hard = rq.spec.as_ref().and_then(|s| s.hard.as_ref());
    let status = rq.status.as_ref();
    let status_hard = status.and_then(|s| s.hard.as_ref());
    let used = status.and_then(|s| s.used.as_ref());
    match hard {
        None => true,
        Some(hard) if hard.is_empty() => true,
        Some(hard) => {
            status_hard == Some(hard)
                && used.is_some_and(|u| hard.keys().all(|k| u.contains_key(k)))
        }
    }
}

#[async_trait]
impl Quotas for KubeQuotas {
    fn backend_name(&self) -> &str {
        "kubernetes"
    }

    async fn get_quota(&self, tenant: &Tenant) -> Result<Quota> {
        // From the shared watch (a request only until it has listed): every create of a
        // tenant asks, and most tenants have no quota.
        let rq = self
            .writer
            .current(
                &self.api(tenant),
                QUOTA_NAME,
                ResourceKind::Tenant,
                tenant.as_str(),
            )
            .await?;
        match rq {
            Some(rq) => quota_of(&rq),
            None => Ok(Quota::default()),
        }
    }

    async fn set_quota(&self, tenant: &Tenant, quota: &Quota) -> Result<Quota> {
        quota.validate()?;
        crate::ensure_namespace(&self.client, &self.writer, tenant).await?;
        let api = self.api(tenant);
        let desired = resource_quota(tenant, quota);
        let current = self
            .writer
            .get_opt(&api, QUOTA_NAME, ResourceKind::Tenant, tenant.as_str())
            .await?;
        let (applied, _) = self
            .writer
            .apply_if_changed(
                &api,
                current.as_ref(),
                &desired,
                ResourceKind::Tenant,
                tenant.as_str(),
            )
            .await?;
        if !counted(&applied) {
            self.writer
                .wait_for(
                    &api,
                    QUOTA_NAME,
                    ResourceKind::Tenant,
                    tenant.as_str(),
                    self.timeout,
                    |rq: Option<&ResourceQuota>| match rq {
                        Some(rq) if counted(rq) => Check::Met,
                        _ => Check::Pending,
                    },
                )
                .await?;
        }
        tracing::debug!(%tenant, "quota applied");
        Ok(quota.clone())
    }
}
