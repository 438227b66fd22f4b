//! The simulated kube-ovn-controller: subnet and VPC status, IPAM for reservations and pods,
//! VM addresses kept across pods, refusals the way Kube-OVN refuses.

use std::time::Duration;

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use kubecloud_testkit::{Cluster, KubeOvnController, TestServer};
use serde_json::{Value, json};

fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural)
}

async fn start() -> (TestServer, Cluster) {
    let server = TestServer::builder()
        .controller(KubeOvnController::default())
        .start()
        .await
        .unwrap();
    let cluster = server.cluster();
    cluster
        .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme"}}))
        .unwrap();
    cluster
        .create(
            json!({"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "acme-main"},
                       "spec": {"namespaces": ["acme"]}}),
        )
        .unwrap();
    (server, cluster)
}

fn subnet(cluster: &Cluster, name: &str, cidr: &str, extra: Value) {
    let mut spec = json!({"vpc": "acme-main", "cidrBlock": cidr, "protocol": "IPv4"});
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    cluster
        .create(json!({"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name}, "spec": spec}))
        .unwrap();
}

/// Waits (on a watch, with a guard) until `cond` holds for the object.
async fn wait(
    server: &TestServer,
    ar: &ApiResource,
    namespace: Option<&str>,
    name: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(server.client(), ns, ar),
        None => Api::all_with(server.client(), ar),
    };
    let done = await_condition(api, name, move |o: Option<&DynamicObject>| {
        o.is_some_and(|o| cond(&serde_json::to_value(o).unwrap()))
    });
    let got = tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .expect("condition in time")
        .expect("watch");
    serde_json::to_value(got.unwrap()).unwrap()
}

/// The first event about `involved` in `namespace`, waited for on a watch.
async fn first_event(server: &TestServer, namespace: &str, involved: &str) -> Value {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let events: Api<DynamicObject> =
        Api::namespaced_with(server.client(), namespace, &resource("", "Event", "events"));
    let config = watcher::Config::default().fields(&format!("involvedObject.name={involved}"));
    let stream = watcher(events, config).applied_objects();
    futures::pin_mut!(stream);
    let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event in time")
        .expect("a watch event")
        .expect("no watch error");
    serde_json::to_value(event).unwrap()
}

fn pod(name: &str, labels: Value, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "acme", "labels": labels, "annotations": annotations},
           "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": "node-1"}})
}

