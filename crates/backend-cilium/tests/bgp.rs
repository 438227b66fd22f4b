//! BGP pools against the simulated LB-IPAM and BGP control plane: what a node announces to which
//! peer, with which attributes, as Cilium's agent would (`kubecloud_testkit::cilium_bgp`); bad
//! input refused naming the field before anything is written; the cluster's speaker written once
//! or adopted; tenants isolated.

mod common;

use std::time::Duration;

use kubecloud_cilium::Cilium;
use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Advertisement, BgpAdvertisement, BgpPeer, Error,
    ExposureSpec, LoadBalancer, ServicePort, Tenant, wait,
};
use kubecloud_testkit::cilium_bgp::{self, BgpRoute};
use kubecloud_testkit::{TestServer, Verb};

const TIMEOUT: Duration = Duration::from_secs(20);

fn cidr(s: &str) -> AddressBlock {
    AddressBlock::Cidr(s.parse().unwrap())
}

fn peer(name: &str, address: &str, peer_asn: u32) -> BgpPeer {
    BgpPeer {
        name: name.into(),
        my_asn: 64512,
        peer_asn,
        address: address.parse().unwrap(),
        port: None,
        hold_time_secs: None,
        keepalive_time_secs: None,
        ebgp_multihop: false,
        bfd: false,
        password: None,
    }
}

fn tor() -> BgpPeer {
    peer("tor", "192.0.2.1", 64513)
}

fn bgp_pool(name: &str, block: &str, bgp: BgpAdvertisement) -> AddressPoolSpec {
    AddressPoolSpec {
        advertisement: Advertisement::Bgp(bgp),
        ..AddressPoolSpec::l2(name, vec![cidr(block)])
    }
}

fn exposure(name: &str, pool: &str) -> ExposureSpec {
    ExposureSpec {
        address: AddressRequest::Pool(pool.into()),
        ..ExposureSpec::new(name, [("app", name)], vec![ServicePort::tcp(443)])
    }
}

async fn assigned(lb: &Cilium, tenant: &Tenant, spec: &ExposureSpec) -> std::net::IpAddr {
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

/// Waits until the simulated operator has handled the current generation of cluster config
/// `name` (it writes the config's conditions after its node configs).
async fn speaker_ready(server: &TestServer, name: &str) {
    use kubecloud_cilium::models::CiliumBgpClusterConfig;
    use kubecloud_cilium::models::bgp_cluster_config::CiliumBgpClusterConfigStatusConditionsStatus as Status;
    let api = kube::Api::<CiliumBgpClusterConfig>::all(server.client());
    let handled =
        kube::runtime::wait::await_condition(api, name, |c: Option<&CiliumBgpClusterConfig>| {
            c.is_some_and(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter().any(|k| {
                            k.r#type == "cilium.io/NoMatchingNode"
                                && k.status == Status::False
                                && k.observed_generation == c.metadata.generation
                        })
                    })
            })
        });
    tokio::time::timeout(TIMEOUT, handled)
        .await
        .expect("the operator handles the cluster config in time")
        .expect("watch");
}

fn routes(server: &TestServer, node: &str, peer: &str) -> Vec<BgpRoute> {
    cilium_bgp::advertised_routes(&server.cluster(), node, peer).expect("routes")
}

