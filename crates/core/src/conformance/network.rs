//! Network checks: VPCs, subnets, IP reservations and IPAM, security groups, services, external
//! access.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{
    Expect, Outcome, Params, Target, assert_already_exists, assert_conflict, assert_exhausted,
    assert_invalid, assert_not_found, host, labels, names, require, require_that,
};
use crate::IpNet;
use crate::addr::MacAddress;
use crate::error::{Error, ResourceKind};
use crate::ipam::AddressSpace;
use crate::name::Tenant;
use crate::network::{
    ExternalIpSpec, FloatingIpSpec, IpReservation, IpReservationSpec, Network, Rule,
    SecurityGroupSpec, ServicePort, ServiceSpec, SnatRuleSpec, Subnet, SubnetSpec, VpcSpec,
    broadcast,
};

const NO_NETWORK: &str = "the target has no network backend";

/// Creates VPC `vpc` and subnet `subnet` with `cidr` in it.
pub(crate) async fn vpc_and_subnet(
    network: &dyn Network,
    tenant: &Tenant,
    vpc: &str,
    subnet: &str,
    cidr: IpNet,
) -> Subnet {
    network
        .create_vpc(tenant, &VpcSpec::named(vpc))
        .await
        .or_fail(format_args!("create vpc {vpc:?} in {tenant}"));
    network
        .create_subnet(tenant, &SubnetSpec::new(subnet, vpc, cidr))
        .await
        .or_fail(format_args!(
            "create subnet {subnet:?} ({cidr}) in vpc {vpc:?}"
        ))
}

/// Deletes subnet `subnet`, then VPC `vpc`, checking both are gone.
pub(crate) async fn delete_vpc_and_subnet(
    network: &dyn Network,
    tenant: &Tenant,
    vpc: &str,
    subnet: &str,
) {
    network
        .delete_subnet(tenant, subnet)
        .await
        .or_fail(format_args!("delete subnet {subnet:?}"));
    let err = network
        .get_subnet(tenant, subnet)
        .await
        .refused("get of a deleted subnet");
    assert_not_found(
        &err,
        ResourceKind::Subnet,
        subnet,
        "get of a deleted subnet",
    );
    network
        .delete_vpc(tenant, vpc)
        .await
        .or_fail(format_args!("delete vpc {vpc:?}"));
    let err = network
        .get_vpc(tenant, vpc)
        .await
        .refused("get of a deleted vpc");
    assert_not_found(&err, ResourceKind::Vpc, vpc, "get of a deleted vpc");
}

/// How many addresses a subnet hands out: hosts less network, broadcast and gateway.
pub(crate) fn capacity(spec: &SubnetSpec) -> u128 {
    AddressSpace::for_subnet(spec).capacity()
}

/// Asserts `ip` is an allocatable host address of `spec`.
#[track_caller]
fn assert_host_of(ip: IpAddr, spec: &SubnetSpec, what: &str) {
    assert!(
        spec.cidr.contains(&ip)
            && ip != spec.cidr.network()
            && Some(ip) != broadcast(spec.cidr)
            && ip != spec.gateway_ip(),
        "{what}: {ip} is not an allocatable host address of {} (gateway {})",
        spec.cidr,
        spec.gateway_ip()
    );
}

/// The subnet's (used, available) once `used` addresses are in use, waited for on its states:
/// a system may count asynchronously (Kube-OVN writes a subnet's counts from a queue after the
/// address changed), so a count read right after a change may be the old one.
async fn usage_once(
    network: &dyn Network,
    tenant: &Tenant,
    subnet: &str,
    used: u128,
    params: &Params,
) -> (u128, u128) {
    let states = network
        .watch_subnet(tenant, subnet)
        .await
        .or_fail(format_args!("watch subnet {subnet:?}"));
    let s = crate::wait::until(states, crate::wait::subnet_in_use(used), params.timeout)
        .await
        .or_fail(format_args!(
            "{used} address(es) in use in subnet {subnet:?}"
        ));
    (s.used, s.available)
}

async fn subnet_usage(network: &dyn Network, tenant: &Tenant, subnet: &str) -> (u128, u128) {
    let s = network
        .get_subnet(tenant, subnet)
        .await
        .or_fail(format_args!("get subnet {subnet:?}"));
    (s.used, s.available)
}

