//! Port-security checks: a VM interface's security groups are in force on its port, in the
//! system that enforces them. What is in force is read through a [`PortProbe`], which each
//! target supplies: the in-memory cloud answers from its own state, a Kubernetes stack from the
//! network double (e.g. the simulated Kube-OVN's port groups and ACLs).

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;

use super::compute::{any_boot, apply_running, apply_vm, delete_vm_gone, drop_boot};
use super::network::{delete_vpc_and_subnet, vpc_and_subnet};
use super::{Expect, Outcome, Params, Target, assert_conflict, require};
use crate::compute::{NetworkInterface, VmSpec};
use crate::error::{ResourceKind, Result};
use crate::name::Tenant;
use crate::network::{Packet, Rule, SecurityGroupSpec};

/// What a target's network enforces on VM ports, as observed where it is enforced.
#[async_trait]
pub trait PortProbe: Send + Sync + fmt::Debug {
    /// A stream yielding at every change of what the probe sees. Take it before reading, and
    /// wait for its next item when what was read is not yet what is expected.
    fn changes(&self) -> BoxStream<'static, ()>;
    /// The security groups (domain names) in force on the port of interface `interface` of VM
    /// `vm`, sorted; `None` while the port does not exist.
    async fn groups(
        &self,
        tenant: &Tenant,
        vm: &str,
        interface: &str,
    ) -> Result<Option<Vec<String>>>;
    /// Whether that port lets `packet` through; `None` while the port does not exist.
    async fn allows(
        &self,
        tenant: &Tenant,
        vm: &str,
        interface: &str,
        packet: &Packet,
    ) -> Result<Option<bool>>;
}

/// What a check expects a port to show: its groups, then `(packet, let through)` pairs.
type Shows<'a> = (&'a [&'a str], &'a [(Packet, bool)]);

/// Waits (on the probe's change stream, never by sleeping) until the port of `vm`'s `interface`
/// shows `expected`, panicking with what it shows at [`Params::timeout`].
async fn wait_port(
    probe: &dyn PortProbe,
    tenant: &Tenant,
    vm: &str,
    interface: &str,
    expected: Shows<'_>,
    params: &Params,
    what: &str,
) {
    let mut groups: Vec<String> = expected.0.iter().map(|g| g.to_string()).collect();
    groups.sort();
    let mut changes = probe.changes();
    let read = || async {
        let got = probe.groups(tenant, vm, interface).await?;
        let mut verdicts = Vec::new();
        for (packet, _) in expected.1 {
            verdicts.push(probe.allows(tenant, vm, interface, packet).await?);
        }
        Result::Ok((got, verdicts))
    };
    let wanted: Vec<Option<bool>> = expected.1.iter().map(|(_, ok)| Some(*ok)).collect();
    let wait = async {
        loop {
            let (got, verdicts) = read()
                .await
                .or_fail(format_args!("{what}: probing the port"));
            if got.as_ref() == Some(&groups) && verdicts == wanted {
                return;
            }
            if changes.next().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
    };
    if tokio::time::timeout(params.timeout, wait).await.is_err() {
        let seen = read().await;
        panic!(
            "conformance: {what}: the port of {vm}/{interface} in {tenant} shows {seen:?}, \
             expected groups {groups:?} and verdicts {wanted:?} for {:?}",
            expected.1
        );
    }
}

fn group(ingress: Vec<Rule>) -> SecurityGroupSpec {
    SecurityGroupSpec {
        name: "ssh-only".into(),
        ingress,
        egress: vec![],
    }
}

/// The port of VM `guarded`'s interface `eth0`, as the probe sees it.
struct Guarded<'a> {
    probe: &'a dyn PortProbe,
    tenant: &'a Tenant,
    params: &'a Params,
}

