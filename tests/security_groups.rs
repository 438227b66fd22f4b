//! Security groups enforced where they take effect: on the VM's port in the simulated Kube-OVN
//! (its port groups and ACLs, modelled on kube-ovn-controller), on the whole stack of doubles.
//! The group reaches the port across the seam between the network backend (which answers how
//! the interface attaches) and the compute backend (which puts that on the VM's pod), through
//! `TenantSpec` apply and through the handle's calls alike.
#![cfg(feature = "kubernetes")]

mod common {
    pub mod stack;
}

use std::net::IpAddr;
use std::time::Duration;

use common::stack::stack;
use kubecloud::{
    ApplyOptions, BootDisk, Error, NetworkInterface, ResourceKind, Rule, SecurityGroupSpec,
    SubnetSpec, TenantHandle, TenantSpec, VmSpec, VpcSpec,
};
use kubecloud_testkit::Latency;
use kubecloud_testkit::kubeovn_security::{DENY_ALL, Northbound, PacketQuery, port_group};

const TIMEOUT: Duration = Duration::from_secs(60);

fn vm_ip() -> IpAddr {
    "10.20.0.10".parse().unwrap()
}

fn ssh_only(ingress: Vec<Rule>) -> SecurityGroupSpec {
    SecurityGroupSpec {
        name: "ssh-only".into(),
        ingress,
        egress: vec![],
    }
}

fn guarded(groups: &[&str]) -> VmSpec {
    let mut eth0 = NetworkInterface::on_subnet("eth0", "web").with_fixed_ip(vm_ip());
    eth0.security_groups = groups.iter().map(|g| g.to_string()).collect();
    VmSpec {
        name: "guarded".into(),
        boot_disk: BootDisk::ContainerImage {
            image: "quay.io/containerdisks/fedora:40".into(),
        },
        interfaces: vec![eth0],
        ..VmSpec::default()
    }
}

fn tenant_spec(groups: &[&str], ingress: Vec<Rule>) -> TenantSpec {
    TenantSpec {
        vpcs: vec![VpcSpec::named("main")],
        subnets: vec![SubnetSpec::new(
            "web",
            "main",
            "10.20.0.0/24".parse().unwrap(),
        )],
        security_groups: vec![ssh_only(ingress)],
        vms: vec![guarded(groups)],
        ..TenantSpec::default()
    }
}

fn tcp_in(port: u16) -> PacketQuery {
    PacketQuery {
        ingress: true,
        protocol: "tcp",
        port: Some(port),
        peer: "203.0.113.9".parse().unwrap(),
    }
}

/// What the VM's port shows: (its groups' objects, tcp/22 allowed, tcp/80 allowed).
type Seen = (Vec<String>, bool, bool);

fn seen(ovn: &Northbound) -> Option<Seen> {
    let port = ovn.port_with_address(vm_ip())?;
    Some((
        port.security_groups.clone(),
        ovn.allows(&port.name, &tcp_in(22))?,
        ovn.allows(&port.name, &tcp_in(80))?,
    ))
}

/// Waits (on the double's change notifications, not by polling) until the VM's port shows
/// `expected`.
async fn port_shows(ovn: &Northbound, expected: (&[&str], bool, bool)) {
    let expected: Seen = (
        expected.0.iter().map(|g| g.to_string()).collect(),
        expected.1,
        expected.2,
    );
    let mut changes = ovn.subscribe();
    let wait = async {
        loop {
            changes.borrow_and_update();
            if seen(ovn).as_ref() == Some(&expected) {
                return;
            }
            changes.changed().await.expect("the double is running");
        }
    };
    if tokio::time::timeout(TIMEOUT, wait).await.is_err() {
        panic!("the VM's port shows {:?}, expected {expected:?}", seen(ovn));
    }
}

