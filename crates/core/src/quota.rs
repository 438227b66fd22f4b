//! Tenant quotas: how much a tenant may hold ([`Quota`]), what it holds ([`Consumption`]),
//! the two side by side ([`Usage`]), and the check every create runs before anything is sent
//! ([`Quota::check`]), which refuses with [`Error::QuotaExceeded`] naming the resource, the
//! limit, what is used and what was requested.
//!
//! What counts, per resource ([`QuotaResource`]):
//! - `vcpus`, `memory`, `vms`: every VM of the tenant (whatever its run strategy: a stopped VM
//!   keeps its claim, as OpenStack's Nova counts a shut-off instance).
//! - `volumes`, `storage` (and per tier): every block volume, including the boot volume an
//!   image import creates for a VM ([`crate::BootDisk::Import`]).
//! - `subnets`: every subnet; `public_addresses`: every external IP and every exposure (each
//!   exposure is a load-balancer address, shared or not).
//!
//! ```
//! use kubecloud_core::{ByteSize, Consumption, Quota, QuotaResource, VolumeSpec};
//! let quota = Quota::default().with_volumes(2).with_storage(ByteSize::gib(20));
//! let used = Consumption::of_volume(&VolumeSpec::blank("a", ByteSize::gib(15)), None);
//! let more = Consumption::of_volume(&VolumeSpec::blank("b", ByteSize::gib(10)), None);
//! let err = quota.check("acme", &used, &more).unwrap_err();
//! assert_eq!(err.quota_resource(), Some(&QuotaResource::Storage));
//! assert_eq!(err.to_string(),
//!     "tenant \"acme\" exceeded its storage quota: requested 10Gi, used 15Gi, limited to 20Gi");
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::compute::{BootDisk, VmResources, VmSpec};
use crate::error::{Error, Result};
use crate::name::Tenant;
use crate::size::ByteSize;
use crate::storage::VolumeSpec;

/// One resource a [`Quota`] limits.
///
/// ```
/// use kubecloud_core::QuotaResource;
/// assert_eq!(QuotaResource::TierStorage("fast".into()).to_string(), "tiers.fast.storage");
/// assert_eq!(QuotaResource::Memory.amount(1 << 30), "1Gi");
/// assert_eq!(QuotaResource::Vms.amount(3), "3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum QuotaResource {
    /// Virtual CPU cores of all VMs.
    Vcpus,
    /// Guest memory of all VMs (bytes).
    Memory,
    /// Number of VMs.
    Vms,
    /// Number of block volumes.
    Volumes,
    /// Size of all block volumes (bytes).
    Storage,
    /// Number of block volumes in one tier.
    TierVolumes(String),
    /// Size of the block volumes in one tier (bytes).
    TierStorage(String),
    /// Number of subnets.
    Subnets,
    /// Number of public addresses (external IPs and exposures).
    PublicAddresses,
}

impl QuotaResource {
    /// Whether amounts of this resource are bytes.
    pub fn is_bytes(&self) -> bool {
        matches!(self, Self::Memory | Self::Storage | Self::TierStorage(_))
    }

    /// `n` of this resource, written as its quota is (bytes as a quantity such as `10Gi`).
    pub fn amount(&self, n: u64) -> String {
        if self.is_bytes() {
            ByteSize(n).to_string()
        } else {
            n.to_string()
        }
    }
}

impl fmt::Display for QuotaResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vcpus => f.write_str("vcpus"),
            Self::Memory => f.write_str("memory"),
            Self::Vms => f.write_str("vms"),
            Self::Volumes => f.write_str("volumes"),
            Self::Storage => f.write_str("storage"),
            Self::TierVolumes(t) => write!(f, "tiers.{t}.volumes"),
            Self::TierStorage(t) => write!(f, "tiers.{t}.storage"),
            Self::Subnets => f.write_str("subnets"),
            Self::PublicAddresses => f.write_str("publicAddresses"),
        }
    }
}

/// The limits of one storage tier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TierQuota {
    /// Most volumes in the tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<u64>,
    /// Most bytes of volumes in the tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<ByteSize>,
}

