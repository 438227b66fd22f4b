//! Rendering pools and exposures (GitOps output) instead of creating them: nothing is sent, the
//! objects are those creating sends, every one validates upstream, bad input names the field.

mod common;

use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Advertisement, ExposureSpec, LoadBalancer,
    ServicePort,
};
use kubecloud_testkit::schema::Catalog;
use serde_json::Value;

use common::{backend, server, tenant};

fn pools() -> Vec<AddressPoolSpec> {
    let mut manual = AddressPoolSpec::l2(
        "manual",
        vec![AddressBlock::Cidr("198.51.100.0/28".parse().unwrap())],
    );
    manual.auto_assign = false;
    let mut public = AddressPoolSpec::l2(
        "public",
        vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())],
    );
    if let Advertisement::L2(l2) = &mut public.advertisement {
        l2.interfaces = vec!["eth1".into()];
        l2.node_selector = [("lb".to_string(), "yes".to_string())].into();
    }
    vec![manual, public]
}

fn exposures() -> Vec<ExposureSpec> {
    let web = ExposureSpec::new("web", [("app", "web")], vec![ServicePort::tcp(443)]);
    vec![
        ExposureSpec {
            address: AddressRequest::Pool("manual".into()),
            ..ExposureSpec::new("db", [("app", "db")], vec![ServicePort::tcp(5432)])
        },
        ExposureSpec {
            sharing_key: Some("front".into()),
            ..web
        },
        ExposureSpec {
            address: AddressRequest::Ip("203.0.113.9".parse().unwrap()),
            ..ExposureSpec::new("api", [("app", "api")], vec![ServicePort::tcp(8443)])
        },
    ]
}