/// VPCs are created, got, listed, refused for taken names and bad names, list their subnets,
/// are refused deletion while they have subnets (`Conflict`) and give `NotFound` once deleted.
/// A subnet in a missing VPC is refused with `NotFound`.
pub async fn vpc_crud(target: &Target<'_>, tenant: &Tenant, params: &Params) -> Outcome {
    let network = require!(target.network, NO_NETWORK);
    let vpc = network
        .create_vpc(tenant, &VpcSpec::named("main"))
        .await
        .or_fail("create vpc \"main\"");
    assert_eq!(
        vpc.spec,
        VpcSpec::named("main"),
        "create_vpc returns the spec"
    );
    let got = network
        .get_vpc(tenant, "main")
        .await
        .or_fail("get vpc \"main\"");
    assert_eq!(got.spec.name, "main");
    network
        .create_vpc(tenant, &VpcSpec::named("spare"))
        .await
        .or_fail("create vpc \"spare\"");
    let mut listed = names(&network.list_vpcs(tenant).await.or_fail("list vpcs"), |v| {
        &v.spec.name
    });
    listed.sort();
    assert_eq!(listed, ["main", "spare"], "list_vpcs");
    let err = network
        .create_vpc(tenant, &VpcSpec::named("main"))
        .await
        .refused("create vpc \"main\" twice");
    assert_already_exists(
        &err,
        ResourceKind::Vpc,
        "main",
        "create of a taken vpc name",
    );
    let err = network
        .create_vpc(tenant, &VpcSpec::named("Main_VPC"))
        .await
        .refused("create vpc with a bad name");
    assert_invalid(&err, "name", "create of a vpc with a bad name");
    let err = network
        .get_vpc(tenant, "missing")
        .await
        .refused("get of a missing vpc");
    assert_not_found(&err, ResourceKind::Vpc, "missing", "get of a missing vpc");
    let err = network
        .delete_vpc(tenant, "missing")
        .await
        .refused("delete of a missing vpc");
    assert_not_found(
        &err,
        ResourceKind::Vpc,
        "missing",
        "delete of a missing vpc",
    );

    let cidr = params.subnet_block(0);
    let err = network
        .create_subnet(tenant, &SubnetSpec::new("stray", "missing", cidr))
        .await
        .refused("create of a subnet in a missing vpc");
    assert_not_found(
        &err,
        ResourceKind::Vpc,
        "missing",
        "subnet in a missing vpc",
    );
    network
        .create_subnet(tenant, &SubnetSpec::new("front", "main", cidr))
        .await
        .or_fail("create subnet \"front\" in vpc \"main\"");
    let vpc = network
        .get_vpc(tenant, "main")
        .await
        .or_fail("get vpc \"main\"");
    assert_eq!(vpc.subnets, ["front"], "a vpc lists its subnets");
    let err = network
        .delete_vpc(tenant, "main")
        .await
        .refused("delete of a vpc that has a subnet");
    assert_conflict(
        &err,
        Some(ResourceKind::Vpc),
        "delete of a vpc with subnets",
    );
    network
        .get_vpc(tenant, "main")
        .await
        .or_fail("a vpc whose deletion was refused still exists");
    delete_vpc_and_subnet(network, tenant, "main", "front").await;
    network
        .delete_vpc(tenant, "spare")
        .await
        .or_fail("delete vpc \"spare\"");
    let left = network.list_vpcs(tenant).await.or_fail("list vpcs");
    assert!(left.is_empty(), "deleted vpcs are not listed: {left:?}");
    Outcome::Passed
}

