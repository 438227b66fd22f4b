//! Behaviour against the simulated LB-IPAM: each way an address cannot be given fails fast with
//! Cilium's own reason and message (`operator/pkg/lbipam/lbipam.go`), bad input is refused naming
//! the field before anything is sent, and what is sent is what the crate docs say.

mod common;

use std::time::Duration;

use kube::api::Api;
use kubecloud_cilium::models::{CiliumL2AnnouncementPolicy, CiliumLoadBalancerIpPool};
use kubecloud_cilium::translate;
use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Error, ExposureSpec, ExposureState,
    LoadBalancer, ServicePort, wait,
};

const TIMEOUT: Duration = Duration::from_secs(20);

fn cidr(s: &str) -> AddressBlock {
    AddressBlock::Cidr(s.parse().unwrap())
}

fn exposure(name: &str, port: u16, address: AddressRequest) -> ExposureSpec {
    ExposureSpec {
        address,
        ..ExposureSpec::new(name, [("app", name)], vec![ServicePort::tcp(port)])
    }
}

/// Exposes and waits for the failure; returns its reason.
async fn fails(
    lb: &kubecloud_cilium::Cilium,
    tenant: &kubecloud_core::Tenant,
    spec: &ExposureSpec,
) -> String {
    lb.expose(tenant, spec).await.expect("expose");
    let err = wait::until(
        lb.watch_exposure(tenant, &spec.name).await.expect("watch"),
        wait::exposure_assigned(),
        TIMEOUT,
    )
    .await
    .expect_err("the exposure fails");
    match err {
        Error::Failed { reason, .. } => reason,
        other => panic!("expected Failed, got {other:?}"),
    }
}