#[tokio::test]
async fn the_rendered_objects_are_what_creating_sends_and_nothing_is_sent() {
    let server = server().await;
    let lb = backend(&server);
    let acme = tenant("acme");
    let mut rendered: Vec<Value> = Vec::new();
    for pool in pools() {
        rendered.extend(lb.pool_manifests(&acme, &pool).expect("pool manifests"));
    }
    for e in exposures() {
        rendered.extend(
            lb.exposure_manifests(&acme, &e, &pools())
                .expect("exposure manifests"),
        );
    }
    assert_eq!(server.requests().total(), 0, "rendering sent a request");
    let catalog = Catalog::upstream().expect("catalog");
    let mut kinds = Vec::new();
    for o in &rendered {
        let (av, kind) = (
            o["apiVersion"].as_str().unwrap(),
            o["kind"].as_str().unwrap(),
        );
        kinds.push(kind.to_string());
        catalog
            .by_kind(av, kind)
            .expect("kind")
            .validate(o)
            .unwrap_or_else(|e| panic!("{o}: {e:?}"));
    }
    assert_eq!(
        kinds,
        [
            "CiliumLoadBalancerIPPool",
            "CiliumL2AnnouncementPolicy",
            "CiliumLoadBalancerIPPool",
            "CiliumL2AnnouncementPolicy",
            "Service",
            "Service",
            "Service"
        ]
    );
    let pool_label =
        |i: usize| rendered[i]["metadata"]["labels"]["kubecloud.io/address-pool"].clone();
    assert_eq!(
        [pool_label(4), pool_label(5), pool_label(6)],
        ["manual", "public", "public"],
        "the named pool; the first auto-assigning one; the one holding the address"
    );

    for pool in pools() {
        lb.create_pool(&acme, &pool).await.expect("create pool");
    }
    for e in exposures() {
        lb.expose(&acme, &e).await.expect("expose");
    }
    let cluster = server.cluster();
    for object in rendered {
        let (av, kind) = (
            object["apiVersion"].as_str().unwrap(),
            object["kind"].as_str().unwrap(),
        );
        let name = object["metadata"]["name"].as_str().unwrap();
        let live = cluster
            .list(av, kind, object["metadata"]["namespace"].as_str())
            .unwrap()
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"));
        assert!(
            kubecloud_kube::is_subset(&object, &live),
            "{kind} {name}: rendered {object:#} live {live:#}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let server = server().await;
    let lb = backend(&server);
    let mut pool = pools().remove(1);
    pool.addresses.clear();
    let err = lb.pool_manifests(&tenant("acme"), &pool).unwrap_err();
    assert_eq!(err.invalid_field(), Some("addresses"));
    let mut pool = pools().remove(1);
    pool.avoid_buggy_ips = true;
    let err = lb.pool_manifests(&tenant("acme"), &pool).unwrap_err();
    assert_eq!(err.invalid_field(), Some("avoidBuggyIps"));
    let mut exposure = exposures().remove(1);
    exposure.ports.clear();
    let err = lb
        .exposure_manifests(&tenant("acme"), &exposure, &pools())
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("ports"));
    assert_eq!(server.requests().total(), 0);
}

/// A BGP pool renders the cluster's speaker given to the builder (its peer configs, then its
/// cluster config), the pool and its `CiliumBGPAdvertisement`: each validates upstream and is
/// what creating the pool sends.
#[tokio::test]
async fn a_bgp_pool_renders_the_speaker_the_pool_and_its_advertisement() {
    let server = common::bgp_server().await;
    let lb = common::bgp_backend(&server);
    let acme = tenant("acme");
    let pool = AddressPoolSpec {
        advertisement: Advertisement::Bgp(kubecloud_core::BgpAdvertisement {
            peers: vec![kubecloud_core::BgpPeer {
                name: "tor".into(),
                my_asn: 64512,
                peer_asn: 64513,
                address: "192.0.2.1".parse().unwrap(),
                port: None,
                hold_time_secs: None,
                keepalive_time_secs: None,
                ebgp_multihop: false,
                bfd: false,
                password: None,
            }],
            aggregation_length: Some(26),
            local_preference: Some(150),
            communities: vec!["65000:7".into(), "no-advertise".into()],
        }),
        ..AddressPoolSpec::l2(
            "routed",
            vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())],
        )
    };
    let before = server.requests().total();
    let rendered = lb.pool_manifests(&acme, &pool).expect("pool manifests");
    assert_eq!(
        server.requests().total(),
        before,
        "rendering sent a request"
    );
    let kinds: Vec<&str> = rendered
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "CiliumBGPPeerConfig",
            "CiliumBGPPeerConfig",
            "CiliumBGPClusterConfig",
            "CiliumLoadBalancerIPPool",
            "CiliumBGPAdvertisement"
        ]
    );
    let catalog = Catalog::upstream().expect("catalog");
    for o in &rendered {
        catalog
            .by_kind(
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
            )
            .expect("kind")
            .validate(o)
            .unwrap_or_else(|e| panic!("{o}: {e:?}"));
    }
    let advertisement = &rendered[4]["spec"]["advertisements"][0];
    assert_eq!(advertisement["service"]["aggregationLengthIPv4"], 26);
    assert_eq!(advertisement["attributes"]["localPreference"], 150);
    assert_eq!(
        advertisement["attributes"]["communities"],
        serde_json::json!({"standard": ["65000:7"], "wellKnown": ["no-advertise"]})
    );
    assert_eq!(
        rendered[4]["metadata"]["labels"]["peer.bgp.kubecloud.io/tor"],
        "true"
    );
    lb.create_pool(&acme, &pool).await.expect("create pool");
    let cluster = server.cluster();
    for object in rendered {
        let (av, kind) = (
            object["apiVersion"].as_str().unwrap(),
            object["kind"].as_str().unwrap(),
        );
        let name = object["metadata"]["name"].as_str().unwrap();
        let live = cluster
            .get(av, kind, None, name)
            .unwrap_or_else(|e| panic!("no {kind} {name}: {e}"));
        assert!(
            kubecloud_kube::is_subset(&object, &live),
            "{kind} {name}: rendered {object:#} live {live:#}"
        );
    }
}