/// Subnets are created with their full capacity available, got, listed, refused for taken
/// names, invalid specs (`InvalidInput` naming the field) and CIDRs overlapping another subnet of
/// the VPC (`Conflict`); refused subnets do not exist.
pub async fn subnet_crud_and_overlap(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let network = require!(target.network, NO_NETWORK);
    let cidr = params.subnet_block(1);
    let front = vpc_and_subnet(network, tenant, "main", "front", cidr).await;
    let spec = SubnetSpec::new("front", "main", cidr);
    assert_eq!(front.spec, spec, "create_subnet returns the spec");
    let got = network
        .get_subnet(tenant, "front")
        .await
        .or_fail("get subnet \"front\"");
    assert_eq!(got.spec, spec);
    assert_eq!(got.used, 0, "a new subnet uses no address");
    assert_eq!(
        got.available,
        capacity(&spec),
        "a new {cidr} subnet has every host address but the gateway available"
    );
    let err = network
        .create_subnet(tenant, &spec)
        .await
        .refused("create subnet \"front\" twice");
    assert_already_exists(
        &err,
        ResourceKind::Subnet,
        "front",
        "create of a taken subnet name",
    );

    let half = cidr
        .subnets(cidr.prefix_len() + 1)
        .expect("halves")
        .next()
        .expect("first half");
    let overlapping = SubnetSpec::new("overlap", "main", half);
    let err = network
        .create_subnet(tenant, &overlapping)
        .await
        .refused(format_args!(
            "create of subnet {half} overlapping {cidr} in the same vpc"
        ));
    assert_conflict(
        &err,
        Some(ResourceKind::Subnet),
        "overlapping subnet in one vpc",
    );
    let mut host_bits = SubnetSpec::new("sloppy", "main", cidr);
    host_bits.cidr = IpNet::new(host(cidr, 5), cidr.prefix_len()).expect("valid prefix");
    let mut outside_gateway = SubnetSpec::new("gw", "main", params.subnet_block(2));
    outside_gateway.gateway = Some(host(cidr, 1));
    for bad in [
        SubnetSpec::new("Bad_Name", "main", params.subnet_block(2)),
        host_bits,
        outside_gateway,
    ] {
        let field = bad
            .validate()
            .expect_err("invalid case")
            .invalid_field()
            .expect("field")
            .to_string();
        let err = network
            .create_subnet(tenant, &bad)
            .await
            .refused(format_args!("create of a subnet with an invalid {field}"));
        assert_invalid(&err, &field, "create of an invalid subnet");
    }
    let back = SubnetSpec::new("back", "main", params.subnet_block(2));
    network
        .create_subnet(tenant, &back)
        .await
        .or_fail("create disjoint subnet \"back\"");
    let mut listed = names(
        &network.list_subnets(tenant).await.or_fail("list subnets"),
        |s| &s.spec.name,
    );
    listed.sort();
    assert_eq!(
        listed,
        ["back", "front"],
        "list_subnets lists exactly the created subnets"
    );
    let err = network
        .get_subnet(tenant, "missing")
        .await
        .refused("get of a missing subnet");
    assert_not_found(
        &err,
        ResourceKind::Subnet,
        "missing",
        "get of a missing subnet",
    );
    let err = network
        .delete_subnet(tenant, "missing")
        .await
        .refused("delete of a missing subnet");
    assert_not_found(
        &err,
        ResourceKind::Subnet,
        "missing",
        "delete of a missing subnet",
    );
    network
        .delete_subnet(tenant, "back")
        .await
        .or_fail("delete subnet \"back\"");
    delete_vpc_and_subnet(network, tenant, "main", "front").await;
    Outcome::Passed
}

