//! The simulated MetalLB controller: allocation through the API, MetalLB's events and pool
//! status, and properties of the pure allocator.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use kubecloud_testkit::metallb::{Allocator, PoolConfig, ServiceRequest, parse_addresses};
use kubecloud_testkit::{MetalLbController, TestServer};
use proptest::prelude::*;
use serde_json::{Value, json};

async fn server() -> TestServer {
    TestServer::builder()
        .controller(MetalLbController::new())
        .seed_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: metallb-system}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: acme}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: globex}\n",
        )
        .start()
        .await
        .expect("server")
}

fn pool(name: &str, addresses: &[&str], extra: Value) -> Value {
    let mut p = json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": {"addresses": addresses},
    });
    if let (Some(spec), Some(extra)) = (p["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    p
}

fn service(ns: &str, name: &str, port: u16, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "selector": {"app": name},
                 "ports": [{"name": "p", "port": port, "protocol": "TCP"}]},
    })
}

/// Waits, on a watch, until the service has an address; returns it.
async fn assigned(server: &TestServer, ns: &str, name: &str) -> Value {
    let api: Api<Service> = Api::namespaced(server.client(), ns);
    let has_ip = |s: Option<&Service>| {
        s.and_then(|s| s.status.as_ref())
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .is_some_and(|i| !i.is_empty())
    };
    let svc = tokio::time::timeout(Duration::from_secs(10), await_condition(api, name, has_ip))
        .await
        .expect("assigned within 10 s")
        .expect("watch")
        .expect("exists");
    serde_json::to_value(svc).unwrap()
}

/// Waits, on a watch of the service's events, for MetalLB's `AllocationFailed`; returns its
/// message.
async fn failed(server: &TestServer, ns: &str, name: &str) -> String {
    let api: Api<Event> = Api::namespaced(server.client(), ns);
    let config = watcher::Config::default().fields(&format!("involvedObject.name={name}"));
    let mut events = watcher(api, config)
        .applied_objects()
        .try_filter(|e| futures::future::ready(e.reason.as_deref() == Some("AllocationFailed")))
        .boxed();
    let found = events.try_next();
    tokio::time::timeout(Duration::from_secs(10), found)
        .await
        .expect("failed within 10 s")
        .expect("watch")
        .and_then(|e| e.message)
        .expect("a message")
}

/// Waits, on a watch, until pool `name`'s status says `assigned` IPv4 addresses.
async fn pool_assigned(server: &TestServer, name: &str, assigned: i64) -> Value {
    let gvk = GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "ipaddresspools");
    let api: Api<DynamicObject> = Api::namespaced_with(server.client(), "metallb-system", &ar);
    let cond = move |p: Option<&DynamicObject>| {
        p.is_some_and(|p| p.data["status"]["assignedIPv4"] == assigned)
    };
    let p = tokio::time::timeout(Duration::from_secs(10), await_condition(api, name, cond))
        .await
        .expect("pool status within 10 s")
        .expect("watch")
        .expect("exists");
    serde_json::to_value(p).unwrap()
}

