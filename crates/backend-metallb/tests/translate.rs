//! Golden translation tests: every object the backend builds, as a reviewer reads it in
//! `tests/golden/*.json`, validated against the upstream MetalLB and Kubernetes schemas (unknown
//! fields rejected), and read back into the same domain spec.
//!
//! Regenerate the golden files with `UPDATE_GOLDEN=1 cargo test -p kubecloud-metallb --test translate`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Advertisement, BgpAdvertisement, BgpPeer,
    ExposureSpec, L2Advertisement, Protocol, SecretString, ServicePort, Tenant,
};
use kubecloud_metallb::translate::{self, PoolObjects};
use kubecloud_testkit::schema::Catalog;
use serde_json::Value;

fn acme() -> Tenant {
    Tenant::new("acme").unwrap()
}

fn cidr(s: &str) -> AddressBlock {
    AddressBlock::Cidr(s.parse().unwrap())
}

fn l2_pool() -> AddressPoolSpec {
    AddressPoolSpec {
        avoid_buggy_ips: true,
        advertisement: Advertisement::L2(L2Advertisement {
            node_selector: [("kubernetes.io/hostname".to_string(), "edge-1".to_string())].into(),
            interfaces: vec!["eth1".into()],
        }),
        ..AddressPoolSpec::l2(
            "public",
            vec![
                cidr("203.0.113.0/28"),
                AddressBlock::Range("203.0.113.100..203.0.113.120".parse().unwrap()),
            ],
        )
    }
}

fn bgp_pool() -> AddressPoolSpec {
    AddressPoolSpec {
        auto_assign: false,
        advertisement: Advertisement::Bgp(BgpAdvertisement {
            peers: vec![
                BgpPeer {
                    name: "tor-a".into(),
                    my_asn: 64512,
                    peer_asn: 64513,
                    address: "192.0.2.1".parse().unwrap(),
                    port: Some(1179),
                    hold_time_secs: Some(90),
                    keepalive_time_secs: Some(30),
                    ebgp_multihop: true,
                    bfd: true,
                    password: Some(SecretString::new("golden-test-password")),
                },
                BgpPeer {
                    name: "tor-b".into(),
                    my_asn: 64512,
                    peer_asn: 64514,
                    address: "2001:db8::1".parse().unwrap(),
                    port: None,
                    hold_time_secs: None,
                    keepalive_time_secs: None,
                    ebgp_multihop: false,
                    bfd: false,
                    password: None,
                },
            ],
            aggregation_length: Some(28),
            local_preference: Some(200),
            communities: vec!["65535:65281".into(), "no-advertise".into()],
        }),
        ..AddressPoolSpec::l2("routed", vec![cidr("198.51.100.0/26")])
    }
}

fn exposures() -> Vec<ExposureSpec> {
    vec![
        ExposureSpec {
            address: AddressRequest::Pool("public".into()),
            sharing_key: Some("front".into()),
            local_traffic_only: true,
            ports: vec![
                ServicePort::tcp(443),
                ServicePort {
                    port: 53,
                    target_port: Some(5353),
                    protocol: Protocol::Udp,
                },
            ],
            ..ExposureSpec::new("web", [("app", "web")], vec![])
        },
        ExposureSpec {
            address: AddressRequest::Ip("203.0.113.5".parse().unwrap()),
            ..ExposureSpec::new(
                "db",
                [("app", "db"), ("tier", "data")],
                vec![ServicePort::tcp(5432)],
            )
        },
    ]
}

fn pool_json(objects: &PoolObjects) -> Vec<Value> {
    let mut out: Vec<Value> = objects
        .secrets
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect();
    out.extend(objects.metallb_objects().into_iter().cloned());
    out
}

fn golden(name: &str, objects: &[Value]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/{name}.json"));
    let text = serde_json::to_string_pretty(objects).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        text,
        want,
        "{name}: translation differs from {}",
        path.display()
    );
}

