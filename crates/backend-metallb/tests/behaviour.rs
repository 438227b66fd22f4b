//! What crosses the wire: one apply per object, nothing for bad input or unchanged specs,
//! waits on watches (no polling), passwords only in Secrets, typed failures with MetalLB's
//! reason, deletion of exactly what a pool is made of, retries of temporary failures.

mod common;

use std::time::Duration;

use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Advertisement, BgpAdvertisement, BgpPeer, Error,
    ExposureSpec, ExposureState, LoadBalancer, ResourceKind, SecretString, ServicePort, wait,
};
use kubecloud_testkit::schema::Catalog;
use kubecloud_testkit::{Fault, TestServer, Verb};
use serde_json::Value;

use common::{NAMESPACE, backend, server, tenant};

fn cidr(s: &str) -> AddressBlock {
    AddressBlock::Cidr(s.parse().unwrap())
}

/// Values other than MetalLB's CRD defaults (port 179, aggregation length 32): the API server
/// fills those in when unset, so a default reads back as unset.
fn bgp_spec(name: &str, block: &str, password: &str) -> AddressPoolSpec {
    AddressPoolSpec {
        advertisement: Advertisement::Bgp(BgpAdvertisement {
            peers: vec![BgpPeer {
                name: "tor".into(),
                my_asn: 64512,
                peer_asn: 64513,
                address: "192.0.2.1".parse().unwrap(),
                port: Some(1790),
                hold_time_secs: Some(90),
                keepalive_time_secs: Some(30),
                ebgp_multihop: false,
                bfd: true,
                password: Some(SecretString::new(password)),
            }],
            aggregation_length: Some(30),
            local_preference: Some(100),
            communities: vec!["no-export".into()],
        }),
        ..AddressPoolSpec::l2(name, vec![cidr(block)])
    }
}

fn web(address: AddressRequest) -> ExposureSpec {
    ExposureSpec {
        address,
        ..ExposureSpec::new("web", [("app", "web")], vec![ServicePort::tcp(443)])
    }
}

/// Every object in the store of the MetalLB kinds, Secrets and Services, validated upstream.
fn assert_everything_stored_is_valid_upstream(server: &TestServer) {
    let catalog = Catalog::upstream().unwrap();
    let api = server.cluster();
    let kinds = [
        ("metallb.io/v1beta1", "IPAddressPool"),
        ("metallb.io/v1beta1", "L2Advertisement"),
        ("metallb.io/v1beta1", "BGPAdvertisement"),
        ("metallb.io/v1beta2", "BGPPeer"),
        ("metallb.io/v1beta1", "BFDProfile"),
        ("metallb.io/v1beta1", "Community"),
        ("v1", "Secret"),
        ("v1", "Service"),
    ];
    for (av, kind) in kinds {
        for object in api.list(av, kind, None).unwrap() {
            catalog
                .by_kind(av, kind)
                .unwrap()
                .validate(&object)
                .unwrap_or_else(|e| panic!("{kind} {}: {e:?}", object["metadata"]["name"]));
        }
    }
}

fn metallb_objects(server: &TestServer) -> Vec<Value> {
    let api = server.cluster();
    let mut all = Vec::new();
    for (av, kind) in [
        ("metallb.io/v1beta1", "IPAddressPool"),
        ("metallb.io/v1beta1", "L2Advertisement"),
        ("metallb.io/v1beta1", "BGPAdvertisement"),
        ("metallb.io/v1beta2", "BGPPeer"),
        ("metallb.io/v1beta1", "BFDProfile"),
        ("metallb.io/v1beta1", "Community"),
        ("v1", "Secret"),
    ] {
        all.extend(api.list(av, kind, Some(NAMESPACE)).unwrap());
    }
    all
}

