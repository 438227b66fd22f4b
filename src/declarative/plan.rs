//! [`Plan`]: what applying a [`TenantSpec`] would create, change and delete, in dependency order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;

use kubecloud_core::{
    AddressPoolSpec, AddressRequest, BootDisk, Error, ExposureSpec, IpRange, IpReservationSpec,
    Labels, Quota, ResourceKind, Result, SecurityGroupSpec, ServiceSpec, SubnetSpec, Tenant, Usage,
    VmResources, VmSpec, VolumeSource, VolumeSpec, VpcSpec,
};

use kubecloud_core::wait::KeptWait;

use super::spec::TenantSpec;
use crate::TenantHandle;

/// What a step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Create a resource that does not exist.
    Create,
    /// Change a resource in place.
    Update,
    /// Delete and create again (for kinds that cannot change in place and hold no data).
    Replace,
    /// Delete a resource the spec no longer has.
    Delete,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Create => "+",
            Self::Update => "~",
            Self::Replace => "-/+",
            Self::Delete => "-",
        })
    }
}

/// One changed field of an update or replacement.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// The field's path in the resource's spec, e.g. `resources.custom.cpuCores`.
    pub field: String,
    /// The value now (`null` when absent). Secrets, at any depth, are their redaction markers
    /// (`"[redacted <fingerprint>]"`): a rotation shows as a change of fingerprint.
    pub from: Value,
    /// The value asked for.
    pub to: Value,
}

/// A resource spec, of any kind.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "specs are held once per object of a plan; boxing the VM variant would only move it"
)]
pub(crate) enum Desired {
    Vpc(VpcSpec),
    Subnet(SubnetSpec),
    SecurityGroup(SecurityGroupSpec),
    IpReservation(IpReservationSpec),
    Volume(VolumeSpec),
    Vm(VmSpec),
    Service(ServiceSpec),
    AddressPool(AddressPoolSpec),
    Exposure(ExposureSpec),
}

/// One step of a plan.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// What the step does.
    pub action: Action,
    /// The resource's kind.
    pub kind: ResourceKind,
    /// The resource's name.
    pub name: String,
    /// For updates and replacements, the fields that change.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// For a change of a VM: what it does to the VM if it runs (the live spec being the one
    /// applied now): the data volumes attached and detached and the interfaces plugged live,
    /// whether CPU and memory grow live, and the fields that wait for a restart (see
    /// [`kubecloud_core::hotplug`]). Applying never restarts a VM itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<kubecloud_core::hotplug::LiveChanges>,
    /// The spec to apply (none for deletions). Not serialized: it may hold secrets.
    #[serde(skip)]
    pub(crate) desired: Option<Desired>,
    /// What the step still waits for, and why, when the plan is applied without waiting
    /// ([`ApplyOptions::wait`](crate::ApplyOptions::wait) off): the backend's
    /// [`KeptWait`] for this kind and action. `None` when such an apply only sends the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_wait: Option<KeptWait>,
}

impl Step {
    /// The dependency level of the step's kind: lower levels are created first and deleted last.
    pub fn level(&self) -> u8 {
        level(self.kind)
    }
}

pub(crate) fn level(kind: ResourceKind) -> u8 {
    match kind {
        ResourceKind::Vpc | ResourceKind::AddressPool => 0,
        ResourceKind::Subnet | ResourceKind::SecurityGroup | ResourceKind::Volume => 1,
        ResourceKind::IpReservation => 2,
        ResourceKind::Vm => 3,
        _ => 4,
    }
}

