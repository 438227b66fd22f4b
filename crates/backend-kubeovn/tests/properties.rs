//! Properties of the checks made before anything is sent, against brute force.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use kubecloud_core::{IpNet, IpRange, IpReservationSpec, SubnetSpec, Tenant};
use kubecloud_kubeovn::addresses::{Held, check_reservation, refuse_overlap, space};
use kubecloud_kubeovn::models::Vip;
use kubecloud_kubeovn::translate;
use proptest::prelude::*;
use serde_json::json;

/// One step against a subnet: reserve a fixed host offset, reserve the next free, or release.
#[derive(Clone, Debug)]
enum Op {
    Fixed(u32),
    Dynamic,
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..80).prop_map(Op::Fixed),
        Just(Op::Dynamic),
        (0usize..40).prop_map(Op::Release),
    ]
}

/// What kube-ovn-controller does with an accepted reservation: take the fixed address, or the
/// next free one of the space as it is.
fn allocate(subnet: &SubnetSpec, live: &[Held], spec: &IpReservationSpec) -> IpAddr {
    let mut space = space(subnet, live);
    match spec.ip {
        Some(ip) => {
            space
                .reserve(ip, &spec.name)
                .expect("the check said it is free");
            ip
        }
        None => space
            .allocate(&spec.name)
            .expect("the check said there is room"),
    }
}

proptest! {
    #[test]
    fn live_reservations_never_share_an_address_and_stay_in_their_subnet(
        prefix in 26u8..=29,
        ex_start in 0u32..64,
        ex_len in 0u32..6,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let tenant = Tenant::new("acme").unwrap();
        let cidr: IpNet = format!("10.7.0.0/{prefix}").parse().unwrap();
        let size = 1u32 << (32 - prefix);
        let base = u32::from(Ipv4Addr::new(10, 7, 0, 0));
        let first = base + ex_start % size;
        let last = (first + ex_len).min(base + size - 1);
        let excluded = IpRange::new(IpAddr::V4(first.into()), IpAddr::V4(last.into())).unwrap();
        let mut subnet = SubnetSpec::new("s", "main", cidr);
        subnet.exclude = vec![excluded];
        let mut live: Vec<Held> = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            let name = format!("r{i}");
            let spec = match op {
                Op::Release(k) => {
                    if !live.is_empty() {
                        live.remove(k % live.len());
                    }
                    continue;
                }
                Op::Fixed(offset) => IpReservationSpec::new(&name, "s")
                    .with_ip(IpAddr::V4((base + offset % (size + 8)).into())),
                Op::Dynamic => IpReservationSpec::new(&name, "s"),
            };
            if check_reservation(&spec, &subnet, &live).is_err() {
                continue;
            }
            let ip = allocate(&subnet, &live, &spec);
            let mut object = translate::vip(&tenant, &spec, "acme-s");
            object["spec"]["v4ip"] = json!(ip.to_string());
            // The Vip as Kube-OVN holds it, read through the generated model.
            let vip: Vip = serde_json::from_value(object).unwrap();
            live.push(Held::of_vip(&vip).unwrap());
            // Invariants over every live reservation.
            let addrs: Vec<IpAddr> = live.iter().filter_map(|h| h.ip).collect();
            let distinct: BTreeSet<&IpAddr> = addrs.iter().collect();
            prop_assert_eq!(distinct.len(), addrs.len(), "an address held twice: {:?}", addrs);
            for a in &addrs {
                prop_assert!(cidr.contains(a), "{} outside {}", a, cidr);
                prop_assert!(!excluded.contains(*a), "{} is excluded", a);
                prop_assert!(*a != subnet.gateway_ip() && *a != cidr.network() && *a != cidr.broadcast());
            }
        }
    }

    #[test]
    fn overlap_detection_agrees_with_brute_force(
        a_off in 0u32..1024, a_prefix in 22u8..=30,
        b_off in 0u32..1024, b_prefix in 22u8..=30,
    ) {
        let net = |off: u32, prefix: u8| -> IpNet {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 9, 0, 0)) + off * 4);
            IpNet::new(IpAddr::V4(addr), prefix).unwrap().trunc()
        };
        let (a, b) = (net(a_off, a_prefix), net(b_off, b_prefix));
        let range = |n: IpNet| match n {
            IpNet::V4(n) => (u32::from(n.network()), u32::from(n.broadcast())),
            IpNet::V6(_) => unreachable!(),
        };
        let ((a0, a1), (b0, b1)) = (range(a), range(b));
        let brute = (a0..=a1).any(|x| (b0..=b1).contains(&x));
        let existing = SubnetSpec::new("a", "main", a);
        let candidate = SubnetSpec::new("b", "main", b);
        prop_assert_eq!(refuse_overlap(&candidate, std::slice::from_ref(&existing)).is_err(), brute);
        // Subnets of another VPC never conflict.
        let elsewhere = SubnetSpec::new("a", "other", a);
        prop_assert!(refuse_overlap(&candidate, &[elsewhere]).is_ok());
    }
}