/// How much a tenant may hold. Every limit is optional: `None` is no limit, and the default
/// quota limits nothing.
///
/// In a [`TenantSpec`](../kubecloud/struct.TenantSpec.html) it reads:
///
/// ```
/// use kubecloud_core::{ByteSize, Quota};
/// let quota: Quota = serde_json::from_str(
///     r#"{"vcpus": 16, "memory": "64Gi", "vms": 8, "volumes": 20, "storage": "1Ti",
///         "tiers": {"fast": {"storage": "200Gi"}}, "subnets": 4, "publicAddresses": 2}"#)?;
/// assert_eq!(quota.memory, Some(ByteSize::gib(64)));
/// assert_eq!(quota.tiers["fast"].storage, Some(ByteSize::gib(200)));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quota {
    /// Most virtual CPU cores over all VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u64>,
    /// Most guest memory over all VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// Most VMs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vms: Option<u64>,
    /// Most block volumes (boot volumes of image imports included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<u64>,
    /// Most bytes of block volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<ByteSize>,
    /// Limits per storage tier, by tier name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, TierQuota>,
    /// Most subnets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<u64>,
    /// Most public addresses (external IPs and exposures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_addresses: Option<u64>,
}

impl Quota {
    /// Whether the quota limits nothing.
    pub fn is_unlimited(&self) -> bool {
        self.limits().is_empty()
    }

    /// The same quota with at most `n` vCPUs.
    pub fn with_vcpus(mut self, n: u64) -> Self {
        self.vcpus = Some(n);
        self
    }
    /// The same quota with at most `size` of guest memory.
    pub fn with_memory(mut self, size: ByteSize) -> Self {
        self.memory = Some(size);
        self
    }
    /// The same quota with at most `n` VMs.
    pub fn with_vms(mut self, n: u64) -> Self {
        self.vms = Some(n);
        self
    }
    /// The same quota with at most `n` volumes.
    pub fn with_volumes(mut self, n: u64) -> Self {
        self.volumes = Some(n);
        self
    }
    /// The same quota with at most `size` of volumes.
    pub fn with_storage(mut self, size: ByteSize) -> Self {
        self.storage = Some(size);
        self
    }
    /// The same quota with limits on tier `tier`.
    pub fn with_tier(mut self, tier: impl Into<String>, limits: TierQuota) -> Self {
        self.tiers.insert(tier.into(), limits);
        self
    }
    /// The same quota with at most `n` subnets.
    pub fn with_subnets(mut self, n: u64) -> Self {
        self.subnets = Some(n);
        self
    }
    /// The same quota with at most `n` public addresses.
    pub fn with_public_addresses(mut self, n: u64) -> Self {
        self.public_addresses = Some(n);
        self
    }

    /// Refuses a tier name that is not a DNS label (field `tiers`).
    pub fn validate(&self) -> Result<()> {
        for tier in self.tiers.keys() {
            crate::validate_name("tiers", tier)?;
        }
        Ok(())
    }

    /// Every limited resource with its limit, in a stable order.
    pub fn limits(&self) -> Vec<(QuotaResource, u64)> {
        let mut out = Vec::new();
        let mut push = |r: QuotaResource, v: Option<u64>| {
            if let Some(v) = v {
                out.push((r, v));
            }
        };
        push(QuotaResource::Vcpus, self.vcpus);
        push(QuotaResource::Memory, self.memory.map(ByteSize::as_u64));
        push(QuotaResource::Vms, self.vms);
        push(QuotaResource::Volumes, self.volumes);
        push(QuotaResource::Storage, self.storage.map(ByteSize::as_u64));
        for (tier, limits) in &self.tiers {
            push(QuotaResource::TierVolumes(tier.clone()), limits.volumes);
            push(
                QuotaResource::TierStorage(tier.clone()),
                limits.storage.map(ByteSize::as_u64),
            );
        }
        push(QuotaResource::Subnets, self.subnets);
        push(QuotaResource::PublicAddresses, self.public_addresses);
        out
    }

    /// The limit of `resource`, if any.
    pub fn limit(&self, resource: &QuotaResource) -> Option<u64> {
        self.limits()
            .into_iter()
            .find(|(r, _)| r == resource)
            .map(|(_, v)| v)
    }

    /// Whether any limit concerns what `request` asks for (only then does a create need to
    /// count what the tenant holds).
    pub fn concerns(&self, request: &Consumption) -> bool {
        self.limits()
            .iter()
            .any(|(resource, _)| request.get(resource) > 0)
            || (request.uncounted_instance_types > 0
                && (self.vcpus.is_some() || self.memory.is_some()))
    }