/// What applying a spec would do: steps in the order they run (deletions from dependents to
/// dependencies, then creations and changes from dependencies to dependents). Planning changes
/// nothing. `Display` prints it for a person; `Serialize` gives it to a program (without
/// secrets).
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The tenant planned for.
    pub tenant: Tenant,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Whether applying would delete everything the tenant has (a spec that describes nothing,
    /// planned for a tenant that has something: an empty or comment-only file, say). Applying
    /// such a plan needs [`crate::ApplyOptions::allow_delete_all`] (the CLI's
    /// `--allow-delete-all`); [`crate::TenantHandle::destroy`] sets it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deletes_everything: bool,
    /// The quota applying sets first (the spec's, when it differs from the tenant's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// The tenant's usage after applying, for each resource its quota limits (none when
    /// nothing is limited).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// The wait of `kept` that holds up a step doing `action` on `kind`: a replacement's is its
/// deletion's, if any, else its creation's.
fn kept_wait_of(kept: &[KeptWait], action: Action, kind: ResourceKind) -> Option<KeptWait> {
    let find = |deleting: bool| kept.iter().find(|w| w.applies_to(kind, deleting)).copied();
    match action {
        Action::Create | Action::Update => find(false),
        Action::Delete => find(true),
        Action::Replace => find(true).or_else(|| find(false)),
    }
}

impl Plan {
    /// The steps that still wait when the plan is applied without waiting
    /// ([`ApplyOptions::wait`](crate::ApplyOptions::wait) off), with what they wait for and why.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let acme = kubecloud::Cloud::in_memory().tenant("acme").unwrap();
    /// let spec = kubecloud::TenantSpec::from_yaml("vpcs: [{name: main}]").unwrap();
    /// let plan = acme.plan(&spec).await.unwrap();
    /// // The memory cloud acts at once: nothing of it waits.
    /// assert_eq!(plan.kept_waits().count(), 0);
    /// # });
    /// ```
    pub fn kept_waits(&self) -> impl Iterator<Item = (&Step, &KeptWait)> {
        self.steps
            .iter()
            .filter_map(|s| s.kept_wait.as_ref().map(|w| (s, w)))
    }

    /// Whether applying would change nothing.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.quota.is_none()
    }

    /// How many steps take `action`.
    pub fn count(&self, action: Action) -> usize {
        self.steps.iter().filter(|s| s.action == action).count()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            writeln!(f, "tenant {}: no changes", self.tenant)?;
            return self.fmt_usage(f);
        }
        writeln!(
            f,
            "tenant {}: {} to create, {} to change, {} to replace, {} to delete{}",
            self.tenant,
            self.count(Action::Create),
            self.count(Action::Update),
            self.count(Action::Replace),
            self.count(Action::Delete),
            if self.deletes_everything {
                " (everything the tenant has: applying needs allow_delete_all, \
                 `--allow-delete-all` on the command line)"
            } else {
                ""
            }
        )?;
        for step in &self.steps {
            writeln!(
                f,
                "  {:>3} {} {}",
                step.action.to_string(),
                step.kind,
                step.name
            )?;
            for change in &step.changes {
                writeln!(
                    f,
                    "        {}: {} -> {}",
                    change.field, change.from, change.to
                )?;
            }
            if let Some(live) = &step.live {
                fmt_live(f, live)?;
            }
        }
        if self.quota.is_some() {
            writeln!(f, "  set quota")?;
        }
        self.fmt_usage(f)
    }
}

/// The lines of `Display` saying what a VM change does to the VM if it runs.
fn fmt_live(
    f: &mut fmt::Formatter<'_>,
    live: &kubecloud_core::hotplug::LiveChanges,
) -> fmt::Result {
    let list = |names: &[String]| names.join(", ");
    if !live.attach_volumes.is_empty() {
        writeln!(
            f,
            "        if running: attach {} live",
            list(&live.attach_volumes)
        )?;
    }
    if !live.detach_volumes.is_empty() {
        writeln!(
            f,
            "        if running: detach {} live",
            list(&live.detach_volumes)
        )?;
    }
    if !live.add_interfaces.is_empty() {
        writeln!(
            f,
            "        if running: plug {} live",
            list(&live.add_interfaces)
        )?;
    }
    if !live.remove_interfaces.is_empty() {
        writeln!(
            f,
            "        if running: unplug {} live",
            list(&live.remove_interfaces)
        )?;
    }
    if live.resize {
        writeln!(f, "        if running: CPU and memory grow live")?;
    }
    if !live.restart_required.is_empty() {
        writeln!(
            f,
            "        if running: restart required for {}",
            list(&live.restart_required)
        )?;
    }
    Ok(())
}

impl Plan {
    /// The usage lines of `Display`.
    fn fmt_usage(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(usage) = &self.usage {
            writeln!(f, "  quota usage after apply:")?;
            for line in &usage.lines {
                writeln!(f, "    {line}")?;
            }
        }
        Ok(())
    }
}

/// The tenant's current resources, by kind and name, as specs.
struct Current {
    by_kind: BTreeMap<ResourceKind, BTreeMap<String, Desired>>,
    /// Volumes created by VMs for imported boot disks: never planned on their own.
    vm_owned_volumes: BTreeSet<String>,
    /// Address pools the tenant may use but does not own.
    shared_pools: BTreeSet<String>,
    /// Resources only partly there (an interrupted create or delete): created again to complete
    /// them if the spec names them, deleted otherwise.
    incomplete: BTreeSet<(ResourceKind, String)>,
}