fn ip_of(svc: &Value) -> Option<String> {
    svc["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .map(String::from)
}

#[tokio::test]
async fn assigns_from_the_pool_writes_annotation_status_and_pool_usage() {
    let server = server().await;
    let api = server.cluster();
    api.create(pool("p", &["192.0.2.0/30"], json!({}))).unwrap();
    api.create(service("acme", "web", 80, json!({}))).unwrap();
    let svc = assigned(&server, "acme", "web").await;
    assert_eq!(ip_of(&svc).as_deref(), Some("192.0.2.0"));
    assert_eq!(
        svc["metadata"]["annotations"]["metallb.io/ip-allocated-from-pool"],
        "p"
    );
    let events = api.list("v1", "Event", Some("acme")).unwrap();
    assert!(
        events.iter().any(|e| e["reason"] == "IPAllocated"),
        "{events:?}"
    );
    let p = api
        .get(
            "metallb.io/v1beta1",
            "IPAddressPool",
            Some("metallb-system"),
            "p",
        )
        .unwrap();
    assert_eq!(
        p["status"]["assignedIPv4"], 1,
        "counted before the address is published"
    );
    assert_eq!(p["status"]["availableIPv4"], 3);
    assert_eq!(p["status"]["assignedIPv6"], 0);
    api.delete("v1", "Service", Some("acme"), "web").unwrap();
    let p = pool_assigned(&server, "p", 0).await;
    assert_eq!(p["status"]["availableIPv4"], 4);
}

#[tokio::test]
async fn exhaustion_outside_address_and_sharing_conflicts_are_reported_as_events() {
    let server = server().await;
    let api = server.cluster();
    api.create(pool("tiny", &["192.0.2.10-192.0.2.10"], json!({})))
        .unwrap();
    api.create(service(
        "acme",
        "a",
        80,
        json!({"metallb.io/address-pool": "tiny"}),
    ))
    .unwrap();
    let a = assigned(&server, "acme", "a").await;
    assert_eq!(ip_of(&a).as_deref(), Some("192.0.2.10"));

    api.create(service(
        "acme",
        "b",
        81,
        json!({"metallb.io/address-pool": "tiny"}),
    ))
    .unwrap();
    let message = failed(&server, "acme", "b").await;
    assert_eq!(
        message, "Failed to allocate IP for \"acme/b\": no available IPs in pool tiny",
        "allocator.go getFreeIPsFromPool: `no available IPs in pool %s`"
    );

    api.create(service(
        "acme",
        "c",
        80,
        json!({"metallb.io/loadBalancerIPs": "198.51.100.7"}),
    ))
    .unwrap();
    let message = failed(&server, "acme", "c").await;
    assert_eq!(
        message,
        "Failed to allocate IP for \"acme/c\": [\"198.51.100.7\"] is not allowed in config",
        "allocator.go Assign: `%q is not allowed in config` of a []net.IP"
    );

    api.create(service(
        "acme",
        "d",
        443,
        json!({"metallb.io/loadBalancerIPs": "192.0.2.10", "metallb.io/allow-shared-ip": "k"}),
    ))
    .unwrap();
    let message = failed(&server, "acme", "d").await;
    assert!(
        message.contains("can't change sharing key for \"acme/d\""),
        "{message}"
    );
    // Freeing the address lets the pending service in the pool have it.
    api.delete("v1", "Service", Some("acme"), "a").unwrap();
    let b = assigned(&server, "acme", "b").await;
    assert_eq!(ip_of(&b).as_deref(), Some("192.0.2.10"));
}

#[tokio::test]
async fn sharing_keys_share_one_address_unless_ports_clash() {
    let server = server().await;
    let api = server.cluster();
    api.create(pool("p", &["192.0.2.0/29"], json!({}))).unwrap();
    let shared = |_port: u16| json!({"metallb.io/allow-shared-ip": "front"});
    api.create(service("acme", "http", 80, shared(80))).unwrap();
    let http = assigned(&server, "acme", "http").await;
    api.create(service("acme", "https", 443, shared(443)))
        .unwrap();
    let https = assigned(&server, "acme", "https").await;
    assert_eq!(ip_of(&http), ip_of(&https));
    api.create(service("acme", "clash", 80, shared(80)))
        .unwrap();
    let clash = assigned(&server, "acme", "clash").await;
    assert_ne!(
        ip_of(&clash),
        ip_of(&http),
        "a clashing port gets another address"
    );
    let p = api
        .get(
            "metallb.io/v1beta1",
            "IPAddressPool",
            Some("metallb-system"),
            "p",
        )
        .unwrap();
    assert_eq!(
        p["status"]["assignedIPv4"], 2,
        "a shared address counts once"
    );
}

#[tokio::test]
async fn service_allocation_auto_assign_and_buggy_ips_are_honoured() {
    let server = server().await;
    let api = server.cluster();
    api.create(pool(
        "acme-only",
        &["192.0.2.0/30"],
        json!({"avoidBuggyIPs": true, "serviceAllocation": {"namespaces": ["acme"]}}),
    ))
    .unwrap();
    api.create(pool(
        "manual",
        &["198.51.100.0/30"],
        json!({"autoAssign": false}),
    ))
    .unwrap();
    api.create(service("acme", "web", 80, json!({}))).unwrap();
    let web = assigned(&server, "acme", "web").await;
    assert_eq!(ip_of(&web).as_deref(), Some("192.0.2.1"), ".0 is skipped");
    api.create(service("globex", "web", 80, json!({}))).unwrap();
    let message = failed(&server, "globex", "web").await;
    assert!(message.ends_with("no available IPs"));
    api.create(service(
        "globex",
        "poach",
        80,
        json!({"metallb.io/address-pool": "acme-only"}),
    ))
    .unwrap();
    let message = failed(&server, "globex", "poach").await;
    assert!(message.ends_with("pool acme-only not compatible for ip assignment"));
    api.create(service(
        "globex",
        "manual",
        80,
        json!({"metallb.io/address-pool": "manual"}),
    ))
    .unwrap();
    let m = assigned(&server, "globex", "manual").await;
    assert_eq!(ip_of(&m).as_deref(), Some("198.51.100.0"));
}

fn request(i: usize, key: Option<u8>, port: u16, ipv6: bool) -> ServiceRequest {
    ServiceRequest {
        key: format!("ns/s{i}"),
        namespace: "ns".into(),
        ports: vec![("TCP".into(), port)],
        sharing_key: key.map(|k| format!("k{k}")),
        ipv6,
        ..ServiceRequest::default()
    }
}

proptest! {
    #[test]
    fn assigned_addresses_lie_in_their_pool_and_are_shared_only_when_allowed(
        services in proptest::collection::vec((proptest::option::of(0u8..3), 79u16..83, any::<bool>()), 1..40),
        releases in proptest::collection::vec(0usize..40, 0..10),
        buggy in any::<bool>(),
    ) {
        let pools = vec![
            PoolConfig { name: "a".into(), blocks: parse_addresses("192.0.2.254-192.0.3.1").unwrap(),
                auto_assign: true, avoid_buggy_ips: buggy, ..PoolConfig::default() },
            PoolConfig { name: "b".into(), blocks: parse_addresses("2001:db8::/126").unwrap(),
                auto_assign: true, ..PoolConfig::default() },
        ];
        let configs = pools.clone();
        let mut alloc = Allocator::new(pools);
        let requests: Vec<ServiceRequest> = services
            .iter()
            .enumerate()
            .map(|(i, (k, p, v6))| request(i, *k, *p, *v6))
            .collect();
        for (i, r) in requests.iter().enumerate() {
            let _ = alloc.allocate(r);
            if releases.contains(&i) {
                alloc.release(&format!("ns/s{}", i / 2));
            }
        }
        let by_key: std::collections::BTreeMap<&str, &ServiceRequest> =
            requests.iter().map(|r| (r.key.as_str(), r)).collect();
        let all = alloc.assignments();
        let assignments: Vec<_> = all.iter().collect();
        for (svc, a) in &assignments {
            let pool = configs.iter().find(|p| p.name == a.pool).unwrap();
            prop_assert!(pool.blocks.iter().any(|b| b.contains(&a.ip)), "{} outside {}", a.ip, a.pool);
            if pool.avoid_buggy_ips && let IpAddr::V4(v4) = a.ip {
                prop_assert!(!matches!(v4.octets()[3], 0 | 255), "buggy {}", a.ip);
            }
            for (other, b) in &assignments {
                if svc == other || a.ip != b.ip {
                    continue;
                }
                let (x, y) = (by_key[svc.as_str()], by_key[other.as_str()]);
                prop_assert!(x.sharing_key.is_some() && x.sharing_key == y.sharing_key,
                    "{svc} and {other} share {} without a common key", a.ip);
                prop_assert!(x.ports != y.ports, "{svc} and {other} clash on {:?}", x.ports);
            }
        }
        // Usage counts distinct addresses.
        for pool in ["a", "b"] {
            let distinct: BTreeSet<IpAddr> = assignments.iter().filter(|(_, a)| a.pool == pool).map(|(_, a)| a.ip).collect();
            let u = alloc.usage(pool);
            prop_assert_eq!(u.assigned_v4 + u.assigned_v6, distinct.len() as i64);
        }
    }
}

fn configs(pools: &[Value]) -> Vec<PoolConfig> {
    let namespaces = [
        ("acme", json!({"tier": "gold"})),
        ("globex", json!({"tier": "tin"})),
    ]
    .into_iter()
    .map(|(n, l)| {
        let labels = l
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        (n.to_string(), labels)
    })
    .collect();
    kubecloud_testkit::metallb::pools_config(pools, &namespaces).unwrap()
}

fn svc_in(ns: &str, name: &str) -> ServiceRequest {
    ServiceRequest {
        key: format!("{ns}/{name}"),
        namespace: ns.into(),
        ports: vec![("TCP".into(), 80)],
        ..ServiceRequest::default()
    }
}

#[test]
fn pinned_pools_go_first_by_priority_and_the_rest_only_without_service_allocation() {
    // allocator.go Allocate / pinnedPoolsForService / sortPools: priority > 0 first, lower
    // first; then pools with autoAssign and no serviceAllocation; autoAssign false never.
    let pools = [
        pool(
            "low",
            &["192.0.2.0/30"],
            json!({"serviceAllocation": {"priority": 20, "namespaces": ["acme"]}}),
        ),
        pool(
            "high",
            &["198.51.100.0/30"],
            json!({"serviceAllocation": {"priority": 10, "namespaceSelectors": [{"matchLabels": {"tier": "gold"}}]}}),
        ),
        pool("open", &["203.0.113.0/30"], json!({})),
        pool("manual", &["203.0.113.8/30"], json!({"autoAssign": false})),
    ];
    let mut alloc = Allocator::new(configs(&pools));
    let a = alloc.allocate(&svc_in("acme", "a")).unwrap();
    assert_eq!(
        (a.pool.as_str(), a.ip.to_string().as_str()),
        ("high", "198.51.100.0")
    );
    let g = alloc.allocate(&svc_in("globex", "g")).unwrap();
    assert_eq!(g.pool, "open", "a pinned pool is not for other namespaces");
    // A pool with serviceAllocation is never in the unpinned group.
    let mut only_pinned = Allocator::new(configs(&pools[..2]));
    assert_eq!(
        only_pinned.allocate(&svc_in("globex", "g")).unwrap_err(),
        "no available IPs"
    );
    // The address-pool annotation reaches an autoAssign: false pool (AllocateFromPool).
    let m = alloc
        .allocate_from_pool(&svc_in("globex", "m"), "manual")
        .unwrap();
    assert_eq!(m.ip.to_string(), "203.0.113.8");
    assert_eq!(
        alloc
            .allocate_from_pool(&svc_in("globex", "x"), "nope")
            .unwrap_err(),
        "unknown pool \"nope\""
    );
    assert_eq!(
        alloc
            .allocate_from_pool(&svc_in("globex", "y"), "high")
            .unwrap_err(),
        "pool high not compatible for ip assignment"
    );
}

#[test]
fn sharing_needs_the_same_sharing_key_and_backend_key() {
    // allocator.go sharingOK: same non-empty sharing key and same backend key
    // (k8salloc.BackendKey: the selector under externalTrafficPolicy: Local).
    let mut alloc = Allocator::new(configs(&[pool("p", &["192.0.2.8/30"], json!({}))]));
    let local = |name: &str, port: u16, backend: &str| ServiceRequest {
        sharing_key: Some("k".into()),
        backend_key: backend.into(),
        ports: vec![("TCP".into(), port)],
        ..svc_in("acme", name)
    };
    let ip = "192.0.2.8".parse().unwrap();
    alloc.assign(&local("a", 80, "app=a"), ip).unwrap();
    assert_eq!(
        alloc.assign(&local("b", 443, "app=b"), ip).unwrap_err(),
        "can't change sharing key for \"acme/b\", address also in use by acme/a"
    );
    alloc.assign(&local("c", 443, "app=a"), ip).unwrap();
    assert_eq!(
        alloc.assign(&local("d", 443, "app=a"), ip).unwrap_err(),
        "port TCP/443 is already in use on \"192.0.2.8\""
    );
    // Dynamic allocation takes the lowest address it may use: a shareable one counts.
    assert_eq!(alloc.allocate(&local("e", 8080, "app=a")).unwrap().ip, ip);
    assert_eq!(
        alloc
            .allocate(&local("f", 8080, "app=f"))
            .unwrap()
            .ip
            .to_string(),
        "192.0.2.9"
    );
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255_only_when_asked() {
    // allocator.go ipConfusesBuggyFirmwares / getIPFromCIDR / poolFor.
    let mut plain = Allocator::new(configs(&[pool("p", &["192.0.2.0/24"], json!({}))]));
    assert_eq!(
        plain.allocate(&svc_in("acme", "a")).unwrap().ip.to_string(),
        "192.0.2.0"
    );
    let mut careful = Allocator::new(configs(&[pool(
        "p",
        &["192.0.2.0/24"],
        json!({"avoidBuggyIPs": true}),
    )]));
    assert_eq!(
        careful
            .allocate(&svc_in("acme", "a"))
            .unwrap()
            .ip
            .to_string(),
        "192.0.2.1"
    );
    assert_eq!(
        careful
            .assign(&svc_in("acme", "b"), "192.0.2.255".parse().unwrap())
            .unwrap_err(),
        "[\"192.0.2.255\"] is not allowed in config"
    );
    assert_eq!(careful.usage("p").available_v4, 254 - 1);
}

#[test]
fn invalid_configurations_are_rejected_as_metallb_rejects_them() {
    // config.go poolsFor / addressPoolServiceAllocationsFromCR.
    let namespaces = Default::default();
    let overlap = [
        pool("a", &["192.0.2.0/24"], json!({})),
        pool("b", &["192.0.2.128-192.0.2.130"], json!({})),
    ];
    assert!(
        kubecloud_testkit::metallb::pools_config(&overlap, &namespaces)
            .unwrap_err()
            .contains("overlaps with already defined CIDR")
    );
    let bad_selector = [pool(
        "a",
        &["192.0.2.0/24"],
        json!({"serviceAllocation": {"serviceSelectors": [{"matchExpressions": [{"key": "x", "operator": "In"}]}]}}),
    )];
    assert!(kubecloud_testkit::metallb::pools_config(&bad_selector, &namespaces).is_err());
    let duplicate = [pool(
        "a",
        &["192.0.2.0/24"],
        json!({"serviceAllocation": {"namespaces": ["acme", "acme"]}}),
    )];
    assert!(kubecloud_testkit::metallb::pools_config(&duplicate, &namespaces).is_err());
}

#[tokio::test]
async fn a_held_address_no_pool_allows_is_cleared_with_an_event_and_replaced() {
    // service.go convergeBalancer: Assign of the held address fails -> Infof ClearAssignment,
    // then allocateIPs.
    let server = server().await;
    let api = server.cluster();
    api.create(pool("old", &["192.0.2.10/32"], json!({})))
        .unwrap();
    api.create(pool("new", &["198.51.100.10/32"], json!({})))
        .unwrap();
    api.create(service(
        "acme",
        "web",
        80,
        json!({"metallb.universe.tf/address-pool": "old"}),
    ))
    .unwrap();
    let web = assigned(&server, "acme", "web").await;
    assert_eq!(
        ip_of(&web).as_deref(),
        Some("192.0.2.10"),
        "deprecated annotation read"
    );
    api.merge_patch(
        "v1",
        "Service",
        Some("acme"),
        "web",
        &json!({"metadata": {"annotations": {"metallb.universe.tf/address-pool": null}}}),
    )
    .unwrap();
    api.delete(
        "metallb.io/v1beta1",
        "IPAddressPool",
        Some("metallb-system"),
        "old",
    )
    .unwrap();
    let events: Api<Event> = Api::namespaced(server.client(), "acme");
    let stream = watcher(events, watcher::Config::default()).applied_objects();
    futures::pin_mut!(stream);
    let cleared = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = stream.try_next().await.unwrap() {
            if e.reason.as_deref() == Some("ClearAssignment") {
                return e;
            }
        }
        panic!("watch ended")
    })
    .await
    .expect("ClearAssignment in time");
    assert_eq!(
        cleared.message.as_deref(),
        Some(
            "current IP for \"acme/web\" not allowed by config, will attempt for new IP assignment: [\"192.0.2.10\"] is not allowed in config"
        )
    );
    let api_svc: Api<Service> = Api::namespaced(server.client(), "acme");
    let moved = await_condition(api_svc, "web", |s: Option<&Service>| {
        s.and_then(|s| {
            s.status
                .as_ref()?
                .load_balancer
                .as_ref()?
                .ingress
                .as_ref()?
                .first()?
                .ip
                .clone()
        })
        .is_some_and(|ip| ip == "198.51.100.10")
    });
    tokio::time::timeout(Duration::from_secs(10), moved)
        .await
        .expect("reassigned in time")
        .unwrap();
}
