//! The Multus backend against the testkit server with the simulated Multus + whereabouts:
//! what it sends (VLAN per VPC, whereabouts IPAM), what it refuses (typed, naming the backend
//! and capability or the field), and leaked addresses found and reclaimed.

use std::time::Duration;

use futures::StreamExt;
use kubecloud_core::{
    Error, IpReservationSpec, Network, NetworkInterface, Rule, RuleAction, SecurityGroupSpec,
    StaticRoute, SubnetSpec, Tenant, VpcSpec,
};
use kubecloud_multus::Multus;
use kubecloud_testkit::{TestServer, WhereaboutsController, WhereaboutsKnobs};
use serde_json::{Value, json};

/// Waits on the subnet's states until `used` addresses are in use.
async fn wait_used(
    states: &mut futures::stream::BoxStream<
        'static,
        kubecloud_core::Result<kubecloud_core::Subnet>,
    >,
    used: u128,
) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(s) = states.next().await {
            if s.unwrap().used == used {
                return;
            }
        }
        panic!("the subnet's states ended");
    })
    .await
    .expect("usage reached");
}

async fn server() -> (TestServer, WhereaboutsKnobs) {
    let whereabouts = WhereaboutsController::default();
    let knobs = whereabouts.knobs();
    let server = TestServer::builder()
        .controller(whereabouts)
        .start()
        .await
        .expect("server");
    (server, knobs)
}