/// Dynamic reservations get distinct host addresses of the subnet and a unicast MAC, count in
/// the subnet's usage, are got and listed (per subnet and all), refused for taken names,
/// missing subnets and multicast MACs, and free their address when released.
pub async fn ip_reserve_and_release(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let network = require!(target.network, NO_NETWORK);
    let cidr = params.subnet_block(3);
    let subnet = vpc_and_subnet(network, tenant, "main", "front", cidr).await;
    let (_, available) = subnet_usage(network, tenant, "front").await;

    let a = network
        .reserve_ip(tenant, &IpReservationSpec::new("a", "front"))
        .await
        .or_fail("reserve a dynamic address \"a\"");
    assert_eq!((a.name.as_str(), a.subnet.as_str()), ("a", "front"));
    assert_host_of(a.ip, &subnet.spec, "a dynamic reservation");
    assert!(
        !a.mac.is_multicast(),
        "a generated MAC is unicast: {}",
        a.mac
    );
    let b = network
        .reserve_ip(tenant, &IpReservationSpec::new("b", "front"))
        .await
        .or_fail("reserve a dynamic address \"b\"");
    assert_host_of(b.ip, &subnet.spec, "a dynamic reservation");
    assert_ne!(a.ip, b.ip, "two reservations never share an address");
    assert_ne!(a.mac, b.mac, "two reservations never share a MAC");
    assert_eq!(
        usage_once(network, tenant, "front", 2, params).await,
        (2, available - 2),
        "subnet usage (used, available) counts the reservations"
    );
    assert_eq!(
        network
            .get_ip(tenant, "a")
            .await
            .or_fail("get reservation \"a\""),
        a
    );
    let listed = network
        .list_ips(tenant, Some("front"))
        .await
        .or_fail("list reservations of \"front\"");
    let mut listed = names(&listed, |r| &r.name);
    listed.sort();
    assert_eq!(listed, ["a", "b"], "list_ips of one subnet");
    let all = network
        .list_ips(tenant, None)
        .await
        .or_fail("list all reservations");
    assert_eq!(all.len(), 2, "list_ips of all subnets: {all:?}");

    let err = network
        .reserve_ip(tenant, &IpReservationSpec::new("a", "front"))
        .await
        .refused("reserve \"a\" twice");
    assert_already_exists(
        &err,
        ResourceKind::IpReservation,
        "a",
        "reservation of a taken name",
    );
    let err = network
        .reserve_ip(tenant, &IpReservationSpec::new("c", "missing"))
        .await
        .refused("reservation in a missing subnet");
    assert_not_found(
        &err,
        ResourceKind::Subnet,
        "missing",
        "reservation in a missing subnet",
    );
    let multicast = IpReservationSpec {
        mac: Some(MacAddress([0x01, 0, 0x5e, 0, 0, 1])),
        ..IpReservationSpec::new("d", "front")
    };
    let err = network
        .reserve_ip(tenant, &multicast)
        .await
        .refused("reservation with a multicast MAC");
    assert_invalid(&err, "mac", "reservation with a multicast MAC");
    for name in ["c", "d"] {
        let err = network
            .get_ip(tenant, name)
            .await
            .refused("get of a refused reservation");
        assert_not_found(
            &err,
            ResourceKind::IpReservation,
            name,
            "a refused reservation must not exist",
        );
    }
    let err = network
        .get_ip(tenant, "missing")
        .await
        .refused("get of a missing reservation");
    assert_not_found(
        &err,
        ResourceKind::IpReservation,
        "missing",
        "get of a missing reservation",
    );

    for name in ["a", "b"] {
        network
            .release_ip(tenant, name)
            .await
            .or_fail(format_args!("release {name:?}"));
        let err = network
            .get_ip(tenant, name)
            .await
            .refused("get of a released reservation");
        assert_not_found(
            &err,
            ResourceKind::IpReservation,
            name,
            "get of a released reservation",
        );
    }
    let err = network
        .release_ip(tenant, "a")
        .await
        .refused("release of a released reservation");
    assert_not_found(
        &err,
        ResourceKind::IpReservation,
        "a",
        "release of a missing reservation",
    );
    assert_eq!(
        usage_once(network, tenant, "front", 0, params).await,
        (0, available),
        "released addresses are free again"
    );
    delete_vpc_and_subnet(network, tenant, "main", "front").await;
    Outcome::Passed
}

/// A fixed address (and MAC, with `fixed_macs`) is honoured; the same address again, the
/// gateway and an address outside the subnet are refused (`Conflict`, or `InvalidInput` naming
/// `ip`) and create nothing; once released, the address can be reserved again.
pub async fn fixed_ip_honoured_and_taken_refused(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let network = require!(target.network, NO_NETWORK);
    let caps = network.capabilities();
    require_that!(caps.fixed_ips, "capability network.fixed_ips is missing");
    let cidr = params.subnet_block(4);
    let subnet = vpc_and_subnet(network, tenant, "main", "front", cidr).await;
    let want = host(cidr, 10);
    let mut spec = IpReservationSpec::new("fixed", "front").with_ip(want);
    let mac = MacAddress([0x52, 0x54, 0x00, 0x0c, 0x0f, 0x01]);
    if caps.fixed_macs {
        spec.mac = Some(mac);
    }
    let fixed = network
        .reserve_ip(tenant, &spec)
        .await
        .or_fail(format_args!("reserve fixed {want}"));
    assert_eq!(fixed.ip, want, "a fixed address is honoured");
    if caps.fixed_macs {
        assert_eq!(fixed.mac, mac, "a fixed MAC is honoured");
    }
    let outside = host(params.subnet_block(15), 10);
    for (name, ip, what) in [
        ("thief", want, "an address already reserved"),
        ("gateway", subnet.spec.gateway_ip(), "the gateway"),
        ("outside", outside, "an address outside the subnet"),
    ] {
        let err = network
            .reserve_ip(tenant, &IpReservationSpec::new(name, "front").with_ip(ip))
            .await
            .refused(format_args!("reservation of {what} ({ip})"));
        assert!(
            matches!(err, Error::Conflict { .. }) || err.invalid_field() == Some("ip"),
            "reservation of {what} ({ip}): expected Conflict or InvalidInput naming \"ip\", got: {err} ({err:?})"
        );
        let err = network
            .get_ip(tenant, name)
            .await
            .refused("get of a refused reservation");
        assert_not_found(
            &err,
            ResourceKind::IpReservation,
            name,
            "a refused reservation must not exist",
        );
    }
    assert_eq!(
        usage_once(network, tenant, "front", 1, params).await.0,
        1,
        "refusals use no address"
    );
    network
        .release_ip(tenant, "fixed")
        .await
        .or_fail("release \"fixed\"");
    let again = network
        .reserve_ip(
            tenant,
            &IpReservationSpec::new("again", "front").with_ip(want),
        )
        .await
        .or_fail(format_args!("reserve {want} again after releasing it"));
    assert_eq!(again.ip, want);
    network
        .release_ip(tenant, "again")
        .await
        .or_fail("release \"again\"");
    delete_vpc_and_subnet(network, tenant, "main", "front").await;
    Outcome::Passed
}