#[tokio::test]
async fn a_bgp_pool_is_one_apply_per_object_and_reapplying_sends_nothing() {
    let server = server().await;
    let lb = backend(&server);
    let acme = tenant("acme");
    let spec = bgp_spec("routed", "203.0.113.0/28", "hunter2-bgp");
    lb.create_pool(&acme, &spec).await.unwrap();
    let r = server.requests();
    // Secret, BFDProfile, Community, BGPPeer, IPAddressPool, BGPAdvertisement.
    assert_eq!(r.count_verb(Verb::Apply), 6, "{:?}", r.summary());
    for plural in [
        "secrets",
        "bfdprofiles",
        "communities",
        "bgppeers",
        "ipaddresspools",
        "bgpadvertisements",
    ] {
        assert_eq!(r.count(Verb::Apply, plural), 1, "{plural}");
    }
    assert_everything_stored_is_valid_upstream(&server);
    let got = lb.get_pool(&acme, "routed").await.unwrap();
    assert_eq!(
        got.spec, spec,
        "the pool reads back as created, password included"
    );

    r.reset();
    lb.apply_pool(&acme, &spec).await.unwrap();
    assert_eq!(
        r.writes().len(),
        0,
        "an unchanged spec sends no write: {:?}",
        r.summary()
    );

    // A change rewrites only what changed, and drops what is no longer needed.
    let mut changed = spec.clone();
    if let Advertisement::Bgp(bgp) = &mut changed.advertisement {
        bgp.local_preference = Some(300);
        bgp.peers[0].bfd = false;
        bgp.communities.clear();
    }
    r.reset();
    lb.apply_pool(&acme, &changed).await.unwrap();
    assert_eq!(r.count(Verb::Apply, "bgpadvertisements"), 1);
    assert_eq!(r.count(Verb::Apply, "bgppeers"), 1, "bfdProfile dropped");
    assert_eq!(r.count(Verb::Apply, "ipaddresspools"), 0);
    assert_eq!(r.count(Verb::Delete, "bfdprofiles"), 1);
    assert_eq!(r.count(Verb::Delete, "communities"), 1);
    assert_eq!(lb.get_pool(&acme, "routed").await.unwrap().spec, changed);
    assert_everything_stored_is_valid_upstream(&server);
}

#[tokio::test]
async fn the_bgp_password_lives_in_a_secret_and_never_in_debug_or_errors() {
    let server = server().await;
    let lb = backend(&server);
    let acme = tenant("acme");
    let spec = bgp_spec("routed", "203.0.113.0/28", "hunter2-bgp");
    let pool = lb.create_pool(&acme, &spec).await.unwrap();
    let api = server.cluster();
    let secret = api
        .get("v1", "Secret", Some(NAMESPACE), "acme-routed-tor")
        .unwrap();
    assert_eq!(secret["type"], "kubernetes.io/basic-auth");
    assert_eq!(
        secret["data"]["password"], "aHVudGVyMi1iZ3A=",
        "base64 of the password"
    );
    let peer = api
        .get(
            "metallb.io/v1beta2",
            "BGPPeer",
            Some(NAMESPACE),
            "acme-routed-tor",
        )
        .unwrap();
    assert!(peer["spec"]["password"].is_null(), "never inline");
    assert_eq!(peer["spec"]["passwordSecret"]["name"], "acme-routed-tor");
    let shown = format!(
        "{lb:?} {pool:?} {spec:?} {:?}",
        lb.get_pool(&acme, "routed").await
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    let err = lb.create_pool(&acme, &spec).await.unwrap_err();
    assert!(!format!("{err} {err:?}").contains("hunter2"));
}

#[tokio::test]
async fn bad_input_and_overlaps_send_nothing() {
    let server = server().await;
    server
        .seed_yaml(&format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: admin, namespace: {NAMESPACE}}}\nspec: {{addresses: [192.0.2.0/24]}}\n"
        ))
        .unwrap();
    let lb = backend(&server);
    let acme = tenant("acme");
    let r = server.requests();
    let mut bad = AddressPoolSpec::l2("bad", vec![cidr("203.0.113.0/28")]);
    bad.addresses.push(cidr("203.0.113.8/29"));
    let err = lb.create_pool(&acme, &bad).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("addresses[1]"));
    let err = lb
        .expose(
            &acme,
            &ExposureSpec::new("x", [], vec![ServicePort::tcp(80)]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("selector"));
    assert_eq!(
        r.total(),
        0,
        "nothing sent for bad input: {:?}",
        r.summary()
    );

    let overlapping = AddressPoolSpec::l2("grab", vec![cidr("192.0.2.128/25")]);
    let err = lb.create_pool(&acme, &overlapping).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { kind: ResourceKind::AddressPool, reason, .. } if reason.contains("cluster administrator")),
        "{err}"
    );
    assert_eq!(
        r.writes().len(),
        0,
        "an overlap is refused before any write"
    );
}