impl TenantHandle {
    /// Compares `spec` with what the tenant has and returns the steps that would make them
    /// equal. The spec is validated first; references to resources that are neither in the spec
    /// nor in the cloud are refused naming the field. Nothing is changed.
    pub async fn plan(&self, spec: &TenantSpec) -> Result<Plan> {
        spec.validate()?;
        // Read once: lists several backends share (DataVolumes, Services, instances) are sent
        // once per plan.
        #[cfg(feature = "kubernetes")]
        let current = kubecloud_kube::shared_lists(self.current()).await?;
        #[cfg(not(feature = "kubernetes"))]
        let current = self.current().await?;
        self.check_references(spec, &current).await?;
        let mut steps = Vec::with_capacity(spec.len());
        let compute_caps = self.vms().backend.capabilities();
        // The live resources the spec names (never more than the tenant has).
        let mut wanted: BTreeSet<(ResourceKind, &str)> = BTreeSet::new();
        // `at` is the item's list and index, written out only if a change is refused.
        let mut add = |kind: ResourceKind, item: Desired, at: (&str, usize)| -> Result<()> {
            let live = current
                .by_kind
                .get(&kind)
                .and_then(|m| m.get_key_value(name_of(&item)));
            let Some((live_name, live)) = live else {
                steps.push(Step {
                    action: Action::Create,
                    kind,
                    name: name_of(&item).to_string(),
                    changes: Vec::new(),
                    live: None,
                    desired: Some(item),
                    kept_wait: None,
                });
                return Ok(());
            };
            wanted.insert((kind, live_name.as_str()));
            if current.incomplete.contains(&(kind, live_name.clone())) {
                steps.push(Step {
                    action: Action::Create,
                    kind,
                    name: live_name.clone(),
                    changes: Vec::new(),
                    live: None,
                    desired: Some(item),
                    kept_wait: None,
                });
                return Ok(());
            }
            let desired = normalize(item, live);
            if &desired == live {
                return Ok(());
            }
            let changes = diff(&json(&desired), &json(live));
            if !changes.is_empty() {
                let field = format!("{}[{}]", at.0, at.1);
                let action = change_action(kind, &changes, &field)?;
                let live_changes = match (&desired, live) {
                    (Desired::Vm(want), Desired::Vm(have)) => {
                        Some(kubecloud_core::hotplug::live_changes(
                            have,
                            want,
                            &compute_caps,
                            kubecloud_core::hotplug::LiveLimits::of(&have.resources).as_ref(),
                        ))
                    }
                    _ => None,
                };
                steps.push(Step {
                    action,
                    kind,
                    name: live_name.clone(),
                    changes,
                    live: live_changes,
                    desired: Some(desired),
                    kept_wait: None,
                });
            }
            Ok(())
        };
        macro_rules! plan_kind {
            ($list:expr, $kind:expr, $variant:ident, $field:literal) => {
                for (i, item) in $list.iter().enumerate() {
                    add($kind, Desired::$variant(item.clone()), ($field, i))?;
                }
            };
        }
        plan_kind!(spec.vpcs, ResourceKind::Vpc, Vpc, "vpcs");
        plan_kind!(
            spec.address_pools,
            ResourceKind::AddressPool,
            AddressPool,
            "addressPools"
        );
        plan_kind!(spec.subnets, ResourceKind::Subnet, Subnet, "subnets");
        plan_kind!(
            spec.security_groups,
            ResourceKind::SecurityGroup,
            SecurityGroup,
            "securityGroups"
        );
        plan_kind!(spec.volumes, ResourceKind::Volume, Volume, "volumes");
        plan_kind!(
            spec.ip_reservations,
            ResourceKind::IpReservation,
            IpReservation,
            "ipReservations"
        );
        plan_kind!(spec.vms, ResourceKind::Vm, Vm, "vms");
        plan_kind!(spec.services, ResourceKind::Service, Service, "services");
        plan_kind!(
            spec.exposures,
            ResourceKind::Exposure,
            Exposure,
            "exposures"
        );

        // Whatever the tenant has and the spec does not: delete (never what it does not own).
        // Volumes the spec's VMs import into are theirs: looked up only if a live volume is
        // neither wanted nor known to belong to a live VM.
        let mut spec_owned_volumes: Option<BTreeSet<String>> = None;
        let mut spec_owns = |name: &str| {
            spec_owned_volumes
                .get_or_insert_with(|| {
                    spec.vms
                        .iter()
                        .filter(|vm| vm.boot_disk.owns_volume())
                        .map(|vm| BootDisk::import_volume_name(&vm.name))
                        .collect()
                })
                .contains(name)
        };
        for (kind, live) in &current.by_kind {
            for name in live.keys() {
                if wanted.contains(&(*kind, name.as_str())) {
                    continue;
                }
                let not_ours = (*kind == ResourceKind::Volume
                    && (current.vm_owned_volumes.contains(name) || spec_owns(name)))
                    || (*kind == ResourceKind::AddressPool && current.shared_pools.contains(name));
                if !not_ours {
                    steps.push(Step {
                        action: Action::Delete,
                        kind: *kind,
                        name: name.clone(),
                        changes: Vec::new(),
                        live: None,
                        desired: None,
                        kept_wait: None,
                    });
                }
            }
        }
        steps.sort_by(|a, b| order(a).cmp(&order(b)).then_with(|| a.name.cmp(&b.name)));
        let deletes_everything =
            spec.is_empty() && steps.iter().any(|s| s.action == Action::Delete);
        let (quota, usage) = super::quota::after(self, spec, &steps, |step| {
            current
                .by_kind
                .get(&step.kind)
                .and_then(|m| m.get(&step.name))
        })
        .await?;
        let kept = self.cloud().kept_waits();
        for step in &mut steps {
            step.kept_wait = kept_wait_of(&kept, step.action, step.kind);
        }
        Ok(Plan {
            tenant: self.name().clone(),
            steps,
            deletes_everything,
            quota,
            usage,
        })
    }

