//! Load-balancer checks: address pools, exposures, requested addresses, sharing, usage.

use std::net::IpAddr;

use super::{
    Expect, Outcome, Params, Target, assert_already_exists, assert_conflict, assert_failed,
    assert_invalid, assert_not_found, host, names, require, require_that, wait_fails_fast,
    wait_for, wait_gone,
};
use crate::IpNet;
use crate::addr::IpRange;
use crate::error::ResourceKind;
use crate::loadbalancer::{
    AddressBlock, AddressPool, AddressPoolSpec, AddressRequest, Advertisement, BgpAdvertisement,
    BgpPeer, Exposure, ExposureSpec, ExposureState, LoadBalancer,
};
use crate::name::Tenant;
use crate::network::ServicePort;
use crate::wait;

const NO_LB: &str = "the target has no load balancer";
const NO_ADVERTISEMENT: &str = "the load balancer announces neither over L2 nor over BGP";

/// A pool of `blocks` announced over BGP to one made-up router.
pub(crate) fn bgp_pool_spec(name: &str, blocks: Vec<AddressBlock>) -> AddressPoolSpec {
    AddressPoolSpec {
        advertisement: Advertisement::Bgp(BgpAdvertisement {
            peers: vec![BgpPeer {
                name: "tor".into(),
                my_asn: 64512,
                peer_asn: 64513,
                address: "192.0.2.1".parse().expect("ip"),
                port: None,
                hold_time_secs: None,
                keepalive_time_secs: None,
                ebgp_multihop: false,
                bfd: false,
                password: None,
            }],
            ..BgpAdvertisement::default()
        }),
        ..AddressPoolSpec::l2(name, blocks)
    }
}

/// A pool of `blocks` announced the way the load balancer can (L2 preferred), if it can.
pub(crate) fn pool_spec(
    lb: &dyn LoadBalancer,
    name: &str,
    blocks: Vec<AddressBlock>,
) -> Option<AddressPoolSpec> {
    let caps = lb.capabilities();
    if caps.l2 {
        Some(AddressPoolSpec::l2(name, blocks))
    } else if caps.bgp {
        Some(bgp_pool_spec(name, blocks))
    } else {
        None
    }
}

/// Creates a pool.
pub(crate) async fn create_pool(
    lb: &dyn LoadBalancer,
    tenant: &Tenant,
    spec: &AddressPoolSpec,
) -> AddressPool {
    lb.create_pool(tenant, spec).await.or_fail(format_args!(
        "create address pool {:?} in {tenant}",
        spec.name
    ))
}

/// Deletes a pool, checking it is gone.
pub(crate) async fn delete_pool(lb: &dyn LoadBalancer, tenant: &Tenant, name: &str) {
    lb.delete_pool(tenant, name)
        .await
        .or_fail(format_args!("delete address pool {name:?}"));
    let err = lb
        .get_pool(tenant, name)
        .await
        .refused("get of a deleted pool");
    assert_not_found(
        &err,
        ResourceKind::AddressPool,
        name,
        "get of a deleted pool",
    );
}

/// An exposure of the VMs labelled `app=<name>` on one TCP port.
pub(crate) fn exposure(name: &str, port: u16, address: AddressRequest) -> ExposureSpec {
    ExposureSpec {
        address,
        ..ExposureSpec::new(name, [("app", name)], vec![ServicePort::tcp(port)])
    }
}

/// Exposes and waits until the address is assigned.
pub(crate) async fn expose_assigned(
    lb: &dyn LoadBalancer,
    tenant: &Tenant,
    spec: &ExposureSpec,
    params: &Params,
) -> (Exposure, IpAddr) {
    let name = &spec.name;
    let created = lb
        .expose(tenant, spec)
        .await
        .or_fail(format_args!("expose {name:?} in {tenant}"));
    assert_eq!(&created.spec, spec, "expose returns the spec");
    let assigned = wait_for(
        lb.watch_exposure(tenant, name).await,
        wait::exposure_assigned(),
        params,
        format_args!("exposure {name:?} in {tenant} getting its address"),
    )
    .await;
    let ip = assigned.ip.expect("an assigned exposure has an address");
    (assigned, ip)
}

