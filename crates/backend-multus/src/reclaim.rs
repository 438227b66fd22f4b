//! Leaked addresses: whereabouts allocations whose pod is gone, found and freed as whereabouts'
//! own reconciler does (`pkg/reconciler/iploop.go`, `pkg/reconciler/ip.go`: an allocation whose
//! `podref` names no live pod is an orphan; the reconciler removes it from the `IPPool` and
//! deletes its `OverlappingRangeIPReservation`, named `<network_name>-<ip>`,
//! `pkg/storage/kubernetes/ipam.go` `NormalizeIP`).

use std::net::IpAddr;

use kube::api::{Patch, PatchParams};
use kubecloud_core::{Error, ResourceKind, Result, SubnetSpec, Tenant};
use kubecloud_kube::{from_kube, tenant_namespace};
use serde_json::{Value, json};

use crate::driver::{address_at, allocations};
use crate::{BACKEND, Multus, kinds, translate};
use kubecloud_models::whereabouts::IpPool;

/// A whereabouts allocation whose pod is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaked {
    /// The subnet.
    pub subnet: String,
    /// The address.
    pub ip: IpAddr,
    /// The pod (`namespace/name`) it was allocated to.
    pub pod: String,
}

impl Multus {
    /// The allocations of `spec`'s pool whose pod is gone, with the pool (for its
    /// resourceVersion) and each allocation's offset.
    async fn leaked_in(
        &self,
        tenant: &Tenant,
        spec: &SubnetSpec,
    ) -> Result<(Option<IpPool>, Vec<(u128, Leaked)>)> {
        let Some(pool) = self.pool(tenant, spec).await? else {
            return Ok((None, Vec::new()));
        };
        let ns = tenant_namespace(tenant);
        let pods = self.tenant_api(&kinds::pod(), tenant);
        let mut out = Vec::new();
        for (offset, podref, _) in allocations(&pool) {
            let (pod_ns, pod) = podref.split_once('/').unwrap_or(("", podref.as_str()));
            // Only the tenant's own pods are looked up; an allocation naming another
            // namespace's pod in the tenant's subnet is not this tenant's to judge.
            if pod_ns != ns {
                continue;
            }
            let live = self
                .writer
                .get_opt(&pods, pod, ResourceKind::Subnet, &spec.name)
                .await?
                .is_some();
            if !live && let Some(ip) = address_at(spec, offset) {
                out.push((
                    offset,
                    Leaked {
                        subnet: spec.name.clone(),
                        ip,
                        pod: podref.clone(),
                    },
                ));
            }
        }
        Ok((Some(pool), out))
    }

    /// The whereabouts allocations in the tenant's subnets whose pod is gone.
    ///
    /// ```no_run
    /// # async fn demo(network: kubecloud_multus::Multus, acme: kubecloud_core::Tenant) -> kubecloud_core::Result<()> {
    /// for leak in network.leaked_addresses(&acme).await? {
    ///     println!("{} in {} was {}'s", leak.ip, leak.subnet, leak.pod);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn leaked_addresses(&self, tenant: &Tenant) -> Result<Vec<Leaked>> {
        let mut out = Vec::new();
        for nad in self.subnet_objects(tenant, None).await? {
            let spec = translate::subnet_spec_from(&nad)?;
            out.extend(
                self.leaked_in(tenant, &spec)
                    .await?
                    .1
                    .into_iter()
                    .map(|(_, l)| l),
            );
        }
        Ok(out)
    }

    /// Frees the whereabouts allocations in the tenant's subnets whose pod is gone; returns
    /// what was freed.
    pub async fn reclaim_leaked_addresses(&self, tenant: &Tenant) -> Result<Vec<Leaked>> {
        let mut out = Vec::new();
        for nad in self.subnet_objects(tenant, None).await? {
            let spec = translate::subnet_spec_from(&nad)?;
            out.extend(self.reclaim_subnet(tenant, &spec).await?);
        }
        Ok(out)
    }

    /// Frees the leaked allocations of one subnet: removes them from the pool (with its
    /// resourceVersion as precondition, as whereabouts updates it) and deletes their
    /// `OverlappingRangeIPReservation`s.
    pub(crate) async fn reclaim_subnet(
        &self,
        tenant: &Tenant,
        spec: &SubnetSpec,
    ) -> Result<Vec<Leaked>> {
        let kind = ResourceKind::Subnet;
        for _ in 0..8 {
            let (pool, leaked) = self.leaked_in(tenant, spec).await?;
            let Some(pool) = pool else {
                return Ok(Vec::new());
            };
            if leaked.is_empty() {
                return Ok(Vec::new());
            }
            let mut removed = serde_json::Map::new();
            for (offset, _) in &leaked {
                removed.insert(offset.to_string(), Value::Null);
            }
            let patch = json!({
                "metadata": {"resourceVersion": pool.metadata.resource_version},
                "spec": {"allocations": removed},
            });
            let name = translate::pool_name(tenant, &spec.name, spec.cidr);
            match self
                .pools()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(from_kube(BACKEND, kind, &spec.name, e)),
            }
            let reservations = self.api(
                &kinds::overlapping_reservation(),
                &self.whereabouts_namespace,
            );
            for (_, leak) in &leaked {
                let orip = format!(
                    "{}-{}",
                    translate::network_name(tenant, &spec.name),
                    leak.ip.to_string().replace(':', "-")
                );
                self.writer
                    .delete(&reservations, &orip, kind, &spec.name)
                    .await?;
                tracing::info!(subnet = %spec.name, ip = %leak.ip, pod = %leak.pod, "reclaimed a leaked address");
            }
            return Ok(leaked.into_iter().map(|(_, l)| l).collect());
        }
        Err(Error::backend(
            BACKEND,
            format!(
                "the whereabouts pool of subnet {:?} kept changing while leaked addresses were reclaimed",
                spec.name
            ),
            true,
            std::io::Error::other("resourceVersion conflicts"),
        ))
    }
}