    /// Refuses `requested` on top of `used` when it takes any limited resource past its limit:
    /// [`Error::QuotaExceeded`] naming the first such resource (in [`Quota::limits`] order).
    /// A VM sized by an instance type cannot be counted against a vCPU or memory limit and is
    /// refused with [`Error::InvalidInput`] (field `resources`).
    pub fn check(&self, tenant: &str, used: &Consumption, requested: &Consumption) -> Result<()> {
        if requested.uncounted_instance_types > 0 && (self.vcpus.is_some() || self.memory.is_some())
        {
            return Err(Error::invalid(
                "resources",
                "a VM sized by an instance type cannot be counted against the tenant's vCPU or \
                 memory quota; give cpuCores and memory",
            ));
        }
        for (resource, limit) in self.limits() {
            let asked = requested.get(&resource);
            if asked == 0 {
                continue;
            }
            let held = used.get(&resource);
            if held.saturating_add(asked) > limit {
                tracing::debug!(tenant, %resource, limit, used = held, requested = asked, "quota exceeded");
                return Err(Error::QuotaExceeded {
                    tenant: tenant.to_string(),
                    resource,
                    limit,
                    used: held,
                    requested: asked,
                });
            }
        }
        Ok(())
    }

    /// What the tenant holds against this quota's limits (every resource, limited or not).
    pub fn usage(&self, used: &Consumption) -> Usage {
        let mut resources = vec![
            QuotaResource::Vcpus,
            QuotaResource::Memory,
            QuotaResource::Vms,
            QuotaResource::Volumes,
            QuotaResource::Storage,
        ];
        let tiers: std::collections::BTreeSet<&String> =
            self.tiers.keys().chain(used.tiers.keys()).collect();
        for tier in tiers {
            resources.push(QuotaResource::TierVolumes(tier.clone()));
            resources.push(QuotaResource::TierStorage(tier.clone()));
        }
        resources.push(QuotaResource::Subnets);
        resources.push(QuotaResource::PublicAddresses);
        Usage {
            lines: resources
                .into_iter()
                .map(|resource| UsageLine {
                    used: used.get(&resource),
                    limit: self.limit(&resource),
                    resource,
                })
                .collect(),
        }
    }
}

/// What one tier holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierConsumption {
    /// Volumes in the tier.
    pub volumes: u64,
    /// Bytes of volumes in the tier.
    pub storage: u64,
}

/// What a tenant holds, or what a request asks for, in the units of [`Quota`].
///
/// ```
/// use kubecloud_core::{Consumption, VmSpec};
/// let vm = VmSpec::default();
/// let c = Consumption::of_vm(&vm, None);
/// assert_eq!((c.vms, c.vcpus, c.memory), (1, 1, 1 << 30));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumption {
    /// Virtual CPU cores.
    pub vcpus: u64,
    /// Guest memory in bytes.
    pub memory: u64,
    /// VMs.
    pub vms: u64,
    /// VMs sized by an instance type (their CPU and memory are not counted).
    pub uncounted_instance_types: u64,
    /// Block volumes.
    pub volumes: u64,
    /// Bytes of block volumes.
    pub storage: u64,
    /// Per tier.
    pub tiers: BTreeMap<String, TierConsumption>,
    /// Subnets.
    pub subnets: u64,
    /// External IPs and exposures.
    pub public_addresses: u64,
}

impl Consumption {
    /// Nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// One VM: its vCPUs and memory, and the boot volume an image import creates
    /// (`default_tier` stands for an import without a tier).
    pub fn of_vm(spec: &VmSpec, default_tier: Option<&str>) -> Self {
        let mut c = Self {
            vms: 1,
            ..Self::default()
        };
        match &spec.resources {
            VmResources::Custom { cpu_cores, memory } => {
                c.vcpus = u64::from(*cpu_cores);
                c.memory = memory.as_u64();
            }
            VmResources::InstanceType { .. } => c.uncounted_instance_types = 1,
        }
        if let BootDisk::Import { size, tier, .. } = &spec.boot_disk {
            c.add_volume(tier.as_deref().or(default_tier), *size);
        }
        c
    }

    /// One block volume (`default_tier` stands for a volume without a tier).
    pub fn of_volume(spec: &VolumeSpec, default_tier: Option<&str>) -> Self {
        let mut c = Self::default();
        c.add_volume(spec.tier.as_deref().or(default_tier), spec.size);
        c
    }

    /// `n` subnets.
    pub fn subnets(n: u64) -> Self {
        Self {
            subnets: n,
            ..Self::default()
        }
    }

    /// `n` public addresses.
    pub fn public_addresses(n: u64) -> Self {
        Self {
            public_addresses: n,
            ..Self::default()
        }
    }

