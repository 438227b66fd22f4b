//! VM ports in the in-memory cloud: how interfaces attach ([`Network::attach_interfaces`]) and
//! the security groups in force on each port, with the verdict on a packet.
//!
//! Every subnet interface attaches as a Multus network named after its subnet (bridge binding,
//! addresses kept over migration); a pod-network interface as asked, with nothing guaranteed.
//! A port in no security group lets everything through. A port in groups lets through what a
//! rule of one of its groups allows: the matching rule with the lowest priority number decides
//! (`drop` on a tie), and traffic no rule matches is dropped, both ways. This is what Kube-OVN
//! enforces with its port groups and deny-all group.

use std::net::IpAddr;

use kubecloud_core::{
    Attachment, Compute, Direction, Error, Guarantees, InterfaceAttachment, NetworkInterface,
    NetworkSelection, Packet, PodBinding, Protocol, Remote, ResourceKind, Result, Rule, RuleAction,
    Tenant, Vm, VmAttachments, VmSpec,
};

use crate::MemoryCloud;
use crate::state::{State, TenantState, find};

impl State {
    /// The attachments of `interfaces`, refusing a subnet or group the tenant does not have.
    pub(crate) fn attach_interfaces(
        &self,
        tenant: &Tenant,
        interfaces: &[NetworkInterface],
    ) -> Result<Vec<InterfaceAttachment>> {
        let ts = self.tenant(tenant);
        let mut out = Vec::with_capacity(interfaces.len());
        for iface in interfaces {
            for group in &iface.security_groups {
                find(
                    ts,
                    |t| &t.security_groups,
                    ResourceKind::SecurityGroup,
                    group,
                )?;
            }
            let mut a = match &iface.attachment {
                Attachment::PodNetwork { binding } => InterfaceAttachment::pod(iface, *binding),
                Attachment::Subnet { subnet } => {
                    find(ts, |t| &t.subnets, ResourceKind::Subnet, subnet)?;
                    let mut a = InterfaceAttachment::pod(iface, PodBinding::Bridge);
                    a.network = NetworkSelection::Multus {
                        namespace: tenant.to_string(),
                        name: subnet.clone(),
                    };
                    a.guarantees.addresses_kept_on_migration = true;
                    a
                }
            };
            a.guarantees = Guarantees {
                security_groups: iface.security_groups.clone(),
                ..a.guarantees
            };
            out.push(a);
        }
        Ok(out)
    }
}

/// Whether `rule` matches `packet`, with `members` telling whether an address is in a group.
fn matches(rule: &Rule, packet: &Packet, in_group: impl Fn(&str, IpAddr) -> bool) -> bool {
    let protocol = rule.protocol == Protocol::All || rule.protocol == packet.protocol;
    let ports = match rule.ports {
        None => true,
        Some(r) => packet.port.is_some_and(|p| r.first <= p && p <= r.last),
    };
    let remote = match &rule.remote {
        Remote::Any => true,
        Remote::Cidr(net) => net.contains(&packet.peer),
        Remote::Group(group) => in_group(group, packet.peer),
    };
    protocol && ports && remote
}

impl MemoryCloud {
    /// Applies VM `spec` attached as this cloud's own network and storage answer (what the
    /// facade does with [`VmAttachments::resolve`]): [`Compute::apply_vm`] without building the
    /// attachments by hand.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{NetworkInterface, Tenant, VmSpec};
    /// let cloud = kubecloud_memory::MemoryCloud::new();
    /// let spec = VmSpec {
    ///     name: "box".into(),
    ///     interfaces: vec![NetworkInterface::on_subnet("eth0", "missing")],
    ///     ..VmSpec::default()
    /// };
    /// assert!(cloud.apply_vm_resolved(&Tenant::new("acme")?, &spec).await.unwrap_err().is_not_found());
    /// # Ok(()) }
    /// ```
    pub async fn apply_vm_resolved(&self, tenant: &Tenant, spec: &VmSpec) -> Result<Vm> {
        let attachments = VmAttachments::resolve(tenant, spec, Some(self), Some(self)).await?;
        Compute::apply_vm(self, tenant, spec, &attachments).await
    }

    /// The security groups in force on the port of interface `interface` of VM `vm`, in the
    /// order the interface names them.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{Compute, Tenant, VmAttachments, VmSpec};
    /// let cloud = kubecloud_memory::MemoryCloud::new();
    /// let acme = Tenant::new("acme")?;
    /// let spec = VmSpec { name: "box".into(), ..VmSpec::default() };
    /// cloud.apply_vm(&acme, &spec, &VmAttachments::default()).await?;
    /// assert!(cloud.port_groups(&acme, "box", "default")?.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn port_groups(&self, tenant: &Tenant, vm: &str, interface: &str) -> Result<Vec<String>> {
        let state = self.lock();
        let ts = state.tenant(tenant);
        Ok(port_of(ts, vm, interface)?.security_groups)
    }

    /// Whether the port of interface `interface` of VM `vm` lets `packet` through.
    pub fn allows(
        &self,
        tenant: &Tenant,
        vm: &str,
        interface: &str,
        packet: &Packet,
    ) -> Result<bool> {
        let state = self.lock();
        let ts = state.tenant(tenant);
        let port = port_of(ts, vm, interface)?;
        if port.security_groups.is_empty() {
            return Ok(true);
        }
        let in_group = |group: &str, ip: IpAddr| {
            ts.into_iter().flat_map(|t| t.vms.values()).any(|vm| {
                vm.spec.interfaces.iter().zip(&vm.ifaces).any(|(i, alloc)| {
                    i.security_groups.iter().any(|g| g == group) && alloc.hold.ip() == ip
                })
            })
        };
        let mut best: Option<(u16, RuleAction)> = None;
        for group in &port.security_groups {
            let g = find(
                ts,
                |t| &t.security_groups,
                ResourceKind::SecurityGroup,
                group,
            )?;
            let rules = match packet.direction {
                Direction::Ingress => &g.spec.ingress,
                Direction::Egress => &g.spec.egress,
            };
            for rule in rules.iter().filter(|r| matches(r, packet, in_group)) {
                let candidate = (rule.priority, rule.action);
                best = match best {
                    Some((p, a))
                        if p < rule.priority || (p == rule.priority && a == RuleAction::Drop) =>
                    {
                        Some((p, a))
                    }
                    _ => Some(candidate),
                };
            }
        }
        Ok(best.is_some_and(|(_, action)| action == RuleAction::Allow))
    }
}

/// The spec interface `interface` of VM `vm` (the implicit `default` of a VM listing none).
fn port_of(ts: Option<&TenantState>, vm: &str, interface: &str) -> Result<NetworkInterface> {
    let record = find(ts, |t| &t.vms, ResourceKind::Vm, vm)?;
    crate::compute::interfaces(&record.spec)
        .iter()
        .find(|i| i.name == interface)
        .cloned()
        .ok_or_else(|| {
            Error::invalid(
                "interface",
                format!("vm {vm:?} has no interface {interface:?}"),
            )
        })
}