/// Releases an exposure and waits until it is gone.
pub(crate) async fn release_gone(
    lb: &dyn LoadBalancer,
    tenant: &Tenant,
    name: &str,
    params: &Params,
) {
    lb.release(tenant, name)
        .await
        .or_fail(format_args!("release exposure {name:?}"));
    wait_gone(
        lb.watch_exposure(tenant, name).await,
        params,
        format_args!("exposure {name:?} going away"),
    )
    .await;
    let err = lb
        .get_exposure(tenant, name)
        .await
        .refused("get of a released exposure");
    assert_not_found(
        &err,
        ResourceKind::Exposure,
        name,
        "get of a released exposure",
    );
}

/// An exposure that cannot have its address: refused at once with `Conflict`, or accepted and
/// failed fast (`Error::Failed`). Leaves nothing behind.
async fn refused_or_failed(
    lb: &dyn LoadBalancer,
    tenant: &Tenant,
    spec: &ExposureSpec,
    params: &Params,
    what: &str,
) {
    let name = &spec.name;
    match lb.expose(tenant, spec).await {
        Err(err) => {
            assert_conflict(&err, None, what);
            let err = lb
                .get_exposure(tenant, name)
                .await
                .refused("get of a refused exposure");
            assert_not_found(
                &err,
                ResourceKind::Exposure,
                name,
                "a refused exposure must not exist",
            );
        }
        Ok(_) => {
            let err = wait_fails_fast(
                lb.watch_exposure(tenant, name).await,
                wait::exposure_assigned(),
                params,
                what,
            )
            .await;
            assert_failed(err, ResourceKind::Exposure, name, what);
            release_gone(lb, tenant, name, params).await;
        }
    }
}

async fn usage(lb: &dyn LoadBalancer, tenant: &Tenant, pool: &str) -> (u128, u128) {
    let p = lb
        .get_pool(tenant, pool)
        .await
        .or_fail(format_args!("get address pool {pool:?}"));
    (p.assigned, p.available)
}

fn cidr(net: IpNet) -> AddressBlock {
    AddressBlock::Cidr(net)
}

fn in_pool(ip: IpAddr, spec: &AddressPoolSpec) -> bool {
    spec.addresses.iter().any(|b| b.range().contains(ip))
}

/// Pools are created with all addresses available, got, listed, refused for taken names,
/// invalid specs (`InvalidInput` naming the field) and addresses overlapping another pool
/// (`Conflict`), and deleted.
pub async fn pools_crud_and_overlap(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let lb = require!(target.load_balancer, NO_LB);
    let block = params.pool_block(0);
    let spec = require!(pool_spec(lb, "public", vec![cidr(block)]), NO_ADVERTISEMENT);
    let size = spec.size();
    let created = create_pool(lb, tenant, &spec).await;
    assert_eq!(created.spec, spec, "create_pool returns the spec");
    assert_eq!(
        (created.assigned, created.available),
        (0, size),
        "a new pool has all {size} addresses free"
    );
    let got = lb
        .get_pool(tenant, "public")
        .await
        .or_fail("get pool \"public\"");
    assert_eq!(got, created, "get_pool returns the pool");
    let listed = lb.list_pools(tenant).await.or_fail("list pools");
    assert!(
        listed.iter().any(|p| p.spec.name == "public"),
        "list_pools lists the tenant's pool: {listed:?}"
    );
    let err = lb
        .create_pool(tenant, &spec)
        .await
        .refused("create pool \"public\" twice");
    assert_already_exists(
        &err,
        ResourceKind::AddressPool,
        "public",
        "create of a taken pool name",
    );
    let half = block
        .subnets(block.prefix_len() + 1)
        .expect("halves")
        .nth(1)
        .expect("second half");
    let mut overlapping = spec.clone();
    overlapping.name = "overlap".into();
    overlapping.addresses = vec![cidr(half)];
    let err = lb
        .create_pool(tenant, &overlapping)
        .await
        .refused(format_args!("create of a pool {half} overlapping {block}"));
    assert_conflict(
        &err,
        Some(ResourceKind::AddressPool),
        "a pool overlapping another",
    );
    let mut empty = spec.clone();
    empty.name = "empty".into();
    empty.addresses = vec![];
    let mut host_bits = spec.clone();
    host_bits.name = "sloppy".into();
    host_bits.addresses = vec![cidr(
        IpNet::new(host(params.pool_block(14), 1), block.prefix_len()).expect("prefix"),
    )];
    for bad in [empty, host_bits] {
        let field = bad
            .validate()
            .expect_err("invalid case")
            .invalid_field()
            .expect("field")
            .to_string();
        let err = lb
            .create_pool(tenant, &bad)
            .await
            .refused(format_args!("create of a pool with an invalid {field}"));
        assert_invalid(&err, &field, "create of an invalid pool");
    }
    for name in ["overlap", "empty", "sloppy", "missing"] {
        let err = lb
            .get_pool(tenant, name)
            .await
            .refused("get of a missing pool");
        assert_not_found(
            &err,
            ResourceKind::AddressPool,
            name,
            "a refused pool must not exist",
        );
    }
    let err = lb
        .delete_pool(tenant, "missing")
        .await
        .refused("delete of a missing pool");
    assert_not_found(
        &err,
        ResourceKind::AddressPool,
        "missing",
        "delete of a missing pool",
    );
    delete_pool(lb, tenant, "public").await;
    let listed = lb.list_pools(tenant).await.or_fail("list pools");
    assert!(
        !listed.iter().any(|p| p.spec.name == "public"),
        "a deleted pool is not listed: {listed:?}"
    );
    Outcome::Passed
}