fn host(ip: std::net::IpAddr) -> kubecloud_core::IpNet {
    kubecloud_core::IpNet::from(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bgp_pool_s_addresses_are_announced_to_its_peers_with_its_attributes_and_withdrawn() {
    let server = common::bgp_server().await;
    let lb = common::bgp_backend(&server);
    let acme = common::tenant("acme");
    let spec = bgp_pool(
        "routed",
        "203.0.113.0/28",
        BgpAdvertisement {
            peers: vec![tor()],
            local_preference: Some(200),
            communities: vec![
                "65000:100".into(),
                "no-export".into(),
                "large:64512:1:2".into(),
            ],
            ..BgpAdvertisement::default()
        },
    );
    lb.create_pool(&acme, &spec).await.expect("create pool");
    speaker_ready(&server, "kubecloud").await;
    let got = lb.get_pool(&acme, "routed").await.expect("get pool");
    assert_eq!(got.spec, spec, "the pool reads back as given");
    assert!(!got.incomplete);
    let ip = assigned(&lb, &acme, &exposure("web", "routed")).await;
    let want = BgpRoute {
        prefix: host(ip),
        local_preference: Some(200),
        standard_communities: vec!["65000:100".into()],
        well_known_communities: vec!["no-export".into()],
        large_communities: vec!["64512:1:2".into()],
    };
    for node in ["node-a", "node-b"] {
        assert_eq!(
            routes(&server, node, "tor"),
            std::slice::from_ref(&want),
            "{node} announces to tor"
        );
        assert!(
            routes(&server, node, "spine").is_empty(),
            "{node} announces nothing to spine, which the pool does not name"
        );
    }
    assert!(
        routes(&server, "node-c", "tor").is_empty(),
        "node-c is not selected by the cluster config"
    );
    lb.release(&acme, "web").await.expect("release");
    for node in ["node-a", "node-b"] {
        assert!(
            routes(&server, node, "tor").is_empty(),
            "withdrawn on release"
        );
    }
    assigned(&lb, &acme, &exposure("api", "routed")).await;
    assert_eq!(routes(&server, "node-a", "tor").len(), 1);
    lb.release(&acme, "api").await.expect("release");
    lb.delete_pool(&acme, "routed").await.expect("delete pool");
    let cluster = server.cluster();
    assert!(
        cluster
            .get_opt(
                "cilium.io/v2",
                "CiliumBGPAdvertisement",
                None,
                "acme-routed"
            )
            .unwrap()
            .is_none(),
        "deleting the pool deletes its advertisement"
    );
    assert!(
        cluster
            .get_opt("cilium.io/v2", "CiliumBGPClusterConfig", None, "kubecloud")
            .unwrap()
            .is_some(),
        "the cluster's speaker stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_speaker_is_written_once_and_makes_node_configs_for_the_selected_nodes() {
    let server = common::bgp_server().await;
    let lb = common::bgp_backend(&server);
    let acme = common::tenant("acme");
    lb.create_pool(
        &acme,
        &bgp_pool(
            "a",
            "203.0.113.0/28",
            BgpAdvertisement {
                peers: vec![tor()],
                ..Default::default()
            },
        ),
    )
    .await
    .expect("first pool");
    let writes = |server: &TestServer, resource: &str| {
        server.requests().count(Verb::Apply, resource)
            + server.requests().count(Verb::Create, resource)
    };
    assert_eq!(writes(&server, "ciliumbgpclusterconfigs"), 1);
    assert_eq!(writes(&server, "ciliumbgppeerconfigs"), 2);
    lb.create_pool(
        &acme,
        &bgp_pool(
            "b",
            "203.0.113.16/28",
            BgpAdvertisement {
                peers: vec![peer("spine", "192.0.2.2", 64514)],
                ..Default::default()
            },
        ),
    )
    .await
    .expect("second pool");
    assert_eq!(
        writes(&server, "ciliumbgpclusterconfigs"),
        1,
        "unchanged: not sent again"
    );
    assert_eq!(
        writes(&server, "ciliumbgppeerconfigs"),
        2,
        "unchanged: not sent again"
    );
    let cluster = server.cluster();
    let nodes: Vec<String> = cluster
        .list("cilium.io/v2", "CiliumBGPNodeConfig", None)
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes, ["node-a", "node-b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregation_announces_the_aggregate() {
    let server = common::bgp_server().await;
    let lb = common::bgp_backend(&server);
    let acme = common::tenant("acme");
    let spec = bgp_pool(
        "agg",
        "203.0.113.0/28",
        BgpAdvertisement {
            peers: vec![tor()],
            aggregation_length: Some(24),
            ..Default::default()
        },
    );
    lb.create_pool(&acme, &spec).await.expect("pool");
    speaker_ready(&server, "kubecloud").await;
    assert_eq!(lb.get_pool(&acme, "agg").await.unwrap().spec, spec);
    assigned(&lb, &acme, &exposure("web", "agg")).await;
    let got = routes(&server, "node-a", "tor");
    assert_eq!(
        got.iter().map(|r| r.prefix.to_string()).collect::<Vec<_>>(),
        ["203.0.113.0/24"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bgp_input_is_refused_naming_the_field_before_anything_is_written() {
    let server = common::bgp_server().await;
    let lb = common::bgp_backend(&server);
    let acme = common::tenant("acme");
    let refused = |bgp: BgpAdvertisement, block: &'static str| {
        let lb = lb.clone();
        let acme = acme.clone();
        async move {
            lb.create_pool(&acme, &bgp_pool("p", block, bgp))
                .await
                .expect_err("refused")
        }
    };
    let base = || BgpAdvertisement {
        peers: vec![tor()],
        ..Default::default()
    };
    let cases: Vec<(BgpAdvertisement, &str, &str)> = vec![
        (
            BgpAdvertisement {
                peers: vec![peer("edge", "192.0.2.9", 64513)],
                ..base()
            },
            "203.0.113.0/28",
            "advertisement.bgp.peers[0].name",
        ),
        (
            BgpAdvertisement {
                peers: vec![peer("tor", "192.0.2.9", 64513)],
                ..base()
            },
            "203.0.113.0/28",
            "advertisement.bgp.peers[0].address",
        ),
        (
            BgpAdvertisement {
                peers: vec![peer("tor", "192.0.2.1", 65000)],
                ..base()
            },
            "203.0.113.0/28",
            "advertisement.bgp.peers[0].peerAsn",
        ),
        (
            BgpAdvertisement {
                peers: vec![BgpPeer {
                    my_asn: 65001,
                    ..tor()
                }],
                ..base()
            },
            "203.0.113.0/28",
            "advertisement.bgp.peers[0].myAsn",
        ),
        (
            BgpAdvertisement {
                peers: vec![BgpPeer {
                    password: Some("s3cret".into()),
                    ..tor()
                }],
                ..base()
            },
            "203.0.113.0/28",
            "advertisement.bgp.peers[0].password",
        ),
        (
            BgpAdvertisement {
                peers: vec![BgpPeer { bfd: true, ..tor() }],
                ..base()
            },
            "203.0.113.0/28",
            "advertisement.bgp.peers[0].bfd",
        ),
        (
            BgpAdvertisement {
                peers: vec![BgpPeer {
                    hold_time_secs: Some(30),
                    ..tor()
                }],
                ..base()
            },
            "203.0.113.0/28",
            "advertisement.bgp.peers[0].holdTimeSecs",
        ),
        (
            BgpAdvertisement {
                peers: vec![BgpPeer {
                    ebgp_multihop: true,
                    ..tor()
                }],
                ..base()
            },
            "203.0.113.0/28",
            "advertisement.bgp.peers[0].ebgpMultihop",
        ),
        (
            BgpAdvertisement {
                communities: vec!["no-such".into()],
                ..base()
            },
            "203.0.113.0/28",
            "advertisement.bgp.communities[0]",
        ),
    ];
    for (bgp, block, field) in cases {
        let err = refused(bgp, block).await;
        assert_eq!(err.invalid_field(), Some(field), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
    // Aggregation on a pool of both families: Cilium takes one length per family.
    let mut mixed = bgp_pool(
        "p",
        "203.0.113.0/28",
        BgpAdvertisement {
            aggregation_length: Some(24),
            ..base()
        },
    );
    mixed.addresses.push(cidr("2001:db8::/124"));
    let err = lb.create_pool(&acme, &mixed).await.unwrap_err();
    assert_eq!(
        err.invalid_field(),
        Some("advertisement.bgp.aggregationLength"),
        "{err}"
    );
    assert!(err.to_string().contains("Cilium"), "{err}");
    assert!(
        server.requests().writes().is_empty(),
        "nothing was written: {:?}",
        server.requests().writes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cluster_config_is_a_conflict_and_the_double_marks_the_later_one() {
    let server = common::bgp_server().await;
    server
        .seed_yaml(
            "apiVersion: cilium.io/v2\nkind: CiliumBGPClusterConfig\nmetadata: {name: admin}\n\
             spec: {bgpInstances: [{name: main, localASN: 65000, peers: [{name: r1, peerAddress: 198.51.100.1, peerASN: 65001, peerConfigRef: {name: r1}}]}]}\n",
        )
        .expect("admin config");
    let lb = common::bgp_backend(&server);
    let acme = common::tenant("acme");
    let err = lb
        .create_pool(
            &acme,
            &bgp_pool(
                "p",
                "203.0.113.0/28",
                BgpAdvertisement {
                    peers: vec![tor()],
                    ..Default::default()
                },
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(err.to_string().contains("\"admin\""), "{err}");
    assert!(server.requests().writes().is_empty(), "nothing was written");

    // The double: a second cluster config selecting the same nodes is marked conflicting and
    // makes no node configs.
    server
        .seed_yaml(
            "apiVersion: cilium.io/v2\nkind: CiliumBGPClusterConfig\nmetadata: {name: second}\n\
             spec: {nodeSelector: {matchLabels: {bgp: 'yes'}}, bgpInstances: [{name: main, localASN: 65000}]}\n",
        )
        .expect("second config");
    let cluster = server.cluster();
    let watch = kube::Api::<kubecloud_cilium::models::CiliumBgpClusterConfig>::all(server.client());
    let second = kube::runtime::wait::await_condition(
        watch,
        "second",
        |c: Option<&kubecloud_cilium::models::CiliumBgpClusterConfig>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.r#type == "cilium.io/ConflictingClusterConfig")
                })
        },
    );
    let second = tokio::time::timeout(TIMEOUT, second)
        .await
        .expect("in time")
        .expect("watch")
        .expect("exists");
    let condition = second
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.r#type == "cilium.io/ConflictingClusterConfig")
        .unwrap();
    assert_eq!(condition.reason, "ConflictingClusterConfigs");
    assert_eq!(
        condition.message,
        "Selecting the same node(s) with ClusterConfig(s): [admin]"
    );
    let owners: Vec<String> = cluster
        .list("cilium.io/v2", "CiliumBGPNodeConfig", None)
        .unwrap()
        .iter()
        .map(|n| {
            n["metadata"]["ownerReferences"][0]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        owners,
        ["admin", "admin", "admin"],
        "the older config keeps every node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_s_speaker_is_adopted_when_its_peer_configs_select_the_pool() {
    let server = common::bgp_server().await;
    server
        .seed_yaml(
            "apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nmetadata: {name: tor}\n\
             spec: {families: [{afi: ipv4, safi: unicast, advertisements: {matchLabels: {peer.bgp.kubecloud.io/tor: 'true'}}}]}\n---\n\
             apiVersion: cilium.io/v2\nkind: CiliumBGPPeerConfig\nmetadata: {name: everything}\n\
             spec: {families: [{afi: ipv4, safi: unicast, advertisements: {}}]}\n---\n\
             apiVersion: cilium.io/v2\nkind: CiliumBGPClusterConfig\nmetadata: {name: admin}\n\
             spec: {bgpInstances: [{name: main, localASN: 64512, peers: [\
             {name: tor, peerAddress: 192.0.2.1, peerASN: 64513, peerConfigRef: {name: tor}},\
             {name: lab, peerAddress: 192.0.2.7, peerASN: 64599, peerConfigRef: {name: everything}}]}]}\n",
        )
        .expect("admin speaker");
    let lb = common::backend(&server);
    let acme = common::tenant("acme");
    let spec = bgp_pool(
        "p",
        "203.0.113.0/28",
        BgpAdvertisement {
            peers: vec![tor()],
            ..Default::default()
        },
    );
    let err = lb.create_pool(&acme, &spec).await.unwrap_err();
    assert_eq!(
        err.invalid_field(),
        Some("advertisement.bgp.peers"),
        "{err}"
    );
    assert!(
        err.to_string().contains("\"lab\""),
        "the peer that would announce it too: {err}"
    );
    assert!(server.requests().writes().is_empty(), "nothing was written");
    // With the lab peer announcing only what it is asked to, the pool is adopted as is.
    server
        .cluster()
        .merge_patch(
            "cilium.io/v2",
            "CiliumBGPPeerConfig",
            None,
            "everything",
            &serde_json::json!({"spec": {"families": [{"afi": "ipv4", "safi": "unicast", "advertisements": {"matchLabels": {"lab": "yes"}}}]}}),
        )
        .unwrap();
    lb.create_pool(&acme, &spec).await.expect("adopted speaker");
    speaker_ready(&server, "admin").await;
    let ip = assigned(&lb, &acme, &exposure("web", "p")).await;
    assert_eq!(
        routes(&server, "node-c", "tor")
            .iter()
            .map(|r| r.prefix)
            .collect::<Vec<_>>(),
        [host(ip)],
        "a cluster config without nodeSelector selects every node"
    );
    assert!(routes(&server, "node-c", "lab").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_and_touch_only_their_own_bgp_pools() {
    let server = common::bgp_server().await;
    let lb = common::bgp_backend(&server);
    let (acme, other) = (common::tenant("acme"), common::tenant("other"));
    let spec = bgp_pool(
        "routed",
        "203.0.113.0/28",
        BgpAdvertisement {
            peers: vec![tor()],
            ..Default::default()
        },
    );
    lb.create_pool(&acme, &spec).await.expect("acme's pool");
    speaker_ready(&server, "kubecloud").await;
    assert!(lb.list_pools(&other).await.unwrap().is_empty());
    assert!(
        lb.get_pool(&other, "routed")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        lb.delete_pool(&other, "routed")
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Another tenant's Service labelled with acme's pool is not announced: the advertisement
    // selects acme's namespace.
    let ip = assigned(&lb, &acme, &exposure("web", "routed")).await;
    let theirs = bgp_pool(
        "routed",
        "203.0.113.16/28",
        BgpAdvertisement {
            peers: vec![tor()],
            ..Default::default()
        },
    );
    lb.create_pool(&other, &theirs).await.expect("other's pool");
    let their_ip = assigned(&lb, &other, &exposure("web", "routed")).await;
    let mut got: Vec<_> = routes(&server, "node-a", "tor")
        .iter()
        .map(|r| r.prefix)
        .collect();
    got.sort();
    let mut want = vec![host(ip), host(their_ip)];
    want.sort();
    assert_eq!(got, want);
    lb.release(&other, "web").await.unwrap();
    lb.delete_pool(&other, "routed")
        .await
        .expect("other's pool deleted");
    assert_eq!(
        routes(&server, "node-a", "tor")
            .iter()
            .map(|r| r.prefix)
            .collect::<Vec<_>>(),
        [host(ip)],
        "acme's route stays"
    );
    assert_eq!(lb.get_pool(&acme, "routed").await.unwrap().spec, spec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_changes_between_l2_and_bgp_and_its_attributes_in_place() {
    let server = common::bgp_server().await;
    let lb = common::bgp_backend(&server);
    let acme = common::tenant("acme");
    let l2 = AddressPoolSpec::l2("p", vec![cidr("203.0.113.0/28")]);
    lb.create_pool(&acme, &l2).await.expect("L2 pool");
    let ip = assigned(&lb, &acme, &exposure("web", "p")).await;
    let cluster = server.cluster();
    let exists = |kind: &str| {
        let version = if kind == "CiliumL2AnnouncementPolicy" {
            "cilium.io/v2alpha1"
        } else {
            "cilium.io/v2"
        };
        cluster
            .get_opt(version, kind, None, "acme-p")
            .unwrap()
            .is_some()
    };
    let mut bgp = bgp_pool(
        "p",
        "203.0.113.0/28",
        BgpAdvertisement {
            peers: vec![tor()],
            local_preference: Some(100),
            ..Default::default()
        },
    );
    let updated = lb.update_pool(&acme, &bgp).await.expect("to BGP");
    assert_eq!(updated.assigned, 1, "the address stays");
    speaker_ready(&server, "kubecloud").await;
    assert!(exists("CiliumBGPAdvertisement") && !exists("CiliumL2AnnouncementPolicy"));
    assert_eq!(lb.get_pool(&acme, "p").await.unwrap().spec, bgp);
    let got = routes(&server, "node-a", "tor");
    assert_eq!(
        got.iter()
            .map(|r| (r.prefix, r.local_preference))
            .collect::<Vec<_>>(),
        [(host(ip), Some(100))]
    );
    if let Advertisement::Bgp(b) = &mut bgp.advertisement {
        b.local_preference = Some(250);
        b.peers = vec![peer("spine", "192.0.2.2", 64514)];
    }
    lb.update_pool(&acme, &bgp)
        .await
        .expect("new peer and preference");
    assert!(
        routes(&server, "node-a", "tor").is_empty(),
        "no longer to tor"
    );
    assert_eq!(
        routes(&server, "node-a", "spine")
            .iter()
            .map(|r| (r.prefix, r.local_preference))
            .collect::<Vec<_>>(),
        [(host(ip), Some(250))]
    );
    lb.update_pool(&acme, &l2).await.expect("back to L2");
    assert!(!exists("CiliumBGPAdvertisement") && exists("CiliumL2AnnouncementPolicy"));
    assert!(routes(&server, "node-a", "spine").is_empty());
    assert_eq!(lb.get_pool(&acme, "p").await.unwrap().spec, l2);
}