    /// `bytes` more storage on an existing volume (a resize).
    pub fn growth(tier: Option<&str>, bytes: u64) -> Self {
        let mut c = Self {
            storage: bytes,
            ..Self::default()
        };
        if let Some(tier) = tier {
            c.tiers.entry(tier.to_string()).or_default().storage = bytes;
        }
        c
    }

    fn add_volume(&mut self, tier: Option<&str>, size: ByteSize) {
        self.volumes += 1;
        self.storage = self.storage.saturating_add(size.as_u64());
        if let Some(tier) = tier {
            let t = self.tiers.entry(tier.to_string()).or_default();
            t.volumes += 1;
            t.storage = t.storage.saturating_add(size.as_u64());
        }
    }

    /// The sum of both.
    pub fn plus(mut self, other: &Self) -> Self {
        self.add(other);
        self
    }

    /// Adds `other` to this.
    pub fn add(&mut self, other: &Self) {
        self.vcpus = self.vcpus.saturating_add(other.vcpus);
        self.memory = self.memory.saturating_add(other.memory);
        self.vms = self.vms.saturating_add(other.vms);
        self.uncounted_instance_types = self
            .uncounted_instance_types
            .saturating_add(other.uncounted_instance_types);
        self.volumes = self.volumes.saturating_add(other.volumes);
        self.storage = self.storage.saturating_add(other.storage);
        for (tier, c) in &other.tiers {
            let t = self.tiers.entry(tier.clone()).or_default();
            t.volumes = t.volumes.saturating_add(c.volumes);
            t.storage = t.storage.saturating_add(c.storage);
        }
        self.subnets = self.subnets.saturating_add(other.subnets);
        self.public_addresses = self.public_addresses.saturating_add(other.public_addresses);
    }

    /// What this asks for beyond `before` (each amount less `before`'s, never below zero): what
    /// an update that replaces `before` with this takes on top.
    ///
    /// ```
    /// use kubecloud_core::{ByteSize, Consumption, VmResources, VmSpec};
    /// let small = VmSpec::default();
    /// let big = VmSpec { resources: VmResources::Custom { cpu_cores: 4, memory: ByteSize::gib(1) }, ..small.clone() };
    /// let delta = Consumption::of_vm(&big, None).beyond(&Consumption::of_vm(&small, None));
    /// assert_eq!((delta.vms, delta.vcpus, delta.memory), (0, 3, 0));
    /// ```
    pub fn beyond(&self, before: &Self) -> Self {
        let mut tiers = BTreeMap::new();
        for (tier, c) in &self.tiers {
            let b = before.tiers.get(tier).copied().unwrap_or_default();
            tiers.insert(
                tier.clone(),
                TierConsumption {
                    volumes: c.volumes.saturating_sub(b.volumes),
                    storage: c.storage.saturating_sub(b.storage),
                },
            );
        }
        Self {
            vcpus: self.vcpus.saturating_sub(before.vcpus),
            memory: self.memory.saturating_sub(before.memory),
            vms: self.vms.saturating_sub(before.vms),
            uncounted_instance_types: self
                .uncounted_instance_types
                .saturating_sub(before.uncounted_instance_types),
            volumes: self.volumes.saturating_sub(before.volumes),
            storage: self.storage.saturating_sub(before.storage),
            tiers,
            subnets: self.subnets.saturating_sub(before.subnets),
            public_addresses: self
                .public_addresses
                .saturating_sub(before.public_addresses),
        }
    }

    /// The amount of `resource`.
    pub fn get(&self, resource: &QuotaResource) -> u64 {
        let tier = |t: &str| self.tiers.get(t).copied().unwrap_or_default();
        match resource {
            QuotaResource::Vcpus => self.vcpus,
            QuotaResource::Memory => self.memory,
            QuotaResource::Vms => self.vms,
            QuotaResource::Volumes => self.volumes,
            QuotaResource::Storage => self.storage,
            QuotaResource::TierVolumes(t) => tier(t).volumes,
            QuotaResource::TierStorage(t) => tier(t).storage,
            QuotaResource::Subnets => self.subnets,
            QuotaResource::PublicAddresses => self.public_addresses,
        }
    }
}

/// One resource of a [`Usage`]: what is used, and the limit (`None`: unlimited).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLine {
    /// The resource.
    pub resource: QuotaResource,
    /// What the tenant holds.
    pub used: u64,
    /// Its limit, if the quota has one.
    pub limit: Option<u64>,
}