/// A pool announced over BGP keeps its advertisement and hands out its addresses.
pub async fn bgp_pool(target: &Target<'_>, tenant: &Tenant, params: &Params) -> Outcome {
    let lb = require!(target.load_balancer, NO_LB);
    require_that!(
        lb.capabilities().bgp,
        "capability load_balancer.bgp is missing"
    );
    let spec = bgp_pool_spec("routed", vec![cidr(params.pool_block(1))]);
    create_pool(lb, tenant, &spec).await;
    let got = lb
        .get_pool(tenant, "routed")
        .await
        .or_fail("get pool \"routed\"");
    assert_eq!(
        got.spec.advertisement, spec.advertisement,
        "a BGP pool keeps its peers"
    );
    let (e, ip) = expose_assigned(
        lb,
        tenant,
        &exposure("routed", 443, AddressRequest::Pool("routed".into())),
        params,
    )
    .await;
    assert!(in_pool(ip, &spec), "{ip} comes from the BGP pool");
    assert_eq!(e.pool.as_deref(), Some("routed"));
    release_gone(lb, tenant, "routed", params).await;
    delete_pool(lb, tenant, "routed").await;
    Outcome::Passed
}

/// An exposure with an automatic address gets one from a pool the tenant may use, counted in
/// that pool's usage; exposures are got, listed, refused for taken names and invalid specs, give
/// `NotFound` when missing, and disappear when released.
pub async fn expose_auto_assigns(target: &Target<'_>, tenant: &Tenant, params: &Params) -> Outcome {
    let lb = require!(target.load_balancer, NO_LB);
    let spec = require!(
        pool_spec(lb, "auto", vec![cidr(params.pool_block(2))]),
        NO_ADVERTISEMENT
    );
    create_pool(lb, tenant, &spec).await;
    let web = exposure("web", 80, AddressRequest::Auto);
    let (e, ip) = expose_assigned(lb, tenant, &web, params).await;
    let pool = e.pool.clone().expect("an assigned exposure names its pool");
    let pools = lb.list_pools(tenant).await.or_fail("list pools");
    let from = pools
        .iter()
        .find(|p| p.spec.name == pool)
        .unwrap_or_else(|| {
            panic!("the exposure's pool {pool:?} is one the tenant may use: {pools:?}")
        });
    assert!(in_pool(ip, &from.spec), "{ip} lies in its pool {pool:?}");
    if pool == "auto" {
        assert_eq!(
            usage(lb, tenant, "auto").await,
            (1, spec.size() - 1),
            "pool usage counts the exposure"
        );
    }
    let got = lb
        .get_exposure(tenant, "web")
        .await
        .or_fail("get exposure \"web\"");
    assert_eq!(
        (got.ip, got.state),
        (Some(ip), ExposureState::Assigned),
        "get_exposure after assignment"
    );
    let listed = lb.list_exposures(tenant).await.or_fail("list exposures");
    assert_eq!(names(&listed, |e| &e.spec.name), ["web"], "list_exposures");
    let err = lb
        .expose(tenant, &web)
        .await
        .refused("expose \"web\" twice");
    assert_already_exists(
        &err,
        ResourceKind::Exposure,
        "web",
        "expose of a taken name",
    );
    let no_selector = ExposureSpec::new("nosel", [], vec![ServicePort::tcp(80)]);
    let no_ports = ExposureSpec::new("noports", [("app", "x")], vec![]);
    for bad in [no_selector, no_ports] {
        let field = bad
            .validate()
            .expect_err("invalid case")
            .invalid_field()
            .expect("field")
            .to_string();
        let err = lb
            .expose(tenant, &bad)
            .await
            .refused(format_args!("an exposure with an invalid {field}"));
        assert_invalid(&err, &field, "expose of an invalid spec");
        let err = lb
            .get_exposure(tenant, &bad.name)
            .await
            .refused("get of a refused exposure");
        assert_not_found(
            &err,
            ResourceKind::Exposure,
            &bad.name,
            "a refused exposure must not exist",
        );
    }
    let err = lb
        .get_exposure(tenant, "missing")
        .await
        .refused("get of a missing exposure");
    assert_not_found(
        &err,
        ResourceKind::Exposure,
        "missing",
        "get of a missing exposure",
    );
    let err = lb
        .release(tenant, "missing")
        .await
        .refused("release of a missing exposure");
    assert_not_found(
        &err,
        ResourceKind::Exposure,
        "missing",
        "release of a missing exposure",
    );
    release_gone(lb, tenant, "web", params).await;
    assert_eq!(
        usage(lb, tenant, "auto").await,
        (0, spec.size()),
        "a released address is free again"
    );
    delete_pool(lb, tenant, "auto").await;
    Outcome::Passed
}

