//! Rendering pools and exposures (GitOps output) instead of creating them: nothing is sent, the
//! objects are those creating sends, every one validates upstream, bad input names the field.

mod common;

use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Advertisement, BgpAdvertisement, BgpPeer,
    ExposureSpec, LoadBalancer, SecretString, ServicePort,
};
use kubecloud_testkit::schema::Catalog;
use serde_json::Value;

use common::{backend, server, tenant};

fn pools() -> Vec<AddressPoolSpec> {
    let bgp = AddressPoolSpec {
        advertisement: Advertisement::Bgp(BgpAdvertisement {
            peers: vec![BgpPeer {
                name: "tor".into(),
                my_asn: 64512,
                peer_asn: 64513,
                address: "192.0.2.1".parse().unwrap(),
                port: None,
                hold_time_secs: None,
                keepalive_time_secs: None,
                ebgp_multihop: false,
                bfd: true,
                password: Some(SecretString::new("bgp-s3cret")),
            }],
            aggregation_length: None,
            local_preference: None,
            communities: vec!["no-export".into()],
        }),
        ..AddressPoolSpec::l2(
            "routed",
            vec![AddressBlock::Cidr("198.51.100.0/28".parse().unwrap())],
        )
    };
    let l2 = AddressPoolSpec::l2(
        "public",
        vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())],
    );
    vec![bgp, l2]
}

fn exposure() -> ExposureSpec {
    ExposureSpec {
        address: AddressRequest::Pool("public".into()),
        ..ExposureSpec::new("web", [("app", "web")], vec![ServicePort::tcp(443)])
    }
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
    rendered.extend(
        lb.exposure_manifests(&acme, &exposure(), &pools())
            .expect("exposure manifests"),
    );
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
            "Secret",
            "BFDProfile",
            "Community",
            "BGPPeer",
            "IPAddressPool",
            "BGPAdvertisement",
            "IPAddressPool",
            "L2Advertisement",
            "Service"
        ]
    );

    for pool in pools() {
        lb.create_pool(&acme, &pool).await.expect("create pool");
    }
    lb.expose(&acme, &exposure()).await.expect("expose");
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
    let mut exposure = exposure();
    exposure.ports.clear();
    let err = lb
        .exposure_manifests(&tenant("acme"), &exposure, &pools())
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("ports"));
    assert_eq!(server.requests().total(), 0);
}
