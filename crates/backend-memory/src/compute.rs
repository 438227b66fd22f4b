//! Compute as KubeVirt does it: create-or-update of VMs with their volumes and addresses checked
//! first and taken all at once, power actions, live migration with every blocker reported.

use std::collections::HashSet;
use std::net::IpAddr;

use futures::stream::BoxStream;
use kubecloud_core::{
    AccessMode, Attachment, BootDisk, CatalogImage, CatalogImageSpec, Compute, ComputeCapabilities,
    Error, InterfaceStatus, Labels, MacAddress, Migration, MigrationBlocker, MigrationTarget,
    NetworkInterface, PodBinding, PowerAction, ResourceKind, Result, Tenant, Vm, VmAttachments,
    VmPhase, VmResources, VmSnapshot, VmSpec, VmStatus, VolumeSource, VolumeSpec, async_trait,
    labels_match,
};

use crate::driver::StepKind;
use crate::placement;
use crate::state::{State, find, find_mut};
use crate::storage::{VolumePlan, shareable};
use crate::vm::{IfaceAlloc, IpHold, VmRecord, runs_on_creation};
use crate::watch::Watchers;
use crate::{BACKEND, MemoryCloud};

/// The name of the implicit interface of a VM that lists none (KubeVirt's default).
const DEFAULT_INTERFACE: &str = "default";

/// How one interface of the new spec gets its addresses.
#[derive(Debug)]
enum IfacePlan {
    /// Unchanged: keep the old allocation at this index.
    Keep(usize),
    Pod,
    Dynamic {
        subnet: String,
    },
    Fixed {
        subnet: String,
        ip: IpAddr,
    },
    Reserved {
        subnet: String,
        reservation: String,
        ip: IpAddr,
        mac: MacAddress,
    },
}

/// Something taken during allocation, given back if a later interface fails.
enum Undo {
    Pod(IpAddr),
    Subnet { subnet: String, ip: IpAddr },
    Claim { reservation: String },
    Mac(MacAddress),
}

/// The interfaces of a spec, with the implicit pod-network one when it lists none.
pub(crate) fn interfaces(spec: &VmSpec) -> std::borrow::Cow<'_, [NetworkInterface]> {
    if spec.interfaces.is_empty() {
        std::borrow::Cow::Owned(vec![NetworkInterface::pod_network(DEFAULT_INTERFACE)])
    } else {
        std::borrow::Cow::Borrowed(&spec.interfaces)
    }
}

fn holder(vm: &str, iface: &str) -> String {
    format!("{vm}/{iface}")
}

impl State {
    /// Checks the VM's volumes; plans its imported boot volume when it needs one.
    fn check_vm_volumes(&self, tenant: &Tenant, spec: &VmSpec) -> Result<Option<VolumePlan>> {
        let ts = self.tenant(tenant);
        let mut boot = None;
        let import_name = BootDisk::import_volume_name(&spec.name);
        if spec.boot_disk.owns_volume() {
            match ts.and_then(|t| t.volumes.get(&import_name)) {
                // Made once: a VM's clone or import does not depend on its source afterwards.
                Some(v) if v.owner.as_deref() == Some(spec.name.as_str()) => {}
                Some(_) => {
                    return Err(Error::conflict(
                        ResourceKind::Volume,
                        &import_name,
                        format!(
                            "the volume exists and is not the imported boot disk of vm {:?}",
                            spec.name
                        ),
                    ));
                }
                None => {
                    let volume = match &spec.boot_disk {
                        BootDisk::Import {
                            url,
                            size,
                            tier,
                            replicas,
                            access,
                            mode,
                        } => Some(VolumeSpec {
                            name: import_name.clone(),
                            size: *size,
                            replicas: *replicas,
                            mode: *mode,
                            access: *access,
                            tier: tier.clone(),
                            source: VolumeSource::Import { url: url.clone() },
                            labels: Labels::new(),
                        }),
                        _ => self.catalog_boot_volume(spec)?,
                    };
                    if let Some(volume) = volume {
                        boot = Some(
                            self.plan_volume(tenant, &volume)
                                .map_err(|e| e.within("bootDisk"))?,
                        );
                    }
                }
            }
        }
        for name in spec.volumes() {
            if boot.is_some() && name == import_name {
                continue;
            }
            let volume = find(ts, |t| &t.volumes, ResourceKind::Volume, &name)?;
            if !shareable(volume)
                && let Some(other) = volume.status.used_by.iter().find(|u| **u != spec.name)
            {
                return Err(Error::conflict(
                    ResourceKind::Volume,
                    &name,
                    format!("the volume is read-write-once and already used by vm {other:?}"),
                ));
            }
        }
        Ok(boot)
    }