/// A requested address in a pool is honoured; requesting it again for another exposure is
/// refused (`Conflict`) or fails fast; once released, it can be requested again.
pub async fn requested_ip_honoured(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let lb = require!(target.load_balancer, NO_LB);
    require_that!(
        lb.capabilities().requested_ip,
        "capability load_balancer.requested_ip is missing"
    );
    let block = params.pool_block(3);
    let spec = require!(pool_spec(lb, "picked", vec![cidr(block)]), NO_ADVERTISEMENT);
    create_pool(lb, tenant, &spec).await;
    let want = host(block, 5);
    let (e, ip) = expose_assigned(
        lb,
        tenant,
        &exposure("first", 80, AddressRequest::Ip(want)),
        params,
    )
    .await;
    assert_eq!(ip, want, "a requested address is honoured");
    assert_eq!(
        e.pool.as_deref(),
        Some("picked"),
        "the requested address comes from its pool"
    );
    refused_or_failed(
        lb,
        tenant,
        &exposure("second", 80, AddressRequest::Ip(want)),
        params,
        "an exposure requesting a taken address",
    )
    .await;
    assert_eq!(
        usage(lb, tenant, "picked").await,
        (1, spec.size() - 1),
        "a refused request takes no address"
    );
    release_gone(lb, tenant, "first", params).await;
    let (_, again) = expose_assigned(
        lb,
        tenant,
        &exposure("third", 80, AddressRequest::Ip(want)),
        params,
    )
    .await;
    assert_eq!(again, want, "a released address can be requested again");
    release_gone(lb, tenant, "third", params).await;
    delete_pool(lb, tenant, "picked").await;
    Outcome::Passed
}

