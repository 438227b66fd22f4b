//! A plan's quota: the quota applying sets (the spec's, when it differs from the tenant's),
//! and the tenant's usage after the plan against the quota it will have. A plan that would take
//! a resource past its limit is refused with [`Error::QuotaExceeded`] before anything is sent;
//! a resource already past a lowered limit that the plan does not grow is left as it is.

use kubecloud_core::{Consumption, Error, Quota, Result, Usage};

use super::plan::{Action, Desired, Step};
use super::spec::TenantSpec;
use crate::tenant::TenantHandle;

/// What one resource of a spec takes of a quota.
fn consumption_of(desired: &Desired, default_tier: Option<&str>) -> Consumption {
    match desired {
        Desired::Vm(spec) => Consumption::of_vm(spec, default_tier),
        Desired::Volume(spec) => Consumption::of_volume(spec, default_tier),
        Desired::Subnet(_) => Consumption::subnets(1),
        Desired::Exposure(_) => Consumption::public_addresses(1),
        _ => Consumption::none(),
    }
}

/// The quota to set and the usage after the plan's `steps`; `live` is the live spec of a step's
/// resource (for deletions and changes).
pub(crate) async fn after<'a>(
    tenant: &TenantHandle,
    spec: &TenantSpec,
    steps: &[Step],
    live: impl Fn(&Step) -> Option<&'a Desired>,
) -> Result<(Option<Quota>, Option<Usage>)> {
    let current = tenant.quota().await?;
    let (quota, change) = match &spec.quota {
        Some(q) if *q != current => (q.clone(), Some(q.clone())),
        Some(q) => (q.clone(), None),
        None => (current, None),
    };
    if quota.is_unlimited() {
        return Ok((change, None));
    }
    let cloud = tenant.cloud();
    let before = crate::quota::consumption(cloud, tenant.name()).await?;
    let default_tier = crate::quota::default_tier(cloud, tenant.name()).await?;
    let tier = default_tier.as_deref();
    let (mut added, mut removed) = (Consumption::none(), Consumption::none());
    for step in steps {
        let old = live(step).map(|d| consumption_of(d, tier));
        let new = step.desired.as_ref().map(|d| consumption_of(d, tier));
        match step.action {
            // A create of something only partly there: it already counts.
            Action::Create if old.is_some() => {}
            Action::Create => added.add(&new.unwrap_or_default()),
            Action::Delete => removed.add(&old.unwrap_or_default()),
            Action::Update | Action::Replace => {
                added.add(&new.unwrap_or_default());
                removed.add(&old.unwrap_or_default());
            }
        }
    }
    let after = before.clone().plus(&added).beyond(&removed);
    for (resource, limit) in quota.limits() {
        let (was, will) = (before.get(&resource), after.get(&resource));
        if will > limit && will > was {
            return Err(Error::QuotaExceeded {
                tenant: tenant.name().to_string(),
                resource,
                limit,
                used: was,
                requested: will - was,
            });
        }
    }
    if after.uncounted_instance_types > 0 && (quota.vcpus.is_some() || quota.memory.is_some()) {
        quota.check(
            tenant.name().as_str(),
            &before,
            &Consumption {
                uncounted_instance_types: after.uncounted_instance_types,
                ..Consumption::none()
            },
        )?;
    }
    let mut usage = quota.usage(&after);
    usage.lines.retain(|l| l.limit.is_some());
    Ok((change, Some(usage)))
}