#[tokio::test]
async fn deleting_a_pool_removes_every_object_it_made_and_waits_for_its_addresses() {
    let server = server().await;
    let lb = backend(&server);
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    lb.create_pool(&acme, &bgp_spec("routed", "203.0.113.0/28", "pw"))
        .await
        .unwrap();
    lb.create_pool(
        &globex,
        &AddressPoolSpec::l2("routed", vec![cidr("203.0.113.16/28")]),
    )
    .await
    .unwrap();
    lb.expose(&acme, &web(AddressRequest::Pool("routed".into())))
        .await
        .unwrap();
    let states = lb.watch_exposure(&acme, "web").await.unwrap();
    let e = wait::until(states, wait::exposure_assigned(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(e.pool.as_deref(), Some("routed"));
    let err = lb.delete_pool(&acme, "routed").await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(lb.get_pool(&acme, "routed").await.unwrap().assigned, 1);
    lb.release(&acme, "web").await.unwrap();
    assert_eq!(
        lb.get_pool(&acme, "routed").await.unwrap().assigned,
        0,
        "release waits for MetalLB"
    );
    lb.delete_pool(&acme, "routed").await.unwrap();
    let left: Vec<String> = metallb_objects(&server)
        .iter()
        .map(|o| format!("{} {}", o["kind"], o["metadata"]["name"]))
        .collect();
    assert_eq!(
        left,
        [
            "\"IPAddressPool\" \"globex-routed\"",
            "\"L2Advertisement\" \"globex-routed\""
        ],
        "only the other tenant's pool remains"
    );
}

async fn fails_with(lb: &kubecloud_metallb::MetalLb, spec: &ExposureSpec) -> String {
    let acme = tenant("acme");
    lb.expose(&acme, spec).await.unwrap();
    let states = lb.watch_exposure(&acme, &spec.name).await.unwrap();
    // The guard is far longer than the failure may take; the wait itself must end it.
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        wait::until(states, wait::exposure_assigned(), Duration::from_secs(60)),
    )
    .await
    .expect("the wait ends by itself");
    match outcome {
        Err(Error::Failed {
            kind: ResourceKind::Exposure,
            name,
            reason,
        }) => {
            assert_eq!(name, spec.name);
            let got = lb.get_exposure(&acme, &spec.name).await.unwrap();
            assert_eq!(
                got.state,
                ExposureState::Failed {
                    reason: reason.clone()
                }
            );
            reason
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[tokio::test]
async fn exhaustion_a_stray_address_and_a_sharing_conflict_fail_with_metallbs_reason() {
    let server = server().await;
    let lb = backend(&server);
    let acme = tenant("acme");
    let mut tiny = AddressPoolSpec::l2(
        "tiny",
        vec![AddressBlock::Range(
            "203.0.113.1..203.0.113.1".parse().unwrap(),
        )],
    );
    tiny.auto_assign = false;
    lb.create_pool(&acme, &tiny).await.unwrap();
    let pool = || AddressRequest::Pool("tiny".into());
    let first = ExposureSpec {
        name: "first".into(),
        ..web(pool())
    };
    lb.expose(&acme, &first).await.unwrap();
    let states = lb.watch_exposure(&acme, "first").await.unwrap();
    wait::until(states, wait::exposure_assigned(), Duration::from_secs(30))
        .await
        .unwrap();

    let reason = fails_with(
        &lb,
        &ExposureSpec {
            name: "second".into(),
            ..web(pool())
        },
    )
    .await;
    assert_eq!(
        reason,
        // MetalLB v0.16 allocator.go getFreeIPsFromPool: `no available IPs in pool %s`.
        "Failed to allocate IP for \"acme/second\": no available IPs in pool acme-tiny"
    );

    let stray = ExposureSpec {
        name: "stray".into(),
        ..web(AddressRequest::Ip("198.51.100.9".parse().unwrap()))
    };
    let reason = fails_with(&lb, &stray).await;
    assert!(
        // allocator.go Assign: `%q is not allowed in config` of a []net.IP.
        reason.ends_with("[\"198.51.100.9\"] is not allowed in config"),
        "{reason}"
    );

    let sharer = ExposureSpec {
        name: "sharer".into(),
        sharing_key: Some("k".into()),
        ports: vec![ServicePort::tcp(8443)],
        ..web(AddressRequest::Ip("203.0.113.1".parse().unwrap()))
    };
    let reason = fails_with(&lb, &sharer).await;
    assert!(
        reason.contains(
            "can't change sharing key for \"acme/sharer\", address also in use by acme/first"
        ),
        "{reason}"
    );
    let listed = lb.list_exposures(&acme).await.unwrap();
    let failed = listed
        .iter()
        .filter(|e| matches!(e.state, ExposureState::Failed { .. }))
        .count();
    assert_eq!(failed, 3, "{listed:?}");
}

#[tokio::test]
async fn waiting_for_an_address_watches_and_never_polls() {
    let server = server().await;
    let lb = backend(&server);
    let acme = tenant("acme");
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("p", vec![cidr("203.0.113.0/28")]),
    )
    .await
    .unwrap();
    let metallb = server.controller("metallb-controller").unwrap();
    metallb.pause();
    lb.expose(&acme, &web(AddressRequest::Auto)).await.unwrap();
    let r = server.requests();
    r.reset();
    let states = lb.watch_exposure(&acme, "web").await.unwrap();
    let waiting = tokio::spawn(wait::until(
        states,
        wait::exposure_assigned(),
        Duration::from_secs(30),
    ));
    metallb.resume();
    let e = waiting.await.unwrap().unwrap();
    assert_eq!(e.ip, Some("203.0.113.0".parse().unwrap()));
    assert_eq!(
        r.count(Verb::Get, "services"),
        0,
        "no read: the first state and the changes come from the shared watch: {:?}",
        r.summary()
    );
    assert!(r.count(Verb::List, "services") <= 1, "{:?}", r.summary());
    assert_eq!(r.count(Verb::Get, "ipaddresspools"), 0, "{:?}", r.summary());
}

#[tokio::test]
async fn many_exposures_waited_for_at_once_share_one_watch_of_services_and_one_of_events() {
    let server = server().await;
    let lb = backend(&server);
    let acme = tenant("acme");
    // Two addresses for three exposures: the third fails, and only it.
    let two = AddressPoolSpec::l2(
        "two",
        vec![AddressBlock::Range(
            "203.0.113.1..203.0.113.2".parse().unwrap(),
        )],
    );
    lb.create_pool(&acme, &two).await.unwrap();
    let metallb = server.controller("metallb-controller").unwrap();
    metallb.pause();
    let names = ["a", "b", "c"];
    for name in names {
        let spec = ExposureSpec {
            name: name.into(),
            ..web(AddressRequest::Pool("two".into()))
        };
        lb.expose(&acme, &spec).await.unwrap();
    }
    let r = server.requests();
    r.reset();
    let mut waits = Vec::new();
    for name in names {
        let states = lb.watch_exposure(&acme, name).await.unwrap();
        waits.push(tokio::spawn(wait::until(
            states,
            wait::exposure_assigned(),
            Duration::from_secs(30),
        )));
    }
    metallb.resume();
    let mut assigned = 0;
    let mut failed = Vec::new();
    for (name, waiting) in names.iter().zip(waits) {
        match waiting.await.unwrap() {
            Ok(e) => {
                assert!(e.ip.is_some(), "{e:?}");
                assigned += 1;
            }
            Err(err) => failed.push((*name, err.to_string())),
        }
    }
    assert_eq!(assigned, 2, "{failed:?}");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].1.contains("no available IPs"),
        "MetalLB's reason reaches the exposure it names: {failed:?}"
    );
    // Shared: one list and at most one watch of each for the three waits. The watch request may
    // not have gone out yet when every wait already ended on the list's state (a loaded machine),
    // so "at most one" is the property, not "exactly one".
    assert_eq!(r.count(Verb::List, "events"), 1, "{:?}", r.summary());
    assert!(r.count(Verb::Watch, "events") <= 1, "{:?}", r.summary());
    assert!(r.count(Verb::List, "services") <= 1, "{:?}", r.summary());
    assert!(r.count(Verb::Watch, "services") <= 1, "{:?}", r.summary());
}

#[tokio::test]
async fn reexposing_an_unchanged_spec_sends_no_write() {
    let server = server().await;
    let lb = backend(&server);
    let acme = tenant("acme");
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("p", vec![cidr("203.0.113.0/28")]),
    )
    .await
    .unwrap();
    let spec = web(AddressRequest::Pool("p".into()));
    lb.apply_exposure(&acme, &spec).await.unwrap();
    let r = server.requests();
    assert_eq!(r.count(Verb::Apply, "services"), 1);
    r.reset();
    lb.apply_exposure(&acme, &spec).await.unwrap();
    assert_eq!(r.writes().len(), 0, "{:?}", r.summary());
    let err = lb.expose(&acme, &spec).await.unwrap_err();
    assert!(err.is_already_exists(), "{err}");
}