/// An exposure requesting an address outside every pool ends the wait with `Error::Failed` long
/// before the timeout, its reason naming the address, or (where the load balancer itself would
/// take any address) is refused at once with `InvalidInput` naming `address.ip` and the address.
pub async fn requested_ip_outside_pools_fails_fast(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let lb = require!(target.load_balancer, NO_LB);
    require_that!(
        lb.capabilities().requested_ip,
        "capability load_balancer.requested_ip is missing"
    );
    // With no pool at all MetalLB assigns nothing and says nothing (controller/service.go
    // convergeBalancer: "pools are empty", no event); "outside every pool" needs a pool.
    let elsewhere = params.pool_block(13);
    let other = require!(
        pool_spec(lb, "elsewhere", vec![cidr(elsewhere)]),
        NO_ADVERTISEMENT
    );
    create_pool(lb, tenant, &other).await;
    let outside = host(params.pool_block(15), 1);
    // A load balancer that takes any requested address as it is (kube-vip-cloud-provider) can
    // say nothing: its backend refuses the address before anything is sent, naming it.
    if let Err(err) = lb
        .expose(tenant, &exposure("stray", 80, AddressRequest::Ip(outside)))
        .await
    {
        assert_invalid(&err, "address.ip", "an address outside every pool");
        assert!(
            err.to_string().contains(&outside.to_string()),
            "the refusal names the address {outside}: {err}"
        );
        let err = lb
            .get_exposure(tenant, "stray")
            .await
            .refused("get of a refused exposure");
        assert_not_found(
            &err,
            ResourceKind::Exposure,
            "stray",
            "a refused exposure must not exist",
        );
        delete_pool(lb, tenant, "elsewhere").await;
        return Outcome::Passed;
    }
    let err = wait_fails_fast(
        lb.watch_exposure(tenant, "stray").await,
        wait::exposure_assigned(),
        params,
        "exposure \"stray\" on an address outside every pool",
    )
    .await;
    let reason = assert_failed(
        err,
        ResourceKind::Exposure,
        "stray",
        "an address outside every pool",
    );
    assert!(
        reason.contains(&outside.to_string()),
        "the failure names the refused address {outside}: {reason:?}"
    );
    let got = lb
        .get_exposure(tenant, "stray")
        .await
        .or_fail("get exposure \"stray\"");
    assert!(
        matches!(got.state, ExposureState::Failed { .. }) && got.ip.is_none(),
        "a failed exposure has no address: {got:?}"
    );
    release_gone(lb, tenant, "stray", params).await;
    delete_pool(lb, tenant, "elsewhere").await;
    Outcome::Passed
}

/// A two-address pool hands out exactly two addresses; the third exposure fails fast with
/// `Error::Failed`; after a release the freed address is handed out again.
pub async fn tiny_pool_exhaustion_fails_fast(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let lb = require!(target.load_balancer, NO_LB);
    let block = params.pool_block(4);
    let range = IpRange::new(host(block, 1), host(block, 2)).expect("range");
    let mut spec = require!(
        pool_spec(lb, "tiny", vec![AddressBlock::Range(range)]),
        NO_ADVERTISEMENT
    );
    spec.auto_assign = false;
    create_pool(lb, tenant, &spec).await;
    let from_tiny = || AddressRequest::Pool("tiny".into());
    let (_, a) = expose_assigned(lb, tenant, &exposure("e0", 80, from_tiny()), params).await;
    let (_, b) = expose_assigned(lb, tenant, &exposure("e1", 80, from_tiny()), params).await;
    assert_ne!(
        a, b,
        "two exposures without a sharing key never share an address"
    );
    assert!(
        range.contains(a) && range.contains(b),
        "{a} and {b} come from {range}"
    );
    assert_eq!(usage(lb, tenant, "tiny").await, (2, 0), "a full pool");
    lb.expose(tenant, &exposure("e2", 80, from_tiny()))
        .await
        .or_fail("expose on a full pool (the failure comes later)");
    let err = wait_fails_fast(
        lb.watch_exposure(tenant, "e2").await,
        wait::exposure_assigned(),
        params,
        "exposure \"e2\" on a full pool",
    )
    .await;
    let reason = assert_failed(
        err,
        ResourceKind::Exposure,
        "e2",
        "an exposure on a full pool",
    );
    assert!(!reason.is_empty(), "the failure says why");
    assert_eq!(
        usage(lb, tenant, "tiny").await,
        (2, 0),
        "a failed exposure takes no address"
    );
    release_gone(lb, tenant, "e2", params).await;
    release_gone(lb, tenant, "e0", params).await;
    assert_eq!(
        usage(lb, tenant, "tiny").await,
        (1, 1),
        "a release frees the address"
    );
    let (_, c) = expose_assigned(lb, tenant, &exposure("e3", 80, from_tiny()), params).await;
    assert_eq!(c, a, "the freed address is handed out again");
    release_gone(lb, tenant, "e1", params).await;
    release_gone(lb, tenant, "e3", params).await;
    delete_pool(lb, tenant, "tiny").await;
    Outcome::Passed
}