impl fmt::Display for UsageLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = self
            .limit
            .map_or_else(|| "unlimited".to_string(), |l| self.resource.amount(l));
        write!(
            f,
            "{}: {} of {limit}",
            self.resource,
            self.resource.amount(self.used)
        )
    }
}

/// A tenant's usage against its quota, one line per resource.
///
/// ```
/// use kubecloud_core::{Consumption, Quota, QuotaResource, VmSpec};
/// let usage = Quota::default().with_vms(4).usage(&Consumption::of_vm(&VmSpec::default(), None));
/// let vms = usage.line(&QuotaResource::Vms).unwrap();
/// assert_eq!((vms.used, vms.limit), (1, Some(4)));
/// assert_eq!(vms.to_string(), "vms: 1 of 4");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// One line per resource.
    pub lines: Vec<UsageLine>,
}

impl Usage {
    /// The line of `resource`.
    pub fn line(&self, resource: &QuotaResource) -> Option<&UsageLine> {
        self.lines.iter().find(|l| &l.resource == resource)
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Where a tenant's quota is kept: the memory cloud keeps it in memory; on Kubernetes it is a
/// `ResourceQuota` in the tenant's namespace (which also enforces what the cluster can count).
#[async_trait::async_trait]
pub trait Quotas: Send + Sync + std::fmt::Debug {
    /// The backend's name.
    fn backend_name(&self) -> &str;

    /// The tenant's quota (the default, limiting nothing, if none was set).
    async fn get_quota(&self, tenant: &Tenant) -> Result<Quota>;

    /// Sets the tenant's quota, replacing the previous one. Lowering a limit below what the
    /// tenant holds is allowed (nothing is removed; further creates are refused).
    async fn set_quota(&self, tenant: &Tenant, quota: &Quota) -> Result<Quota>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_within_every_limit_passes_and_one_past_names_its_resource() {
        let quota = Quota::default().with_vms(2).with_vcpus(4).with_tier(
            "fast",
            TierQuota {
                volumes: Some(1),
                storage: None,
            },
        );
        let vm = VmSpec::default();
        let used = Consumption::of_vm(&vm, None);
        quota
            .check("acme", &used, &Consumption::of_vm(&vm, None))
            .unwrap();
        let used = used.plus(&Consumption::of_vm(&vm, None));
        let err = quota
            .check("acme", &used, &Consumption::of_vm(&vm, None))
            .unwrap_err();
        match err {
            Error::QuotaExceeded {
                resource,
                limit,
                used,
                requested,
                ..
            } => assert_eq!(
                (resource, limit, used, requested),
                (QuotaResource::Vms, 2, 2, 1)
            ),
            other => panic!("{other:?}"),
        }
        let fast = VolumeSpec::blank("a", ByteSize::gib(1)).with_tier("fast");
        let used = Consumption::of_volume(&fast, None);
        let err = quota
            .check("acme", &used, &Consumption::of_volume(&fast, None))
            .unwrap_err();
        assert_eq!(
            err.quota_resource(),
            Some(&QuotaResource::TierVolumes("fast".into()))
        );
        // Another tier is not limited.
        quota
            .check(
                "acme",
                &used,
                &Consumption::of_volume(&fast.clone().with_tier("bulk"), None),
            )
            .unwrap();
    }

    #[test]
    fn an_instance_type_vm_is_refused_only_under_a_cpu_or_memory_limit() {
        let vm = VmSpec {
            resources: VmResources::InstanceType {
                name: "u1.small".into(),
            },
            ..VmSpec::default()
        };
        let request = Consumption::of_vm(&vm, None);
        Quota::default()
            .with_vms(3)
            .check("acme", &Consumption::none(), &request)
            .unwrap();
        let err = Quota::default()
            .with_vcpus(3)
            .check("acme", &Consumption::none(), &request)
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("resources"));
    }

    #[test]
    fn a_quota_round_trips_through_yaml_style_json() {
        let quota = Quota::default()
            .with_memory(ByteSize::gib(8))
            .with_public_addresses(1);
        let json = serde_json::to_string(&quota).unwrap();
        assert_eq!(json, r#"{"memory":"8Gi","publicAddresses":1}"#);
        assert_eq!(serde_json::from_str::<Quota>(&json).unwrap(), quota);
        assert!(serde_json::from_str::<Quota>(r#"{"cpus": 1}"#).is_err());
        assert!(Quota::default().is_unlimited());
        assert!(!quota.is_unlimited());
    }
}