#[tokio::test]
async fn temporary_failures_are_retried_and_dropped_watches_resume() {
    let server = server().await;
    let lb = backend(&server);
    let acme = tenant("acme");
    let faults = server.faults();
    faults.inject(
        Fault::status(503)
            .on_verb(Verb::Apply)
            .on_resource("ipaddresspools")
            .times(2),
    );
    faults.inject(
        Fault::too_many_requests(0)
            .on_verb(Verb::List)
            .on_resource("ipaddresspools")
            .times(1),
    );
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("p", vec![cidr("203.0.113.0/28")]),
    )
    .await
    .unwrap();
    faults.inject(
        Fault::status(409)
            .on_verb(Verb::Apply)
            .on_resource("services")
            .times(1),
    );
    faults.inject(
        Fault::drop_connection()
            .on_verb(Verb::Watch)
            .on_resource("services")
            .times(1),
    );
    lb.expose(&acme, &web(AddressRequest::Auto)).await.unwrap();
    let states = lb.watch_exposure(&acme, "web").await.unwrap();
    let e = wait::until(states, wait::exposure_assigned(), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(e.ip.is_some());
    assert!(server.requests().count_status(503) >= 2);
}

#[tokio::test]
async fn ipv6_pools_and_requested_ipv6_addresses_get_single_stack_ipv6_services() {
    let server = server().await;
    let lb = backend(&server);
    let acme = tenant("acme");
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("v6", vec![cidr("2001:db8:1::/124")]),
    )
    .await
    .unwrap();
    lb.expose(&acme, &web(AddressRequest::Pool("v6".into())))
        .await
        .unwrap();
    let states = lb.watch_exposure(&acme, "web").await.unwrap();
    let e = wait::until(states, wait::exposure_assigned(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(e.ip, Some("2001:db8:1::".parse().unwrap()));
    let wanted: std::net::IpAddr = "2001:db8:1::5".parse().unwrap();
    let picked = ExposureSpec {
        name: "picked".into(),
        ..web(AddressRequest::Ip(wanted))
    };
    lb.expose(&acme, &picked).await.unwrap();
    let states = lb.watch_exposure(&acme, "picked").await.unwrap();
    let e = wait::until(states, wait::exposure_assigned(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!((e.ip, e.pool.as_deref()), (Some(wanted), Some("v6")));
    let pool = lb.get_pool(&acme, "v6").await.unwrap();
    assert_eq!((pool.assigned, pool.available), (2, 14));
    assert_everything_stored_is_valid_upstream(&server);
}

#[tokio::test]
async fn the_administrators_pools_are_shared_usable_and_untouchable() {
    let server = server().await;
    server
        .seed_yaml(&format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: lobby, namespace: {NAMESPACE}}}\n\
             spec: {{addresses: [192.0.2.0/29], autoAssign: false}}\n---\n\
             apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: globex-only, namespace: {NAMESPACE}}}\n\
             spec: {{addresses: [192.0.2.8/29], serviceAllocation: {{namespaces: [globex]}}}}\n---\n\
             apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: everything, namespace: {NAMESPACE}}}\n"
        ))
        .unwrap();
    let lb = backend(&server);
    let acme = tenant("acme");
    lb.create_pool(
        &acme,
        &AddressPoolSpec::l2("own", vec![cidr("203.0.113.0/28")]),
    )
    .await
    .unwrap();
    let pools = lb.list_pools(&acme).await.unwrap();
    let listed: Vec<(&str, bool)> = pools
        .iter()
        .map(|p| (p.spec.name.as_str(), p.shared))
        .collect();
    assert_eq!(listed, [("own", false), ("lobby", true)]);
    let lobby = lb.get_pool(&acme, "lobby").await.unwrap();
    assert_eq!(
        (lobby.assigned, lobby.available, lobby.spec.auto_assign),
        (0, 8, false)
    );
    let err = lb.delete_pool(&acme, "lobby").await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let err = lb.get_pool(&acme, "globex-only").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    lb.expose(&acme, &web(AddressRequest::Pool("lobby".into())))
        .await
        .unwrap();
    let states = lb.watch_exposure(&acme, "web").await.unwrap();
    let e = wait::until(states, wait::exposure_assigned(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        (e.ip, e.pool.as_deref()),
        (Some("192.0.2.0".parse().unwrap()), Some("lobby"))
    );
    assert_eq!(
        e.spec.address,
        AddressRequest::Pool("lobby".into()),
        "reads back by the shared pool's name"
    );
}

