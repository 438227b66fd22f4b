//! A VM's record and its life: phases, node assignment and the steps the driver takes.
//!
//! Node assignment (which counts for placement) changes only in API calls; the driver only
//! moves VMs through `Starting`, `Stopping` and `Migrating` to their next phase.

use std::net::IpAddr;

use kubecloud_core::{Condition, MacAddress, RunStrategy, Tenant, Vm, VmPhase, VmSpec, VmStatus};

use crate::driver::{Queue, StepKind};
use crate::placement::{self, Node};
use crate::state::State;
use crate::watch::Watchers;

/// A VM and what the cloud keeps about it.
pub(crate) struct VmRecord {
    pub(crate) spec: VmSpec,
    pub(crate) status: VmStatus,
    pub(crate) epoch: u64,
    /// Whether the VM should run (from the run strategy, then from power actions).
    pub(crate) desired_running: bool,
    /// The node counted for this VM (where it runs, starts, or migrates to).
    pub(crate) node: Option<usize>,
    /// A restart is under way: start again once stopped.
    pub(crate) restart: bool,
    /// Addresses held per interface, in spec order.
    pub(crate) ifaces: Vec<IfaceAlloc>,
    pub(crate) watchers: Watchers<Vm>,
    /// What the running instance has (see [`crate::hotplug`]): `None` when it does not run.
    pub(crate) live: Option<crate::hotplug::LiveVm>,
}

/// How an interface holds its IP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IpHold {
    /// From the default pod network.
    Pod(IpAddr),
    /// A dynamic address of a subnet.
    Dynamic { subnet: String, ip: IpAddr },
    /// A fixed address of a subnet, held by the VM itself.
    Fixed { subnet: String, ip: IpAddr },
    /// The address of a reservation the VM claimed.
    Reserved {
        subnet: String,
        reservation: String,
        ip: IpAddr,
    },
}

impl IpHold {
    pub(crate) fn ip(&self) -> IpAddr {
        match self {
            Self::Pod(ip)
            | Self::Dynamic { ip, .. }
            | Self::Fixed { ip, .. }
            | Self::Reserved { ip, .. } => *ip,
        }
    }

    pub(crate) fn subnet(&self) -> Option<&str> {
        match self {
            Self::Pod(_) => None,
            Self::Dynamic { subnet, .. }
            | Self::Fixed { subnet, .. }
            | Self::Reserved { subnet, .. } => Some(subnet),
        }
    }
}

/// One interface's addresses.
#[derive(Clone, Debug)]
pub(crate) struct IfaceAlloc {
    pub(crate) name: String,
    pub(crate) hold: IpHold,
    pub(crate) mac: MacAddress,
    /// Whether the MAC is the VM's own (not a reservation's) and is freed with it.
    pub(crate) owns_mac: bool,
}

/// Whether a run strategy starts the VM on creation.
pub(crate) fn runs_on_creation(strategy: RunStrategy) -> bool {
    matches!(strategy, RunStrategy::Always | RunStrategy::RerunOnFailure)
}

fn condition(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Condition {
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: message.into(),
    }
}

impl VmRecord {
    pub(crate) fn snapshot(&self) -> Vm {
        Vm {
            spec: self.spec.clone(),
            status: self.live_status(),
        }
    }

    pub(crate) fn publish(&mut self) {
        let status = self.live_status();
        let spec = &self.spec;
        self.watchers.publish(|| Vm {
            spec: spec.clone(),
            status: status.clone(),
        });
    }

    /// The status with what the running instance has: its attached volumes, and the fields
    /// that wait for a restart.
    fn live_status(&self) -> VmStatus {
        let mut status = self.status.clone();
        if let Some(live) = &self.live
            && matches!(status.phase, VmPhase::Running | VmPhase::Migrating)
        {
            status.attached_volumes = live.spec.data_volumes.clone();
            status.restart_required = live.restart_required(&self.spec);
        }
        status
    }