/// A /29 (IPv6: /125) subnet reports its capacity as available; exactly that many dynamic
/// reservations succeed, with distinct addresses; the next is refused with `Exhausted` and
/// creates nothing; after a release the freed address is handed out again.
pub async fn subnet_exhaustion_and_reuse(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let network = require!(target.network, NO_NETWORK);
    let block = params.subnet_block(5);
    let tiny = block
        .subnets(block.max_prefix_len() - 3)
        .expect("/29")
        .next()
        .expect("first");
    let subnet = vpc_and_subnet(network, tenant, "main", "tiny", tiny).await;
    let capacity = capacity(&subnet.spec);
    let (used, available) = subnet_usage(network, tenant, "tiny").await;
    assert_eq!(
        (used, available),
        (0, capacity),
        "a new {tiny} subnet has {capacity} addresses available"
    );
    let mut held: Vec<IpReservation> = Vec::new();
    for i in 0..capacity {
        let r = network
            .reserve_ip(tenant, &IpReservationSpec::new(format!("r{i}"), "tiny"))
            .await
            .or_fail(format_args!(
                "reservation {} of {capacity} in {tiny}",
                i + 1
            ));
        assert_host_of(r.ip, &subnet.spec, "a reservation");
        held.push(r);
    }
    let distinct: BTreeSet<IpAddr> = held.iter().map(|r| r.ip).collect();
    assert_eq!(
        distinct.len(),
        held.len(),
        "every reservation has its own address: {held:?}"
    );
    assert_eq!(
        usage_once(network, tenant, "tiny", capacity, params).await,
        (capacity, 0),
        "a full subnet"
    );
    let err = network
        .reserve_ip(tenant, &IpReservationSpec::new("late", "tiny"))
        .await
        .refused("a reservation in a full subnet");
    assert_exhausted(
        &err,
        Some(ResourceKind::Subnet),
        "a reservation in a full subnet",
    );
    let err = network
        .get_ip(tenant, "late")
        .await
        .refused("get of the refused reservation");
    assert_not_found(
        &err,
        ResourceKind::IpReservation,
        "late",
        "a refused reservation must not exist",
    );

    let freed = held.remove(held.len() / 2);
    network
        .release_ip(tenant, &freed.name)
        .await
        .or_fail(format_args!("release {:?}", freed.name));
    let reused = network
        .reserve_ip(tenant, &IpReservationSpec::new("reuse", "tiny"))
        .await
        .or_fail("a reservation after a release in a full subnet");
    assert_eq!(
        reused.ip, freed.ip,
        "the only free address is the released one"
    );
    held.push(reused);
    for r in held {
        network
            .release_ip(tenant, &r.name)
            .await
            .or_fail(format_args!("release {:?}", r.name));
    }
    assert_eq!(
        usage_once(network, tenant, "tiny", 0, params).await,
        (0, capacity),
        "all released"
    );
    delete_vpc_and_subnet(network, tenant, "main", "tiny").await;
    Outcome::Passed
}

/// A subnet with a reservation is refused deletion with `Conflict` and stays; once released it
/// can be deleted.
pub async fn subnet_in_use_not_deleted(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let network = require!(target.network, NO_NETWORK);
    vpc_and_subnet(network, tenant, "main", "busy", params.subnet_block(6)).await;
    network
        .reserve_ip(tenant, &IpReservationSpec::new("held", "busy"))
        .await
        .or_fail("reserve \"held\"");
    let err = network
        .delete_subnet(tenant, "busy")
        .await
        .refused("delete of a subnet in use");
    assert_conflict(
        &err,
        Some(ResourceKind::Subnet),
        "delete of a subnet in use",
    );
    let (used, _) = usage_once(network, tenant, "busy", 1, params).await;
    assert_eq!(
        used, 1,
        "a subnet whose deletion was refused keeps its reservations"
    );
    network
        .get_ip(tenant, "held")
        .await
        .or_fail("the reservation survives the refused delete");
    network
        .release_ip(tenant, "held")
        .await
        .or_fail("release \"held\"");
    delete_vpc_and_subnet(network, tenant, "main", "busy").await;
    Outcome::Passed
}