#[tokio::test]
async fn peers_of_two_pools_whose_names_collide_are_refused_before_any_write() {
    // Pool `a-b` with peer `c` and pool `a` with peer `b-c` both name their peer objects
    // `acme-a-b-c`: the second pool is refused, naming the pool holding the name.
    let server = server().await;
    let lb = backend(&server);
    let acme = tenant("acme");
    let with_peer = |pool: &str, block: &str, peer: &str| {
        let mut spec = bgp_spec(pool, block, "hunter2-bgp");
        if let Advertisement::Bgp(bgp) = &mut spec.advertisement {
            bgp.peers[0].name = peer.into();
        }
        spec
    };
    lb.create_pool(&acme, &with_peer("a-b", "203.0.113.0/28", "c"))
        .await
        .unwrap();
    let r = server.requests();
    r.reset();
    let err = lb
        .create_pool(&acme, &with_peer("a", "203.0.113.16/28", "b-c"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { kind: ResourceKind::AddressPool, name, reason }
            if name == "a" && reason.contains("\"acme-a-b-c\"") && reason.contains("\"a-b\"")),
        "{err}"
    );
    assert_eq!(
        r.writes().len(),
        0,
        "refused before any write: {:?}",
        r.summary()
    );
    let first = lb.get_pool(&acme, "a-b").await.unwrap();
    assert_eq!(
        first.spec,
        with_peer("a-b", "203.0.113.0/28", "c"),
        "untouched"
    );
}