fn validate_all(objects: &[Value]) {
    let catalog = Catalog::upstream().expect("upstream catalog");
    for object in objects {
        let (av, kind) = (
            object["apiVersion"].as_str().unwrap(),
            object["kind"].as_str().unwrap(),
        );
        let rt = catalog
            .by_kind(av, kind)
            .unwrap_or_else(|| panic!("{av} {kind} is in the upstream catalog"));
        if let Err(errors) = rt.validate(object) {
            panic!(
                "{kind} {} is invalid upstream: {errors:?}",
                object["metadata"]["name"]
            );
        }
    }
}

#[test]
fn l2_pool_translation() {
    let objects = translate::pool_objects(&acme(), "metallb-system", &l2_pool()).unwrap();
    let all = pool_json(&objects);
    validate_all(&all);
    golden("pool-l2", &all);
}

#[test]
fn bgp_pool_translation() {
    let objects = translate::pool_objects(&acme(), "metallb-system", &bgp_pool()).unwrap();
    let all = pool_json(&objects);
    validate_all(&all);
    golden("pool-bgp", &all);
    assert_eq!(
        objects.peers[0]["apiVersion"], "metallb.io/v1beta2",
        "BGPPeer is sent as v1beta2"
    );
    let peer = serde_json::to_string(&objects.peers).unwrap();
    assert!(
        !peer.contains("golden-test-password"),
        "the password is never inline"
    );
    let debug = format!("{objects:?}");
    assert!(
        !debug.contains("golden-test-password") && !debug.contains("Z29sZGVu"),
        "{debug}"
    );
}

#[test]
fn exposure_translation() {
    let services: Vec<Value> = exposures()
        .iter()
        .map(|e| serde_json::to_value(translate::service(&acme(), e).unwrap()).unwrap())
        .collect();
    validate_all(&services);
    golden("exposures", &services);
}

#[test]
fn pools_read_back_to_their_spec() {
    for spec in [
        l2_pool(),
        bgp_pool(),
        AddressPoolSpec::l2("plain", vec![cidr("192.0.2.0/24")]),
    ] {
        let o = translate::pool_objects(&acme(), "metallb-system", &spec).unwrap();
        let passwords: BTreeMap<String, SecretString> = o
            .secrets
            .iter()
            .map(|s| {
                (
                    s.metadata.name.clone().unwrap(),
                    translate::secret_password(s).unwrap(),
                )
            })
            .collect();
        // What is written decodes into MetalLB's typed models, and reads back from them.
        fn typed<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> T {
            serde_json::from_value(v.clone()).unwrap()
        }
        let l2 = o.l2_advertisement.as_ref().map(typed);
        let bgp = o.bgp_advertisement.as_ref().map(typed);
        let peers: Vec<_> = o.peers.iter().map(typed).collect();
        let back = translate::pool_spec(
            &acme(),
            &typed(&o.pool),
            l2.as_ref(),
            bgp.as_ref(),
            &peers,
            &passwords,
        )
        .unwrap();
        assert_eq!(back, spec);
    }
}

#[test]
fn exposures_read_back_to_their_spec() {
    for spec in exposures() {
        let svc = translate::service(&acme(), &spec).unwrap();
        assert_eq!(translate::exposure(&acme(), &svc, None).spec, spec);
    }
}

#[test]
fn bad_input_names_the_field() {
    let mut spec = bgp_pool();
    if let Advertisement::Bgp(bgp) = &mut spec.advertisement {
        bgp.communities.push("friends-only".into());
    }
    let err = translate::pool_objects(&acme(), "metallb-system", &spec).unwrap_err();
    assert_eq!(
        err.invalid_field(),
        Some("advertisement.bgp.communities[2]")
    );
    let mut icmp = exposures().remove(1);
    icmp.ports[0].protocol = Protocol::Icmp;
    let err = translate::service(&acme(), &icmp).unwrap_err();
    assert_eq!(err.invalid_field(), Some("ports[0].protocol"));
}