    /// Enters `phase` with the matching `Ready` condition.
    pub(crate) fn set_phase(&mut self, phase: VmPhase) {
        self.status.phase = phase;
        let running = phase == VmPhase::Running;
        self.status.conditions = vec![condition(
            "Ready",
            running,
            if running {
                "Running"
            } else {
                phase_reason(phase)
            },
            "",
        )];
        // Every memory VM has a guest agent: connected while it runs (migrating included).
        if running || phase == VmPhase::Migrating {
            self.status
                .conditions
                .push(condition("AgentConnected", true, "", ""));
            self.status.guest = Some(crate::nodes::guest_info(&self.spec, &self.status));
        } else {
            self.status.guest = None;
        }
    }

    /// Fails with `reason` (e.g. `ImportFailed`) and `message`.
    pub(crate) fn fail(&mut self, reason: &str, message: String) {
        self.status.phase = VmPhase::Failed;
        self.status.node = None;
        self.status.conditions = vec![
            condition("Ready", false, reason, message.clone()),
            condition("Failure", true, reason, message),
        ];
    }

    fn group(&self) -> Option<&str> {
        self.spec.placement.spread_group.as_deref()
    }
}

fn phase_reason(phase: VmPhase) -> &'static str {
    match phase {
        VmPhase::Provisioning => "Provisioning",
        VmPhase::Starting => "Starting",
        VmPhase::Running => "Running",
        VmPhase::Stopping => "Stopping",
        VmPhase::Stopped => "Stopped",
        VmPhase::Migrating => "Migrating",
        VmPhase::Failed => "Failed",
    }
}

/// Enters `Starting` on the VM's node and schedules `Running`; with no node (nothing matches
/// the selector) it stays `Starting`, unschedulable, as a pod would stay `Pending`.
fn begin_start(vm: &mut VmRecord, nodes: &[Node], queue: &mut Queue, tenant: &Tenant) {
    vm.restart = false;
    vm.live = Some(crate::hotplug::LiveVm::boot(&vm.spec));
    vm.set_phase(VmPhase::Starting);
    match vm.node {
        Some(node) => {
            vm.status.node = Some(nodes[node].name.clone());
            vm.epoch = queue.schedule(StepKind::Vm, tenant, &vm.spec.name);
        }
        None => {
            vm.status.node = None;
            vm.status.conditions.push(condition(
                "PodScheduled",
                false,
                "Unschedulable",
                "no node matches the VM's node selector",
            ));
            vm.epoch = queue.next_epoch();
        }
    }
}

impl State {
    /// Counts the VM on the best node for it (other than `exclude`), if it has none yet.
    pub(crate) fn assign_vm_node(&mut self, tenant: &Tenant, name: &str, exclude: Option<usize>) {
        let State { nodes, tenants, .. } = self;
        let Some(ts) = tenants.get_mut(tenant) else {
            return;
        };
        let Some(vm) = ts.vms.get_mut(name) else {
            return;
        };
        if vm.node.is_some() {
            return;
        }
        if let Some(node) = placement::choose(nodes, &vm.spec.placement, &ts.spread, exclude) {
            placement::assign(nodes, &mut ts.spread, vm.group(), node);
            vm.node = Some(node);
        }
    }

    /// Stops counting the VM on its node.
    pub(crate) fn unassign_vm_node(&mut self, tenant: &Tenant, name: &str) {
        let State { nodes, tenants, .. } = self;
        let Some(ts) = tenants.get_mut(tenant) else {
            return;
        };
        let Some(vm) = ts.vms.get_mut(name) else {
            return;
        };
        if let Some(node) = vm.node.take() {
            placement::unassign(nodes, &mut ts.spread, vm.group(), node);
        }
    }