/// A pool whose create or delete was interrupted after any request reads as incomplete (never
/// as an error, never as a finished pool, never as nothing while parts of it remain):
/// `create_pool` completes it to the spec, `delete_pool` removes every part of it.
#[tokio::test]
async fn a_pool_interrupted_half_way_reads_as_incomplete_and_can_be_completed_or_deleted() {
    let spec = bgp_spec("routed", "203.0.113.0/28", "pw");
    let acme = tenant("acme");
    // How many requests a whole create and a whole delete send: each is an interruption point.
    let (creating, deleting, parts) = {
        let server = server().await;
        let lb = backend(&server);
        let before = server.requests().total();
        lb.create_pool(&acme, &spec).await.unwrap();
        let created = server.requests().total();
        let parts = metallb_objects(&server).len();
        lb.delete_pool(&acme, "routed").await.unwrap();
        (created - before, server.requests().total() - created, parts)
    };
    let interrupted = |server: &TestServer, k: usize| {
        let requests = server.requests();
        requests.reached(requests.total() + k)
    };
    for k in 1..creating {
        let server = server().await;
        let lb = backend(&server);
        tokio::select! {
            created = lb.create_pool(&acme, &spec) => { created.unwrap(); }
            _ = interrupted(&server, k) => {}
        }
        let pools = lb
            .list_pools(&acme)
            .await
            .unwrap_or_else(|e| panic!("create {k}: {e}"));
        let stored = metallb_objects(&server).len();
        match pools.as_slice() {
            [] => assert_eq!(stored, 0, "create {k}: parts nothing lists"),
            [pool] => assert_eq!(pool.incomplete, stored < parts, "create {k}: {pool:?}"),
            more => panic!("create {k}: {more:?}"),
        }
        let done = lb.create_pool(&acme, &spec).await.unwrap();
        assert!(!done.incomplete);
        let read = lb.get_pool(&acme, "routed").await.unwrap();
        assert_eq!(
            (read.spec, read.incomplete),
            (spec.clone(), false),
            "create {k}"
        );
        lb.delete_pool(&acme, "routed").await.unwrap();
        assert!(metallb_objects(&server).is_empty(), "create {k}");
    }
    for k in 1..deleting {
        let server = server().await;
        let lb = backend(&server);
        lb.create_pool(&acme, &spec).await.unwrap();
        tokio::select! {
            deleted = lb.delete_pool(&acme, "routed") => { deleted.unwrap(); }
            _ = interrupted(&server, k) => {}
        }
        let pools = lb
            .list_pools(&acme)
            .await
            .unwrap_or_else(|e| panic!("delete {k}: {e}"));
        let stored = metallb_objects(&server).len();
        match pools.as_slice() {
            [] => assert_eq!(stored, 0, "delete {k}: parts nothing lists"),
            [pool] => assert_eq!(pool.incomplete, stored < parts, "delete {k}: {pool:?}"),
            more => panic!("delete {k}: {more:?}"),
        }
        if !pools.is_empty() {
            lb.delete_pool(&acme, "routed").await.unwrap();
        }
        assert!(metallb_objects(&server).is_empty(), "delete {k}");
        assert!(lb.list_pools(&acme).await.unwrap().is_empty());
    }
}
