//! The order an apply runs a plan's steps in: a dependency graph over the steps, so that each
//! step starts as soon as the steps it depends on are done, not when a whole level is.
//!
//! - Deletions come first, dependents before dependencies. A deleted resource's spec is not in
//!   the plan, so what depended on it is known only by kind: a deletion waits for every deletion
//!   of a higher level ([`Step::level`]).
//! - Every creation, change or replacement waits for every deletion (a name, an address or a
//!   selector a deletion frees may be taken again).
//! - Among creations and changes a step waits for the steps of what its spec names: a subnet for
//!   its VPC; an IP reservation for its subnet; a cloned volume for its source; a VM for its
//!   subnets (and the IP reservations on them, which its addresses must not take), its security
//!   groups and its boot and data volumes; a service or an exposure for the VMs its selector
//!   matches; an exposure for the address pool it takes from (every pool of the plan unless it
//!   names one).
//!
//! Steps the spec does not relate run independently: a thousand VMs' exposures each wait for
//! their own VM, not for the slowest of the thousand.
//!
//! Fan-ins (everything after every deletion, a VM after every reservation on its subnet, an
//! exposure after every pool) go through barrier nodes, so the graph has edges in proportion to
//! the steps, not to their product.

use std::collections::{BTreeMap, HashMap};

use kubecloud_core::{AddressRequest, BootDisk, Labels, ResourceKind, VolumeSource};

use super::plan::{Action, Desired, Step};

/// Steps (nodes `0..steps`) and barriers (nodes after them): what each waits for.
#[derive(Debug)]
pub(crate) struct Graph {
    steps: usize,
    /// Per node: how many nodes it still waits for.
    waits: Vec<usize>,
    /// Per node: the nodes that wait for it.
    dependents: Vec<Vec<usize>>,
}

impl Graph {
    fn new(steps: usize) -> Self {
        Self {
            steps,
            waits: vec![0; steps],
            dependents: vec![Vec::new(); steps],
        }
    }

    /// A new barrier node: done when everything it waits for is.
    fn barrier(&mut self) -> usize {
        self.waits.push(0);
        self.dependents.push(Vec::new());
        self.waits.len() - 1
    }

    /// `after` waits for `before`.
    fn edge(&mut self, before: usize, after: usize) {
        if before != after {
            self.dependents[before].push(after);
            self.waits[after] += 1;
        }
    }

    /// The steps that wait for nothing, in plan order; barriers that wait for nothing are passed.
    pub(crate) fn start(&mut self) -> Vec<usize> {
        let mut ready = Vec::new();
        for node in 0..self.waits.len() {
            if self.waits[node] == 0 {
                if node < self.steps {
                    ready.push(node);
                } else {
                    self.done(node, &mut ready);
                }
            }
        }
        ready
    }

    /// Step (or barrier) `node` is done: adds the steps that no longer wait for anything to
    /// `ready`, passing the barriers that no longer do.
    pub(crate) fn done(&mut self, node: usize, ready: &mut Vec<usize>) {
        let mut finished = vec![node];
        while let Some(n) = finished.pop() {
            for d in std::mem::take(&mut self.dependents[n]) {
                self.waits[d] -= 1;
                if self.waits[d] == 0 {
                    if d < self.steps {
                        ready.push(d);
                    } else {
                        finished.push(d);
                    }
                }
            }
        }
    }
}

/// The dependency graph of `steps` (see the module documentation).
pub(crate) fn graph(steps: &[Step]) -> Graph {
    let mut g = Graph::new(steps.len());

    // Deletions, level by level from the highest.
    let mut deletions: BTreeMap<u8, Vec<usize>> = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        if step.action == Action::Delete {
            deletions.entry(step.level()).or_default().push(i);
        }
    }
    let mut deleted: Option<usize> = None;
    for level in deletions.values().rev() {
        let all = g.barrier();
        for &i in level {
            if let Some(before) = deleted {
                g.edge(before, i);
            }
            g.edge(i, all);
        }
        deleted = Some(all);
    }

    // Creations and changes, by what their specs name.
    let specs: Vec<(usize, &Desired)> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.action != Action::Delete)
        .filter_map(|(i, s)| Some((i, s.desired.as_ref()?)))
        .collect();
    let by_name: HashMap<(ResourceKind, &str), usize> = specs
        .iter()
        .map(|&(i, _)| ((steps[i].kind, steps[i].name.as_str()), i))
        .collect();
    let named = |kind: ResourceKind, name: &str| by_name.get(&(kind, name)).copied();
    // The IP reservations on each subnet, and the address pools, behind one barrier each.
    let mut reservations: HashMap<&str, usize> = HashMap::new();
    let mut pools: Option<usize> = None;
    for &(i, desired) in &specs {
        match desired {
            Desired::IpReservation(r) => {
                let on_subnet = *reservations
                    .entry(r.subnet.as_str())
                    .or_insert_with(|| g.barrier());
                g.edge(i, on_subnet);
            }
            Desired::AddressPool(_) => {
                let all = *pools.get_or_insert_with(|| g.barrier());
                g.edge(i, all);
            }
            _ => {}
        }
    }
    let vms = VmsByLabel::of(&specs);
    for &(i, desired) in &specs {
        if let Some(before) = deleted {
            g.edge(before, i);
        }
        let mut after = |before: Option<usize>| {
            if let Some(before) = before {
                g.edge(before, i);
            }
        };
        match desired {
            Desired::Subnet(s) => after(named(ResourceKind::Vpc, &s.vpc)),
            Desired::IpReservation(r) => after(named(ResourceKind::Subnet, &r.subnet)),
            Desired::Volume(v) => {
                if let VolumeSource::Clone { volume } = &v.source {
                    after(named(ResourceKind::Volume, volume));
                }
            }
            Desired::Vm(vm) => {
                if let BootDisk::Volume { volume } = &vm.boot_disk {
                    after(named(ResourceKind::Volume, volume));
                }
                for volume in &vm.data_volumes {
                    after(named(ResourceKind::Volume, volume));
                }
                for nic in &vm.interfaces {
                    if let Some(subnet) = nic.subnet() {
                        after(named(ResourceKind::Subnet, subnet));
                        after(reservations.get(subnet).copied());
                    }
                    for group in &nic.security_groups {
                        after(named(ResourceKind::SecurityGroup, group));
                    }
                }
            }
            Desired::Service(s) => {
                for vm in vms.selected(&s.selector) {
                    after(Some(vm));
                }
            }
            Desired::Exposure(e) => {
                for vm in vms.selected(&e.selector) {
                    after(Some(vm));
                }
                match &e.address {
                    AddressRequest::Pool(pool) => after(named(ResourceKind::AddressPool, pool)),
                    AddressRequest::Auto | AddressRequest::Ip(_) => after(pools),
                }
            }
            Desired::Vpc(_) | Desired::SecurityGroup(_) | Desired::AddressPool(_) => {}
        }
    }
    g
}