    /// Checks every interface (subnets, security groups, fixed addresses) and decides how each
    /// gets its addresses, without taking any.
    fn check_interfaces(&self, tenant: &Tenant, spec: &VmSpec) -> Result<Vec<IfacePlan>> {
        let ts = self.tenant(tenant);
        let old = ts.and_then(|t| t.vms.get(&spec.name));
        let mut plans = Vec::new();
        for (i, iface) in interfaces(spec).iter().enumerate() {
            let field = |f: &str| format!("interfaces[{i}].{f}");
            for sg in &iface.security_groups {
                find(ts, |t| &t.security_groups, ResourceKind::SecurityGroup, sg)?;
            }
            let kept = old.and_then(|old| {
                old.ifaces.iter().position(|a| {
                    a.name == iface.name
                        && a.hold.subnet() == iface.subnet()
                        && iface.fixed_ip.is_none_or(|ip| ip == a.hold.ip())
                        && iface.mac.is_none_or(|mac| mac == a.mac)
                })
            });
            if let Some(j) = kept {
                plans.push(IfacePlan::Keep(j));
                continue;
            }
            let me = holder(&spec.name, &iface.name);
            let plan = match (iface.subnet(), iface.fixed_ip) {
                (None, _) => IfacePlan::Pod,
                (Some(subnet), None) => {
                    find(ts, |t| &t.subnets, ResourceKind::Subnet, subnet)?;
                    IfacePlan::Dynamic {
                        subnet: subnet.to_string(),
                    }
                }
                (Some(subnet), Some(ip)) => {
                    let sub = find(ts, |t| &t.subnets, ResourceKind::Subnet, subnet)?;
                    if !sub.space.is_allocatable(ip) {
                        return Err(Error::invalid(
                            field("fixedIp"),
                            format!(
                                "{ip} is not an allocatable address of subnet {subnet:?} ({}): \
                                 outside it, excluded, or its network, gateway or broadcast",
                                sub.spec.cidr
                            ),
                        ));
                    }
                    let reservation = sub
                        .reservations
                        .get(&ip)
                        .and_then(|r| ts.and_then(|t| t.reservations.get(r)));
                    match (reservation, sub.space.holder(ip)) {
                        (Some(res), _) if res.owner.as_ref().is_none_or(|o| *o == me) => {
                            IfacePlan::Reserved {
                                subnet: subnet.to_string(),
                                reservation: res.name.clone(),
                                ip,
                                mac: res.mac,
                            }
                        }
                        (Some(res), _) => {
                            return Err(Error::conflict(
                                ResourceKind::Vm,
                                &spec.name,
                                format!(
                                    "{}: {ip} is reserved by {:?}, which {} uses",
                                    field("fixedIp"),
                                    res.name,
                                    res.owner.as_deref().unwrap_or_default()
                                ),
                            ));
                        }
                        (None, Some(other)) if other != me => {
                            return Err(Error::conflict(
                                ResourceKind::Vm,
                                &spec.name,
                                format!(
                                    "{}: {ip} is already taken by {other} in subnet {subnet:?}",
                                    field("fixedIp")
                                ),
                            ));
                        }
                        (None, _) => IfacePlan::Fixed {
                            subnet: subnet.to_string(),
                            ip,
                        },
                    }
                }
            };
            if let Some(mac) = iface.mac {
                match &plan {
                    IfacePlan::Reserved {
                        mac: held,
                        reservation,
                        ..
                    } if *held != mac => {
                        return Err(Error::conflict(
                            ResourceKind::Vm,
                            &spec.name,
                            format!(
                                "{}: reservation {reservation:?} holds MAC {held}, not {mac}",
                                field("mac")
                            ),
                        ));
                    }
                    IfacePlan::Reserved { .. } => {}
                    _ if self.macs.contains(&mac) => {
                        return Err(Error::conflict(
                            ResourceKind::Vm,
                            &spec.name,
                            format!("{}: {mac} is already in use", field("mac")),
                        ));
                    }
                    _ => {}
                }
            }
            plans.push(plan);
        }
        Ok(plans)
    }