    async fn current(&self) -> Result<Current> {
        let none = Labels::new();
        let (net, vols, vms_api, lb) = (
            self.network(),
            self.volumes(),
            self.vms(),
            self.load_balancer(),
        );
        let (vpcs, subnets, sgs, ips, volumes, vms, services, pools, exposures) = futures::try_join!(
            net.list_vpcs(),
            net.list_subnets(),
            net.list_security_groups(),
            net.list_ips(None),
            vols.list_specs(&none),
            vms_api.list_specs(&none),
            net.list_services(),
            lb.list_pools(),
            lb.list_exposures(),
        )?;
        let vm_owned_volumes: BTreeSet<String> = vms
            .iter()
            .filter(|vm| vm.boot_disk.owns_volume())
            .map(|vm| BootDisk::import_volume_name(&vm.name))
            .collect();
        let shared_pools: BTreeSet<String> = pools
            .iter()
            .filter(|p| p.shared)
            .map(|p| p.spec.name.clone())
            .collect();
        let incomplete: BTreeSet<(ResourceKind, String)> = pools
            .iter()
            .filter(|p| p.incomplete)
            .map(|p| (ResourceKind::AddressPool, p.spec.name.clone()))
            .chain(
                subnets
                    .iter()
                    .filter(|s| s.incomplete)
                    .map(|s| (ResourceKind::Subnet, s.spec.name.clone())),
            )
            .collect();
        let mut by_kind: BTreeMap<ResourceKind, BTreeMap<String, Desired>> = BTreeMap::new();
        let mut put = |kind: ResourceKind, desired: Desired| {
            by_kind
                .entry(kind)
                .or_default()
                .insert(name_of(&desired).to_string(), desired);
        };
        vpcs.into_iter()
            .for_each(|x| put(ResourceKind::Vpc, Desired::Vpc(x.spec)));
        subnets
            .into_iter()
            .for_each(|x| put(ResourceKind::Subnet, Desired::Subnet(x.spec)));
        sgs.into_iter()
            .for_each(|x| put(ResourceKind::SecurityGroup, Desired::SecurityGroup(x.spec)));
        ips.into_iter().for_each(|x| {
            let spec = IpReservationSpec {
                name: x.name,
                subnet: x.subnet,
                ip: Some(x.ip),
                mac: Some(x.mac),
            };
            put(ResourceKind::IpReservation, Desired::IpReservation(spec));
        });
        volumes
            .into_iter()
            .for_each(|x| put(ResourceKind::Volume, Desired::Volume(x)));
        vms.into_iter()
            .for_each(|x| put(ResourceKind::Vm, Desired::Vm(x)));
        services
            .into_iter()
            .for_each(|x| put(ResourceKind::Service, Desired::Service(x.spec)));
        pools
            .into_iter()
            .for_each(|x| put(ResourceKind::AddressPool, Desired::AddressPool(x.spec)));
        exposures
            .into_iter()
            .for_each(|x| put(ResourceKind::Exposure, Desired::Exposure(x.spec)));
        Ok(Current {
            by_kind,
            vm_owned_volumes,
            shared_pools,
            incomplete,
        })
    }
}

/// A spec as JSON, for field-by-field differences, with every secret at any depth written as
/// its redaction marker ([`kubecloud_core::secret::redacted`]): what is compared and shown here
/// never holds secret material.
fn json(desired: &Desired) -> Value {
    let value = kubecloud_core::secret::redacted(|| match desired {
        Desired::Vpc(s) => serde_json::to_value(s),
        Desired::Subnet(s) => serde_json::to_value(s),
        Desired::SecurityGroup(s) => serde_json::to_value(s),
        Desired::IpReservation(s) => serde_json::to_value(s),
        Desired::Volume(s) => serde_json::to_value(s),
        Desired::Vm(s) => serde_json::to_value(s),
        Desired::Service(s) => serde_json::to_value(s),
        Desired::AddressPool(s) => serde_json::to_value(s),
        Desired::Exposure(s) => serde_json::to_value(s),
    });
    value.unwrap_or(Value::Null)
}