async fn assigned(
    lb: &kubecloud_cilium::Cilium,
    tenant: &kubecloud_core::Tenant,
    spec: &ExposureSpec,
) -> std::net::IpAddr {
    lb.expose(tenant, spec).await.expect("expose");
    wait::until(
        lb.watch_exposure(tenant, &spec.name).await.expect("watch"),
        wait::exposure_assigned(),
        TIMEOUT,
    )
    .await
    .expect("assigned")
    .ip
    .expect("an address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_ip_outside_every_pool_fails_with_ciliums_reason() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("public", vec![cidr("203.0.113.0/29")]),
    )
    .await
    .expect("pool");
    let reason = fails(
        &lb,
        &acme,
        &exposure(
            "stray",
            80,
            AddressRequest::Ip("198.51.100.7".parse().unwrap()),
        ),
    )
    .await;
    assert_eq!(
        reason,
        "No pool exists with a CIDR containing '198.51.100.7' (no_pool)"
    );
    let got = lb.get_exposure(&acme, "stray").await.expect("get");
    assert_eq!(
        got.state,
        ExposureState::Failed { reason },
        "get_exposure reads the condition too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_ip_in_another_tenants_pool_fails_with_selector_mismatch() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let (acme, other) = (common::tenant("acme"), common::tenant("other"));
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("public", vec![cidr("203.0.113.0/29")]),
    )
    .await
    .expect("pool");
    let reason = fails(
        &lb,
        &other,
        &exposure(
            "steal",
            80,
            AddressRequest::Ip("203.0.113.3".parse().unwrap()),
        ),
    )
    .await;
    assert_eq!(
        reason,
        "The pool with the CIDR containing '203.0.113.3', doesn't select this service (pool_selector_mismatch)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_fails_with_out_of_ips() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    let range = kubecloud_core::IpRange::new(
        "203.0.113.1".parse().unwrap(),
        "203.0.113.2".parse().unwrap(),
    )
    .unwrap();
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("tiny", vec![AddressBlock::Range(range)]),
    )
    .await
    .expect("pool");
    let pool = || AddressRequest::Pool("tiny".into());
    let a = assigned(&lb, &acme, &exposure("e0", 80, pool())).await;
    let b = assigned(&lb, &acme, &exposure("e1", 80, pool())).await;
    assert_eq!(
        (a.to_string(), b.to_string()),
        ("203.0.113.1".into(), "203.0.113.2".into()),
        "lowest first"
    );
    let reason = fails(&lb, &acme, &exposure("e2", 80, pool())).await;
    assert_eq!(
        reason,
        "All enabled CiliumLoadBalancerIPPools that match this service ran out of allocatable IPs (out_of_ips)"
    );
    // Any address: the only auto-assigning pool is full, so it is chosen and runs out too.
    let reason = fails(&lb, &acme, &exposure("e3", 81, AddressRequest::Auto)).await;
    assert!(reason.ends_with("(out_of_ips)"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_conflicts_fail_with_ciliums_reasons() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("shared", vec![cidr("203.0.113.0/29")]),
    )
    .await
    .expect("pool");
    let shared = |name: &str, port: u16, key: Option<&str>, address: AddressRequest| ExposureSpec {
        sharing_key: key.map(String::from),
        ..exposure(name, port, address)
    };
    let ip = assigned(
        &lb,
        &acme,
        &shared(
            "http",
            80,
            Some("front"),
            AddressRequest::Pool("shared".into()),
        ),
    )
    .await;
    let again = assigned(
        &lb,
        &acme,
        &shared("https", 443, Some("front"), AddressRequest::Ip(ip)),
    )
    .await;
    assert_eq!(again, ip, "a compatible sharer gets the address");
    let reason = fails(
        &lb,
        &acme,
        &shared("clash", 80, Some("front"), AddressRequest::Ip(ip)),
    )
    .await;
    assert_eq!(
        reason,
        format!(
            "The IP '{ip}' is already allocated to an incompatible service. Reason: same port (already_allocated_incompatible_service)"
        )
    );
    let reason = fails(
        &lb,
        &acme,
        &shared("stranger", 8080, Some("other"), AddressRequest::Ip(ip)),
    )
    .await;
    assert_eq!(
        reason,
        format!(
            "The IP '{ip}' is already allocated to an incompatible service. Reason: different sharing key (already_allocated_incompatible_service)"
        )
    );
    let reason = fails(
        &lb,
        &acme,
        &shared("keyless", 9090, None, AddressRequest::Ip(ip)),
    )
    .await;
    assert_eq!(
        reason,
        format!("The IP '{ip}' is already allocated to another service (already_allocated)")
    );
    let pool = lb.get_pool(&acme, "shared").await.expect("pool");
    assert_eq!(
        (pool.assigned, pool.available),
        (1, 7),
        "a shared address counts once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_before_anything_is_sent() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    let before = server.requests().total();
    let mut buggy = AddressPoolSpec::l2("p", vec![cidr("203.0.113.0/24")]);
    buggy.avoid_buggy_ips = true;
    let err = lb.create_pool(&acme, &buggy).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("avoidBuggyIps"));
    let mut iface = AddressPoolSpec::l2("p", vec![cidr("203.0.113.0/24")]);
    if let kubecloud_core::Advertisement::L2(l2) = &mut iface.advertisement {
        l2.interfaces = vec!["eth.*".into()];
    }
    let err = lb.create_pool(&acme, &iface).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("advertisement.l2.interfaces[0]"));
    let err = lb
        .create_pool(&acme, &AddressPoolSpec::l2("p", vec![]))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("addresses"));
    let err = lb
        .expose(
            &acme,
            &ExposureSpec::new("nosel", [], vec![ServicePort::tcp(80)]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("selector"));
    assert_eq!(server.requests().total(), before, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_sent_as_documented_and_read_back() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    let mut spec = AddressPoolSpec::l2("public", vec![cidr("203.0.113.0/28")]);
    spec.auto_assign = false;
    if let kubecloud_core::Advertisement::L2(l2) = &mut spec.advertisement {
        l2.interfaces = vec!["eth0.100".into()];
        l2.node_selector = [("zone".to_string(), "a".to_string())].into();
    }
    lb.create_pool(&acme, &spec).await.expect("pool");
    let pools: Api<CiliumLoadBalancerIpPool> = Api::all(server.client());
    let pool = pools.get("acme-public").await.expect("pool object");
    let selector = pool
        .spec
        .service_selector
        .as_ref()
        .unwrap()
        .match_labels
        .clone()
        .unwrap();
    assert_eq!(
        selector
            .get(translate::SERVICE_NAMESPACE)
            .map(String::as_str),
        Some("acme")
    );
    assert_eq!(
        selector.get(translate::ADDRESS_POOL).map(String::as_str),
        Some("public")
    );
    let policies: Api<CiliumL2AnnouncementPolicy> = Api::all(server.client());
    let policy = policies.get("acme-public").await.expect("policy object");
    assert_eq!(
        policy.spec.interfaces,
        Some(vec!["^eth0\\.100$".to_string()])
    );
    assert_eq!(policy.spec.load_balancer_i_ps, Some(true));
    let got = lb.get_pool(&acme, "public").await.expect("get");
    assert_eq!(got.spec, spec, "the pool reads back as created");
    // Pool usage comes from LB-IPAM's own counts too: the double writes them.
    let e = assigned(
        &lb,
        &acme,
        &exposure("web", 443, AddressRequest::Pool("public".into())),
    )
    .await;
    assert_eq!(
        e.to_string(),
        "203.0.113.0",
        "allowFirstLastIPs: Yes, the first address is usable"
    );
    let counted = kubecloud_kube::wait_for(
        pools.clone(),
        "acme-public",
        kubecloud_core::ResourceKind::AddressPool,
        "public",
        TIMEOUT,
        |p: Option<&CiliumLoadBalancerIpPool>| {
            let used = p
                .and_then(|p| p.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.r#type == "cilium.io/IPsUsed"))
                .map(|c| c.message.clone());
            if used.as_deref() == Some("1") {
                kubecloud_core::wait::Check::Met
            } else {
                kubecloud_core::wait::Check::Pending
            }
        },
    )
    .await;
    assert!(counted.is_ok(), "LB-IPAM counts the address: {counted:?}");
    // Any address: "public" does not auto-assign, so nothing selects the Service.
    let reason = fails(&lb, &acme, &exposure("auto", 80, AddressRequest::Auto)).await;
    assert_eq!(
        reason,
        "There are no enabled CiliumLoadBalancerIPPools that match this service (no_pool)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_address_takes_the_first_auto_pool_with_room_and_keeps_it() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    let one = kubecloud_core::IpRange::new(
        "203.0.113.1".parse().unwrap(),
        "203.0.113.1".parse().unwrap(),
    )
    .unwrap();
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("a-first", vec![AddressBlock::Range(one)]),
    )
    .await
    .expect("pool");
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("b-second", vec![cidr("198.51.100.0/30")]),
    )
    .await
    .expect("pool");
    let first = assigned(&lb, &acme, &exposure("e0", 80, AddressRequest::Auto)).await;
    assert_eq!(
        first.to_string(),
        "203.0.113.1",
        "the first auto pool by name"
    );
    let second = assigned(&lb, &acme, &exposure("e1", 80, AddressRequest::Auto)).await;
    assert_eq!(
        second.to_string(),
        "198.51.100.0",
        "the next auto pool with a free address"
    );
    let e0 = lb.get_exposure(&acme, "e0").await.expect("get");
    assert_eq!(
        (e0.spec.address, e0.pool.as_deref()),
        (AddressRequest::Auto, Some("a-first"))
    );
    // Re-applying the full pool's exposure keeps its pool and sends nothing.
    server.requests().reset();
    let again = lb
        .apply_exposure(&acme, &exposure("e0", 80, AddressRequest::Auto))
        .await
        .expect("apply");
    assert_eq!(again.ip, Some(first));
    let pool = lb
        .apply_pool(
            &acme,
            &AddressPoolSpec::l2("b-second", vec![cidr("198.51.100.0/30")]),
        )
        .await
        .expect("apply pool");
    assert_eq!((pool.assigned, pool.available), (1, 3));
    let r = server.requests();
    assert_eq!(
        r.count_verb(kubecloud_testkit::Verb::Apply),
        0,
        "{:?}",
        r.summary()
    );
}