/// Security groups are created, got (same spec), listed, refused for taken names and invalid
/// rules (`InvalidInput` naming the rule's field), and deleted.
pub async fn security_groups_crud(
    target: &Target<'_>,
    tenant: &Tenant,
    _params: &Params,
) -> Outcome {
    let network = require!(target.network, NO_NETWORK);
    require_that!(
        network.capabilities().security_groups,
        "capability network.security_groups is missing"
    );
    let spec = SecurityGroupSpec {
        name: "web".into(),
        ingress: vec![Rule::allow_tcp(443)],
        egress: vec![],
    };
    let created = network
        .create_security_group(tenant, &spec)
        .await
        .or_fail("create security group \"web\"");
    assert_eq!(created.spec, spec);
    let got = network
        .get_security_group(tenant, "web")
        .await
        .or_fail("get security group \"web\"");
    assert_eq!(got.spec, spec, "a security group keeps its rules");
    let listed = network
        .list_security_groups(tenant)
        .await
        .or_fail("list security groups");
    assert_eq!(names(&listed, |g| &g.spec.name), ["web"]);
    let err = network
        .create_security_group(tenant, &spec)
        .await
        .refused("create security group \"web\" twice");
    assert_already_exists(
        &err,
        ResourceKind::SecurityGroup,
        "web",
        "create of a taken security group name",
    );
    let bad = SecurityGroupSpec {
        name: "bad".into(),
        ingress: vec![Rule {
            priority: 0,
            ..Rule::allow_tcp(22)
        }],
        egress: vec![],
    };
    let err = network
        .create_security_group(tenant, &bad)
        .await
        .refused("a security group with priority 0");
    assert_invalid(&err, "ingress[0].priority", "a rule with priority 0");
    let err = network
        .get_security_group(tenant, "bad")
        .await
        .refused("get of a refused security group");
    assert_not_found(
        &err,
        ResourceKind::SecurityGroup,
        "bad",
        "a refused security group must not exist",
    );
    network
        .delete_security_group(tenant, "web")
        .await
        .or_fail("delete security group \"web\"");
    let err = network
        .get_security_group(tenant, "web")
        .await
        .refused("get of a deleted security group");
    assert_not_found(
        &err,
        ResourceKind::SecurityGroup,
        "web",
        "get of a deleted security group",
    );
    let err = network
        .delete_security_group(tenant, "web")
        .await
        .refused("delete of a deleted security group");
    assert_not_found(
        &err,
        ResourceKind::SecurityGroup,
        "web",
        "delete of a missing security group",
    );
    Outcome::Passed
}

/// Services get a DNS name starting with their name and a cluster IP (distinct per service), are
/// got, listed, refused for taken names and empty selectors, and deleted.
pub async fn services_crud(target: &Target<'_>, tenant: &Tenant, _params: &Params) -> Outcome {
    let network = require!(target.network, NO_NETWORK);
    require_that!(
        network.capabilities().services,
        "capability network.services is missing"
    );
    let db = ServiceSpec {
        name: "db".into(),
        selector: labels(&[("app", "db")]),
        ports: vec![ServicePort::tcp(5432)],
    };
    let cache = ServiceSpec {
        name: "cache".into(),
        selector: labels(&[("app", "cache")]),
        ports: vec![ServicePort::tcp(6379)],
    };
    let created = network
        .create_service(tenant, &db)
        .await
        .or_fail("create service \"db\"");
    assert_eq!(created.spec, db);
    assert!(
        created.dns_name.starts_with("db."),
        "a service's DNS name starts with its name: {:?}",
        created.dns_name
    );
    let db_ip = created.cluster_ip.expect("a service has a cluster IP");
    let cache_ip = network
        .create_service(tenant, &cache)
        .await
        .or_fail("create service \"cache\"")
        .cluster_ip
        .expect("a service has a cluster IP");
    assert_ne!(db_ip, cache_ip, "two services never share a cluster IP");
    let got = network
        .get_service(tenant, "db")
        .await
        .or_fail("get service \"db\"");
    assert_eq!(
        (got.cluster_ip, got.dns_name.as_str()),
        (Some(db_ip), created.dns_name.as_str()),
        "a service keeps its address and name"
    );
    let mut listed = names(
        &network.list_services(tenant).await.or_fail("list services"),
        |s| &s.spec.name,
    );
    listed.sort();
    assert_eq!(listed, ["cache", "db"]);
    let err = network
        .create_service(tenant, &db)
        .await
        .refused("create service \"db\" twice");
    assert_already_exists(
        &err,
        ResourceKind::Service,
        "db",
        "create of a taken service name",
    );
    let bad = ServiceSpec {
        name: "bad".into(),
        selector: labels(&[]),
        ports: vec![ServicePort::tcp(80)],
    };
    let err = network
        .create_service(tenant, &bad)
        .await
        .refused("a service with an empty selector");
    assert_invalid(&err, "selector", "a service with an empty selector");
    for name in ["db", "cache"] {
        network
            .delete_service(tenant, name)
            .await
            .or_fail(format_args!("delete service {name:?}"));
        let err = network
            .get_service(tenant, name)
            .await
            .refused("get of a deleted service");
        assert_not_found(
            &err,
            ResourceKind::Service,
            name,
            "get of a deleted service",
        );
    }
    let err = network
        .delete_service(tenant, "db")
        .await
        .refused("delete of a deleted service");
    assert_not_found(
        &err,
        ResourceKind::Service,
        "db",
        "delete of a missing service",
    );
    Outcome::Passed
}

