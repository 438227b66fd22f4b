//! The simulated LB-IPAM of the Cilium operator, through the API: allocation order, pool
//! selection, `allowFirstLastIPs`, disabled and conflicting pools, sharing, and the exact
//! condition texts of `operator/pkg/lbipam/lbipam.go`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use kubecloud_testkit::{CiliumLbIpam, TestServer};
use serde_json::{Value, json};

async fn server() -> TestServer {
    TestServer::builder()
        .controller(CiliumLbIpam)
        .seed_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: acme}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: globex}\n",
        )
        .start()
        .await
        .expect("server")
}

fn pool(name: &str, blocks: Value, extra: Value) -> Value {
    let mut p = json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumLoadBalancerIPPool",
        "metadata": {"name": name},
        "spec": {"blocks": blocks},
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

fn condition(s: &Service) -> Option<(String, String, String)> {
    let c = s
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "cilium.io/IPAMRequestSatisfied")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits, on a watch, until LB-IPAM has written the service's condition; returns the service's
/// first address (if any) and the condition's `(status, reason, message)`.
async fn settled(
    server: &TestServer,
    ns: &str,
    name: &str,
) -> (Option<String>, (String, String, String)) {
    let api: Api<Service> = Api::namespaced(server.client(), ns);
    let svc = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(api, name, |s: Option<&Service>| {
            s.and_then(condition).is_some()
        }),
    )
    .await
    .expect("settled within 10 s")
    .expect("watch")
    .expect("exists");
    let ip = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| i.first())
        .and_then(|i| i.ip.clone());
    (ip, condition(&svc).unwrap())
}

async fn pool_condition(
    server: &TestServer,
    name: &str,
    kind: &'static str,
) -> (String, String, String) {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cilium.io", "v2", "CiliumLoadBalancerIPPool"),
        "ciliumloadbalancerippools",
    );
    let api: Api<DynamicObject> = Api::all_with(server.client(), &ar);
    let find = move |p: &DynamicObject| {
        p.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .map(|c| {
                let s = |f: &str| c[f].as_str().unwrap_or_default().to_string();
                (s("status"), s("reason"), s("message"))
            })
    };
    let p = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(api, name, move |p: Option<&DynamicObject>| {
            p.and_then(find).is_some()
        }),
    )
    .await
    .expect("pool status within 10 s")
    .expect("watch")
    .expect("exists");
    find(&p).unwrap()
}

fn satisfied() -> (String, String, String) {
    ("True".into(), "satisfied".into(), String::new())
}

#[tokio::test]
async fn any_address_comes_from_the_smallest_free_block_first() {
    let server = server().await;
    let c = server.cluster();
    c.create(pool("p", json!([{"cidr": "203.0.113.0/29"}]), json!({})))
        .unwrap();
    c.create(service(
        "acme",
        "a",
        80,
        json!({"lbipam.cilium.io/ips": "203.0.113.5"}),
    ))
    .unwrap();
    assert_eq!(
        settled(&server, "acme", "a").await,
        (Some("203.0.113.5".into()), satisfied())
    );
    // Free blocks .0-.4 and .6-.7: `AllocAny` takes the first address of the smaller.
    c.create(service("acme", "b", 80, json!({}))).unwrap();
    assert_eq!(
        settled(&server, "acme", "b").await.0.as_deref(),
        Some("203.0.113.6")
    );
    assert_eq!(
        pool_condition(&server, "p", "cilium.io/IPsUsed").await,
        ("Unknown".into(), "noreason".into(), "2".into())
    );
}

#[tokio::test]
async fn first_and_last_addresses_are_reserved_when_not_allowed() {
    let server = server().await;
    let c = server.cluster();
    c.create(pool(
        "p",
        json!([{"cidr": "203.0.113.0/30"}]),
        json!({"allowFirstLastIPs": "No"}),
    ))
    .unwrap();
    for (name, want) in [("a", "203.0.113.1"), ("b", "203.0.113.2")] {
        c.create(service("acme", name, 80, json!({}))).unwrap();
        assert_eq!(
            settled(&server, "acme", name).await.0.as_deref(),
            Some(want)
        );
    }
    c.create(service("acme", "c", 80, json!({}))).unwrap();
    assert_eq!(
        settled(&server, "acme", "c").await,
        (
            None,
            (
                "False".into(),
                "out_of_ips".into(),
                "All enabled CiliumLoadBalancerIPPools that match this service ran out of allocatable IPs".into()
            )
        )
    );
    c.create(service(
        "acme",
        "d",
        80,
        json!({"lbipam.cilium.io/ips": "203.0.113.3"}),
    ))
    .unwrap();
    assert_eq!(
        settled(&server, "acme", "d").await.1.1,
        "already_allocated",
        "a reserved address is taken"
    );
    // With a sharing key, `Update` hands the reserved address over (lbipam.go does no more).
    c.create(service(
        "acme",
        "e",
        80,
        json!({"lbipam.cilium.io/ips": "203.0.113.0", "lbipam.cilium.io/sharing-key": "k"}),
    ))
    .unwrap();
    assert_eq!(
        settled(&server, "acme", "e").await,
        (Some("203.0.113.0".into()), satisfied())
    );
}