    /// Takes the addresses of every planned interface; on the first failure gives back what it
    /// took and fails. `None` for kept interfaces.
    fn allocate_interfaces(
        &mut self,
        tenant: &Tenant,
        spec: &VmSpec,
        plans: &[IfacePlan],
    ) -> Result<Vec<Option<IfaceAlloc>>> {
        let mut undo = Vec::new();
        let mut out = Vec::with_capacity(plans.len());
        for (i, (iface, plan)) in interfaces(spec).iter().zip(plans).enumerate() {
            match self.allocate_interface(tenant, spec, i, iface, plan, &mut undo) {
                Ok(alloc) => out.push(alloc),
                Err(err) => {
                    self.undo(tenant, undo);
                    return Err(err);
                }
            }
        }
        Ok(out)
    }

    fn allocate_interface(
        &mut self,
        tenant: &Tenant,
        spec: &VmSpec,
        i: usize,
        iface: &NetworkInterface,
        plan: &IfacePlan,
        undo: &mut Vec<Undo>,
    ) -> Result<Option<IfaceAlloc>> {
        let me = holder(&spec.name, &iface.name);
        let taken = |what: String| {
            Error::conflict(
                ResourceKind::Vm,
                &spec.name,
                format!("interfaces[{i}].{what}"),
            )
        };
        let hold = match plan {
            IfacePlan::Keep(_) => return Ok(None),
            IfacePlan::Pod => {
                let ip = self.pod_network.allocate(&format!("{tenant}/{me}"))?;
                undo.push(Undo::Pod(ip));
                IpHold::Pod(ip)
            }
            IfacePlan::Dynamic { subnet } => {
                let sub = find_mut(
                    self.tenants.get_mut(tenant),
                    |t| &mut t.subnets,
                    ResourceKind::Subnet,
                    subnet,
                )?;
                let ip = sub.allocate(&me)?;
                undo.push(Undo::Subnet {
                    subnet: subnet.clone(),
                    ip,
                });
                IpHold::Dynamic {
                    subnet: subnet.clone(),
                    ip,
                }
            }
            IfacePlan::Fixed { subnet, ip } => {
                let sub = find_mut(
                    self.tenants.get_mut(tenant),
                    |t| &mut t.subnets,
                    ResourceKind::Subnet,
                    subnet,
                )?;
                match sub.space.holder(*ip) {
                    Some(h) if h == me => {}
                    Some(h) => {
                        return Err(taken(format!("fixedIp: {ip} is already taken by {h}")));
                    }
                    None => {
                        sub.reserve(*ip, &me)?;
                        undo.push(Undo::Subnet {
                            subnet: subnet.clone(),
                            ip: *ip,
                        });
                    }
                }
                IpHold::Fixed {
                    subnet: subnet.clone(),
                    ip: *ip,
                }
            }
            IfacePlan::Reserved {
                subnet,
                reservation,
                ip,
                ..
            } => {
                let res = find_mut(
                    self.tenants.get_mut(tenant),
                    |t| &mut t.reservations,
                    ResourceKind::IpReservation,
                    reservation,
                )?;
                match &res.owner {
                    Some(owner) if *owner != me => {
                        return Err(taken(format!(
                            "fixedIp: {ip} is reserved by {reservation:?}, which {owner} uses"
                        )));
                    }
                    Some(_) => {}
                    None => {
                        res.owner = Some(me.clone());
                        undo.push(Undo::Claim {
                            reservation: reservation.clone(),
                        });
                    }
                }
                IpHold::Reserved {
                    subnet: subnet.clone(),
                    reservation: reservation.clone(),
                    ip: *ip,
                }
            }
        };
        let (mac, owns_mac) = match (plan, iface.mac) {
            (IfacePlan::Reserved { mac, .. }, _) => (*mac, false),
            (_, Some(mac)) => {
                if !self.macs.insert(mac) {
                    return Err(taken(format!("mac: {mac} is already in use")));
                }
                undo.push(Undo::Mac(mac));
                (mac, true)
            }
            (_, None) => {
                let mac = self.generate_mac();
                undo.push(Undo::Mac(mac));
                (mac, true)
            }
        };
        Ok(Some(IfaceAlloc {
            name: iface.name.clone(),
            hold,
            mac,
            owns_mac,
        }))
    }