fn allocated(prefix: &'static str) -> impl Fn(&Value) -> bool {
    move |p: &Value| {
        p["metadata"]["annotations"][format!("{prefix}.kubernetes.io/allocated")] == "true"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subnets_and_vpcs_become_ready_with_exact_counts() {
    let (server, cluster) = start().await;
    subnet(
        &cluster,
        "acme-front",
        "10.1.0.0/24",
        json!({"gateway": "10.1.0.1", "excludeIps": ["10.1.0.2..10.1.0.11"]}),
    );
    let s = wait(
        &server,
        &resource("kubeovn.io", "Subnet", "subnets"),
        None,
        "acme-front",
        |s| s["status"]["v4availableIPs"].is_number(),
    )
    .await;
    assert_eq!(
        s["status"]["v4availableIPs"], 243.0,
        "254 hosts - gateway - 10 excluded"
    );
    assert_eq!(s["status"]["v4usingIPs"], 0.0);
    let ready = s["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "True");
    let vpc = wait(
        &server,
        &resource("kubeovn.io", "Vpc", "vpcs"),
        None,
        "acme-main",
        |v| v["status"]["subnets"] == json!(["acme-front"]),
    )
    .await;
    assert_eq!(vpc["status"]["standby"], true);
    // An overlapping subnet in the same VPC is not validated.
    subnet(&cluster, "acme-half", "10.1.0.128/25", json!({}));
    let half = wait(
        &server,
        &resource("kubeovn.io", "Subnet", "subnets"),
        None,
        "acme-half",
        |s| s["status"]["conditions"].is_array(),
    )
    .await;
    let validated = half["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Validated")
        .unwrap();
    assert_eq!(validated["status"], "False");
    assert!(
        validated["message"]
            .as_str()
            .unwrap()
            .contains("acme-front")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_addresses_annotations_and_ip_objects() {
    let (server, cluster) = start().await;
    subnet(&cluster, "acme-front", "10.1.0.0/24", json!({}));
    cluster
        .create(pod(
            "web",
            json!({}),
            json!({"ovn.kubernetes.io/logical_switch": "acme-front"}),
        ))
        .unwrap();
    let p = wait(
        &server,
        &resource("", "Pod", "pods"),
        Some("acme"),
        "web",
        allocated("ovn"),
    )
    .await;
    let a = &p["metadata"]["annotations"];
    assert_eq!(a["ovn.kubernetes.io/ip_address"], "10.1.0.2");
    assert_eq!(a["ovn.kubernetes.io/cidr"], "10.1.0.0/24");
    assert_eq!(a["ovn.kubernetes.io/gateway"], "10.1.0.1");
    assert!(a["ovn.kubernetes.io/mac_address"].is_string());
    let ip = cluster
        .get("kubeovn.io/v1", "IP", None, "web.acme")
        .unwrap();
    assert_eq!(ip["spec"]["v4IpAddress"], "10.1.0.2");
    assert_eq!(ip["spec"]["podName"], "web");
    assert_eq!(
        ip["metadata"]["labels"]["ovn.kubernetes.io/subnet"],
        "acme-front"
    );
    wait(
        &server,
        &resource("kubeovn.io", "Subnet", "subnets"),
        None,
        "acme-front",
        |s| s["status"]["v4usingIPs"] == 1.0 && s["status"]["v4availableIPs"] == 252.0,
    )
    .await;
    // A fixed address is honoured; the same address for another pod is refused with an event.
    cluster
        .create(pod("fixed", json!({}), json!({"ovn.kubernetes.io/logical_switch": "acme-front",
                                                "ovn.kubernetes.io/ip_address": "10.1.0.50",
                                                "ovn.kubernetes.io/mac_address": "52:54:00:00:00:50"})))
        .unwrap();
    let p = wait(
        &server,
        &resource("", "Pod", "pods"),
        Some("acme"),
        "fixed",
        allocated("ovn"),
    )
    .await;
    assert_eq!(
        p["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"],
        "10.1.0.50"
    );
    assert_eq!(
        p["metadata"]["annotations"]["ovn.kubernetes.io/mac_address"],
        "52:54:00:00:00:50"
    );
    cluster
        .create(pod(
            "thief",
            json!({}),
            json!({"ovn.kubernetes.io/logical_switch": "acme-front",
                                                "ovn.kubernetes.io/ip_address": "10.1.0.50"}),
        ))
        .unwrap();
    // pod.go reconcileAllocateSubnets: `stage=acquireAddress error=%v` with ipam.ErrConflict.
    let refused = first_event(&server, "acme", "thief").await;
    assert_eq!(refused["type"], "Warning");
    assert_eq!(refused["reason"], "AcquireAddressFailed");
    assert_eq!(
        refused["message"],
        "stage=acquireAddress error=AddressConflict"
    );
    let thief = cluster.get("v1", "Pod", Some("acme"), "thief").unwrap();
    assert!(thief["metadata"]["annotations"]["ovn.kubernetes.io/allocated"].is_null());
    // A plain pod's IP goes with the pod.
    cluster.delete("v1", "Pod", Some("acme"), "web").unwrap();
    wait(
        &server,
        &resource("kubeovn.io", "Subnet", "subnets"),
        None,
        "acme-front",
        |s| s["status"]["v4usingIPs"] == 1.0,
    )
    .await;
    assert!(
        cluster
            .get_opt("kubeovn.io/v1", "IP", None, "web.acme")
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_keeps_its_address_and_mac_across_pods_until_it_is_deleted() {
    let (server, cluster) = start().await;
    subnet(&cluster, "acme-front", "10.1.0.0/24", json!({}));
    subnet(
        &cluster,
        "acme-storage",
        "10.2.0.0/24",
        json!({"provider": "storage.acme.ovn"}),
    );
    cluster
        .create(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "db", "namespace": "acme"},
            "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}}}}}))
        .unwrap();
    let annotations = json!({"ovn.kubernetes.io/logical_switch": "acme-front",
                             "k8s.v1.cni.cncf.io/networks": "acme/storage"});
    cluster
        .create(pod(
            "virt-launcher-db-aaaaa",
            json!({"vm.kubevirt.io/name": "db"}),
            annotations.clone(),
        ))
        .unwrap();
    let pods = resource("", "Pod", "pods");
    let first = wait(
        &server,
        &pods,
        Some("acme"),
        "virt-launcher-db-aaaaa",
        |p| allocated("ovn")(p) && allocated("storage.acme.ovn")(p),
    )
    .await;
    let ip = cluster.get("kubeovn.io/v1", "IP", None, "db.acme").unwrap();
    assert_eq!(ip["spec"]["podType"], "VirtualMachine");
    assert_eq!(ip["spec"]["podName"], "db");
    assert!(
        cluster
            .get_opt("kubeovn.io/v1", "IP", None, "db.acme.storage.acme.ovn")
            .unwrap()
            .is_some()
    );
    // Live migration: a new pod of the same VM, then the old one goes.
    cluster
        .create(pod(
            "virt-launcher-db-bbbbb",
            json!({"vm.kubevirt.io/name": "db"}),
            annotations,
        ))
        .unwrap();
    let second = wait(
        &server,
        &pods,
        Some("acme"),
        "virt-launcher-db-bbbbb",
        |p| allocated("ovn")(p) && allocated("storage.acme.ovn")(p),
    )
    .await;
    cluster
        .delete("v1", "Pod", Some("acme"), "virt-launcher-db-aaaaa")
        .unwrap();
    for key in [
        "ovn.kubernetes.io/ip_address",
        "ovn.kubernetes.io/mac_address",
        "storage.acme.ovn.kubernetes.io/ip_address",
        "storage.acme.ovn.kubernetes.io/mac_address",
    ] {
        assert_eq!(
            first["metadata"]["annotations"][key], second["metadata"]["annotations"][key],
            "{key}"
        );
    }
    assert_eq!(
        second["metadata"]["annotations"]["storage.acme.ovn.kubernetes.io/cidr"],
        "10.2.0.0/24"
    );
    // Deleting the VM frees its addresses.
    cluster
        .delete("v1", "Pod", Some("acme"), "virt-launcher-db-bbbbb")
        .unwrap();
    cluster
        .delete("kubevirt.io/v1", "VirtualMachine", Some("acme"), "db")
        .unwrap();
    wait(
        &server,
        &resource("kubeovn.io", "Subnet", "subnets"),
        None,
        "acme-storage",
        |s| s["status"]["v4usingIPs"] == 0.0,
    )
    .await;
    // The double writes the counters before it removes the IP objects (a documented laxity):
    // wait, on a watch, until each IP still listed is gone.
    let ips: Api<DynamicObject> =
        Api::all_with(server.client(), &resource("kubeovn.io", "IP", "ips"));
    for ip in cluster.list("kubeovn.io/v1", "IP", None).unwrap() {
        let name = ip["metadata"]["name"].as_str().unwrap().to_string();
        let gone = await_condition(ips.clone(), &name, |o: Option<&DynamicObject>| o.is_none());
        tokio::time::timeout(Duration::from_secs(10), gone)
            .await
            .expect("the IP goes in time")
            .expect("watch");
    }
    assert!(
        cluster
            .list("kubeovn.io/v1", "IP", None)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_are_allocated_wait_when_full_and_take_a_released_address() {
    let (server, cluster) = start().await;
    subnet(&cluster, "acme-tiny", "10.3.0.0/29", json!({}));
    let ips = resource("kubeovn.io", "IP", "ips");
    // ip.go handleAddReservedIP: an `IP` made ahead of its pod is named as the pod's port,
    // `<podName>.<namespace>` (ovs.PodNameToPortName).
    let reserve = |pod: &str| {
        cluster
            .create(json!({"apiVersion": "kubeovn.io/v1", "kind": "IP",
                "metadata": {"name": format!("{pod}.acme")},
                "spec": {"subnet": "acme-tiny", "namespace": "acme", "podName": pod}}))
            .unwrap();
    };
    let mut seen = Vec::new();
    for i in 0..5 {
        let pod = format!("r{i}");
        reserve(&pod);
        let ip = wait(&server, &ips, None, &format!("{pod}.acme"), |o| {
            o["spec"]["v4IpAddress"].is_string()
        })
        .await;
        assert_eq!(ip["metadata"]["finalizers"], json!(["kube-ovn-controller"]));
        assert_eq!(
            ip["metadata"]["labels"]["ovn.kubernetes.io/ip_reserved"],
            "true"
        );
        seen.push(ip["spec"]["v4IpAddress"].as_str().unwrap().to_string());
    }
    // subnet.go getV4RandomAddress: the lowest free address; .1 is the gateway.
    assert_eq!(
        seen,
        ["10.3.0.2", "10.3.0.3", "10.3.0.4", "10.3.0.5", "10.3.0.6"]
    );
    let subnets = resource("kubeovn.io", "Subnet", "subnets");
    let full = wait(&server, &subnets, None, "acme-tiny", |s| {
        s["status"]["v4availableIPs"] == 0.0 && s["status"]["v4usingIPs"] == 5.0
    })
    .await;
    // subnet_status.go calcSubnetStatusIP / ipam.go GetSubnetIPRangeString.
    assert_eq!(full["status"]["v4usingIPrange"], "10.3.0.2-10.3.0.6");
    assert_eq!(full["status"]["v4availableIPrange"], "");
    assert_eq!(full["status"]["v6availableIPs"], 0.0);
    // A full subnet: Kube-OVN logs NoAvailableAddress and retries; the IP stays unallocated.
    reserve("late");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = cluster
        .get("kubeovn.io/v1", "IP", None, "late.acme")
        .unwrap();
    assert!(late["spec"]["v4IpAddress"].is_null());
    assert!(late["metadata"]["finalizers"].is_null());
    // Deleting a reservation releases its address before the finalizer goes, and the waiting
    // one takes it (the released list is used once no free address is left).
    cluster
        .delete("kubeovn.io/v1", "IP", None, "r2.acme")
        .unwrap();
    let late = wait(&server, &ips, None, "late.acme", |o| {
        o["spec"]["v4IpAddress"].is_string()
    })
    .await;
    assert_eq!(late["spec"]["v4IpAddress"], "10.3.0.4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_address_is_reused_only_once_no_free_one_is_left() {
    // subnet.go releaseV4Addr puts a released address on V4Released; getV4RandomAddress takes
    // from V4Free and turns to V4Released only when V4Free is empty.
    let (server, cluster) = start().await;
    subnet(&cluster, "acme-front", "10.1.0.0/29", json!({}));
    let pods = resource("", "Pod", "pods");
    let on_front = || json!({"ovn.kubernetes.io/logical_switch": "acme-front"});
    let address = |p: &Value| {
        p["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    cluster.create(pod("a", json!({}), on_front())).unwrap();
    let a = wait(&server, &pods, Some("acme"), "a", allocated("ovn")).await;
    assert_eq!(address(&a), "10.1.0.2");
    cluster.delete("v1", "Pod", Some("acme"), "a").unwrap();
    wait(
        &server,
        &resource("kubeovn.io", "Subnet", "subnets"),
        None,
        "acme-front",
        |s| s["status"]["v4usingIPs"] == 0.0,
    )
    .await;
    let mut got = Vec::new();
    for name in ["b", "c", "d", "e", "f"] {
        cluster.create(pod(name, json!({}), on_front())).unwrap();
        let p = wait(&server, &pods, Some("acme"), name, allocated("ovn")).await;
        got.push(address(&p));
    }
    assert_eq!(
        got,
        ["10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6", "10.1.0.2"],
        "the released .2 comes back last"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_addresses_follow_kube_ovn_static_allocation() {
    // subnet.go staticAddressFamilyForIP / allocateStaticAddress and util.ExpandExcludeIPs.
    let (server, cluster) = start().await;
    subnet(
        &cluster,
        "acme-front",
        "10.1.0.0/24",
        json!({"excludeIps": ["10.1.0.100..10.1.0.199"]}),
    );
    let pods = resource("", "Pod", "pods");
    let fixed = |ip: &str, mac: Option<&str>| {
        let mut a = json!({"ovn.kubernetes.io/logical_switch": "acme-front",
                           "ovn.kubernetes.io/ip_address": ip});
        if let Some(mac) = mac {
            a["ovn.kubernetes.io/mac_address"] = json!(mac);
        }
        a
    };
    // An excluded address is not handed out dynamically, but is granted when fixed.
    cluster
        .create(pod("excluded", json!({}), fixed("10.1.0.150", None)))
        .unwrap();
    let p = wait(&server, &pods, Some("acme"), "excluded", allocated("ovn")).await;
    assert_eq!(
        p["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"],
        "10.1.0.150"
    );
    let s = wait(
        &server,
        &resource("kubeovn.io", "Subnet", "subnets"),
        None,
        "acme-front",
        |s| s["status"]["v4usingIPs"].is_number() && s["status"]["v4usingIPrange"] == "",
    )
    .await;
    // calculateUsingIPs: an IP inside a non-gateway excludeIps entry is not counted.
    assert_eq!(s["status"]["v4usingIPs"], 0.0);
    assert_eq!(s["status"]["v4availableIPs"], 254.0 - 100.0 - 1.0);
    let refusals = [
        ("gateway", "10.1.0.1", None, "AddressConflict"),
        ("network", "10.1.0.0", None, "AddressOutOfRange"),
        ("broadcast", "10.1.0.255", None, "AddressOutOfRange"),
        ("outside", "10.9.0.5", None, "AddressOutOfRange"),
        ("twin", "10.1.0.150", None, "AddressConflict"),
    ];
    for (name, ip, mac, error) in refusals {
        cluster
            .create(pod(name, json!({}), fixed(ip, mac)))
            .unwrap();
        let event = first_event(&server, "acme", name).await;
        assert_eq!(
            event["message"],
            format!("stage=acquireAddress error={error}"),
            "{name}"
        );
    }
    // A MAC held by another NIC is a conflict too (GetStaticMac).
    let mac = p["metadata"]["annotations"]["ovn.kubernetes.io/mac_address"]
        .as_str()
        .unwrap()
        .to_string();
    cluster
        .create(pod("mac-thief", json!({}), fixed("10.1.0.20", Some(&mac))))
        .unwrap();
    let event = first_event(&server, "acme", "mac-thief").await;
    assert_eq!(
        event["message"],
        "stage=acquireAddress error=AddressConflict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_not_named_as_its_pods_port_is_never_allocated() {
    // ip.go handleAddReservedIP: "port name ... is not equal to ip name": not handled, whatever
    // its labels. The controller handles events in order, so once an `IP` created after it is
    // allocated, the first one was seen and left alone.
    let (server, cluster) = start().await;
    subnet(&cluster, "acme-front", "10.1.0.0/24", json!({}));
    cluster
        .create(json!({"apiVersion": "kubeovn.io/v1", "kind": "IP",
            "metadata": {"name": "acme-db", "labels": {"ovn.kubernetes.io/ip_reserved": "true"}},
            "spec": {"subnet": "acme-front", "namespace": "acme", "v4IpAddress": "10.1.0.10"}}))
        .unwrap();
    cluster
        .create(json!({"apiVersion": "kubeovn.io/v1", "kind": "IP",
            "metadata": {"name": "db.acme"},
            "spec": {"subnet": "acme-front", "namespace": "acme", "podName": "db"}}))
        .unwrap();
    wait(
        &server,
        &resource("kubeovn.io", "IP", "ips"),
        None,
        "db.acme",
        |o| o["spec"]["macAddress"].is_string(),
    )
    .await;
    let ip = cluster.get("kubeovn.io/v1", "IP", None, "acme-db").unwrap();
    assert!(ip["metadata"]["finalizers"].is_null(), "{ip}");
    assert!(ip["spec"]["macAddress"].is_null(), "{ip}");
}

fn vip(name: &str, extra: Value) -> Value {
    let mut spec = json!({"subnet": "acme-front", "namespace": "acme"});
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    json!({"apiVersion": "kubeovn.io/v1", "kind": "Vip", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vip_holds_an_address_a_pod_takes_and_gives_back() {
    let (server, cluster) = start().await;
    subnet(&cluster, "acme-front", "10.1.0.0/24", json!({}));
    let vips = resource("kubeovn.io", "Vip", "vips");
    let subnets = resource("kubeovn.io", "Subnet", "subnets");
    // vip.go handleAddVirtualIP + createOrUpdateVipCR: the lowest free address, a MAC, the
    // finalizer, the labels, and spec and status written back.
    cluster.create(vip("acme-web", json!({}))).unwrap();
    let web = wait(&server, &vips, None, "acme-web", |v| {
        v["status"]["mac"].is_string()
    })
    .await;
    assert_eq!(web["status"]["v4ip"], "10.1.0.2");
    assert_eq!(web["spec"]["v4ip"], "10.1.0.2");
    assert_eq!(web["spec"]["macAddress"], web["status"]["mac"]);
    assert_eq!(
        web["metadata"]["finalizers"],
        json!(["kube-ovn-controller"])
    );
    assert_eq!(
        web["metadata"]["labels"]["ovn.kubernetes.io/subnet"],
        "acme-front"
    );
    assert_eq!(
        web["metadata"]["labels"]["ovn.kubernetes.io/ip_reserved"],
        ""
    );
    // subnet_status.go calculateUsingIPs: an unbound Vip is a used address.
    wait(&server, &subnets, None, "acme-front", |s| {
        s["status"]["v4usingIPs"] == 1.0
    })
    .await;
    // A fixed address is checked for conflicts (acquireStaticIPAddress): the same address twice
    // is left unallocated (only logged), the gateway too.
    cluster
        .create(vip("acme-fixed", json!({"v4ip": "10.1.0.50"})))
        .unwrap();
    cluster
        .create(vip("acme-twice", json!({"v4ip": "10.1.0.50"})))
        .unwrap();
    cluster
        .create(vip("acme-gw", json!({"v4ip": "10.1.0.1"})))
        .unwrap();
    cluster.create(vip("acme-marker", json!({}))).unwrap();
    wait(&server, &vips, None, "acme-marker", |v| {
        v["status"]["mac"].is_string()
    })
    .await;
    let fixed = cluster
        .get("kubeovn.io/v1", "Vip", None, "acme-fixed")
        .unwrap();
    assert_eq!(fixed["status"]["v4ip"], "10.1.0.50");
    for refused in ["acme-twice", "acme-gw"] {
        let v = cluster.get("kubeovn.io/v1", "Vip", None, refused).unwrap();
        assert!(v["status"]["mac"].is_null(), "{refused}: {v}");
    }
    // pod.go acquireAddress: a pod annotated with the Vip gets its address and MAC; podReuseVip
    // labels the Vip with the pod's port.
    cluster
        .create(pod(
            "web-1",
            json!({}),
            json!({"ovn.kubernetes.io/logical_switch": "acme-front", "ovn.kubernetes.io/vip": "acme-web"}),
        ))
        .unwrap();
    let pods = resource("", "Pod", "pods");
    let p = wait(&server, &pods, Some("acme"), "web-1", allocated("ovn")).await;
    assert_eq!(
        p["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"],
        "10.1.0.2"
    );
    assert_eq!(
        p["metadata"]["annotations"]["ovn.kubernetes.io/mac_address"],
        web["status"]["mac"]
    );
    let bound = wait(&server, &vips, None, "acme-web", |v| {
        v["metadata"]["labels"]["ovn.kubernetes.io/ip_reserved"] == "web-1.acme"
    })
    .await;
    assert_eq!(bound["status"]["v4ip"], "10.1.0.2");
    // A second pod asking for the same Vip is refused with Kube-OVN's message.
    cluster
        .create(pod(
            "web-2",
            json!({}),
            json!({"ovn.kubernetes.io/logical_switch": "acme-front", "ovn.kubernetes.io/vip": "acme-web"}),
        ))
        .unwrap();
    let event = first_event(&server, "acme", "web-2").await;
    assert_eq!(
        event["message"],
        "stage=acquireAddress error=vip 'acme-web' is in use by pod web-1.acme"
    );
    // A fixed address equal to the bound Vip's is a conflict: the pod's port holds it.
    cluster
        .create(pod(
            "thief",
            json!({}),
            json!({"ovn.kubernetes.io/logical_switch": "acme-front", "ovn.kubernetes.io/ip_address": "10.1.0.2"}),
        ))
        .unwrap();
    let event = first_event(&server, "acme", "thief").await;
    assert_eq!(
        event["message"],
        "stage=acquireAddress error=AddressConflict"
    );
    // releaseVip: the pod goes, the Vip is unbound and holds its address again.
    cluster.delete("v1", "Pod", Some("acme"), "web-1").unwrap();
    wait(&server, &vips, None, "acme-web", |v| {
        v["metadata"]["labels"]["ovn.kubernetes.io/ip_reserved"] == ""
    })
    .await;
    cluster.delete("v1", "Pod", Some("acme"), "thief").unwrap();
    cluster
        .create(pod(
            "thief-2",
            json!({}),
            json!({"ovn.kubernetes.io/logical_switch": "acme-front", "ovn.kubernetes.io/ip_address": "10.1.0.2"}),
        ))
        .unwrap();
    let event = first_event(&server, "acme", "thief-2").await;
    assert_eq!(
        event["message"],
        "stage=acquireAddress error=AddressConflict"
    );
    // Deleting the Vip releases its address, then the finalizer goes.
    cluster
        .delete("kubeovn.io/v1", "Vip", None, "acme-web")
        .unwrap();
    let api: Api<DynamicObject> = Api::all_with(server.client(), &vips);
    tokio::time::timeout(
        Duration::from_secs(10),
        kube::runtime::wait::await_condition(
            api,
            "acme-web",
            kube::runtime::conditions::is_deleted(""),
        ),
    )
    .await
    .expect("the vip goes in time")
    .expect("watch");
    cluster
        .create(pod(
            "heir",
            json!({}),
            json!({"ovn.kubernetes.io/logical_switch": "acme-front", "ovn.kubernetes.io/ip_address": "10.1.0.2"}),
        ))
        .unwrap();
    let p = wait(&server, &pods, Some("acme"), "heir", allocated("ovn")).await;
    assert_eq!(
        p["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"],
        "10.1.0.2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_keeps_its_vip_across_pods_and_a_second_network_is_refused() {
    let (server, cluster) = start().await;
    subnet(&cluster, "acme-front", "10.1.0.0/24", json!({}));
    subnet(
        &cluster,
        "acme-storage",
        "10.2.0.0/24",
        json!({"provider": "storage.acme.ovn"}),
    );
    let vips = resource("kubeovn.io", "Vip", "vips");
    cluster
        .create(vip("acme-db", json!({"v4ip": "10.1.0.40"})))
        .unwrap();
    wait(&server, &vips, None, "acme-db", |v| {
        v["status"]["mac"].is_string()
    })
    .await;
    cluster
        .create(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "db", "namespace": "acme"},
            "spec": {"runStrategy": "Always", "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}}}}}))
        .unwrap();
    let annotations = json!({"ovn.kubernetes.io/logical_switch": "acme-front",
                             "ovn.kubernetes.io/vip": "acme-db"});
    cluster
        .create(pod(
            "virt-launcher-db-a",
            json!({"vm.kubevirt.io/name": "db"}),
            annotations.clone(),
        ))
        .unwrap();
    let pods = resource("", "Pod", "pods");
    let first = wait(
        &server,
        &pods,
        Some("acme"),
        "virt-launcher-db-a",
        allocated("ovn"),
    )
    .await;
    assert_eq!(
        first["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"],
        "10.1.0.40"
    );
    // keep-vm-ip: the next pod of the VM has the same port name and reuses the Vip.
    cluster
        .create(pod(
            "virt-launcher-db-b",
            json!({"vm.kubevirt.io/name": "db"}),
            annotations,
        ))
        .unwrap();
    let second = wait(
        &server,
        &pods,
        Some("acme"),
        "virt-launcher-db-b",
        allocated("ovn"),
    )
    .await;
    assert_eq!(
        second["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"],
        "10.1.0.40"
    );
    cluster
        .delete("v1", "Pod", Some("acme"), "virt-launcher-db-a")
        .unwrap();
    // The Vip stays bound while the VM is there; it goes back when the VM is deleted.
    cluster
        .delete("kubevirt.io/v1", "VirtualMachine", Some("acme"), "db")
        .unwrap();
    cluster
        .delete("v1", "Pod", Some("acme"), "virt-launcher-db-b")
        .unwrap();
    wait(&server, &vips, None, "acme-db", |v| {
        v["metadata"]["labels"]["ovn.kubernetes.io/ip_reserved"] == ""
    })
    .await;
    // The annotation is not per provider: a pod with a second Kube-OVN network asks the Vip for
    // it too, under another port name, and is refused (pod.go acquireAddress, podReuseVip).
    cluster
        .create(pod(
            "two-nets",
            json!({}),
            json!({"ovn.kubernetes.io/logical_switch": "acme-front",
                   "k8s.v1.cni.cncf.io/networks": "acme/storage",
                   "ovn.kubernetes.io/vip": "acme-db"}),
        ))
        .unwrap();
    let event = first_event(&server, "acme", "two-nets").await;
    assert_eq!(
        event["message"],
        "stage=acquireAddress error=vip 'acme-db' is in use by pod two-nets.acme"
    );
}