    /// Moves a `Provisioning` VM on once its volumes allow: `Failed` if one is missing or
    /// failed, else (when all are usable) `Starting` or `Stopped`.
    pub(crate) fn settle_vm(&mut self, tenant: &Tenant, name: &str) {
        let State {
            nodes,
            tenants,
            queue,
            ..
        } = self;
        let Some(ts) = tenants.get_mut(tenant) else {
            return;
        };
        let Some(vm) = ts.vms.get_mut(name) else {
            return;
        };
        if vm.status.phase != VmPhase::Provisioning {
            return;
        }
        let mut waiting = false;
        for volume in vm.spec.volumes() {
            match ts.volumes.get(&volume) {
                None => {
                    vm.fail(
                        "VolumeNotFound",
                        format!("volume {volume:?} does not exist"),
                    );
                    vm.epoch = queue.next_epoch();
                    vm.publish();
                    return;
                }
                Some(v) if v.status.phase == kubecloud_core::VolumePhase::Failed => {
                    let message = v
                        .status
                        .message
                        .clone()
                        .unwrap_or_else(|| format!("volume {volume:?} failed"));
                    let reason = if message.starts_with("import failed") {
                        "ImportFailed"
                    } else {
                        "VolumeFailed"
                    };
                    vm.fail(reason, message);
                    vm.epoch = queue.next_epoch();
                    vm.publish();
                    return;
                }
                Some(v) if !v.usable() => waiting = true,
                Some(_) => {}
            }
        }
        if waiting {
            return;
        }
        if vm.desired_running {
            begin_start(vm, nodes, queue, tenant);
        } else {
            vm.set_phase(VmPhase::Stopped);
            vm.status.node = None;
            vm.epoch = queue.next_epoch();
        }
        vm.publish();
    }

    /// Starts a VM that is not running: counts it on a node and provisions it.
    pub(crate) fn start_vm(&mut self, tenant: &Tenant, name: &str) {
        self.assign_vm_node(tenant, name, None);
        let epoch = self.queue.next_epoch();
        if let Some(vm) = self
            .tenants
            .get_mut(tenant)
            .and_then(|ts| ts.vms.get_mut(name))
        {
            vm.desired_running = true;
            vm.restart = false;
            vm.epoch = epoch;
            vm.set_phase(VmPhase::Provisioning);
        }
        self.settle_vm(tenant, name);
    }

    /// Stops a VM: no longer counted on a node; `Stopping` then `Stopped` if it was up.
    pub(crate) fn stop_vm(&mut self, tenant: &Tenant, name: &str) {
        self.unassign_vm_node(tenant, name);
        let State { tenants, queue, .. } = self;
        let Some(vm) = tenants.get_mut(tenant).and_then(|ts| ts.vms.get_mut(name)) else {
            return;
        };
        vm.desired_running = false;
        vm.restart = false;
        match vm.status.phase {
            VmPhase::Running | VmPhase::Starting | VmPhase::Migrating => {
                vm.set_phase(VmPhase::Stopping);
                vm.epoch = queue.schedule(StepKind::Vm, tenant, name);
            }
            VmPhase::Failed => {
                vm.set_phase(VmPhase::Stopped);
                vm.status.node = None;
                vm.epoch = queue.next_epoch();
            }
            // Provisioning settles to Stopped; Stopping and Stopped are where they should be.
            VmPhase::Provisioning | VmPhase::Stopping | VmPhase::Stopped => return,
        }
        vm.publish();
    }

    /// The VM's next phase (a driver step).
    pub(crate) fn advance_vm(&mut self, tenant: &Tenant, name: &str, epoch: u64) {
        let State {
            nodes,
            tenants,
            queue,
            ..
        } = self;
        let Some(vm) = tenants.get_mut(tenant).and_then(|ts| ts.vms.get_mut(name)) else {
            return;
        };
        if vm.epoch != epoch {
            return;
        }
        match vm.status.phase {
            VmPhase::Starting if vm.status.node.is_some() => vm.set_phase(VmPhase::Running),
            VmPhase::Stopping if vm.restart => begin_start(vm, nodes, queue, tenant),
            VmPhase::Stopping => {
                vm.set_phase(VmPhase::Stopped);
                vm.status.node = None;
                vm.live = None;
            }
            VmPhase::Migrating => {
                vm.set_phase(VmPhase::Running);
                vm.status.node = vm.node.map(|n| nodes[n].name.clone());
            }
            _ => return,
        }
        tracing::debug!(%tenant, vm = name, phase = %vm.status.phase, "vm phase");
        vm.publish();
    }
}
