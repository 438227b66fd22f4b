//! The simulated kube-vip-cloud-provider (and kube-vip), through the API: legacy
//! `spec.loadBalancerIP`, namespace then global pools, `allow-share-<namespace>`, the `.0`/`.255`
//! rule, the finalizer, and the exact Event texts of `pkg/provider/loadBalancer.go` and
//! `pkg/ipam/ipam.go`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::wait::await_condition;
use kubecloud_testkit::{KubeVipCloudProvider, TestServer};
use serde_json::{Value, json};

async fn server(data: Value) -> TestServer {
    let server = TestServer::builder()
        .controller(KubeVipCloudProvider::new())
        .seed_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: acme}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: globex}\n",
        )
        .start()
        .await
        .expect("server");
    server
        .cluster()
        .seed(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubevip", "namespace": "kube-system"},
            "data": data,
        }))
        .expect("config map");
    server
}

fn service(ns: &str, name: &str, port: u16, spec: Value) -> Value {
    let mut s = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": "LoadBalancer", "selector": {"app": name},
                 "ports": [{"name": "p", "port": port, "protocol": "TCP"}]},
    });
    if let (Some(o), Some(extra)) = (s["spec"].as_object_mut(), spec.as_object()) {
        o.extend(extra.clone());
    }
    s
}

/// Waits on a watch until kube-vip has written the Service's ingress; returns its address.
async fn address(server: &TestServer, ns: &str, name: &str) -> String {
    let api: Api<Service> = Api::namespaced(server.client(), ns);
    let svc = tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(api, name, |s: Option<&Service>| first_ingress(s).is_some()),
    )
    .await
    .expect("assigned within 10 s")
    .expect("watch")
    .expect("exists");
    first_ingress(Some(&svc)).unwrap()
}

fn first_ingress(s: Option<&Service>) -> Option<String> {
    s?.status
        .as_ref()?
        .load_balancer
        .as_ref()?
        .ingress
        .as_ref()?
        .first()?
        .ip
        .clone()
}

/// Waits until the provider's Warning Event about the Service appears; returns its reason and
/// message.
async fn warning(server: &TestServer, ns: &str, name: &str) -> (String, String) {
    let api: Api<Event> = Api::namespaced(server.client(), ns);
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = std::pin::pin!(kube::runtime::watcher(
            api.clone(),
            kube::runtime::watcher::Config::default()
        ));
        use futures::StreamExt;
        while stream.next().await.is_some() {
            let events = api.list(&ListParams::default()).await.unwrap();
            if let Some(e) = events.items.iter().find(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.involved_object.name.as_deref() == Some(name)
            }) {
                return (
                    e.reason.clone().unwrap_or_default(),
                    e.message.clone().unwrap_or_default(),
                );
            }
        }
        panic!("event watch ended");
    })
    .await
    .expect("a warning within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_skip_dot_zero_and_a_full_cidr_says_so_with_the_namespace() {
    let server = server(json!({"cidr-global": "10.0.0.0/30"})).await;
    let created = server
        .cluster()
        .create(service("acme", "a", 80, json!({})))
        .unwrap();
    assert!(created["metadata"]["finalizers"].is_null());
    assert_eq!(address(&server, "acme", "a").await, "10.0.0.1");
    for (name, want) in [("b", "10.0.0.2"), ("c", "10.0.0.3")] {
        server
            .cluster()
            .create(service("globex", name, 80, json!({})))
            .unwrap();
        assert_eq!(address(&server, "globex", name).await, want);
    }
    server
        .cluster()
        .create(service("globex", "d", 80, json!({})))
        .unwrap();
    assert_eq!(
        warning(&server, "globex", "d").await,
        (
            "SyncLoadBalancerFailed".to_string(),
            "Error syncing load balancer: failed to ensure load balancer: no addresses available in [globex] cidr [10.0.0.0/30]".to_string()
        )
    );
    let a = server
        .cluster()
        .get("v1", "Service", Some("acme"), "a")
        .unwrap();
    assert_eq!(a["metadata"]["labels"]["implementation"], "kube-vip");
    assert_eq!(
        a["metadata"]["annotations"]["kube-vip.io/loadbalancerIPs"],
        "10.0.0.1"
    );
    assert_eq!(a["spec"]["loadBalancerIP"], "10.0.0.1");
    assert_eq!(
        a["metadata"]["finalizers"],
        json!(["service.kubernetes.io/load-balancer-cleanup"])
    );
    assert_eq!(
        a["status"]["loadBalancer"]["ingress"][0]["ports"],
        json!([{"port": 80, "protocol": "TCP"}])
    );
    // Deleting: the provider drops its finalizer and the Service goes; its address is free.
    let api: Api<Service> = Api::namespaced(server.client(), "acme");
    api.delete("a", &DeleteParams::default()).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(api, "a", |s: Option<&Service>| s.is_none()),
    )
    .await
    .expect("gone within 10 s")
    .unwrap();
    assert_eq!(
        address(&server, "globex", "d").await,
        "10.0.0.1",
        "retried once freed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_load_balancer_ips_are_taken_as_they_are_and_sharing_goes_by_ports() {
    let server = server(json!({
        "range-acme": "192.0.2.10-192.0.2.11",
        "allow-share-acme": "true",
    }))
    .await;
    // Outside every range: taken as it is.
    server
        .cluster()
        .create(service(
            "acme",
            "legacy",
            80,
            json!({"loadBalancerIP": "198.51.100.99"}),
        ))
        .unwrap();
    assert_eq!(address(&server, "acme", "legacy").await, "198.51.100.99");
    let legacy = server
        .cluster()
        .get("v1", "Service", Some("acme"), "legacy")
        .unwrap();
    assert_eq!(
        legacy["metadata"]["annotations"]["kube-vip.io/loadbalancerIPs"],
        "198.51.100.99"
    );
    // Sharing: disjoint ports share an in-use IPv4 address, a clashing port does not.
    server
        .cluster()
        .create(service("acme", "http", 80, json!({})))
        .unwrap();
    let http = address(&server, "acme", "http").await;
    server
        .cluster()
        .create(service("acme", "https", 443, json!({})))
        .unwrap();
    let https = address(&server, "acme", "https").await;
    assert!(
        https == http || https == "198.51.100.99",
        "{https} shares an address: {http}"
    );
    server
        .cluster()
        .create(service("acme", "again", 443, json!({})))
        .unwrap();
    let again = address(&server, "acme", "again").await;
    assert_ne!(again, https, "port 443 is taken on {https}");
}