fn unsupported(err: &Error) -> (&str, &str) {
    match err {
        Error::Unsupported {
            backend,
            capability,
            ..
        } => (backend.as_str(), capability.as_str()),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

fn config(server: &TestServer, ns: &str, nad: &str) -> Value {
    let object = server
        .cluster()
        .get(
            "k8s.cni.cncf.io/v1",
            "NetworkAttachmentDefinition",
            Some(ns),
            nad,
        )
        .expect("attachment");
    serde_json::from_str(object["spec"]["config"].as_str().expect("config")).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_vpc_is_its_own_vlan_and_subnets_use_whereabouts() {
    let (server, _) = server().await;
    let network = Multus::builder(server.client())
        .bridge("br-vm", 300..=301)
        .build();
    let (a, b) = (Tenant::new("vl-a").unwrap(), Tenant::new("vl-b").unwrap());
    network
        .create_vpc(&a, &VpcSpec::named("main"))
        .await
        .unwrap();
    network
        .create_vpc(&b, &VpcSpec::named("main"))
        .await
        .unwrap();
    // Both VLANs of the range are taken: a third VPC is refused, naming the range.
    let err = network
        .create_vpc(&a, &VpcSpec::named("third"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Exhausted { .. }), "{err:?}");
    assert!(
        network
            .get_vpc(&a, "third")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let cidr = "10.1.0.0/24".parse().unwrap();
    let mut spec = SubnetSpec::new("front", "main", cidr);
    spec.exclude = vec!["10.1.0.100..10.1.0.103".parse().unwrap()];
    network.create_subnet(&a, &spec).await.unwrap();
    network
        .create_subnet(&b, &SubnetSpec::new("front", "main", cidr))
        .await
        .unwrap();
    let (ca, cb) = (
        config(&server, "vl-a", "front"),
        config(&server, "vl-b", "front"),
    );
    assert_eq!(ca["type"], "bridge");
    assert_eq!(ca["bridge"], "br-vm");
    let vlans = [ca["vlan"].as_u64().unwrap(), cb["vlan"].as_u64().unwrap()];
    assert!(vlans.contains(&300) && vlans.contains(&301), "{vlans:?}");
    assert_eq!(
        ca["ipam"],
        json!({"type": "whereabouts", "range": "10.1.0.0/24", "gateway": "10.1.0.1",
               "exclude": ["10.1.0.1/32", "10.1.0.100/30"], "network_name": "vl-a-front"})
    );
    // Equal CIDRs of two tenants are two whereabouts pools.
    assert_eq!(cb["ipam"]["network_name"], "vl-b-front");
    // Deleting a VPC frees its VLAN for the next one.
    network.delete_subnet(&b, "front").await.unwrap();
    network.delete_vpc(&b, "main").await.unwrap();
    network
        .create_vpc(&a, &VpcSpec::named("third"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_multus_cannot_do_is_refused_naming_the_backend_or_the_field() {
    let (server, _) = server().await;
    let network = Multus::builder(server.client()).build();
    let t = Tenant::new("refusals").unwrap();
    let routed = VpcSpec {
        static_routes: vec![StaticRoute {
            destination: "10.9.0.0/16".parse().unwrap(),
            next_hop: "10.1.0.254".parse().unwrap(),
        }],
        ..VpcSpec::named("main")
    };
    let err = network.create_vpc(&t, &routed).await.unwrap_err();
    assert_eq!(unsupported(&err).0, "multus");
    assert!(unsupported(&err).1.starts_with("static_routes"), "{err}");
    let peered = VpcSpec {
        peers: vec!["other".into()],
        ..VpcSpec::named("main")
    };
    let err = network.create_vpc(&t, &peered).await.unwrap_err();
    assert!(unsupported(&err).1.starts_with("vpc_peering"), "{err}");
    assert!(
        network
            .get_vpc(&t, "main")
            .await
            .unwrap_err()
            .is_not_found()
    );

    network
        .create_vpc(&t, &VpcSpec::named("main"))
        .await
        .unwrap();
    let mut natted = SubnetSpec::new("out", "main", "10.2.0.0/24".parse().unwrap());
    natted.nat_outgoing = true;
    let err = network.create_subnet(&t, &natted).await.unwrap_err();
    assert!(unsupported(&err).1.starts_with("natOutgoing"), "{err}");
    let v6 = SubnetSpec::new("v6", "main", "fd00:1::/64".parse().unwrap());
    assert_eq!(
        unsupported(&network.create_subnet(&t, &v6).await.unwrap_err()).1,
        "ipv6"
    );

    let drop = SecurityGroupSpec {
        name: "deny".into(),
        ingress: vec![Rule {
            action: RuleAction::Drop,
            ..Rule::allow_tcp(22)
        }],
        egress: vec![],
    };
    let err = network.create_security_group(&t, &drop).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("ingress[0].action"), "{err}");
    let icmp = SecurityGroupSpec {
        name: "ping".into(),
        ingress: vec![Rule {
            protocol: kubecloud_core::Protocol::Icmp,
            ports: None,
            ..Rule::allow_tcp(22)
        }],
        egress: vec![],
    };
    let err = network.create_security_group(&t, &icmp).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("ingress[0].protocol"), "{err}");

    network
        .create_subnet(
            &t,
            &SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap();
    // A fixed address that is not a reservation's: whereabouts cannot be asked for it.
    let fixed =
        NetworkInterface::on_subnet("eth0", "front").with_fixed_ip("10.1.0.10".parse().unwrap());
    let err = network
        .attach_interfaces(&t, "web", std::slice::from_ref(&fixed))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("interfaces[0].fixedIp"), "{err}");
    assert!(err.to_string().contains("whereabouts"), "{err}");
    // Reserved, the interface takes the reservation's static attachment, kept on migration.
    network
        .reserve_ip(
            &t,
            &IpReservationSpec::new("web", "front").with_ip("10.1.0.10".parse().unwrap()),
        )
        .await
        .unwrap();
    let attached = network
        .attach_interfaces(&t, "web", &[fixed])
        .await
        .unwrap();
    assert_eq!(
        attached[0].network,
        kubecloud_core::NetworkSelection::Multus {
            namespace: "refusals".into(),
            name: "ip.web".into()
        }
    );
    assert!(attached[0].guarantees.addresses_kept_on_migration);
    // Security groups on the pod network: no NetworkPolicy translation yet.
    network
        .create_security_group(
            &t,
            &SecurityGroupSpec {
                name: "web".into(),
                ingress: vec![Rule::allow_tcp(443)],
                egress: vec![],
            },
        )
        .await
        .unwrap();
    let mut pod_if = NetworkInterface::pod_network("eth1");
    pod_if.security_groups = vec!["web".into()];
    let err = network
        .attach_interfaces(&t, "web", &[pod_if])
        .await
        .unwrap_err();
    assert_eq!(unsupported(&err).0, "multus");
    // Groups select pods: two subnet interfaces of one VM must name the same groups.
    network
        .create_subnet(
            &t,
            &SubnetSpec::new("back", "main", "10.3.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap();
    let mut eth0 = NetworkInterface::on_subnet("eth0", "front");
    eth0.security_groups = vec!["web".into()];
    let eth1 = NetworkInterface::on_subnet("eth1", "back");
    let err = network
        .attach_interfaces(&t, "web", &[eth0, eth1])
        .await
        .unwrap_err();
    assert_eq!(
        err.invalid_field(),
        Some("interfaces[1].securityGroups"),
        "{err}"
    );

    // On macvtap, interfaces bind with macvtap (not migratable); the guest's addresses are
    // its own (macvtap-cni runs no IPAM), and policies do not see its traffic.
    let macvtap = Multus::builder(server.client()).macvtap("eth1").build();
    assert!(!kubecloud_core::Network::capabilities(&macvtap).vpc_isolation);
    let attached = macvtap
        .attach_interfaces(&t, "web", &[NetworkInterface::on_subnet("eth0", "front")])
        .await
        .unwrap();
    assert_eq!(attached[0].binding, kubecloud_core::PodBinding::Macvtap);
    assert!(!attached[0].migratable());
    let fixed =
        NetworkInterface::on_subnet("eth0", "front").with_fixed_ip("10.1.0.10".parse().unwrap());
    let err = macvtap
        .attach_interfaces(&t, "web", &[fixed])
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("interfaces[0].fixedIp"), "{err}");
    let mut grouped = NetworkInterface::on_subnet("eth0", "front");
    grouped.security_groups = vec!["web".into()];
    let err = macvtap
        .attach_interfaces(&t, "web", &[grouped])
        .await
        .unwrap_err();
    assert_eq!(unsupported(&err).0, "multus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaked_addresses_are_found_and_reclaimed_as_whereabouts_does() {
    let (server, knobs) = server().await;
    let network = Multus::builder(server.client()).build();
    let t = Tenant::new("leaky").unwrap();
    network
        .create_vpc(&t, &VpcSpec::named("main"))
        .await
        .unwrap();
    network
        .create_subnet(
            &t,
            &SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap();
    network
        .reserve_ip(
            &t,
            &IpReservationSpec::new("held", "front").with_ip("10.1.0.2".parse().unwrap()),
        )
        .await
        .unwrap();
    let mut states = network.watch_subnet(&t, "front").await.unwrap();
    // A pod on the subnet, as KubeVirt makes a VM's: whereabouts allocates when it starts.
    let cluster = server.cluster();
    cluster
        .create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "virt-launcher-web-x", "namespace": "leaky",
                         "annotations": {"k8s.v1.cni.cncf.io/networks":
                             "[{\"name\":\"front\",\"namespace\":\"leaky\",\"interface\":\"net1\"}]"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap();
    wait_used(&mut states, 2).await;
    let pod = cluster
        .get("v1", "Pod", Some("leaky"), "virt-launcher-web-x")
        .unwrap();
    let status: Vec<Value> = serde_json::from_str(
        pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    // Lowest free: .1 is the gateway (excluded), .2 reserved (excluded): .3.
    assert_eq!(status[1]["ips"][0], "10.1.0.3");
    assert!(network.leaked_addresses(&t).await.unwrap().is_empty());
    // The pod goes without whereabouts' DEL: its allocation leaks.
    knobs.leak_releases(true);
    cluster
        .delete("v1", "Pod", Some("leaky"), "virt-launcher-web-x")
        .unwrap();
    // Deleted at once (no finalizer, no grace in the double): the allocation's pod is gone.
    assert!(
        cluster
            .get_opt("v1", "Pod", Some("leaky"), "virt-launcher-web-x")
            .unwrap()
            .is_none()
    );
    let leaked = network.leaked_addresses(&t).await.unwrap();
    assert_eq!(leaked.len(), 1, "{leaked:?}");
    assert_eq!(
        leaked[0].ip,
        "10.1.0.3".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(leaked[0].pod, "leaky/virt-launcher-web-x");
    let freed = network.reclaim_leaked_addresses(&t).await.unwrap();
    assert_eq!(freed, leaked);
    wait_used(&mut states, 1).await;
    let orips = cluster
        .list(
            "whereabouts.cni.cncf.io/v1alpha1",
            "OverlappingRangeIPReservation",
            Some("kube-system"),
        )
        .unwrap();
    assert!(orips.is_empty(), "{orips:?}");
    network.release_ip(&t, "held").await.unwrap();
    network.delete_subnet(&t, "front").await.unwrap();
    network.delete_vpc(&t, "main").await.unwrap();
}

/// A live object changed by hand into something the backend cannot use fails the read naming
/// the object and the field: nothing is skipped or read as empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_objects_changed_by_hand_are_errors_naming_the_field() {
    let (server, _) = server().await;
    let network = Multus::builder(server.client())
        .bridge("br-vm", 300..=301)
        .build();
    let t = Tenant::new("edited").unwrap();
    network
        .create_vpc(&t, &VpcSpec::named("main"))
        .await
        .unwrap();
    network
        .create_subnet(
            &t,
            &SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap();
    let cluster = server.cluster();
    let api = "k8s.cni.cncf.io/v1";
    let kind = "NetworkAttachmentDefinition";
    let mut nad = cluster.get(api, kind, Some("edited"), "front").unwrap();
    nad["metadata"]["annotations"]["kubecloud.io/reserved"] = json!("10.1.0.7,ten");
    cluster.replace(nad).unwrap();
    let err = network.get_subnet(&t, "front").await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            Error::Backend {
                temporary: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        message.contains("metadata.annotations[kubecloud.io/reserved]")
            && message.contains("\"front\"")
            && message.contains("\"ten\""),
        "{message}"
    );

    let mut vpc = cluster
        .get("v1", "ConfigMap", Some("edited"), "kubecloud-vpc.main")
        .unwrap();
    vpc["data"]["vlan"] = json!("blue");
    cluster.replace(vpc).unwrap();
    let err = network
        .create_subnet(
            &t,
            &SubnetSpec::new("back", "main", "10.2.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("data.vlan") && message.contains("kubecloud-vpc.main"),
        "{message}"
    );
}