fn name_of(desired: &Desired) -> &str {
    match desired {
        Desired::Vpc(s) => &s.name,
        Desired::Subnet(s) => &s.name,
        Desired::SecurityGroup(s) => &s.name,
        Desired::IpReservation(s) => &s.name,
        Desired::Volume(s) => &s.name,
        Desired::Vm(s) => &s.name,
        Desired::Service(s) => &s.name,
        Desired::AddressPool(s) => &s.name,
        Desired::Exposure(s) => &s.name,
    }
}

fn order(step: &Step) -> (u8, i16) {
    match step.action {
        Action::Delete => (0, -i16::from(step.level())),
        _ => (1, i16::from(step.level())),
    }
}

/// Fields the backend chooses when the spec leaves them open are not drift.
fn normalize(desired: Desired, live: &Desired) -> Desired {
    match (desired, live) {
        (Desired::IpReservation(mut want), Desired::IpReservation(have)) => {
            want.ip = want.ip.or(have.ip);
            want.mac = want.mac.or(have.mac);
            Desired::IpReservation(want)
        }
        // A volume without a tier lands on the backend's default tier, which it reads back.
        (Desired::Volume(mut want), Desired::Volume(have)) => {
            want.tier = want.tier.or_else(|| have.tier.clone());
            Desired::Volume(want)
        }
        (desired, _) => desired,
    }
}

/// Which action a change needs, or why it cannot be made.
fn change_action(kind: ResourceKind, changes: &[FieldChange], field: &str) -> Result<Action> {
    match kind {
        // A security group's rules change in place: the ports in it stay in it.
        ResourceKind::Vm | ResourceKind::SecurityGroup => Ok(Action::Update),
        ResourceKind::Service | ResourceKind::Exposure => Ok(Action::Replace),
        // How a pool is announced (peers, their timers and passwords) and whether it assigns
        // automatically change in place; its addresses do not (assigned ones would be lost).
        ResourceKind::AddressPool
            if changes
                .iter()
                .all(|c| c.field.starts_with("advertisement") || c.field == "autoAssign") =>
        {
            Ok(Action::Update)
        }
        ResourceKind::Volume => {
            let only_growth = changes.iter().all(|c| {
                c.field == "size"
                    && matches!((c.from.as_str(), c.to.as_str()), (Some(a), Some(b))
                        if b.parse::<kubecloud_core::ByteSize>().ok() > a.parse::<kubecloud_core::ByteSize>().ok())
            });
            if only_growth {
                Ok(Action::Update)
            } else {
                let c = &changes[0];
                Err(Error::invalid(
                    format!("{field}.{}", c.field),
                    format!(
                        "a volume cannot change {} from {} to {} in place (only growing its size is possible)",
                        c.field, c.from, c.to
                    ),
                ))
            }
        }
        _ => {
            let c = &changes[0];
            Err(Error::invalid(
                format!("{field}.{}", c.field),
                format!(
                    "{} {kind} cannot change {} from {} to {} in place; delete it first",
                    if kind.to_string().starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "an"
                    } else {
                        "a"
                    },
                    c.field,
                    c.from,
                    c.to
                ),
            ))
        }
    }
}

/// The fields where `desired` and `live` differ, as paths.
fn diff(desired: &Value, live: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", desired, live, &mut out);
    out
}

fn walk(path: &str, desired: &Value, live: &Value, out: &mut Vec<FieldChange>) {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            let keys: BTreeSet<&String> = d.keys().chain(l.keys()).collect();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(
                    &sub,
                    d.get(key).unwrap_or(&Value::Null),
                    l.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        // Lists of the same length differ item by item (`peers[0].holdTimeSecs`); a list that
        // grows or shrinks is shown whole.
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => {
            for (i, (d, l)) in d.iter().zip(l).enumerate() {
                walk(&format!("{path}[{i}]"), d, l, out);
            }
        }
        _ if desired == live => {}
        // Secrets are already their markers here (see `json`): a rotation shows as two
        // different fingerprints, never as the values.
        _ => out.push(FieldChange {
            field: path.to_string(),
            from: live.clone(),
            to: desired.clone(),
        }),
    }
}