/// Exposures with the same sharing key and distinct ports share one address (counted once);
/// a clashing port or another key never gets that address; the address stays while one sharer
/// remains.
pub async fn ip_sharing(target: &Target<'_>, tenant: &Tenant, params: &Params) -> Outcome {
    let lb = require!(target.load_balancer, NO_LB);
    require_that!(
        lb.capabilities().ip_sharing,
        "capability load_balancer.ip_sharing is missing"
    );
    let spec = require!(
        pool_spec(lb, "shared", vec![cidr(params.pool_block(5))]),
        NO_ADVERTISEMENT
    );
    create_pool(lb, tenant, &spec).await;
    let shared = |name: &str, port: u16, key: &str, address: AddressRequest| ExposureSpec {
        sharing_key: Some(key.into()),
        ..exposure(name, port, address)
    };
    let pool = || AddressRequest::Pool("shared".into());
    let (_, ip) = expose_assigned(lb, tenant, &shared("http", 80, "front", pool()), params).await;
    let (_, ip2) =
        expose_assigned(lb, tenant, &shared("https", 443, "front", pool()), params).await;
    assert_eq!(
        ip2, ip,
        "exposures with one sharing key and distinct ports share the address"
    );
    assert_eq!(
        usage(lb, tenant, "shared").await,
        (1, spec.size() - 1),
        "a shared address counts once"
    );
    if lb.capabilities().requested_ip {
        refused_or_failed(
            lb,
            tenant,
            &shared("clash", 80, "front", AddressRequest::Ip(ip)),
            params,
            "a sharer whose port clashes",
        )
        .await;
        refused_or_failed(
            lb,
            tenant,
            &shared("stranger", 8080, "other", AddressRequest::Ip(ip)),
            params,
            "an exposure with another sharing key on a shared address",
        )
        .await;
    } else {
        let clash = shared("clash", 80, "front", pool());
        lb.expose(tenant, &clash)
            .await
            .or_fail("expose a sharer whose port clashes");
        let states = lb
            .watch_exposure(tenant, "clash")
            .await
            .or_fail("watch exposure \"clash\"");
        match wait::until(states, wait::exposure_assigned(), params.timeout).await {
            Ok(e) => assert_ne!(
                e.ip,
                Some(ip),
                "a sharer whose port clashes never gets the shared address"
            ),
            Err(err) => {
                assert_failed(
                    err,
                    ResourceKind::Exposure,
                    "clash",
                    "a sharer whose port clashes",
                );
            }
        }
        release_gone(lb, tenant, "clash", params).await;
    }
    release_gone(lb, tenant, "http", params).await;
    let https = lb
        .get_exposure(tenant, "https")
        .await
        .or_fail("get exposure \"https\"");
    assert_eq!(https.ip, Some(ip), "the remaining sharer keeps the address");
    assert_eq!(
        usage(lb, tenant, "shared").await,
        (1, spec.size() - 1),
        "the address stays in use while shared"
    );
    release_gone(lb, tenant, "https", params).await;
    assert_eq!(
        usage(lb, tenant, "shared").await,
        (0, spec.size()),
        "the last release frees the address"
    );
    delete_pool(lb, tenant, "shared").await;
    Outcome::Passed
}

/// Pool usage counts assigned addresses exactly; a pool with assigned addresses is refused
/// deletion with `Conflict`; releases free addresses one by one; the emptied pool is deleted.
pub async fn usage_release_and_pool_deletion(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let lb = require!(target.load_balancer, NO_LB);
    let spec = require!(
        pool_spec(lb, "counted", vec![cidr(params.pool_block(6))]),
        NO_ADVERTISEMENT
    );
    let size = spec.size();
    create_pool(lb, tenant, &spec).await;
    let mut ips = Vec::new();
    for name in ["e0", "e1", "e2"] {
        let (_, ip) = expose_assigned(
            lb,
            tenant,
            &exposure(name, 80, AddressRequest::Pool("counted".into())),
            params,
        )
        .await;
        assert!(in_pool(ip, &spec), "{ip} comes from pool \"counted\"");
        assert!(!ips.contains(&ip), "{ip} handed out twice");
        ips.push(ip);
    }
    assert_eq!(
        usage(lb, tenant, "counted").await,
        (3, size - 3),
        "pool usage after three exposures"
    );
    let err = lb
        .delete_pool(tenant, "counted")
        .await
        .refused("delete of a pool with assigned addresses");
    assert_conflict(
        &err,
        Some(ResourceKind::AddressPool),
        "delete of a pool in use",
    );
    assert_eq!(
        usage(lb, tenant, "counted").await,
        (3, size - 3),
        "a refused delete changes nothing"
    );
    release_gone(lb, tenant, "e1", params).await;
    assert_eq!(
        usage(lb, tenant, "counted").await,
        (2, size - 2),
        "a release frees exactly one address"
    );
    for name in ["e0", "e2"] {
        release_gone(lb, tenant, name, params).await;
    }
    assert_eq!(
        usage(lb, tenant, "counted").await,
        (0, size),
        "all released"
    );
    delete_pool(lb, tenant, "counted").await;
    let err = lb
        .delete_pool(tenant, "counted")
        .await
        .refused("delete of a deleted pool");
    assert_not_found(
        &err,
        ResourceKind::AddressPool,
        "counted",
        "delete of a deleted pool",
    );
    Outcome::Passed
}