/// External access (capability `external_access`): external IPs (the next free address and a
/// requested one; a taken address refused with `Conflict`), a floating IP to a reservation and a
/// SNAT rule for a subnet are created, listed, and deleted in order; an external IP in use, a
/// reservation a floating IP binds and a subnet a SNAT rule translates are not deleted
/// (`Conflict`); missing ones read as `NotFound`.
pub async fn external_access(target: &Target<'_>, tenant: &Tenant, params: &Params) -> Outcome {
    let network = require!(target.network, NO_NETWORK);
    require_that!(
        network.capabilities().external_access,
        "capability network.external_access is missing"
    );
    let auto = network
        .create_external_ip(tenant, &ExternalIpSpec::new("auto"))
        .await
        .or_fail("create external ip \"auto\"");
    assert_eq!(auto.spec, ExternalIpSpec::new("auto"));
    let auto_ip = auto.ip.expect("an external ip has an address once created");
    assert!(auto.ready, "an external ip is ready once created: {auto:?}");
    let wanted = crate::u128_to_ip(crate::ip_to_u128(auto_ip) + 7, auto_ip)
        .expect("an address a few after the first one");
    let fixed = network
        .create_external_ip(tenant, &ExternalIpSpec::new("fixed").with_ip(wanted))
        .await
        .or_fail(format_args!("create external ip \"fixed\" at {wanted}"));
    assert_eq!(
        fixed.ip,
        Some(wanted),
        "a requested external address is honoured"
    );
    let err = network
        .create_external_ip(tenant, &ExternalIpSpec::new("dup").with_ip(auto_ip))
        .await
        .refused("an external ip at a taken address");
    assert_conflict(&err, None, "an external ip at a taken address");
    let err = network
        .get_external_ip(tenant, "dup")
        .await
        .refused("get of a refused external ip");
    assert_not_found(
        &err,
        ResourceKind::ExternalIp,
        "dup",
        "a refused external ip must not exist",
    );
    let err = network
        .create_external_ip(tenant, &ExternalIpSpec::new("auto"))
        .await
        .refused("create external ip \"auto\" twice");
    assert_already_exists(
        &err,
        ResourceKind::ExternalIp,
        "auto",
        "create of a taken external ip name",
    );
    let got = network
        .get_external_ip(tenant, "auto")
        .await
        .or_fail("get external ip \"auto\"");
    assert_eq!(got.ip, Some(auto_ip), "an external ip keeps its address");
    let mut listed = names(
        &network
            .list_external_ips(tenant)
            .await
            .or_fail("list external ips"),
        |e| &e.spec.name,
    );
    listed.sort();
    assert_eq!(listed, ["auto", "fixed"], "list_external_ips");

    vpc_and_subnet(network, tenant, "main", "front", params.subnet_block(10)).await;
    network
        .reserve_ip(tenant, &IpReservationSpec::new("web", "front"))
        .await
        .or_fail("reserve \"web\"");
    let fip_spec = FloatingIpSpec::new("web", "auto", "web");
    let fip = network
        .create_floating_ip(tenant, &fip_spec)
        .await
        .or_fail("create floating ip \"web\"");
    assert_eq!(fip.spec, fip_spec);
    assert!(fip.ready, "a floating ip is ready once created: {fip:?}");
    let err = network
        .create_floating_ip(tenant, &FloatingIpSpec::new("x", "missing", "web"))
        .await
        .refused("a floating ip of a missing external ip");
    assert_not_found(
        &err,
        ResourceKind::ExternalIp,
        "missing",
        "a floating ip of a missing external ip",
    );
    let err = network
        .create_floating_ip(tenant, &FloatingIpSpec::new("y", "fixed", "missing"))
        .await
        .refused("a floating ip to a missing reservation");
    assert_not_found(
        &err,
        ResourceKind::IpReservation,
        "missing",
        "a floating ip to a missing reservation",
    );
    let snat_spec = SnatRuleSpec::new("out", "fixed", "front");
    let snat = network
        .create_snat_rule(tenant, &snat_spec)
        .await
        .or_fail("create snat rule \"out\"");
    assert_eq!(snat.spec, snat_spec);
    assert!(snat.ready, "a snat rule is ready once created: {snat:?}");
    let err = network
        .create_snat_rule(tenant, &SnatRuleSpec::new("z", "fixed", "missing"))
        .await
        .refused("a snat rule of a missing subnet");
    assert_not_found(
        &err,
        ResourceKind::Subnet,
        "missing",
        "a snat rule of a missing subnet",
    );
    let fips = network
        .list_floating_ips(tenant)
        .await
        .or_fail("list floating ips");
    assert_eq!(names(&fips, |f| &f.spec.name), ["web"], "list_floating_ips");
    let snats = network
        .list_snat_rules(tenant)
        .await
        .or_fail("list snat rules");
    assert_eq!(names(&snats, |s| &s.spec.name), ["out"], "list_snat_rules");

    for name in ["auto", "fixed"] {
        let err = network
            .delete_external_ip(tenant, name)
            .await
            .refused("delete of an external ip in use");
        assert_conflict(
            &err,
            Some(ResourceKind::ExternalIp),
            "delete of an external ip in use",
        );
    }
    // A reservation a floating ip binds, and a subnet a snat rule translates, are in use too:
    // refused before anything changes.
    let err = network
        .release_ip(tenant, "web")
        .await
        .refused("release of a reservation a floating ip binds");
    assert_conflict(
        &err,
        Some(ResourceKind::IpReservation),
        "release of a reservation a floating ip binds",
    );
    network
        .get_ip(tenant, "web")
        .await
        .or_fail("get of a reservation whose release was refused");
    network
        .delete_floating_ip(tenant, "web")
        .await
        .or_fail("delete floating ip \"web\"");
    network
        .release_ip(tenant, "web")
        .await
        .or_fail("release \"web\" once its floating ip is gone");
    let err = network
        .delete_subnet(tenant, "front")
        .await
        .refused("delete of a subnet a snat rule translates");
    assert_conflict(
        &err,
        Some(ResourceKind::Subnet),
        "delete of a subnet a snat rule translates",
    );
    network
        .get_subnet(tenant, "front")
        .await
        .or_fail("get of a subnet whose deletion was refused");
    network
        .delete_snat_rule(tenant, "out")
        .await
        .or_fail("delete snat rule \"out\"");
    for name in ["auto", "fixed"] {
        network
            .delete_external_ip(tenant, name)
            .await
            .or_fail(format_args!("delete external ip {name:?}"));
        let err = network
            .get_external_ip(tenant, name)
            .await
            .refused("get of a deleted external ip");
        assert_not_found(
            &err,
            ResourceKind::ExternalIp,
            name,
            "get of a deleted external ip",
        );
    }
    let err = network
        .delete_external_ip(tenant, "auto")
        .await
        .refused("delete of a deleted external ip");
    assert_not_found(
        &err,
        ResourceKind::ExternalIp,
        "auto",
        "delete of a missing external ip",
    );
    let err = network
        .delete_floating_ip(tenant, "web")
        .await
        .refused("delete of a deleted floating ip");
    assert_not_found(
        &err,
        ResourceKind::FloatingIp,
        "web",
        "delete of a missing floating ip",
    );
    let err = network
        .delete_snat_rule(tenant, "out")
        .await
        .refused("delete of a deleted snat rule");
    assert_not_found(
        &err,
        ResourceKind::SnatRule,
        "out",
        "delete of a missing snat rule",
    );
    assert!(
        network
            .list_external_ips(tenant)
            .await
            .or_fail("list external ips")
            .is_empty(),
        "no external ip is left"
    );
    delete_vpc_and_subnet(network, tenant, "main", "front").await;
    Outcome::Passed
}