/// The VM steps of a plan by label, to find the ones a selector matches without comparing
/// every selector with every VM.
struct VmsByLabel<'a> {
    labels: HashMap<usize, &'a Labels>,
    by_label: HashMap<(&'a str, &'a str), Vec<usize>>,
    all: Vec<usize>,
}

impl<'a> VmsByLabel<'a> {
    fn of(specs: &[(usize, &'a Desired)]) -> Self {
        let mut out = Self {
            labels: HashMap::new(),
            by_label: HashMap::new(),
            all: Vec::new(),
        };
        for &(i, desired) in specs {
            if let Desired::Vm(vm) = desired {
                out.labels.insert(i, &vm.labels);
                out.all.push(i);
                for (k, v) in &vm.labels {
                    out.by_label.entry((k, v)).or_default().push(i);
                }
            }
        }
        out
    }

    /// The VM steps whose labels include all of `selector`'s.
    fn selected(&self, selector: &Labels) -> Vec<usize> {
        let candidates = match selector.iter().next() {
            Some((k, v)) => self
                .by_label
                .get(&(k.as_str(), v.as_str()))
                .map_or(&[][..], Vec::as_slice),
            None => &self.all,
        };
        candidates
            .iter()
            .copied()
            .filter(|i| {
                let labels = self.labels[i];
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ExposureSpec, ServicePort, SubnetSpec, VmSpec, VpcSpec};
    use kubecloud_core::NetworkInterface;

    fn step(action: Action, kind: ResourceKind, name: &str, desired: Option<Desired>) -> Step {
        Step {
            action,
            kind,
            name: name.into(),
            changes: Vec::new(),
            live: None,
            desired,
            kept_wait: None,
        }
    }

    fn vm(name: &str, subnet: &str) -> Desired {
        Desired::Vm(VmSpec {
            name: name.into(),
            interfaces: vec![NetworkInterface::on_subnet("eth0", subnet)],
            labels: Labels::from([("app".to_string(), name.to_string())]),
            ..VmSpec::default()
        })
    }

    /// Runs the graph to the end, finishing the ready steps one at a time in order: the order
    /// steps become ready in.
    fn run(mut g: Graph) -> Vec<usize> {
        let mut ready = g.start();
        let mut order = Vec::new();
        while !ready.is_empty() {
            let next = ready.remove(0);
            order.push(next);
            g.done(next, &mut ready);
        }
        order
    }

    #[test]
    fn a_step_waits_only_for_what_its_spec_names() {
        use ResourceKind as K;
        let steps = vec![
            step(
                Action::Create,
                K::Vpc,
                "main",
                Some(Desired::Vpc(VpcSpec::named("main"))),
            ),
            step(
                Action::Create,
                K::Subnet,
                "web",
                Some(Desired::Subnet(SubnetSpec::new(
                    "web",
                    "main",
                    "10.0.0.0/24".parse().unwrap(),
                ))),
            ),
            step(Action::Create, K::Vm, "a", Some(vm("a", "web"))),
            step(Action::Create, K::Vm, "b", Some(vm("b", "web"))),
            step(
                Action::Create,
                K::Exposure,
                "a",
                Some(Desired::Exposure(ExposureSpec::new(
                    "a",
                    [("app", "a")],
                    vec![ServicePort::tcp(443)],
                ))),
            ),
        ];
        let mut g = graph(&steps);
        assert_eq!(g.start(), vec![0], "only the VPC waits for nothing");
        let mut ready = Vec::new();
        g.done(0, &mut ready);
        assert_eq!(ready, vec![1], "the subnet after its VPC");
        ready.clear();
        g.done(1, &mut ready);
        assert_eq!(ready, vec![2, 3], "both VMs after their subnet");
        ready.clear();
        g.done(2, &mut ready);
        assert_eq!(
            ready,
            vec![4],
            "the exposure of a after a, while b is not done"
        );
    }

    #[test]
    fn deletions_go_from_dependents_to_dependencies_and_before_every_creation() {
        use ResourceKind as K;
        let steps = vec![
            step(Action::Delete, K::Exposure, "old", None),
            step(Action::Delete, K::Vm, "old", None),
            step(Action::Delete, K::Subnet, "old", None),
            step(
                Action::Create,
                K::Vpc,
                "main",
                Some(Desired::Vpc(VpcSpec::named("main"))),
            ),
        ];
        let mut g = graph(&steps);
        assert_eq!(g.start(), vec![0]);
        assert_eq!(run(graph(&steps)), vec![0, 1, 2, 3]);
    }
}