/// What the cloud answers about names a spec may use that no spec holds (tiers, instance types,
/// snapshots) and about what it can store; `None` where it was not asked or cannot tell, and then
/// that reference is left for the backend.
#[derive(Default)]
struct Known {
    /// Whether there is a cloud behind `Current` (false when rendering a spec alone): only then
    /// are address pools (an administrator's shared pools are in no spec) and the tenant's live
    /// subnets and pools checked.
    cloud: bool,
    tiers: Option<BTreeSet<String>>,
    instance_types: Option<BTreeSet<String>>,
    snapshots: Option<BTreeSet<String>>,
    storage: Option<(String, kubecloud_core::StorageCapabilities)>,
    /// The catalog images, by name (read only if a VM boots from one).
    catalog: Option<BTreeMap<String, kubecloud_core::CatalogImage>>,
}

impl TenantHandle {
    /// References that are in neither the spec nor the cloud are refused, naming the field; so
    /// are volume sizes below the storage's minimum, fixed addresses that are unusable in a live
    /// subnet, pools overlapping the tenant's subnets or the pools it may use, and import URLs
    /// whose host is or resolves to an address the cloud's [`kubecloud_core::ImportPolicy`]
    /// refuses. Reads only what the spec needs (instance types only if a VM names one,
    /// snapshots only if a volume restores one).
    async fn check_references(&self, spec: &TenantSpec, current: &Current) -> Result<()> {
        let cloud = self.cloud();
        let tenant = self.name();
        let names_type = spec
            .vms
            .iter()
            .any(|vm| matches!(vm.resources, VmResources::InstanceType { .. }));
        let restores = spec
            .volumes
            .iter()
            .any(|v| matches!(v.source, VolumeSource::Snapshot { .. }));
        let clones = spec
            .vms
            .iter()
            .any(|vm| matches!(vm.boot_disk, BootDisk::Catalog { .. }));
        if clones && !cloud.compute.capabilities().catalog {
            return Err(kubecloud_core::Error::unsupported(
                cloud.compute.backend_name(),
                "vms.apply",
                "catalog",
            ));
        }
        let (instance_types, snapshots, catalog) = futures::try_join!(
            async {
                match names_type {
                    true => cloud.compute.list_instance_types(tenant).await,
                    false => Ok(None),
                }
            },
            async {
                match restores {
                    true => cloud.storage.list_snapshots(tenant, None).await.map(Some),
                    false => Ok(None),
                }
            },
            async {
                match clones {
                    true => cloud.compute.list_catalog_images().await.map(Some),
                    false => Ok(None),
                }
            },
        )?;
        let known = Known {
            cloud: true,
            tiers: cloud.storage.tier_names().map(|t| t.into_iter().collect()),
            instance_types: instance_types.map(|t| t.into_iter().collect()),
            snapshots: snapshots.map(|s| s.into_iter().map(|s| s.name).collect()),
            storage: Some((
                cloud.storage.backend_name().to_string(),
                cloud.storage.capabilities(),
            )),
            catalog: catalog.map(|images| {
                images
                    .into_iter()
                    .map(|i| (i.spec.name.clone(), i))
                    .collect()
            }),
        };
        check_references(spec, current, &known)?;
        crate::import::check_import_urls(&cloud.import_policy, &import_urls(spec)).await
    }
}

/// References to resources that are not in the spec itself are refused, naming the field: for
/// rendering a whole tenant (GitOps), where there is no cloud to find them in. Import URLs are
/// checked as written against the default [`kubecloud_core::ImportPolicy`].
#[cfg(feature = "kubernetes")]
pub(crate) fn check_references_within(spec: &TenantSpec) -> Result<()> {
    let nothing = Current {
        by_kind: BTreeMap::new(),
        vm_owned_volumes: BTreeSet::new(),
        shared_pools: BTreeSet::new(),
        incomplete: BTreeSet::new(),
    };
    check_references(spec, &nothing, &Known::default())?;
    let policy = kubecloud_core::ImportPolicy::default();
    for (field, url) in import_urls(spec) {
        policy.check(&field, url)?;
    }
    Ok(())
}

/// Every URL the spec imports from, with its field: volumes' sources and VMs' boot disks.
fn import_urls(spec: &TenantSpec) -> Vec<(String, &str)> {
    let volumes = spec
        .volumes
        .iter()
        .enumerate()
        .filter_map(|(i, v)| match &v.source {
            VolumeSource::Import { url } => {
                Some((format!("volumes[{i}].source.url"), url.as_str()))
            }
            _ => None,
        });
    let boot_disks = spec
        .vms
        .iter()
        .enumerate()
        .filter_map(|(i, vm)| match &vm.boot_disk {
            BootDisk::Import { url, .. } => Some((format!("vms[{i}].bootDisk.url"), url.as_str())),
            _ => None,
        });
    volumes.chain(boot_disks).collect()
}

