//! The kube-vip backend against the simulated kube-vip-cloud-provider: failures with the
//! provider's own Event text, what the provider would not check refused before anything is
//! sent, and the ConfigMap's other keys left as they are.

mod common;

use std::time::Duration;

use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Error, ExposureSpec, ExposureState, IpRange,
    LoadBalancer, ServicePort, wait,
};
use serde_json::json;

fn cidr(s: &str) -> AddressBlock {
    AddressBlock::Cidr(s.parse().unwrap())
}

fn exposure(name: &str, port: u16, address: AddressRequest) -> ExposureSpec {
    ExposureSpec {
        address,
        ..ExposureSpec::new(name, [("app", name)], vec![ServicePort::tcp(port)])
    }
}

async fn failure(
    lb: &kubecloud_kubevip::KubeVip,
    tenant: &kubecloud_core::Tenant,
    name: &str,
) -> String {
    let err = wait::until(
        lb.watch_exposure(tenant, name).await.unwrap(),
        wait::exposure_assigned(),
        Duration::from_secs(30),
    )
    .await
    .unwrap_err();
    match err {
        Error::Failed { reason, .. } => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_range_fails_fast_with_the_provider_s_event_text() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    let range = IpRange::new(
        "203.0.113.1".parse().unwrap(),
        "203.0.113.2".parse().unwrap(),
    )
    .unwrap();
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("tiny", vec![AddressBlock::Range(range)]),
    )
    .await
    .unwrap();
    let cm = server
        .cluster()
        .get("v1", "ConfigMap", Some("kube-system"), "kubevip")
        .unwrap();
    assert_eq!(cm["data"]["range-acme"], "203.0.113.1-203.0.113.2");
    for name in ["a", "b"] {
        lb.expose(&acme, &exposure(name, 80, AddressRequest::Auto))
            .await
            .unwrap();
        let e = wait::until(
            lb.watch_exposure(&acme, name).await.unwrap(),
            wait::exposure_assigned(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        assert_eq!(e.pool.as_deref(), Some("tiny"));
    }
    lb.expose(&acme, &exposure("c", 80, AddressRequest::Auto))
        .await
        .unwrap();
    assert_eq!(
        failure(&lb, &acme, "c").await,
        "Error syncing load balancer: failed to ensure load balancer: no addresses available in [acme] range [203.0.113.1-203.0.113.2]"
    );
    let got = lb.get_exposure(&acme, "c").await.unwrap();
    assert!(matches!(got.state, ExposureState::Failed { .. }) && got.ip.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_pool_the_provider_says_so() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    lb.expose(&acme, &exposure("lost", 80, AddressRequest::Auto))
        .await
        .unwrap();
    assert_eq!(
        failure(&lb, &acme, "lost").await,
        "Error syncing load balancer: failed to ensure load balancer: no address pools could be found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_provider_would_take_as_it_is_is_refused_before_anything_is_sent() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("public", vec![cidr("203.0.113.0/28")]),
    )
    .await
    .unwrap();
    // Outside every range.
    let outside = "198.51.100.7".parse().unwrap();
    let err = lb
        .expose(&acme, &exposure("stray", 80, AddressRequest::Ip(outside)))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("address.ip"));
    assert!(err.to_string().contains("198.51.100.7"), "{err}");
    assert!(
        server
            .cluster()
            .get_opt("v1", "Service", Some("acme"), "stray")
            .unwrap()
            .is_none()
    );
    // A sharing conflict: same key, same port.
    let shared = |name: &str, address: AddressRequest| ExposureSpec {
        sharing_key: Some("front".into()),
        ..exposure(name, 80, address)
    };
    lb.expose(&acme, &shared("http", AddressRequest::Auto))
        .await
        .unwrap();
    let http = wait::until(
        lb.watch_exposure(&acme, "http").await.unwrap(),
        wait::exposure_assigned(),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let ip = http.ip.unwrap();
    let err = lb
        .expose(&acme, &shared("clash", AddressRequest::Ip(ip)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { reason, .. } if reason.contains("port 80")),
        "{err:?}"
    );
    assert!(
        server
            .cluster()
            .get_opt("v1", "Service", Some("acme"), "clash")
            .unwrap()
            .is_none()
    );
    // Another tenant cannot request it either.
    let other = common::tenant("other");
    let err = lb
        .expose(&other, &exposure("grab", 8080, AddressRequest::Ip(ip)))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("address.ip"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_tenant_s_keys_change_and_what_kube_vip_cannot_do_is_refused_naming_the_field() {
    let server = common::server().await;
    server
        .cluster()
        .seed(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubevip", "namespace": "kube-system"},
            "data": {"cidr-legacy": "10.9.0.0/24", "search-order": "desc", "range-global": "192.0.2.10-192.0.2.20"},
        }))
        .unwrap();
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    let err = lb
        .create_pool(
            &acme,
            &AddressPoolSpec::l2("public", vec![cidr("10.9.0.128/25")]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }),
        "overlaps cidr-legacy: {err:?}"
    );
    let mut pinned = AddressPoolSpec::l2("public", vec![cidr("203.0.113.0/28")]);
    if let kubecloud_core::Advertisement::L2(l2) = &mut pinned.advertisement {
        l2.node_selector.insert("zone".into(), "a".into());
    }
    let err = lb.create_pool(&acme, &pinned).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { backend, capability, .. } if backend == "kubevip" && capability.contains("advertisement.l2.nodeSelector")),
        "{err:?}"
    );
    let pools = lb.list_pools(&acme).await.unwrap();
    assert_eq!(pools.len(), 1, "only the global pool: {pools:?}");
    assert!(pools[0].shared && pools[0].spec.name == "global");
    let pool = lb
        .create_pool(
            &acme,
            &AddressPoolSpec::l2("public", vec![cidr("203.0.113.0/28")]),
        )
        .await
        .unwrap();
    assert_eq!((pool.assigned, pool.available), (0, 16));
    let cm = server
        .cluster()
        .get("v1", "ConfigMap", Some("kube-system"), "kubevip")
        .unwrap();
    assert_eq!(cm["data"]["cidr-acme"], "203.0.113.0/28");
    assert_eq!(cm["data"]["cidr-legacy"], "10.9.0.0/24");
    assert_eq!(cm["data"]["search-order"], "desc");
    assert_eq!(cm["data"]["range-global"], "192.0.2.10-192.0.2.20");
    let err = lb
        .create_pool(
            &acme,
            &AddressPoolSpec::l2("second", vec![cidr("203.0.113.64/28")]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    lb.delete_pool(&acme, "public").await.unwrap();
    let cm = server
        .cluster()
        .get("v1", "ConfigMap", Some("kube-system"), "kubevip")
        .unwrap();
    assert!(cm["data"].get("cidr-acme").is_none(), "{cm}");
    assert_eq!(cm["data"]["cidr-legacy"], "10.9.0.0/24");
    assert_eq!(cm["data"]["range-global"], "192.0.2.10-192.0.2.20");
    // search-order: desc is the provider's, for every namespace.
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("public", vec![cidr("203.0.113.0/28")]),
    )
    .await
    .unwrap();
    lb.expose(&acme, &exposure("web", 443, AddressRequest::Auto))
        .await
        .unwrap();
    let web = wait::until(
        lb.watch_exposure(&acme, "web").await.unwrap(),
        wait::exposure_assigned(),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(web.ip, Some("203.0.113.15".parse().unwrap()));
    assert_eq!(web.pool.as_deref(), Some("public"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_creating_pools_at_once_never_drop_each_other_s_keys() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let creates = (0..8).map(|i| {
        let lb = lb.clone();
        async move {
            let tenant = common::tenant(&format!("t{i}"));
            let block = cidr(&format!("203.0.113.{}/29", i * 8));
            lb.create_pool(&tenant, &AddressPoolSpec::l2("public", vec![block]))
                .await
        }
    });
    for result in futures::future::join_all(creates).await {
        result.expect("every create lands");
    }
    let cm = server
        .cluster()
        .get("v1", "ConfigMap", Some("kube-system"), "kubevip")
        .unwrap();
    for i in 0..8 {
        assert_eq!(
            cm["data"][format!("cidr-t{i}")],
            format!("203.0.113.{}/29", i * 8),
            "{cm}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_load_balancer_class_the_provider_s_class_controller_reports() {
    let server = kubecloud_testkit::TestServer::builder()
        .controller(
            kubecloud_testkit::KubeVipCloudProvider::new()
                .with_load_balancer_class("kube-vip.io/kube-vip-class"),
        )
        .start()
        .await
        .unwrap();
    let lb = kubecloud_kubevip::KubeVip::builder(server.client())
        .load_balancer_class("kube-vip.io/kube-vip-class")
        .build();
    let acme = common::tenant("acme");
    let one = IpRange::new(
        "203.0.113.1".parse().unwrap(),
        "203.0.113.1".parse().unwrap(),
    )
    .unwrap();
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("one", vec![AddressBlock::Range(one)]),
    )
    .await
    .unwrap();
    lb.expose(&acme, &exposure("a", 80, AddressRequest::Auto))
        .await
        .unwrap();
    let a = wait::until(
        lb.watch_exposure(&acme, "a").await.unwrap(),
        wait::exposure_assigned(),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(a.ip, Some("203.0.113.1".parse().unwrap()));
    let svc = server
        .cluster()
        .get("v1", "Service", Some("acme"), "a")
        .unwrap();
    assert_eq!(
        svc["spec"]["loadBalancerClass"],
        "kube-vip.io/kube-vip-class"
    );
    assert_eq!(svc["metadata"]["labels"]["implementation"], "kube-vip");
    assert_eq!(
        svc["metadata"]["annotations"]["kube-vip.io/vipHost"],
        "node-1"
    );
    lb.expose(&acme, &exposure("b", 80, AddressRequest::Auto))
        .await
        .unwrap();
    assert_eq!(
        failure(&lb, &acme, "b").await,
        "Error syncing load balancer: no addresses available in [acme] range [203.0.113.1-203.0.113.1]"
    );
}

fn peer(name: &str) -> kubecloud_core::BgpPeer {
    kubecloud_core::BgpPeer {
        name: name.into(),
        my_asn: 64512,
        peer_asn: 64513,
        address: "192.0.2.1".parse().unwrap(),
        port: None,
        hold_time_secs: None,
        keepalive_time_secs: None,
        ebgp_multihop: false,
        bfd: false,
        password: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_bgp_a_pool_announces_to_kube_vip_s_peers_and_no_others() {
    let server = common::server().await;
    let lb = kubecloud_kubevip::KubeVip::builder(server.client())
        .bgp(vec![peer("tor")])
        .build();
    let caps = LoadBalancer::capabilities(&lb);
    assert!(caps.bgp && !caps.l2 && !caps.bfd);
    let acme = common::tenant("acme");
    let l2 = AddressPoolSpec::l2("public", vec![cidr("203.0.113.0/28")]);
    let err = lb.create_pool(&acme, &l2).await.unwrap_err();
    assert!(err.to_string().contains("advertisement.l2"), "{err}");
    let bgp = |p: kubecloud_core::BgpPeer| AddressPoolSpec {
        advertisement: kubecloud_core::Advertisement::Bgp(kubecloud_core::BgpAdvertisement {
            peers: vec![p],
            ..Default::default()
        }),
        ..l2.clone()
    };
    let err = lb
        .create_pool(&acme, &bgp(peer("elsewhere")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("advertisement.bgp.peers"), "{err}");
    assert!(
        server
            .cluster()
            .get_opt("v1", "ConfigMap", Some("kube-system"), "kubevip")
            .unwrap()
            .is_none()
    );
    let created = lb.create_pool(&acme, &bgp(peer("tor"))).await.unwrap();
    assert_eq!(created.spec, bgp(peer("tor")));
    assert_eq!(
        lb.get_pool(&acme, "public").await.unwrap().spec,
        bgp(peer("tor"))
    );
}

#[test]
fn gitops_output_is_the_tenant_s_keys_only() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = common::server().await;
        let lb = common::backend(&server);
        let acme = common::tenant("acme");
        let mut spec = AddressPoolSpec::l2(
            "public",
            vec![
                cidr("203.0.113.0/28"),
                AddressBlock::Range(
                    IpRange::new(
                        "198.51.100.1".parse().unwrap(),
                        "198.51.100.3".parse().unwrap(),
                    )
                    .unwrap(),
                ),
            ],
        );
        if let kubecloud_core::Advertisement::L2(l2) = &mut spec.advertisement {
            l2.interfaces = vec!["eth1".into()];
        }
        let objects = lb.pool_manifests(&acme, &spec).unwrap();
        assert_eq!(objects.len(), 1);
        let cm = &objects[0];
        assert_eq!(cm["kind"], "ConfigMap");
        assert_eq!(cm["metadata"]["namespace"], "kube-system");
        let data = cm["data"].as_object().unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["interface-acme", "range-acme"]);
        assert_eq!(
            data["range-acme"],
            "203.0.113.0-203.0.113.15,198.51.100.1-198.51.100.3"
        );
        assert!(cm["metadata"]["annotations"]["pool.kubevip.kubecloud.io/acme"].is_string());
        // Nothing was sent.
        assert!(
            server
                .cluster()
                .get_opt("v1", "ConfigMap", Some("kube-system"), "kubevip")
                .unwrap()
                .is_none()
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_tenants_racing_for_one_block_exactly_one_gets_it() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let creates = (0..6).map(|i| {
        let lb = lb.clone();
        async move {
            let tenant = common::tenant(&format!("r{i}"));
            lb.create_pool(
                &tenant,
                &AddressPoolSpec::l2("public", vec![cidr("203.0.113.0/28")]),
            )
            .await
        }
    });
    let results = futures::future::join_all(creates).await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| matches!(e, Error::Conflict { .. })),
        "{results:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_pool_gives_single_stack_ipv6_services_their_addresses() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("v6", vec![cidr("2001:db8::/124")]),
    )
    .await
    .unwrap();
    lb.expose(&acme, &exposure("web", 443, AddressRequest::Auto))
        .await
        .unwrap();
    let web = wait::until(
        lb.watch_exposure(&acme, "web").await.unwrap(),
        wait::exposure_assigned(),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(
        web.ip,
        Some("2001:db8::".parse().unwrap()),
        "IPv6 has no .0 to skip"
    );
    let svc = server
        .cluster()
        .get("v1", "Service", Some("acme"), "web")
        .unwrap();
    assert_eq!(svc["spec"]["ipFamilies"], json!(["IPv6"]));
}