/// A BGP pool changes in place: a new hold time and a rotated password are an ordinary update
/// that keeps the addresses already assigned from the pool; a change of its addresses is refused
/// naming `addresses`, and changes nothing. Skipped (with the backend's reason) where a pool
/// cannot set a peer's password or hold time at all, which the backend says by refusing the pool
/// naming a field of `advertisement.bgp.peers[0]` (Cilium: sessions are the cluster's).
pub async fn pool_changes_in_place(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let lb = require!(target.load_balancer, NO_LB);
    require_that!(
        lb.capabilities().bgp,
        "capability load_balancer.bgp is missing"
    );
    let mut spec = bgp_pool_spec("rotated", vec![cidr(params.pool_block(9))]);
    let peer = |spec: &mut AddressPoolSpec| match &mut spec.advertisement {
        Advertisement::Bgp(bgp) => bgp.peers[0].clone(),
        Advertisement::L2(_) => unreachable!("a BGP pool"),
    };
    let set_peer = |spec: &mut AddressPoolSpec, hold: u32, password: &str| {
        if let Advertisement::Bgp(bgp) = &mut spec.advertisement {
            bgp.peers[0].hold_time_secs = Some(hold);
            bgp.peers[0].password = Some(password.into());
        }
    };
    set_peer(&mut spec, 90, "first-password");
    if let Err(err) = lb.create_pool(tenant, &spec).await {
        // Where BGP sessions are the cluster's (Cilium's CiliumBGPPeerConfig), a pool cannot set
        // a peer's password or hold time: refused naming the field, so nothing to change here.
        if err
            .invalid_field()
            .is_some_and(|f| f.starts_with("advertisement.bgp.peers[0]."))
        {
            return Outcome::Skipped(format!(
                "the load balancer's BGP sessions are not a pool's to set: {err}"
            ));
        }
        panic!("create address pool \"rotated\" in {tenant}: {err}");
    }
    let (_, ip) = expose_assigned(
        lb,
        tenant,
        &exposure("kept", 443, AddressRequest::Pool("rotated".into())),
        params,
    )
    .await;

    set_peer(&mut spec, 30, "second-password");
    let updated = lb
        .update_pool(tenant, &spec)
        .await
        .or_fail("update of a BGP pool's hold time and password");
    assert_eq!(updated.assigned, 1, "an update keeps what is assigned");
    let got = lb
        .get_pool(tenant, "rotated")
        .await
        .or_fail("get pool \"rotated\"");
    let mut read = got.spec.clone();
    assert_eq!(
        peer(&mut read).hold_time_secs,
        Some(30),
        "the new hold time"
    );
    assert_eq!(
        peer(&mut read)
            .password
            .as_ref()
            .map(|p| p.expose().to_string()),
        Some("second-password".to_string()),
        "the rotated password"
    );
    let still = lb
        .get_exposure(tenant, "kept")
        .await
        .or_fail("get exposure \"kept\"");
    assert_eq!(still.ip, Some(ip), "the exposure keeps its address");

    let mut moved = spec.clone();
    moved.addresses = vec![cidr(params.pool_block(10))];
    let err = lb
        .update_pool(tenant, &moved)
        .await
        .refused("an update that changes a pool's addresses");
    assert_invalid(&err, "addresses", "an update of a pool's addresses");
    assert_eq!(
        lb.get_pool(tenant, "rotated")
            .await
            .or_fail("get pool \"rotated\"")
            .spec
            .addresses,
        spec.addresses,
        "a refused update changes nothing"
    );
    let err = lb
        .update_pool(
            tenant,
            &bgp_pool_spec("absent", vec![cidr(params.pool_block(11))]),
        )
        .await
        .refused("update of a missing pool");
    assert_not_found(
        &err,
        ResourceKind::AddressPool,
        "absent",
        "update of a missing pool",
    );
    release_gone(lb, tenant, "kept", params).await;
    delete_pool(lb, tenant, "rotated").await;
    Outcome::Passed
}
