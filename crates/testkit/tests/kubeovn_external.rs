//! The simulated kube-ovn-controller's external access: `OvnEip` addresses from the external
//! subnet (or the simulated external network), refusals, and `OvnFip`/`OvnSnatRule` readiness
//! following their EIP.

use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use kubecloud_testkit::{KubeOvnController, TestServer};
use serde_json::{Value, json};

const API: &str = "kubeovn.io/v1";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("kubeovn.io", "v1", kind), plural)
}

async fn start() -> TestServer {
    TestServer::builder()
        .controller(KubeOvnController::default())
        .start()
        .await
        .unwrap()
}

/// Waits (on a watch, with a guard) until `cond` holds for the cluster-scoped object.
async fn wait(
    server: &TestServer,
    ar: &ApiResource,
    name: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let api: Api<DynamicObject> = Api::all_with(server.client(), ar);
    let done = await_condition(api, name, move |o: Option<&DynamicObject>| {
        o.is_some_and(|o| cond(&serde_json::to_value(o).unwrap()))
    });
    let got = tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .expect("condition in time")
        .expect("watch");
    serde_json::to_value(got.unwrap()).unwrap()
}

fn eip(name: &str, subnet: &str, ip: Option<&str>) -> Value {
    let mut spec = json!({"externalSubnet": subnet, "type": "nat"});
    if let Some(ip) = ip {
        spec["v4Ip"] = json!(ip);
    }
    json!({"apiVersion": API, "kind": "OvnEip", "metadata": {"name": name}, "spec": spec})
}

fn decided(o: &Value) -> bool {
    o["status"]["ready"].is_boolean()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eips_get_addresses_from_the_external_network_and_taken_ones_are_refused() {
    let server = start().await;
    let cluster = server.cluster();
    let eips = resource("OvnEip", "ovn-eips");
    // No Subnet of that name: the simulated external network.
    cluster
        .create(eip("a", "ovn-vpc-external-network", None))
        .unwrap();
    let a = wait(&server, &eips, "a", decided).await;
    assert_eq!(a["status"]["ready"], true);
    let addr = a["status"]["v4Ip"].as_str().unwrap().to_string();
    assert!(addr.starts_with("172.31."), "{addr}");
    assert_ne!(addr, "172.31.0.1", "never the gateway");
    assert_eq!(a["status"]["conditions"][0]["status"], "True");
    // A requested address is honoured; the same one again is refused.
    cluster
        .create(eip("b", "ovn-vpc-external-network", Some("172.31.0.50")))
        .unwrap();
    let b = wait(&server, &eips, "b", decided).await;
    assert_eq!(b["status"]["v4Ip"], "172.31.0.50");
    cluster
        .create(eip("c", "ovn-vpc-external-network", Some("172.31.0.50")))
        .unwrap();
    let c = wait(&server, &eips, "c", decided).await;
    assert_eq!(c["status"]["ready"], false);
    assert_eq!(c["status"]["conditions"][0]["reason"], "AllocateEipFailed");
    assert!(c["status"]["v4Ip"].is_null());
    // A Subnet of the EIP's external subnet decides the range.
    cluster
        .create(json!({"apiVersion": API, "kind": "Subnet", "metadata": {"name": "ext"},
                       "spec": {"cidrBlock": "192.0.2.0/29", "gateway": "192.0.2.1", "protocol": "IPv4"}}))
        .unwrap();
    cluster.create(eip("d", "ext", None)).unwrap();
    let d = wait(&server, &eips, "d", decided).await;
    assert_eq!(d["status"]["v4Ip"], "192.0.2.2");
    cluster.create(eip("e", "ext", Some("10.0.0.9"))).unwrap();
    let e = wait(&server, &eips, "e", decided).await;
    assert_eq!(e["status"]["ready"], false, "outside the external subnet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fips_and_snat_rules_are_ready_while_their_eip_is() {
    let server = start().await;
    let cluster = server.cluster();
    let fips = resource("OvnFip", "ovn-fips");
    let snats = resource("OvnSnatRule", "ovn-snat-rules");
    cluster
        .create(
            json!({"apiVersion": API, "kind": "OvnFip", "metadata": {"name": "f"},
                       "spec": {"ovnEip": "e", "ipName": "some-ip", "ipType": "ip"}}),
        )
        .unwrap();
    cluster
        .create(
            json!({"apiVersion": API, "kind": "OvnSnatRule", "metadata": {"name": "s"},
                       "spec": {"ovnEip": "e", "vpcSubnet": "front"}}),
        )
        .unwrap();
    let f = wait(&server, &fips, "f", decided).await;
    assert_eq!(f["status"]["ready"], false, "no EIP yet");
    let s = wait(&server, &snats, "s", decided).await;
    assert_eq!(s["status"]["ready"], false, "no EIP yet");
    cluster
        .create(eip("e", "ovn-vpc-external-network", None))
        .unwrap();
    let f = wait(&server, &fips, "f", |o| o["status"]["ready"] == true).await;
    let s = wait(&server, &snats, "s", |o| o["status"]["ready"] == true).await;
    let e = cluster.get_opt(API, "OvnEip", None, "e").unwrap().unwrap();
    assert_eq!(f["status"]["v4Eip"], e["status"]["v4Ip"]);
    assert_eq!(s["status"]["v4Eip"], e["status"]["v4Ip"]);
    cluster.delete(API, "OvnEip", None, "e").unwrap();
    wait(&server, &fips, "f", |o| o["status"]["ready"] == false).await;
    wait(&server, &snats, "s", |o| o["status"]["ready"] == false).await;
}