/// References that are in neither the spec nor the cloud are refused, naming the field.
fn check_references(spec: &TenantSpec, current: &Current, known: &Known) -> Result<()> {
    let has = |kind: ResourceKind, in_spec: &dyn Fn(&str) -> bool, name: &str| {
        in_spec(name)
            || current
                .by_kind
                .get(&kind)
                .is_some_and(|m| m.contains_key(name))
    };
    // Names by kind, looked up once per reference (a spec may hold thousands of each).
    fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> BTreeSet<&str> {
        items.iter().map(name).collect()
    }
    let (vpcs, subnets, volumes, sgs, pools) = (
        names(&spec.vpcs, |v| &v.name),
        names(&spec.subnets, |s| &s.name),
        names(&spec.volumes, |v| &v.name),
        names(&spec.security_groups, |s| &s.name),
        names(&spec.address_pools, |p| &p.name),
    );
    let vpc = |n: &str| vpcs.contains(n);
    let subnet = |n: &str| subnets.contains(n);
    let volume = |n: &str| volumes.contains(n);
    let sg = |n: &str| sgs.contains(n);
    let pool = |n: &str| pools.contains(n);
    for (i, v) in spec.vpcs.iter().enumerate() {
        for (j, peer) in v.peers.iter().enumerate() {
            if !has(ResourceKind::Vpc, &vpc, peer) {
                return Err(Error::invalid(
                    format!("vpcs[{i}].peers[{j}]"),
                    format!("no VPC {peer:?} in the spec or the tenant"),
                ));
            }
        }
    }
    for (i, s) in spec.subnets.iter().enumerate() {
        if !has(ResourceKind::Vpc, &vpc, &s.vpc) {
            return Err(Error::invalid(
                format!("subnets[{i}].vpc"),
                format!("no VPC {:?} in the spec or the tenant", s.vpc),
            ));
        }
    }
    // A subnet the spec does not describe but the tenant has (the spec's own are checked by
    // `TenantSpec::validate`).
    let live_subnet = |name: &str| -> Option<&SubnetSpec> {
        if subnets.contains(name) {
            return None;
        }
        match current.by_kind.get(&ResourceKind::Subnet)?.get(name)? {
            Desired::Subnet(s) => Some(s),
            _ => None,
        }
    };
    for (i, r) in spec.ip_reservations.iter().enumerate() {
        if !has(ResourceKind::Subnet, &subnet, &r.subnet) {
            return Err(Error::invalid(
                format!("ipReservations[{i}].subnet"),
                format!("no subnet {:?} in the spec or the tenant", r.subnet),
            ));
        }
        if let (Some(ip), Some(live)) = (r.ip, live_subnet(&r.subnet)) {
            live.check_host_address(&format!("ipReservations[{i}].ip"), ip)?;
        }
    }
    let check_tier = |field: &str, tier: Option<&String>| -> Result<()> {
        if let (Some(tier), Some(tiers)) = (tier, &known.tiers)
            && !tiers.contains(tier)
        {
            let list: Vec<&str> = tiers.iter().map(String::as_str).collect();
            return Err(Error::invalid(
                field,
                format!("no tier {tier:?}; the storage has {}", list.join(", ")),
            ));
        }
        Ok(())
    };
    let check_size = |field: &str, size, mode| -> Result<()> {
        match &known.storage {
            Some((backend, caps)) => caps.check_size(field, size, mode, backend),
            None => Ok(()),
        }
    };
    for (i, v) in spec.volumes.iter().enumerate() {
        check_tier(&format!("volumes[{i}].tier"), v.tier.as_ref())?;
        check_size(&format!("volumes[{i}].size"), v.size, v.mode)?;
        match &v.source {
            VolumeSource::Clone { volume: source } => {
                if !has(ResourceKind::Volume, &volume, source) {
                    return Err(Error::invalid(
                        format!("volumes[{i}].source.volume"),
                        format!("no volume {source:?} in the spec or the tenant to clone"),
                    ));
                }
            }
            VolumeSource::Snapshot { snapshot } => {
                if let Some(snapshots) = &known.snapshots
                    && !snapshots.contains(snapshot)
                {
                    return Err(Error::invalid(
                        format!("volumes[{i}].source.snapshot"),
                        format!("the tenant has no snapshot {snapshot:?}"),
                    ));
                }
            }
            VolumeSource::Blank | VolumeSource::Import { .. } => {}
        }
    }
    for (i, vm) in spec.vms.iter().enumerate() {
        if let (VmResources::InstanceType { name }, Some(types)) =
            (&vm.resources, &known.instance_types)
            && !types.contains(name)
        {
            return Err(Error::invalid(
                format!("vms[{i}].resources.name"),
                format!("the cloud has no instance type {name:?}"),
            ));
        }
        match &vm.boot_disk {
            BootDisk::Volume { volume: v } if !has(ResourceKind::Volume, &volume, v) => {
                return Err(Error::invalid(
                    format!("vms[{i}].bootDisk.volume"),
                    format!("no volume {v:?} in the spec or the tenant"),
                ));
            }
            BootDisk::Import {
                size, tier, mode, ..
            } => {
                check_tier(&format!("vms[{i}].bootDisk.tier"), tier.as_ref())?;
                check_size(&format!("vms[{i}].bootDisk.size"), *size, *mode)?;
            }
            BootDisk::Catalog {
                image,
                size,
                tier,
                mode,
                ..
            } => {
                check_tier(&format!("vms[{i}].bootDisk.tier"), tier.as_ref())?;
                if let Some(size) = size {
                    check_size(&format!("vms[{i}].bootDisk.size"), *size, *mode)?;
                }
                // A VM that exists has its clone already; a new one needs a ready image.
                let exists = current
                    .by_kind
                    .get(&ResourceKind::Vm)
                    .is_some_and(|m| m.contains_key(&vm.name));
                if let Some(catalog) = &known.catalog
                    && !exists
                {
                    kubecloud_core::catalog::check_boot_image(
                        &format!("vms[{i}].bootDisk.image"),
                        &format!("vms[{i}].bootDisk.size"),
                        image,
                        *size,
                        catalog.get(image),
                    )?;
                }
            }
            _ => {}
        }
        for (j, v) in vm.data_volumes.iter().enumerate() {
            if !has(ResourceKind::Volume, &volume, v) {
                return Err(Error::invalid(
                    format!("vms[{i}].dataVolumes[{j}]"),
                    format!("no volume {v:?} in the spec or the tenant"),
                ));
            }
        }
        for (j, iface) in vm.interfaces.iter().enumerate() {
            if let Some(s) = iface.subnet()
                && !has(ResourceKind::Subnet, &subnet, s)
            {
                return Err(Error::invalid(
                    format!("vms[{i}].interfaces[{j}].subnet"),
                    format!("no subnet {s:?} in the spec or the tenant"),
                ));
            }
            if let (Some(s), Some(ip)) = (iface.subnet(), iface.fixed_ip)
                && let Some(live) = live_subnet(s)
            {
                let reserved = spec
                    .ip_reservations
                    .iter()
                    .any(|r| r.subnet == s && r.ip == Some(ip));
                if !reserved {
                    live.check_host_address(&format!("vms[{i}].interfaces[{j}].fixedIp"), ip)?;
                }
            }
            for (k, g) in iface.security_groups.iter().enumerate() {
                if !has(ResourceKind::SecurityGroup, &sg, g) {
                    return Err(Error::invalid(
                        format!("vms[{i}].interfaces[{j}].securityGroups[{k}]"),
                        format!("no security group {g:?} in the spec or the tenant"),
                    ));
                }
            }
        }
    }
    if !known.cloud {
        return Ok(());
    }
    for (i, e) in spec.exposures.iter().enumerate() {
        if let AddressRequest::Pool(p) = &e.address
            && !has(ResourceKind::AddressPool, &pool, p)
        {
            return Err(Error::invalid(
                format!("exposures[{i}].address.pool"),
                format!("no address pool {p:?} in the spec or usable by the tenant"),
            ));
        }
    }
    // The spec's pools against what stays of the cloud's: the tenant's subnets the spec does
    // not replace are deleted by the plan unless the spec names them, so only shared pools
    // (never deleted) and live subnets the spec keeps by name are compared; the spec's own
    // subnets and pools are `TenantSpec::validate`'s.
    let shared: Vec<(&str, IpRange)> = current
        .by_kind
        .get(&ResourceKind::AddressPool)
        .into_iter()
        .flatten()
        .filter(|(name, _)| current.shared_pools.contains(*name) && !pools.contains(name.as_str()))
        .filter_map(|(name, d)| match d {
            Desired::AddressPool(p) => {
                Some(p.addresses.iter().map(move |b| (name.as_str(), b.range())))
            }
            _ => None,
        })
        .flatten()
        .collect();
    for (i, p) in spec.address_pools.iter().enumerate() {
        for (j, block) in p.addresses.iter().enumerate() {
            let range = block.range();
            if let Some((name, _)) = shared.iter().find(|(_, r)| r.overlaps(&range)) {
                return Err(Error::invalid(
                    format!("addressPools[{i}].addresses[{j}]"),
                    format!("{block} overlaps the shared address pool {name:?}"),
                ));
            }
        }
    }
    Ok(())
}