impl Guarded<'_> {
    /// Waits until the port is in `groups` and lets tcp/22 and tcp/80 from outside through as
    /// `ssh` and `http` say.
    async fn shows(&self, groups: &[&str], ssh: bool, http: bool, step: &str) {
        let peer: IpAddr = "203.0.113.9".parse().expect("an address");
        let verdicts = [
            (Packet::tcp_in(22, peer), ssh),
            (Packet::tcp_in(80, peer), http),
        ];
        let (probe, tenant, params) = (self.probe, self.tenant, self.params);
        wait_port(
            probe,
            tenant,
            "guarded",
            "eth0",
            (groups, &verdicts),
            params,
            step,
        )
        .await;
    }
}

/// A VM interface's groups are in force on its port (tcp/22 allowed and tcp/80 dropped by an
/// "ssh only" group, from anywhere); the VM leaving the group, the group's rules changing and
/// the VM rejoining are each reflected; deleting a group a VM uses is refused; an interface in
/// no group lets everything through (the documented default).
pub async fn security_groups_in_force_on_ports(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    require!(target.compute, "the target has no compute backend");
    let network = require!(
        target.network.filter(|n| n.capabilities().security_groups),
        "needs a network backend with security groups"
    );
    let probe = require!(target.ports, "needs a port probe of the network");
    let boot = match any_boot(target, tenant, "guarded", params).await {
        Ok(boot) => boot,
        Err(why) => return Outcome::Skipped(why),
    };
    let port = Guarded {
        probe,
        tenant,
        params,
    };
    vpc_and_subnet(network, tenant, "main", "guarded", params.subnet_block(13)).await;
    network
        .create_security_group(tenant, &group(vec![Rule::allow_tcp(22)]))
        .await
        .or_fail("create security group \"ssh-only\"");
    let vm = |groups: &[&str]| {
        let mut eth0 = NetworkInterface::on_subnet("eth0", "guarded");
        eth0.security_groups = groups.iter().map(|g| g.to_string()).collect();
        VmSpec {
            name: "guarded".into(),
            boot_disk: boot.clone(),
            interfaces: vec![eth0],
            ..VmSpec::default()
        }
    };
    apply_running(target, tenant, &vm(&["ssh-only"]), params).await;
    let in_group: &[&str] = &["ssh-only"];
    port.shows(in_group, true, false, "a vm in an ssh-only group")
        .await;

    let err = network
        .delete_security_group(tenant, "ssh-only")
        .await
        .refused("delete of a security group a running vm uses");
    assert_conflict(
        &err,
        Some(ResourceKind::SecurityGroup),
        "delete of a group in use",
    );

    apply_vm(target, tenant, &vm(&[]))
        .await
        .or_fail("apply vm \"guarded\" without groups");
    port.shows(
        &[],
        true,
        true,
        "a vm that left its group (no group: all traffic)",
    )
    .await;

    apply_vm(target, tenant, &vm(&["ssh-only"]))
        .await
        .or_fail("apply vm \"guarded\" back in its group");
    port.shows(in_group, true, false, "a vm back in its group")
        .await;

    network
        .update_security_group(tenant, &group(vec![Rule::allow_tcp(80)]))
        .await
        .or_fail("update security group \"ssh-only\" to allow tcp/80 only");
    port.shows(
        in_group,
        false,
        true,
        "a group whose rule changed from tcp/22 to tcp/80",
    )
    .await;

    network
        .update_security_group(tenant, &group(vec![]))
        .await
        .or_fail("update security group \"ssh-only\" to no rule");
    port.shows(in_group, false, false, "a group without rules")
        .await;

    let compute = target.compute.expect("checked above");
    delete_vm_gone(compute, tenant, "guarded", params).await;
    network
        .delete_security_group(tenant, "ssh-only")
        .await
        .or_fail("delete security group \"ssh-only\" once unused");
    delete_vpc_and_subnet(network, tenant, "main", "guarded").await;
    drop_boot(target, tenant, &boot, params).await;
    Outcome::Passed
}