/// VPC `main` with subnet `web` (10.20.0.0/24), through the handle.
async fn web_subnet(acme: &TenantHandle) {
    let net = acme.network();
    net.create_vpc(&VpcSpec::named("main")).await.unwrap();
    let web = SubnetSpec::new("web", "main", "10.20.0.0/24".parse().unwrap());
    net.create_subnet(&web).await.unwrap();
}

async fn converge(acme: &TenantHandle, spec: &TenantSpec) {
    let plan = acme.plan(spec).await.expect("plan");
    acme.apply(&plan, ApplyOptions::default())
        .await
        .expect("apply");
    assert!(acme.plan(spec).await.expect("re-plan").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_applied_with_a_tenant_spec_is_enforced_on_the_vms_port() {
    let s = stack(Latency::None, 0).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let group = "acme-ssh-only";

    converge(
        &acme,
        &tenant_spec(&["ssh-only"], vec![Rule::allow_tcp(22)]),
    )
    .await;
    port_shows(&s.ovn, (&[group], true, false)).await;
    let port = s.ovn.port_with_address(vm_ip()).unwrap();
    assert!(port.port_security, "port security is on with a group");
    assert_eq!(port.port_groups, [port_group(group), DENY_ALL.to_string()]);

    // The VM leaves the group: no ACL applies to its port (Kube-OVN's default: all allowed).
    converge(&acme, &tenant_spec(&[], vec![Rule::allow_tcp(22)])).await;
    port_shows(&s.ovn, (&[], true, true)).await;
    assert!(!s.ovn.port_with_address(vm_ip()).unwrap().port_security);

    // Back in the group, then the group loses its rule: nothing gets in any more.
    converge(
        &acme,
        &tenant_spec(&["ssh-only"], vec![Rule::allow_tcp(22)]),
    )
    .await;
    port_shows(&s.ovn, (&[group], true, false)).await;
    converge(&acme, &tenant_spec(&["ssh-only"], vec![])).await;
    port_shows(&s.ovn, (&[group], false, false)).await;
    // And a rule for port 80 instead lets that in.
    converge(
        &acme,
        &tenant_spec(&["ssh-only"], vec![Rule::allow_tcp(80)]),
    )
    .await;
    port_shows(&s.ovn, (&[group], false, true)).await;

    acme.destroy(ApplyOptions::default())
        .await
        .expect("destroy");
    assert!(
        s.ovn.port_with_address(vm_ip()).is_none(),
        "the port goes with the VM"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_set_through_the_handle_is_enforced_and_cannot_be_deleted_while_used() {
    let s = stack(Latency::None, 0).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let net = acme.network();
    web_subnet(&acme).await;
    net.create_security_group(&ssh_only(vec![Rule::allow_tcp(22)]))
        .await
        .unwrap();
    acme.vms().apply(&guarded(&["ssh-only"])).await.unwrap();
    acme.vms().wait_running("guarded", TIMEOUT).await.unwrap();
    port_shows(&s.ovn, (&["acme-ssh-only"], true, false)).await;

    let err = net.delete_security_group("ssh-only").await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Conflict {
                kind: ResourceKind::SecurityGroup,
                ..
            }
        ),
        "{err}"
    );
    net.update_security_group(&ssh_only(vec![Rule::allow_tcp(80)]))
        .await
        .unwrap();
    port_shows(&s.ovn, (&["acme-ssh-only"], false, true)).await;

    acme.vms().apply(&guarded(&[])).await.unwrap();
    port_shows(&s.ovn, (&[], true, true)).await;
    // Out of the group, the group can go.
    net.delete_security_group("ssh-only").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_naming_a_missing_group_is_refused_before_anything_is_sent() {
    let s = stack(Latency::None, 0).await;
    let acme = s.cloud.tenant("acme").unwrap();
    web_subnet(&acme).await;
    let err = acme.vms().apply(&guarded(&["nope"])).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { kind: ResourceKind::SecurityGroup, name } if name == "nope"),
        "{err}"
    );
    assert!(acme.vms().get("guarded").await.unwrap_err().is_not_found());
}