    fn undo(&mut self, tenant: &Tenant, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Pod(ip) => {
                    self.pod_network.release(ip);
                }
                Undo::Subnet { subnet, ip } => {
                    if let Some(sub) = self
                        .tenants
                        .get_mut(tenant)
                        .and_then(|t| t.subnets.get_mut(&subnet))
                    {
                        sub.release(ip);
                    }
                }
                Undo::Claim { reservation } => {
                    if let Some(res) = self
                        .tenants
                        .get_mut(tenant)
                        .and_then(|t| t.reservations.get_mut(&reservation))
                    {
                        res.owner = None;
                    }
                }
                Undo::Mac(mac) => {
                    self.macs.remove(&mac);
                }
            }
        }
    }

    /// Gives back an interface's addresses.
    fn release_interface(&mut self, tenant: &Tenant, alloc: &IfaceAlloc) {
        match &alloc.hold {
            IpHold::Pod(ip) => {
                self.pod_network.release(*ip);
            }
            IpHold::Dynamic { subnet, ip } | IpHold::Fixed { subnet, ip } => {
                if let Some(sub) = self
                    .tenants
                    .get_mut(tenant)
                    .and_then(|t| t.subnets.get_mut(subnet))
                {
                    sub.release(*ip);
                }
            }
            IpHold::Reserved { reservation, .. } => {
                if let Some(res) = self
                    .tenants
                    .get_mut(tenant)
                    .and_then(|t| t.reservations.get_mut(reservation))
                {
                    res.owner = None;
                }
            }
        }
        if alloc.owns_mac {
            self.macs.remove(&alloc.mac);
        }
    }

    /// Counts (`+1`) or uncounts (`-1`) the security groups the spec's interfaces use.
    fn count_security_groups(&mut self, tenant: &Tenant, spec: &VmSpec, add: bool) {
        let Some(ts) = self.tenants.get_mut(tenant) else {
            return;
        };
        for sg in spec.interfaces.iter().flat_map(|i| &i.security_groups) {
            if let Some(group) = ts.security_groups.get_mut(sg) {
                group.users = if add {
                    group.users + 1
                } else {
                    group.users.saturating_sub(1)
                };
            }
        }
    }

    pub(crate) fn apply_vm(&mut self, tenant: &Tenant, spec: &VmSpec) -> Result<Vm> {
        spec.validate()?;
        let name = spec.name.as_str();
        if let Some(vm) = self.tenant(tenant).and_then(|t| t.vms.get(name))
            && vm.spec == *spec
        {
            return Ok(vm.snapshot());
        }
        // Check everything, then take addresses (undone on failure), then commit.
        self.check_quota(tenant, &self.vm_request(tenant, spec))?;
        let boot = self.check_vm_volumes(tenant, spec)?;
        let plans = self.check_interfaces(tenant, spec)?;
        let allocs = self.allocate_interfaces(tenant, spec, &plans)?;

        if let Some(plan) = boot {
            self.commit_volume(tenant, plan, Some(name));
        }
        let old = self.tenant_mut(tenant).vms.remove(name);
        let creating = old.is_none();
        let mut ifaces = Vec::with_capacity(allocs.len());
        let mut kept = HashSet::new();
        for (plan, alloc) in plans.iter().zip(allocs) {
            match (plan, alloc, &old) {
                (IfacePlan::Keep(j), _, Some(old)) => {
                    kept.insert(*j);
                    ifaces.push(old.ifaces[*j].clone());
                }
                (_, Some(alloc), _) => ifaces.push(alloc),
                _ => unreachable!("every interface is kept or newly allocated"),
            }
        }
        let (status, watchers, epoch, desired, node, restart, live) = match old {
            Some(old) => {
                for (j, alloc) in old.ifaces.iter().enumerate() {
                    if !kept.contains(&j) {
                        self.release_interface(tenant, alloc);
                    }
                }
                self.count_security_groups(tenant, &old.spec, false);
                let ts = self.tenant_mut(tenant);
                for volume in old.spec.volumes() {
                    if let Some(v) = ts.volumes.get_mut(&volume) {
                        v.remove_user(name);
                        v.publish();
                    }
                }
                let desired = if old.spec.run_strategy == spec.run_strategy {
                    old.desired_running
                } else {
                    match spec.run_strategy {
                        kubecloud_core::RunStrategy::Halted => false,
                        kubecloud_core::RunStrategy::Manual => old.desired_running,
                        _ => true,
                    }
                };
                if old.spec.placement.spread_group != spec.placement.spread_group
                    && let Some(n) = old.node
                {
                    // Recount the VM under its new spread group.
                    let State { nodes, tenants, .. } = self;
                    if let Some(ts) = tenants.get_mut(tenant) {
                        let old_group = old.spec.placement.spread_group.as_deref();
                        placement::unassign(nodes, &mut ts.spread, old_group, n);
                        let new_group = spec.placement.spread_group.as_deref();
                        placement::assign(nodes, &mut ts.spread, new_group, n);
                    }
                }
                (
                    old.status,
                    old.watchers,
                    old.epoch,
                    desired,
                    old.node,
                    old.restart,
                    old.live.map(|mut live| {
                        live.apply(spec, &COMPUTE_CAPABILITIES);
                        live
                    }),
                )
            }
            None => (
                VmStatus::default(),
                Watchers::default(),
                self.queue.next_epoch(),
                runs_on_creation(spec.run_strategy),
                None,
                false,
                None,
            ),
        };
        let mut record = VmRecord {
            spec: spec.clone(),
            status,
            epoch,
            desired_running: desired,
            node,
            restart,
            ifaces,
            watchers,
            live,
        };
        record.status.interfaces = record
            .ifaces
            .iter()
            .map(|a| InterfaceStatus {
                name: a.name.clone(),
                ip: Some(a.hold.ip()),
                mac: Some(a.mac),
            })
            .collect();
        if creating {
            record.set_phase(VmPhase::Provisioning);
        }
        let ts = self.tenant_mut(tenant);
        for volume in spec.volumes() {
            if let Some(v) = ts.volumes.get_mut(&volume) {
                v.add_user(name);
                v.publish();
            }
        }
        ts.vms.insert(name.to_string(), record);
        self.count_security_groups(tenant, spec, true);
        self.reconcile_vm(tenant, name);
        tracing::debug!(%tenant, vm = name, created = creating, "vm applied");
        let vm = find_mut(
            self.tenants.get_mut(tenant),
            |t| &mut t.vms,
            ResourceKind::Vm,
            name,
        )?;
        vm.publish();
        Ok(vm.snapshot())
    }

    /// Brings a VM's phase in line with whether it should run, after it was created or its
    /// spec changed.
    fn reconcile_vm(&mut self, tenant: &Tenant, name: &str) {
        let Some(vm) = self.tenant(tenant).and_then(|t| t.vms.get(name)) else {
            return;
        };
        let (phase, desired, has_node) = (vm.status.phase, vm.desired_running, vm.node.is_some());
        match phase {
            VmPhase::Provisioning => {
                if desired {
                    self.assign_vm_node(tenant, name, None);
                } else {
                    self.unassign_vm_node(tenant, name);
                }
                self.settle_vm(tenant, name);
            }
            VmPhase::Stopped | VmPhase::Failed if desired => self.start_vm(tenant, name),
            VmPhase::Starting if desired && !has_node => self.start_vm(tenant, name),
            VmPhase::Running | VmPhase::Starting | VmPhase::Migrating if !desired => {
                self.stop_vm(tenant, name)
            }
            _ => {}
        }
    }

    pub(crate) fn delete_vm(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        find(self.tenant(tenant), |t| &t.vms, ResourceKind::Vm, name)?;
        self.unassign_vm_node(tenant, name);
        let Some(vm) = self.tenant_mut(tenant).vms.remove(name) else {
            return Err(Error::not_found(ResourceKind::Vm, name));
        };
        for alloc in &vm.ifaces {
            self.release_interface(tenant, alloc);
        }
        self.count_security_groups(tenant, &vm.spec, false);
        let ts = self.tenant_mut(tenant);
        for volume in vm.spec.volumes() {
            if let Some(v) = ts.volumes.get_mut(&volume) {
                v.remove_user(name);
                v.publish();
            }
        }
        let boot = BootDisk::import_volume_name(name);
        if ts
            .volumes
            .get(&boot)
            .is_some_and(|v| v.owner.as_deref() == Some(name))
        {
            self.remove_volume(tenant, &boot);
        }
        tracing::debug!(%tenant, vm = name, "vm deleted");
        // Dropping the record ends its watches.
        Ok(())
    }

    fn power(&mut self, tenant: &Tenant, name: &str, action: PowerAction) -> Result<Vm> {
        let vm = find(self.tenant(tenant), |t| &t.vms, ResourceKind::Vm, name)?;
        let phase = vm.status.phase;
        match action {
            PowerAction::Start => match phase {
                VmPhase::Stopped | VmPhase::Failed => self.start_vm(tenant, name),
                VmPhase::Stopping => {
                    self.assign_vm_node(tenant, name, None);
                    if let Some(vm) = self.tenant_mut(tenant).vms.get_mut(name) {
                        vm.desired_running = true;
                        vm.restart = true;
                    }
                }
                VmPhase::Provisioning if !vm.desired_running => {
                    self.assign_vm_node(tenant, name, None);
                    if let Some(vm) = self.tenant_mut(tenant).vms.get_mut(name) {
                        vm.desired_running = true;
                    }
                }
                _ => {}
            },
            PowerAction::Stop => self.stop_vm(tenant, name),
            PowerAction::Restart => match phase {
                VmPhase::Running | VmPhase::Starting | VmPhase::Migrating => {
                    let State { tenants, queue, .. } = self;
                    if let Some(vm) = tenants.get_mut(tenant).and_then(|t| t.vms.get_mut(name)) {
                        vm.restart = true;
                        vm.set_phase(VmPhase::Stopping);
                        vm.epoch = queue.schedule(StepKind::Vm, tenant, name);
                        vm.publish();
                    }
                }
                VmPhase::Failed => self.start_vm(tenant, name),
                _ => {
                    return Err(Error::conflict(
                        ResourceKind::Vm,
                        name,
                        format!("the VM is {phase}; only a running VM can be restarted"),
                    ));
                }
            },
        }
        tracing::debug!(%tenant, vm = name, ?action, "vm power");
        find(self.tenant(tenant), |t| &t.vms, ResourceKind::Vm, name).map(VmRecord::snapshot)
    }

    fn migration_blockers(&self, tenant: &Tenant, name: &str) -> Result<Vec<MigrationBlocker>> {
        let ts = self.tenant(tenant);
        let vm = find(ts, |t| &t.vms, ResourceKind::Vm, name)?;
        let mut blockers = Vec::new();
        for volume in vm.spec.volumes() {
            match ts.and_then(|t| t.volumes.get(&volume)) {
                Some(v) if v.spec.access == AccessMode::ReadWriteMany => {}
                Some(_) => blockers.push(MigrationBlocker::VolumeNotShared { volume }),
                None => blockers.push(MigrationBlocker::Other {
                    reason: format!("volume {volume:?} does not exist"),
                }),
            }
        }
        for iface in &vm.spec.interfaces {
            if let Attachment::PodNetwork {
                binding: PodBinding::Bridge,
            } = iface.attachment
            {
                blockers.push(MigrationBlocker::BridgeOnPodNetwork {
                    interface: iface.name.clone(),
                });
            }
        }
        if vm.status.phase != VmPhase::Running {
            blockers.push(MigrationBlocker::NotRunning {
                phase: vm.status.phase,
            });
        }
        // A VM that runs needs one other eligible node; one that does not, two (one to run on,
        // one to go to).
        let others = placement::other_candidates(&self.nodes, &vm.spec.placement, vm.node);
        if others < if vm.node.is_some() { 1 } else { 2 } {
            let reason = if self.nodes.len() <= 1 {
                format!("the cluster has {} node(s)", self.nodes.len())
            } else {
                "no other node matches the VM's node selector".to_string()
            };
            blockers.push(MigrationBlocker::NoTargetNode { reason });
        }
        Ok(blockers)
    }

    fn migrate(
        &mut self,
        tenant: &Tenant,
        name: &str,
        target: &MigrationTarget,
    ) -> Result<Migration> {
        find(self.tenant(tenant), |t| &t.vms, ResourceKind::Vm, name)?;
        let named = match target {
            MigrationTarget::AnyNode => None,
            MigrationTarget::Node(node) => Some(
                self.nodes
                    .iter()
                    .position(|n| n.name == *node)
                    .ok_or_else(|| Error::not_found(ResourceKind::Node, node))?,
            ),
        };
        let blockers = self.migration_blockers(tenant, name)?;
        if !blockers.is_empty() {
            let reasons: Vec<String> = blockers.iter().map(ToString::to_string).collect();
            return Err(Error::conflict(
                ResourceKind::Vm,
                name,
                format!("cannot live-migrate: {}", reasons.join("; ")),
            ));
        }
        let State {
            nodes,
            tenants,
            queue,
            ..
        } = self;
        let ts = tenants
            .get_mut(tenant)
            .ok_or_else(|| Error::not_found(ResourceKind::Vm, name))?;
        let vm = ts
            .vms
            .get_mut(name)
            .ok_or_else(|| Error::not_found(ResourceKind::Vm, name))?;
        let source = vm
            .node
            .ok_or_else(|| Error::conflict(ResourceKind::Vm, name, "the VM has no node"))?;
        let to = match named {
            Some(n) if n == source => {
                return Err(Error::conflict(
                    ResourceKind::Vm,
                    name,
                    format!("the VM already runs on {}", nodes[n].name),
                ));
            }
            Some(n) if !labels_match(&vm.spec.placement.node_selector, &nodes[n].labels) => {
                return Err(Error::conflict(
                    ResourceKind::Vm,
                    name,
                    format!("{} does not match the VM's node selector", nodes[n].name),
                ));
            }
            Some(n) => n,
            None => placement::choose(nodes, &vm.spec.placement, &ts.spread, Some(source))
                .ok_or_else(|| {
                    Error::conflict(ResourceKind::Vm, name, "no other node can take the VM")
                })?,
        };
        let group = vm.spec.placement.spread_group.as_deref();
        placement::unassign(nodes, &mut ts.spread, group, source);
        placement::assign(nodes, &mut ts.spread, group, to);
        vm.node = Some(to);
        vm.set_phase(VmPhase::Migrating);
        vm.epoch = queue.schedule(StepKind::Vm, tenant, name);
        vm.publish();
        tracing::debug!(%tenant, vm = name, from = %nodes[source].name, to = %nodes[to].name, "vm migrating");
        Ok(Migration {
            vm: name.to_string(),
            source_node: nodes[source].name.clone(),
            target_node: Some(nodes[to].name.clone()),
        })
    }
}