#[tokio::test]
async fn selectors_disabled_and_conflicting_pools_leave_services_without_a_pool() {
    let server = server().await;
    let c = server.cluster();
    let only_globex =
        json!({"serviceSelector": {"matchLabels": {"io.kubernetes.service.namespace": "globex"}}});
    c.create(pool(
        "globex",
        json!([{"start": "198.51.100.1", "stop": "198.51.100.2"}]),
        only_globex,
    ))
    .unwrap();
    c.create(pool(
        "off",
        json!([{"cidr": "192.0.2.0/28"}]),
        json!({"disabled": true}),
    ))
    .unwrap();
    c.create(service("acme", "a", 80, json!({}))).unwrap();
    let no_pool = (
        "False".to_string(),
        "no_pool".to_string(),
        "There are no enabled CiliumLoadBalancerIPPools that match this service".to_string(),
    );
    assert_eq!(settled(&server, "acme", "a").await, (None, no_pool.clone()));
    c.create(service(
        "acme",
        "b",
        80,
        json!({"lbipam.cilium.io/ips": "198.51.100.2"}),
    ))
    .unwrap();
    assert_eq!(
        settled(&server, "acme", "b").await.1,
        (
            "False".into(),
            "pool_selector_mismatch".into(),
            "The pool with the CIDR containing '198.51.100.2', doesn't select this service".into()
        )
    );
    c.create(service("globex", "g", 80, json!({}))).unwrap();
    assert_eq!(
        settled(&server, "globex", "g").await.0.as_deref(),
        Some("198.51.100.1")
    );
    // A newer pool overlapping the older one is marked and never used.
    c.create(pool(
        "late",
        json!([{"cidr": "198.51.100.0/30"}]),
        json!({}),
    ))
    .unwrap();
    assert_eq!(
        pool_condition(&server, "late", "cilium.io/PoolConflict").await,
        (
            "True".into(),
            "cidr_overlap".into(),
            "Pool conflicts since range '198.51.100.0 - 198.51.100.3' overlaps range '198.51.100.1 - 198.51.100.2' from IP Pool 'globex'".into()
        )
    );
    assert_eq!(
        pool_condition(&server, "globex", "cilium.io/PoolConflict").await,
        ("False".into(), "resolved".into(), String::new())
    );
    c.create(service("acme", "c", 81, json!({}))).unwrap();
    assert_eq!(settled(&server, "acme", "c").await, (None, no_pool));
}

#[tokio::test]
async fn sharing_needs_the_same_key_namespace_policy_and_distinct_ports() {
    let server = server().await;
    let c = server.cluster();
    c.create(pool("p", json!([{"cidr": "203.0.113.0/28"}]), json!({})))
        .unwrap();
    let key = |k: &str| json!({"lbipam.cilium.io/sharing-key": k});
    c.create(service("acme", "a", 80, key("k"))).unwrap();
    let ip = settled(&server, "acme", "a").await.0.unwrap();
    c.create(service("acme", "b", 443, key("k"))).unwrap();
    assert_eq!(
        settled(&server, "acme", "b").await.0,
        Some(ip.clone()),
        "shared"
    );
    c.create(service("acme", "clash", 80, key("k"))).unwrap();
    let other = settled(&server, "acme", "clash").await.0.unwrap();
    assert_ne!(other, ip, "a clashing port gets another address");
    // Across namespaces only when both allow it.
    c.create(service(
        "globex",
        "x",
        8080,
        json!({"lbipam.cilium.io/sharing-key": "k", "lbipam.cilium.io/ips": ip}),
    ))
    .unwrap();
    assert_eq!(
        settled(&server, "globex", "x").await.1,
        (
            "False".into(),
            "already_allocated_incompatible_service".into(),
            format!(
                "The IP '{ip}' is already allocated to an incompatible service. Reason: different and not permitted namespace"
            )
        )
    );
}