/// The instance types of the in-memory cloud (like a cluster's
/// `VirtualMachineClusterInstancetype`s): VMs may name these and no other.
pub const INSTANCE_TYPES: &[&str] = &["small", "medium", "large", "xlarge"];

/// What the in-memory cloud's compute can do: everything.
pub(crate) const COMPUTE_CAPABILITIES: ComputeCapabilities = ComputeCapabilities {
    live_migration: true,
    migrate_to_node: true,
    instance_types: true,
    container_disks: true,
    http_import: true,
    cloud_init: true,
    fixed_addresses: true,
    vm_snapshots: true,
    catalog: true,
    serial_console: false,
    vnc: false,
    hotplug_volumes: true,
    hotplug_interfaces: true,
    live_resize: true,
};

#[async_trait]
impl Compute for MemoryCloud {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn capabilities(&self) -> ComputeCapabilities {
        COMPUTE_CAPABILITIES
    }

    async fn apply_vm(
        &self,
        tenant: &Tenant,
        spec: &VmSpec,
        attachments: &VmAttachments,
    ) -> Result<Vm> {
        spec.validate()?;
        if let VmResources::InstanceType { name } = &spec.resources
            && !INSTANCE_TYPES.contains(&name.as_str())
        {
            return Err(Error::invalid(
                "resources.name",
                format!(
                    "no instance type {name:?}; known: {}",
                    INSTANCE_TYPES.join(", ")
                ),
            ));
        }
        attachments.check_for(spec)?;
        self.lock().apply_vm(tenant, spec)
    }

    async fn list_instance_types(&self, _tenant: &Tenant) -> Result<Option<Vec<String>>> {
        Ok(Some(INSTANCE_TYPES.iter().map(|t| t.to_string()).collect()))
    }

    async fn get_vm(&self, tenant: &Tenant, name: &str) -> Result<Vm> {
        let state = self.lock();
        find(state.tenant(tenant), |t| &t.vms, ResourceKind::Vm, name).map(VmRecord::snapshot)
    }

    async fn list_vms(&self, tenant: &Tenant, selector: &Labels) -> Result<Vec<Vm>> {
        let state = self.lock();
        Ok(state
            .tenant(tenant)
            .map(|ts| {
                ts.vms
                    .values()
                    .filter(|vm| labels_match(selector, &vm.spec.labels))
                    .map(VmRecord::snapshot)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn power(&self, tenant: &Tenant, name: &str, action: PowerAction) -> Result<Vm> {
        self.lock().power(tenant, name, action)
    }

    async fn migration_blockers(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<Vec<MigrationBlocker>> {
        self.lock().migration_blockers(tenant, name)
    }

    async fn migrate(
        &self,
        tenant: &Tenant,
        name: &str,
        target: &MigrationTarget,
    ) -> Result<Migration> {
        self.lock().migrate(tenant, name, target)
    }

    async fn delete_vm(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().delete_vm(tenant, name)
    }

    async fn list_nodes(&self) -> Result<Vec<kubecloud_core::NodeInfo>> {
        Ok(self.lock().list_nodes())
    }

    async fn set_node_schedulable(
        &self,
        node: &str,
        schedulable: bool,
    ) -> Result<kubecloud_core::NodeInfo> {
        self.lock().set_node_schedulable(node, schedulable)
    }

    async fn vms_on_node(&self, node: &str) -> Result<Vec<kubecloud_core::VmRef>> {
        self.lock().vms_on_node(node)
    }

    async fn watch_vm(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Vm>>> {
        let mut state = self.lock();
        let vm = find_mut(
            state.tenants.get_mut(tenant),
            |t| &mut t.vms,
            ResourceKind::Vm,
            name,
        )?;
        let current = vm.snapshot();
        Ok(vm.watchers.subscribe(current))
    }

    async fn snapshot_vm(&self, tenant: &Tenant, vm: &str, snapshot: &str) -> Result<VmSnapshot> {
        self.lock().snapshot_vm(tenant, vm, snapshot)
    }

    async fn list_vm_snapshots(
        &self,
        tenant: &Tenant,
        vm: Option<&str>,
    ) -> Result<Vec<VmSnapshot>> {
        Ok(self.lock().list_vm_snapshots(tenant, vm))
    }

    async fn restore_vm(&self, tenant: &Tenant, vm: &str, snapshot: &str) -> Result<()> {
        self.lock().restore_vm(tenant, vm, snapshot)
    }

    async fn delete_vm_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()> {
        self.lock().delete_vm_snapshot(tenant, snapshot)
    }

    async fn apply_catalog_image(&self, spec: &CatalogImageSpec) -> Result<CatalogImage> {
        self.lock().apply_catalog_image(spec)
    }

    async fn get_catalog_image(&self, name: &str) -> Result<CatalogImage> {
        self.lock().get_catalog_image(name)
    }

    async fn watch_catalog_image(
        &self,
        name: &str,
    ) -> Result<BoxStream<'static, Result<CatalogImage>>> {
        self.lock().watch_catalog_image(name)
    }

    async fn list_catalog_images(&self) -> Result<Vec<CatalogImage>> {
        Ok(self.lock().list_catalog_images())
    }

    async fn delete_catalog_image(&self, name: &str) -> Result<()> {
        self.lock().delete_catalog_image(name)
    }
}
